"""The generation loop: predict a token, append it, repeat.

``generate`` fixes the lesson's loop in several ways: it takes the model's own context
window into account (the lesson crashed once the text outgrew ``context_length``), it
stops each row of a batch at its own end-of-sentence token, it is seeded through a
``torch.Generator``, it reuses the keys and values of earlier tokens (a KV cache) instead
of recomputing them, and it decodes a left-padded batch of prompts of different lengths
(``attention_mask``) so that every row continues exactly as its prompt would alone.
Every decoding rule is applied by :func:`toygpt.sampling.process_logits`, the one place.
"""

from __future__ import annotations

import inspect

import torch

from toygpt.model import GPTModel, eval_mode
from toygpt.sampling import greedy, process_logits, sample_next

__all__ = ["generate", "NextTokenLogits"]

# Rules that only shape a draw: with do_sample=False (greedy) they are an error.
SAMPLING_ONLY = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "sampler_order",
)
# Rules that read the sequence so far (prompt included): they apply in greedy too.
PREFIX_RULES = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "frequency_penalty",
    "presence_penalty",
    "allowed_tokens_fn",
)


def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "context_length"):
        raise TypeError(
            "model must be a GPTModel (or an nn.Module with a context_length), got "
            f"{type(model).__name__}"
        )


def check_ids(model, input_ids, name: str = "input_ids") -> torch.Tensor:
    """Validate ``input_ids`` against the model's vocabulary; return them as int64
    (see GPTModel.check_input_ids)."""
    return GPTModel.check_input_ids(model, input_ids, name)


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_token_id(model, value, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int token id or None, got {value!r}")
    if not 0 <= value < model.vocab_size:
        raise ValueError(f"{name} must be in [0, {model.vocab_size - 1}], got {value}")


def _check_max_new_tokens(value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_new_tokens must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {value}")


def check_prompt_mask(model, attention_mask, input_ids) -> torch.Tensor | None:
    """A decoding prompt's ``attention_mask``: checked like the model's, and left-padded
    (each row: zeros, then ones). Returns a bool mask, or None when there is no
    padding."""
    real = GPTModel.check_attention_mask(model, attention_mask, input_ids)
    if real is None:
        return None
    if not bool(real.any(dim=-1).all()):
        raise ValueError("attention_mask has a row with no real token (all 0)")
    if bool((real[:, 1:] < real[:, :-1]).any()):
        raise ValueError(
            "attention_mask must be left-padded (each row: 0s, then 1s), got a 0 after "
            "a 1; pad on the left (WordTokenizer.encode_batch does)"
        )
    forward = getattr(model, "forward", None)
    if "attention_mask" not in inspect.signature(forward).parameters:
        raise TypeError(
            f"attention_mask needs a model whose forward takes it (a GPTModel); "
            f"{type(model).__name__}.forward does not"
        )
    return real


class NextTokenLogits:
    """Next-token logits for a growing sequence, cropped to the model's context window.

    Without a cache every call runs the model on the last ``context_length`` tokens. With a
    cache (``use_cache=True`` and a GPTModel) only the new token is run, as long as the whole
    sequence fits in the window. Once it no longer fits, every token's position changes when
    the window slides, so the cached keys are stale: from then on each step runs the whole
    window, without a cache. The two paths therefore give the same logits (up to float
    rounding) at every step.

    ``attention_mask`` (bool ``(B, P)``, True on real tokens) marks the left padding of
    the prompt; every token after the prompt is real. A left-padded row's real tokens
    are at the end, so the last ``context_length`` columns hold exactly that row's last
    ``context_length`` tokens (or all of them): cropping columns crops each row's own
    window, and the positions, counted from each row's first real token, follow.
    """

    def __init__(self, model, use_cache: bool = True, attention_mask=None):
        self.model = model
        self.use_cache = use_cache and isinstance(model, GPTModel)
        self.cache = None
        self.seen = 0  # tokens of the sequence already in the cache
        self.prompt_mask = attention_mask  # None: no padding

    def mask(self, T: int) -> torch.Tensor | None:
        """The mask of a sequence of ``T`` columns (prompt, then real tokens)."""
        if self.prompt_mask is None:
            return None
        B, P = self.prompt_mask.shape
        ones = self.prompt_mask.new_ones(B, T - P)
        return torch.cat([self.prompt_mask, ones], dim=1)

    def run(self, ids, mask, **kwargs):
        if mask is None:
            return self.model(ids, **kwargs)
        return self.model(ids, attention_mask=mask, **kwargs)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids (B, T)`` -> logits ``(B, V)`` for the token after ``ids[:, -1]``."""
        window = self.model.context_length
        T = ids.shape[1]
        if not self.use_cache or T > window:
            self.cache = (
                None  # once the window slides, cached keys sit at stale positions
            )
            mask = self.mask(T)
            mask = None if mask is None else mask[:, -window:]
            return self.run(ids[:, -window:], mask)[:, -1, :]
        if self.cache is None:  # first call: run the prompt and fill the cache
            self.cache = self.model.new_kv_cache()
            new, mask = ids, self.mask(T)
        else:
            new, mask = ids[:, self.seen :], None  # usually one token, always real
        logits = self.run(new, mask, kv_cache=self.cache)[:, -1, :]
        self.seen = T
        return logits

    def reorder(self, rows: torch.Tensor) -> None:
        """Beam search: the batch rows were re-chosen (and duplicated) as ``ids[rows]``."""
        if self.prompt_mask is not None:
            self.prompt_mask = self.prompt_mask[rows]
        if self.cache is not None:
            self.cache.reorder(rows)


def _scores(logits, ids, pads, rule):
    """The scores a token is chosen from: ``process_logits`` with the given rules.

    Rules that read the sequence see each row's real tokens only: rows with the same
    left padding go through together, with ``batch_ids`` naming their rows.
    (transformers passes the padded rows, so its penalties count the pad id.)"""
    if not rule:
        return logits
    if pads is None or not any(name in rule for name in PREFIX_RULES):
        return process_logits(logits, ids, **rule)
    groups = [(pad, (pads == pad).nonzero()[:, 0]) for pad in pads.unique().tolist()]
    parts = []
    for pad, rows in groups:
        extra = {"batch_ids": rows} if "allowed_tokens_fn" in rule else {}
        parts.append(process_logits(logits[rows], ids[rows, pad:], **rule, **extra))
    scores = parts[0].new_empty(logits.shape)
    for (_, rows), part in zip(groups, parts):
        scores[rows] = part
    return scores


def _check_model_output(logits, step: int) -> None:
    row_max = logits.amax(dim=-1)  # NaN or +inf anywhere shows in the row's max
    if not bool(torch.isfinite(row_max).all()):
        what = "NaN" if bool(torch.isnan(row_max).any()) else "+inf or only -inf"
        raise ValueError(
            f"the model's output (its next-token logits) holds {what} at generation "
            f"step {step}; check the model's weights and inputs"
        )


def generate(
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    epsilon_cutoff: float | None = None,
    eta_cutoff: float | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    allowed_tokens_fn=None,
    sampler_order: tuple[str, ...] | None = None,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Extend ``input_ids`` ``(B, T)`` by up to ``max_new_tokens`` tokens -> ``(B, T + new)``.

    * ``do_sample=False``: greedy, the most probable token of the processed logits.
    * ``do_sample=True``: draw from the distribution that
      :func:`toygpt.sampling.process_logits` makes with the given rules (temperature,
      top-k, top-p, min-p, typical-p, epsilon, eta, in ``sampler_order``);
      ``temperature=0`` is greedy. Sampling-only rules with ``do_sample=False`` are an
      error.
    * ``repetition_penalty``, ``no_repeat_ngram_size``, ``frequency_penalty``,
      ``presence_penalty``, ``allowed_tokens_fn`` read the whole sequence so far (prompt
      included) and apply in greedy too, as in transformers.
    * ``attention_mask`` ``(B, T)``: 1 on tokens, 0 on left padding. Every row then
      continues exactly as its prompt alone would (greedy: the same tokens; sampling:
      the same distribution at every step). Padding never counts for a rule.
    * ``eos_token_id``: a row that produced it is finished and keeps emitting it; the loop
      stops early once every row is finished (so ``new`` may be < ``max_new_tokens``).
    * ``generator``: a seeded ``torch.Generator`` makes sampling reproducible. One draw is
      made per step for the whole batch, finished rows included, so the same seed gives the
      same tokens with and without the cache.
    * ``use_cache``: reuse earlier tokens' keys and values (same tokens, less work).

    The model runs in eval mode (dropout off) and is restored to its previous mode after.
    The text may grow past ``context_length``: each row then sees its last
    ``context_length`` tokens. The result is a new int64 tensor (whatever integer dtype
    came in) that may be edited in place or used for training.
    """
    _check_model(model)
    ids = check_ids(model, input_ids)
    _check_max_new_tokens(max_new_tokens)
    _check_token_id(model, eos_token_id, "eos_token_id")
    check_bool("do_sample", do_sample)
    check_bool("use_cache", use_cache)
    real = check_prompt_mask(model, attention_mask, ids)
    named = dict(
        # temperature 1 changes nothing (True is not a temperature: it stays, and fails)
        temperature=None
        if temperature == 1.0 and not isinstance(temperature, bool)
        else temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        typical_p=typical_p,
        epsilon_cutoff=epsilon_cutoff,
        eta_cutoff=eta_cutoff,
        sampler_order=sampler_order,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty,
        allowed_tokens_fn=allowed_tokens_fn,
    )
    rule = {name: value for name, value in named.items() if value is not None}
    if not do_sample:
        unused = [name for name in SAMPLING_ONLY if name in rule]
        if unused:
            raise ValueError(
                f"{', '.join(unused)} only apply when do_sample=True (greedy ignores "
                "them)"
            )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    # Check every rule's values once, before the model runs, in the one place.
    checked = {k: v for k, v in rule.items() if k != "allowed_tokens_fn"}
    process_logits(torch.zeros(1, model.vocab_size), ids[:1], **checked)

    with torch.inference_mode(), eval_mode(model):
        out = _generate(
            model,
            ids,
            real,
            max_new_tokens,
            do_sample,
            rule,
            eos_token_id,
            generator,
            use_cache,
        )
    # Outside inference mode, the copy is an ordinary tensor (never the caller's own).
    return out.clone()


def _generate(
    model,
    ids,
    real,
    max_new_tokens,
    do_sample,
    rule,
    eos_token_id,
    generator,
    use_cache,
):
    pads = None if real is None else (~real).sum(dim=-1)  # left padding of each row
    draw = do_sample and rule.get("temperature") != 0  # temperature 0 is greedy
    next_logits = NextTokenLogits(model, use_cache, attention_mask=real)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for step in range(max_new_tokens):
        logits = next_logits(ids)  # (B, V)
        _check_model_output(logits, step)
        scores = _scores(logits, ids, pads, rule)
        token = sample_next(scores, generator=generator) if draw else greedy(scores)
        if eos_token_id is not None:
            token = token.masked_fill(
                finished, eos_token_id
            )  # finished rows repeat EOS
            finished |= token == eos_token_id
        ids = torch.cat([ids, token.unsqueeze(1)], dim=1)
        if eos_token_id is not None and bool(finished.all()):
            break
    return ids
