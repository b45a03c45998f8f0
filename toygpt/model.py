"""A small GPT: token + position embeddings, pre-LN transformer blocks, a linear head.

The names follow the lesson (``GPTModel``, ``TransformerBlock``, ``token_embedding``,
``position_encoding``, ``blocks``, ``ln_final``, ``output_layer``). Two of the lesson's
defects are fixed here:

* the residual stream is never normalised in place: ``x = x + attn(ln1(x))``;
* the causal mask is built once, as a buffer, and sliced to the sequence length.

The model knows nothing about decoding: ``toygpt.generation`` and ``toygpt.beam`` drive
it. For fast generation it accepts a :class:`KVCache`, which stores every layer's keys
and values so that each new token costs one position of work instead of the whole
sequence.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "GPTModel",
    "TransformerBlock",
    "CausalSelfAttention",
    "KVCache",
    "eval_mode",
]


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")


def _check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:  # also rejects NaN
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def _check_mask(mask, shape) -> None:
    """A custom attention mask: a bool tensor broadcastable to ``shape``
    ``(B, heads, T, T_keys)``, True where attending is allowed."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}; "
            "float (additive) masks are not accepted"
        )
    try:
        ok = mask.dim() <= 4 and torch.broadcast_shapes(mask.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to (batch, heads, "
            f"queries, keys) = {tuple(shape)}"
        )


@contextmanager
def eval_mode(model: nn.Module):
    """Run ``model`` in eval mode (dropout off) inside the block, then give it back the
    mode it had, even if the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class KVCache:
    """Keys and values of every layer for the tokens seen so far.

    ``keys[i]`` and ``values[i]`` have shape ``(B, heads, length, head_dim)``.
    Create one with :meth:`GPTModel.new_kv_cache` and pass it to every forward call.
    One tensor holds all layers, with room for up to ``capacity`` positions, so adding
    a token copies only that token's keys and values (growing tensors with
    ``torch.cat`` would copy all of them), and beam search re-orders every layer at
    once. The first call reserves all ``capacity`` positions; :meth:`reorder` keeps
    only the filled ones plus room for one more (beam search and the exact layer add
    one token per reorder), and a later call that needs more room grows the tensor.

    For a padded batch the cache also remembers which cached positions are padding
    (``mask``, ``(B, capacity)``, True on real tokens; ``None`` while every cached
    position is real), so that later tokens never attend to the padding and their
    positions count only each row's real tokens.
    """

    def __init__(self, num_layers: int, capacity: int):
        _check_int("num_layers", num_layers, 1)
        _check_int("capacity", capacity, 1)
        self.capacity = capacity
        self.lengths = [0] * num_layers  # positions filled, per layer
        self._kv: torch.Tensor | None = (
            None  # (layers, 2, B, heads, capacity, head_dim)
        )
        self.mask: torch.Tensor | None = None  # (B, capacity) bool, True on real tokens

    def __len__(self) -> int:
        """Number of cached positions."""
        return self.lengths[-1]

    @property
    def batch_size(self) -> int | None:
        """Rows held (None before the first update)."""
        return None if self._kv is None else self._kv.shape[2]

    @property
    def keys(self) -> list[torch.Tensor | None]:
        return [
            None if self._kv is None else self._kv[i, 0, :, :, :n]
            for i, n in enumerate(self.lengths)
        ]

    @property
    def values(self) -> list[torch.Tensor | None]:
        return [
            None if self._kv is None else self._kv[i, 1, :, :, :n]
            for i, n in enumerate(self.lengths)
        ]

    def check(self, num_layers: int, batch_size: int, new: int, heads=None) -> None:
        """Refuse a call that would give wrong logits: a cache made for another number
        of layers or another batch size, or more positions than it holds."""
        if len(self.lengths) != num_layers:
            raise ValueError(
                f"kv_cache was made for {len(self.lengths)} layers but the model has "
                f"{num_layers}; make it with model.new_kv_cache()"
            )
        if len(set(self.lengths)) != 1:
            raise ValueError(
                f"kv_cache layers hold different lengths {self.lengths} (a call failed "
                "half-way); start a new cache"
            )
        if self.batch_size is not None and batch_size != self.batch_size:
            raise ValueError(
                f"kv_cache holds {self.batch_size} rows but input_ids has "
                f"{batch_size}; use kv_cache.reorder(rows) or a new cache"
            )
        if heads is not None and self._kv is not None and heads != self._kv.shape[3]:
            raise ValueError(
                f"kv_cache holds {self._kv.shape[3]} heads but the model has {heads}"
            )
        if len(self) + new > self.capacity:
            raise ValueError(
                f"kv_cache holds {self.capacity} positions; {len(self)} are cached and "
                f"{new} more were asked for"
            )

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append this step's keys/values for one layer; return the full keys/values."""
        if not 0 <= layer < len(self.lengths):
            raise ValueError(
                f"layer must be in [0, {len(self.lengths) - 1}], got {layer}"
            )
        start, end = self.lengths[layer], self.lengths[layer] + k.shape[2]
        if end > self.capacity:
            raise ValueError(
                f"the cache holds {self.capacity} positions; {end} were asked for"
            )
        if self._kv is None:
            B, H, _, D = k.shape
            self._kv = k.new_empty(len(self.lengths), 2, B, H, self.capacity, D)
        elif end > self._kv.shape[4]:  # after a reorder: more room
            self._grow(max(end, 2 * self._kv.shape[4]))
        keys, values = self._kv[layer, 0], self._kv[layer, 1]  # (B, heads, room, D)
        keys.narrow(2, start, end - start).copy_(k)  # narrow: cheaper than slicing
        values.narrow(2, start, end - start).copy_(v)
        self.lengths[layer] = end
        return keys.narrow(2, 0, end), values.narrow(2, 0, end)

    def update_mask(self, real: torch.Tensor | None, T: int) -> torch.Tensor | None:
        """Record which of the next ``T`` positions are real (``real`` ``(B, T)`` bool,
        or None: all real); return the mask of every key, ``(B, cached + T)``, or None
        when all are real. Call before :meth:`update` (it uses the cached length)."""
        past = len(self)
        if real is None and self.mask is None:
            return None
        if self.mask is None:  # first padding seen: every earlier position was real
            B = real.shape[0]
            self.mask = torch.ones(
                B, self.capacity, dtype=torch.bool, device=real.device
            )
        self.mask[:, past : past + T] = True if real is None else real
        return self.mask[:, : past + T]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep (and duplicate) batch rows: used by beam search when beams are
        re-ranked."""
        if self.mask is not None:
            self.mask = self.mask.index_select(0, rows)
        if self._kv is not None:
            old, n = self._kv, len(self)
            self._kv = self._new_storage(len(rows), n + 1)
            if old.requires_grad and torch.is_grad_enabled():  # out= is not autograd's
                self._kv[..., :n, :] = old[..., :n, :].index_select(2, rows)
            else:  # gather the rows' filled positions straight into the new tensor
                torch.index_select(old[..., :n, :], 2, rows, out=self._kv[..., :n, :])

    def _new_storage(self, rows: int, room: int) -> torch.Tensor:
        """An empty ``(layers, 2, rows, heads, room, head_dim)`` tensor, ``room`` capped
        at ``capacity``: allocating only what is used keeps a wide batch cheap."""
        L, two, _, H, _, D = self._kv.shape
        return self._kv.new_empty(L, two, rows, H, min(self.capacity, room), D)

    def _grow(self, room: int) -> None:
        n = max(self.lengths)  # in a call in progress, earlier layers hold more
        old, self._kv = self._kv, self._new_storage(self._kv.shape[2], room)
        self._kv[..., :n, :] = old[..., :n, :]

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on, in every layer: the cache then
        holds the first ``length`` tokens, as if only they had been run. Speculative
        decoding uses it to take back draft tokens the target rejected. The storage is
        kept; the next ``update`` writes over the forgotten positions.

        ``length`` must be an int in ``[0, len(self)]``: a cache cannot grow by
        cropping.
        """
        if isinstance(length, bool) or not isinstance(length, int):
            raise TypeError(
                f"length must be an int in [0, {len(self)}], got {length!r}"
            )
        if not 0 <= length <= len(self):
            raise ValueError(
                f"length must be in [0, {len(self)}] (the cached positions), "
                f"got {length}"
            )
        self.lengths = [min(n, length) for n in self.lengths]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t only sees positions <= t."""

    def __init__(
        self, d_model: int, num_heads: int, dropout: float, context_length: int
    ):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)  # one fused projection for q, k, v
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)
        # True where attending is allowed: row = query position, column = key position.
        mask = torch.tril(torch.ones(context_length, context_length, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x, mask=None, *, kv_cache=None, layer=0, return_attention=False):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim)
        q, k, v = (
            t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
            for t in (q, k, v)
        )
        past = 0
        if kv_cache is not None:
            past = kv_cache.lengths[layer]  # positions cached before this call
            k, v = kv_cache.update(layer, k, v)  # (B, heads, past + T, head_dim)
        p = self.dropout if self.training else 0.0
        weights = empty = None
        if mask is not None:
            _check_mask(mask, (B, self.num_heads, T, past + T))
            # A query that may attend to nothing (a leading pad, say) would get 0/0 =
            # NaN: let it attend anywhere, then set its output to zero (on both paths
            # below).
            empty = ~mask.any(dim=-1, keepdim=True)
            if empty.any():
                mask = mask | empty
            else:
                empty = None
        if mask is None and not return_attention and (T == 1 or past == 0):
            # Fast paths, same result: one new token may see every cached key (no mask
            # at all), and without a cache the mask is the plain causal triangle.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=T > 1)
        else:
            if mask is None:
                # The new queries sit at positions past..past+T-1 and see keys 0..their
                # own position.
                mask = self.causal_mask[past : past + T, : past + T]
            if return_attention:
                scores = (q @ k.transpose(-2, -1)) / math.sqrt(
                    self.head_dim
                )  # (B, heads, T, past+T)
                weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
                if empty is not None:
                    weights = weights.masked_fill(empty, 0.0)
                y = F.dropout(weights, self.dropout, self.training) @ v
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        if empty is not None:
            y = y.masked_fill(empty, 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.proj(y)), weights


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``.

    The residual stream ``x`` itself is never normalised; only each sub-layer's input
    is.
    """

    def __init__(
        self, d_model: int, num_heads: int, dropout: float, context_length: int
    ):
        super().__init__()
        _check_int("d_model", d_model, 1)
        _check_int("num_heads", num_heads, 1)
        _check_int("context_length", context_length, 1)
        _check_dropout(dropout)
        if d_model % num_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}) "
                "so that every head gets d_model // num_heads dimensions"
            )
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout, context_length)
        self.ln2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 4 * d_model),
            nn.GELU(),
            nn.Linear(4 * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x, mask=None, *, kv_cache=None, layer=0, return_attention=False):
        attn_out, weights = self.attn(
            self.ln1(x),
            mask,
            kv_cache=kv_cache,
            layer=layer,
            return_attention=return_attention,
        )
        x = x + attn_out
        x = x + self.ffn(self.ln2(x))
        return (x, weights) if return_attention else x


