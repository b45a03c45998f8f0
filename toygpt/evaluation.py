"""Judge a decoding strategy against the toy language's truth, by sampling.

The exact layer (:mod:`toygpt.exact`) computes these numbers without sampling error;
this module estimates them from ``n`` generated sentences, for the chapters that sample
on purpose, and reports each estimate's standard error beside it:

* **valid**: the fraction of generated sentences the language can produce at all (the
  others contain a word the grammar never allows there); it estimates
  ``sentence_distribution(...).grammatical_mass``;
* **log_prob**: the mean true log-probability per generated token of the valid sentences
  (closer to 0 = *more probable* text; not "more typical": typical text sits near the
  entropy rate); it estimates ``sentence_distribution(...).quality``;
* **distinct**: the fraction of different sentences among the samples (diversity; it
  depends on ``n``, unlike the exact entropy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from toygpt.generation import generate

__all__ = ["DecodingReport", "evaluate_decoding"]


@dataclass
class DecodingReport:
    n: int  # sentences generated
    valid: float  # fraction the language can produce
    log_prob: float  # mean true log-prob per generated token, over valid sentences
    distinct: float  # distinct sentences / n
    sentences: list[list[int]]  # the generated ids, prompt included
    valid_se: float = math.inf  # standard error of valid: sqrt(v (1 - v) / n)
    log_prob_se: float = math.inf  # standard error of log_prob (inf below 2 valid)

    def row(self) -> str:
        return (
            f"valid {self.valid:6.1%}   log-prob/token {self.log_prob:6.3f}   "
            f"distinct {self.distinct:6.1%}"
        )


def evaluate_decoding(
    model,
    language,
    prompt_ids: torch.Tensor,
    *,
    n: int = 200,
    seed: int = 0,
    max_new_tokens: int | None = None,
    **decoding,
) -> DecodingReport:
    """Generate ``n`` continuations of ``prompt_ids`` ``(1, T)`` with
    ``generate(**decoding)`` (e.g. ``do_sample=True, temperature=0.7``), stopping at
    the sentence end, and judge them with the language's exact probabilities. Seeded:
    the same call gives the same report. For the exact numbers without sampling, use
    :func:`toygpt.sentence_distribution` with the same rule."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if prompt_ids.dim() != 2 or prompt_ids.shape[0] != 1:
        raise ValueError(
            f"prompt_ids must have shape (1, T), got {tuple(prompt_ids.shape)}"
        )
    T = prompt_ids.shape[1]
    if max_new_tokens is None:
        max_new_tokens = max(1, model.context_length - T)
    generator = torch.Generator().manual_seed(seed)
    out = generate(
        model,
        prompt_ids.repeat(n, 1),
        max_new_tokens,
        eos_token_id=language.eos_id,
        generator=generator if decoding.get("do_sample") else None,
        **decoding,
    )
    prompt_lp = language.sequence_log_prob(prompt_ids[0].tolist())
    sentences, per_token = [], []
    for row in out.tolist():
        if language.eos_id in row[T:]:
            row = row[: T + row[T:].index(language.eos_id) + 1]  # drop the EOS padding
            lp = language.sequence_log_prob(row)
        else:
            lp = -math.inf  # never finished: not a sentence of the language
        sentences.append(row)
        if lp > -math.inf:
            per_token.append((lp - prompt_lp) / (len(row) - T))
    valid = len(per_token) / n
    mean = sum(per_token) / len(per_token) if per_token else -math.inf
    spread = (
        math.sqrt(sum((x - mean) ** 2 for x in per_token) / (len(per_token) - 1))
        if len(per_token) > 1
        else math.inf
    )
    return DecodingReport(
        n=n,
        valid=valid,
        log_prob=mean,
        distinct=len({tuple(s) for s in sentences}) / n,
        sentences=sentences,
        valid_se=math.sqrt(valid * (1 - valid) / n),
        log_prob_se=spread / math.sqrt(len(per_token)) if per_token else math.inf,
    )
