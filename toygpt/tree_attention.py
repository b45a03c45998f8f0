"""Tree attention: a model's next-token logits at every node of a prefix tree, with
each token of the tree run through the model once.

The continuations of a prompt form a tree: siblings share their parent's prefix. A
KV cache per row would copy the parent's keys and values into every child, depth after
depth; for a wide tree those copies cost more than the model itself. Here every
token's keys and values are computed once and stored once, in a table with one *slot*
per token (the prompt's tokens, then one per tree node), and a node attends to the
slots of its own ancestors: their keys gathered by index, their values summed straight
from the table (``embedding_bag``, without gathering them). Speculative decoding
verifies a tree of draft tokens the same way (SpecInfer, Miao et al. 2024).

The result is what ``model(prefix)[:, -1]`` gives for each node's whole prefix (up to
float rounding): :class:`toygpt.exact.SentenceTree` uses it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from toygpt.model import GPTModel, eval_mode

__all__ = ["tree_logits"]


@torch.inference_mode()
def tree_logits(
    model: GPTModel, prompt: torch.Tensor, tokens: list, parents: list
) -> list[torch.Tensor]:
    """Logits at every node of a tree that grows out of ``prompt`` ``(1, T)``.

    Depth 0 is the prompt itself. Depth ``d >= 1`` has ``n_d`` nodes: node ``j`` adds
    the token ``tokens[d - 1][j]`` to node ``parents[d - 1][j]`` of depth ``d - 1``
    (both int64 ``(n_d,)``). Returns one ``(n_d, vocab_size)`` tensor per depth
    (``(1, V)`` first): the next-token logits after each node's prefix. The longest
    prefix, ``T + len(tokens)`` tokens, must fit in ``context_length`` (else
    ``ValueError``): the exact layer crops longer ones itself.

    >>> import torch
    >>> from toygpt import GPTModel
    >>> model = GPTModel(5, 8, 2, 1, 0.0, 8)
    >>> prompt = torch.tensor([[0, 1]])
    >>> tokens, parents = [torch.tensor([2, 3])], [torch.tensor([0, 0])]
    >>> logits = tree_logits(model, prompt, tokens, parents)  # prompt, [0 1 2], [0 1 3]
    >>> full = model(torch.tensor([[0, 1, 2], [0, 1, 3]]))[:, -1]
    >>> [tuple(t.shape) for t in logits], torch.allclose(logits[1], full, atol=1e-6)
    ([(1, 5), (2, 5)], True)
    """
    if not isinstance(model, GPTModel):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}")
    prompt = model.check_input_ids(prompt, "prompt")
    if prompt.shape[0] != 1:
        raise ValueError(f"prompt must have shape (1, T), got {tuple(prompt.shape)}")
    if len(tokens) != len(parents):
        raise ValueError(
            f"tokens and parents must list the same depths, got {len(tokens)} and "
            f"{len(parents)}"
        )
    T, depths = prompt.shape[1], len(tokens)
    if T + depths > model.context_length:
        raise ValueError(
            f"the tree's longest prefix has {T + depths} tokens but context_length is "
            f"{model.context_length}"
        )
    for d, (token, parent) in enumerate(zip(tokens, parents), start=1):
        _check_depth(model, d, token, parent, 1 if d == 1 else len(parents[d - 2]))
    heads = model.blocks[0].attn.num_heads
    width = model.token_embedding.embedding_dim
    head_dim = width // heads
    sizes = [1] + [len(t) for t in tokens]
    # (layers, keys/values, slots, heads, head_dim): slot s holds token s's keys and
    # values; the prompt fills slots 0..T-1, then depth after depth, node after node.
    weight = model.token_embedding.weight  # the table takes its dtype and device
    slots_needed = T - 1 + sum(sizes)
    table = weight.new_empty(len(model.blocks), 2, slots_needed, heads, head_dim)
    out, first_slot = [], T
    with eval_mode(model):
        for d in range(depths + 1):
            if d == 0:
                ids, positions = prompt, torch.arange(T)
                slots = torch.arange(T)[None]  # (1, T): the prompt sees itself
                new = slice(0, T)
            else:
                parent = parents[d - 1]
                new = slice(first_slot, first_slot + sizes[d])
                first_slot += sizes[d]
                # a node sees its parent's slots and its own: (n_d, T + d)
                own = torch.arange(new.start, new.stop)[:, None]
                slots = torch.cat([slots[parent], own], dim=1)
                ids = tokens[d - 1][:, None].long()
                positions = torch.tensor([T - 1 + d])
            x = model.dropout(
                model.token_embedding(ids) + model.position_encoding(positions)
            )
            out.append(_blocks(model, x, table, slots, new, heads, head_dim))
    return out


def _check_depth(model, d: int, token, parent, above: int) -> None:
    """Depth ``d``'s tokens: valid ids, one per node; parents: nodes of depth d - 1."""
    if not isinstance(token, torch.Tensor) or token.dim() != 1:
        raise TypeError(f"tokens[{d - 1}] must be a 1-D tensor of token ids")
    model.check_input_ids(token[None], f"tokens[{d - 1}]")
    if not isinstance(parent, torch.Tensor) or parent.dtype != torch.int64:
        raise TypeError(f"parents[{d - 1}] must be an int64 tensor of node indices")
    if parent.shape != token.shape:
        raise ValueError(
            f"depth {d}: tokens[{d - 1}] has shape {tuple(token.shape)} but "
            f"parents[{d - 1}] has {tuple(parent.shape)}"
        )
    low, high = int(parent.min()), int(parent.max())
    if low < 0 or high >= above:
        raise ValueError(
            f"parents[{d - 1}] must index the {above} nodes of depth {d - 1}, got "
            f"values in [{low}, {high}]"
        )


