"""The generation loop: predict a token, append it, repeat.

``generate`` fixes the lesson's loop in four ways: it takes the model's own context window
into account (the lesson crashed once the text outgrew ``context_length``), it stops each row
of a batch at its own end-of-sentence token, it is seeded through a ``torch.Generator``, and
it reuses the keys and values of earlier tokens (a KV cache) instead of recomputing them.
"""

from __future__ import annotations

import torch

from toygpt.model import GPTModel, eval_mode
from toygpt.sampling import check_sampling_options, greedy, sample_next

__all__ = ["generate", "NextTokenLogits"]


def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "context_length"):
        raise TypeError(
            f"model must be a GPTModel (or an nn.Module with a context_length), got {type(model).__name__}"
        )


def check_ids(model, input_ids, name: str = "input_ids") -> None:
    """Validate ``input_ids`` against the model's vocabulary (see GPTModel.check_input_ids)."""
    GPTModel.check_input_ids(model, input_ids, name)


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


class NextTokenLogits:
    """Next-token logits for a growing sequence, cropped to the model's context window.

    Without a cache every call runs the model on the last ``context_length`` tokens. With a
    cache (``use_cache=True`` and a GPTModel) only the new token is run, as long as the whole
    sequence fits in the window. Once it no longer fits, every token's position changes when
    the window slides, so the cached keys are stale: from then on each step runs the whole
    window, without a cache. The two
    paths therefore give the same logits (up to float rounding) at every step.
    """

    def __init__(self, model, use_cache: bool = True):
        self.model = model
        self.use_cache = use_cache and isinstance(model, GPTModel)
        self.cache = None
        self.seen = 0  # tokens of the sequence already in the cache

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids (B, T)`` -> logits ``(B, V)`` for the token after ``ids[:, -1]``."""
        window = self.model.context_length
        T = ids.shape[1]
        if not self.use_cache or T > window:
            self.cache = (
                None  # once the window slides, cached keys sit at stale positions
            )
            return self.model(ids[:, -window:])[:, -1, :]
        if self.cache is None:  # first call: run the prompt and fill the cache
            self.cache = self.model.new_kv_cache()
            new = ids
        else:
            new = ids[:, self.seen :]  # usually one token
        logits = self.model(new, kv_cache=self.cache)[:, -1, :]
        self.seen = T
        return logits

    def reorder(self, rows: torch.Tensor) -> None:
        """Beam search: the batch rows were re-chosen (and duplicated) as ``ids[rows]``."""
        if self.cache is not None:
            self.cache.reorder(rows)


@torch.inference_mode()
def generate(
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Extend ``input_ids`` ``(B, T)`` by up to ``max_new_tokens`` tokens -> ``(B, T + new)``.

    * ``do_sample=False``: greedy (the most probable token every step).
    * ``do_sample=True``: draw from the distribution after temperature, top-k, top-p and
      min-p (see :func:`toygpt.sampling.sample_next`); ``temperature=0`` is greedy.
    * ``eos_token_id``: a row that produced it is finished and keeps emitting it; the loop
      stops early once every row is finished (so ``new`` may be < ``max_new_tokens``).
    * ``generator``: a seeded ``torch.Generator`` makes sampling reproducible. One draw is
      made per step for the whole batch, finished rows included, so the same seed gives the
      same tokens with and without the cache.
    * ``use_cache``: reuse earlier tokens' keys and values (same tokens, less work).

    The model runs in eval mode (dropout off) and is restored to its previous mode after.
    The text may grow past ``context_length``: the model then sees the last
    ``context_length`` tokens.
    """
    _check_model(model)
    check_ids(model, input_ids)
    _check_max_new_tokens(max_new_tokens)
    _check_token_id(model, eos_token_id, "eos_token_id")
    if not isinstance(do_sample, bool):
        raise TypeError(f"do_sample must be True or False, got {do_sample!r}")
    check_sampling_options(temperature, top_k, top_p, min_p, generator)
    if not do_sample:
        unused = [
            n
            for n, v in (
                ("temperature", temperature != 1.0),
                ("top_k", top_k is not None),
                ("top_p", top_p is not None),
                ("min_p", min_p is not None),
            )
            if v
        ]
        if unused:
            raise ValueError(
                f"{', '.join(unused)} only apply when do_sample=True (greedy ignores them)"
            )

    with eval_mode(model):
        ids = input_ids
        next_logits = NextTokenLogits(model, use_cache)
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            logits = next_logits(ids).float()  # (B, V)
            if do_sample:
                token = sample_next(
                    logits,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    min_p=min_p,
                    generator=generator,
                )
            else:
                token = greedy(logits)
            if eos_token_id is not None:
                token = token.masked_fill(
                    finished, eos_token_id
                )  # finished rows repeat EOS
                finished |= token == eos_token_id
            ids = torch.cat([ids, token.unsqueeze(1)], dim=1)
            if eos_token_id is not None and bool(finished.all()):
                break
        return ids