class GPTModel(nn.Module):
    """Decoder-only transformer: ids ``(B, T)`` -> next-token logits ``(B, T,
    vocab_size)``.

    ``logits[:, t]`` scores the token that follows position ``t``, using positions ``<=
    t`` only.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dropout: float,
        context_length: int,
    ):
        super().__init__()
        _check_int("vocab_size", vocab_size, 1)
        _check_int("num_layers", num_layers, 1)
        _check_int("context_length", context_length, 1)
        _check_int("d_model", d_model, 1)
        _check_dropout(dropout)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.config = dict(
            vocab_size=vocab_size,
            d_model=d_model,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
            context_length=context_length,
        )
        self.token_embedding = nn.Embedding(vocab_size, d_model)  # word id -> vector
        self.position_encoding = nn.Embedding(
            context_length, d_model
        )  # position -> vector (learned)
        self.dropout = nn.Dropout(dropout)
        # A list comprehension, not `[TransformerBlock(...)] * num_layers`: multiplying
        # a list repeats one module, so every layer would share the same weights.
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(d_model, num_heads, dropout, context_length)
                for _ in range(num_layers)
            ]
        )
        self.ln_final = nn.LayerNorm(d_model)
        self.output_layer = nn.Linear(d_model, vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # GPT-2's initialisation: small normal weights, zero biases.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_kv_cache(self) -> KVCache:
        """An empty cache to pass as ``kv_cache=`` to successive forward calls."""
        return KVCache(len(self.blocks), self.context_length)

    def check_input_ids(self, input_ids, name: str = "input_ids") -> torch.Tensor:
        """Raise a clear error unless ``input_ids`` is a (B, T) integer tensor of valid
        ids; return it as int64 (the same tensor if it already is)."""
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.LongTensor of shape (batch, seq_len), got "
                f"{type(input_ids).__name__}"
            )
        dtype = input_ids.dtype
        if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            raise TypeError(
                f"{name} must hold integer token ids (any of int8 ... int64, uint8 ... "
                f"uint64), got dtype {dtype}"
            )
        if input_ids.dim() != 2:
            raise ValueError(
                f"{name} must have shape (batch, seq_len), got "
                f"{tuple(input_ids.shape)}; for one sequence use ids.unsqueeze(0)"
            )
        if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(
                f"{name} must not be empty, got shape {tuple(input_ids.shape)}"
            )
        # torch compares uint16/32/64 poorly, so check the int64 copy; a uint64 id of
        # 2**63 or more wraps to a negative number there and is caught as out of range.
        ids = input_ids if dtype == torch.int64 else input_ids.to(torch.int64)
        low, high = (bound.item() for bound in torch.aminmax(ids))
        if low < 0 or high >= self.vocab_size:
            flat = ((ids < 0) | (ids >= self.vocab_size)).flatten()
            i = int(flat.nonzero()[0])
            bad = input_ids.flatten()[i].item()  # the caller's value, not the copy's
            raise ValueError(
                f"{name} must be in [0, {self.vocab_size - 1}] (the vocabulary), got "
                f"id {bad} at {tuple(divmod(i, input_ids.shape[1]))}"
            )
        return ids

    def check_attention_mask(self, attention_mask, input_ids) -> torch.Tensor | None:
        """``attention_mask`` ``(B, T)`` of 0/1 (any integer or bool dtype) -> a bool
        tensor, True on real tokens; None when it is None or all ones (no padding)."""
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, torch.Tensor):
            raise TypeError(
                "attention_mask must be a torch.Tensor of 0s and 1s, shape (batch, "
                f"seq_len), got {type(attention_mask).__name__}"
            )
        dtype = attention_mask.dtype
        if dtype.is_floating_point or dtype.is_complex:
            raise TypeError(
                f"attention_mask must hold integers 0/1 (or bools), got dtype {dtype}"
            )
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                "attention_mask must have the shape of input_ids "
                f"{tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}"
            )
        if dtype == torch.bool:
            real = attention_mask
        else:
            m = attention_mask.to(torch.int64)
            if ((m != 0) & (m != 1)).any():
                raise ValueError(
                    "attention_mask must hold only 0 (padding) and 1 (token)"
                )
            real = m == 1
        return None if bool(real.all()) else real

    def forward(
        self,
        input_ids,
        attention_mask=None,
        *,
        mask=None,
        kv_cache=None,
        return_attention=False,
    ):
        """Logits ``(B, T, V)``; with ``return_attention=True`` also a list of per-layer
        attention weights ``(B, heads, T, T_keys)``.

        ``attention_mask`` (optional) ``(B, T)``: 1 on real tokens, 0 on padding.
        Padding is never attended to, and a token's position counts only the real tokens
        before it, so each row's logits at its real positions are those of its tokens
        alone (padding may sit anywhere; ``generate`` wants it on the left). With a
        cache the mask covers only the new tokens: the cache remembers the earlier ones
        (transformers takes past + new columns instead). ``mask`` (optional) replaces
        the causal mask: a bool tensor broadcastable to ``(B, heads, T, T_keys)``, True
        where attending is allowed. A query with nothing to attend to gets a zero
        attention output (not NaN). ``kv_cache`` (optional): the ids are new tokens that
        continue the cached ones.
        """
        input_ids = self.check_input_ids(input_ids)
        B, T = input_ids.shape
        if kv_cache is not None and not isinstance(kv_cache, KVCache):
            raise TypeError(
                f"kv_cache must be a KVCache, got {type(kv_cache).__name__}"
            )
        past = 0 if kv_cache is None else len(kv_cache)
        if past + T > self.context_length:
            raise ValueError(
                f"input_ids has {past + T} positions (cached {past} + new {T}) but "
                f"context_length is {self.context_length}; crop to the last "
                f"{self.context_length} tokens (toygpt.generate does this for you)"
            )
        if kv_cache is not None:
            kv_cache.check(len(self.blocks), B, T, self.blocks[0].attn.num_heads)
        if mask is not None:
            _check_mask(mask, (B, self.blocks[0].attn.num_heads, T, past + T))
        real = self.check_attention_mask(attention_mask, input_ids)  # (B, T) or None
        if real is not None:
            has_token = real.any(dim=-1)
            if past and kv_cache.mask is None:  # every cached token is real
                has_token[:] = True
            elif past:
                has_token |= kv_cache.mask[:, :past].any(dim=-1)
            if not bool(has_token.all()):
                raise ValueError(
                    "attention_mask has a row with no real token (all 0): there is "
                    "nothing to predict from"
                )
        keys = real if kv_cache is None else kv_cache.update_mask(real, T)
        if keys is None:  # no padding anywhere: positions are past .. past + T - 1
            positions = torch.arange(past, past + T, device=input_ids.device)  # (T,)
        else:
            # Each token's position is the number of real tokens before it in its row;
            # padding is never attended to, so its own position does not matter.
            positions = (keys.cumsum(dim=-1)[:, past:] - 1).clamp(min=0)  # (B, T)
            # Padding is never a key: (B, 1, 1, past + T), and with the causal mask.
            key_mask = keys[:, None, None, :]
            if mask is None and T > 1:
                mask = self.blocks[0].attn.causal_mask[past : past + T, : past + T]
            mask = key_mask if mask is None else mask & key_mask
        x = self.token_embedding(input_ids) + self.position_encoding(
            positions
        )  # (B, T, d_model)
        x = self.dropout(x)
        attentions = []
        for i, block in enumerate(self.blocks):
            out = block(
                x, mask, kv_cache=kv_cache, layer=i, return_attention=return_attention
            )
            if return_attention:
                x, weights = out
                attentions.append(weights)
            else:
                x = out
        logits = self.output_layer(self.ln_final(x))  # (B, T, vocab_size)
        return (logits, attentions) if return_attention else logits