def _blocks(model, x, table, slots, new, heads, head_dim) -> torch.Tensor:
    """Run ``x`` ``(n, t, width)`` through the blocks (t = T for the prompt, else 1),
    writing its keys and values into ``table[:, :, new]`` (a slice: its slots are
    consecutive); logits at the last token."""
    n, t, width = x.shape
    # Seen as (slots * heads, head_dim), row slot * heads + h of a layer's keys (or
    # values) is head h of that slot; head_rows[i * heads + h] lists node i's rows of
    # head h, one per slot it sees: (n * heads, T + d).
    head = torch.arange(heads)[:, None]
    head_rows = (slots[:, None, :] * heads + head).reshape(n * heads, -1)
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        q, k, v = attn.qkv(block.ln1(x)).split(width, dim=2)
        table[layer, 0, new] = k.reshape(-1, heads, head_dim)
        table[layer, 1, new] = v.reshape(-1, heads, head_dim)
        keys, values = table[layer, 0], table[layer, 1]  # (slots, heads, head_dim)
        if t > 1:  # the prompt: causal among itself, (1, heads, T, head_dim)
            keys, values = (kv[:t].transpose(0, 1)[None] for kv in (keys, values))
            q = q.view(n, t, heads, head_dim).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
            y = y.transpose(1, 2).reshape(n, t, width)
        else:
            # A node's one query against its dozen keys: products and sums beat
            # scaled_dot_product_attention's kernel on these shapes.
            keys = keys.view(-1, head_dim).index_select(0, head_rows.flatten())
            keys = keys.view(n, heads, -1, head_dim)  # (n, heads, T + d, head_dim)
            q = q.view(n, heads, 1, head_dim)
            scores = (keys * q).sum(-1) / math.sqrt(head_dim)  # (n, heads, T + d)
            weights = scores.softmax(dim=-1).view(head_rows.shape)
            # The weighted sum of each node's value rows, without gathering them
            # first: embedding_bag sums rows of a table, each times its weight.
            y = F.embedding_bag(
                head_rows,
                values.view(-1, head_dim),
                per_sample_weights=weights,
                mode="sum",
            ).view(n, 1, width)
        x = x + attn.resid_dropout(attn.proj(y))
        x = x + block.ffn(block.ln2(x))
    return model.output_layer(model.ln_final(x[:, -1]))
