"""Beam search: keep the ``num_beams`` best partial sentences at every step.

A hypothesis is scored by the sum of its tokens' log-probabilities (log-softmax of the
logits). The rules are those of Hugging Face ``transformers`` (v4.50+), so the two return the
same sequences and scores on the same logits:

* the first step expands a single beam (all beams would hold the same prompt);
* every step ranks the ``2 * num_beams`` best continuations of all beams together; the best
  ``num_beams`` that do not end the sentence run on;
* a continuation that ends the sentence (EOS, or the length limit) becomes a *finished*
  hypothesis only if it ranks among the first ``num_beams``; it is then scored
  ``sum_logprob / generated_length ** length_penalty`` (EOS counts, the prompt does not);
* ``early_stopping=True`` stops once ``num_beams`` hypotheses are finished;
  ``False`` stops when the best running beam, scored as if it ended now, can no longer beat
  the worst finished one; ``"never"`` makes that test exact for ``length_penalty > 0``.

All beams advance together: one forward pass (with the KV cache) per step.
The search tree is recorded step by step for plotting (:func:`toygpt.plots.plot_beam_tree`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from toygpt.generation import (
    NextTokenLogits,
    _check_max_new_tokens,
    _check_model,
    _check_token_id,
    check_ids,
)
from toygpt.model import eval_mode

__all__ = ["beam_search", "BeamSearchResult", "BeamStep", "BeamCandidate"]


@dataclass
class BeamCandidate:
    """One continuation considered at a step."""

    parent: int  # index of the running beam it extends (in that step's ``beams``)
    token: int
    score: float  # sum of log-probabilities of the generated tokens, this one included
    status: str  # "kept" (runs on), "finished" (ended and entered the finished list), "pruned"
    final_score: float | None = None  # length-penalised score, for finished candidates


@dataclass
class BeamStep:
    """The running beams before a step and the candidates ranked at that step."""

    beams: list[
        list[int]
    ]  # generated tokens of each running beam (the prompt left out)
    beam_scores: list[float]
    candidates: list[BeamCandidate]


@dataclass
class BeamSearchResult:
    sequences: torch.Tensor  # (num_return_sequences, T + n), best first, EOS-padded
    scores: torch.Tensor  # (num_return_sequences,), length-penalised, best first
    sum_logprobs: (
        torch.Tensor
    )  # (num_return_sequences,), log-probability of the generated tokens
    steps: list[BeamStep] = field(repr=False)  # the search tree
    prompt_length: int = 0


def _check_options(
    num_beams, length_penalty, early_stopping, num_return_sequences
) -> None:
    if isinstance(num_beams, bool) or not isinstance(num_beams, int):
        raise TypeError(f"num_beams must be an int >= 1, got {num_beams!r}")
    if num_beams < 1:
        raise ValueError(f"num_beams must be an int >= 1, got {num_beams}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise TypeError(f"length_penalty must be a number, got {length_penalty!r}")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be finite, got {length_penalty}")
    if not (isinstance(early_stopping, bool) or early_stopping == "never"):
        raise ValueError(
            f"early_stopping must be True, False or 'never', got {early_stopping!r}"
        )
    if isinstance(num_return_sequences, bool) or not isinstance(
        num_return_sequences, int
    ):
        raise TypeError(
            f"num_return_sequences must be an int in [1, num_beams], got {num_return_sequences!r}"
        )
    if not 1 <= num_return_sequences <= num_beams:
        raise ValueError(
            f"num_return_sequences must be in [1, num_beams={num_beams}], got {num_return_sequences}"
        )


@torch.inference_mode()
def beam_search(
    model,
    input_ids: torch.Tensor,
    *,
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    eos_token_id: int | None = None,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    use_cache: bool = True,
) -> BeamSearchResult:
    """Beam search from one prompt ``input_ids`` of shape ``(1, T)``.

    Returns a :class:`BeamSearchResult`: ``.sequences`` ``(num_return_sequences, T + n)`` best
    first (padded with EOS after a hypothesis ends), ``.scores`` (length-penalised),
    ``.sum_logprobs``, and ``.steps``, the search tree.
    ``length_penalty`` 0 ranks by total log-probability; 1 by the mean per token; larger
    values favour longer sentences.
    """
    _check_model(model)
    check_ids(model, input_ids)
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"input_ids must hold one prompt, shape (1, T), got {tuple(input_ids.shape)}"
        )
    _check_max_new_tokens(max_new_tokens)
    _check_token_id(model, eos_token_id, "eos_token_id")
    _check_options(num_beams, length_penalty, early_stopping, num_return_sequences)

    prompt = input_ids[0].tolist()
    P = len(prompt)
    if max_new_tokens == 0:
        zeros = torch.zeros(num_return_sequences)
        return BeamSearchResult(
            input_ids.repeat(num_return_sequences, 1), zeros, zeros.clone(), [], P
        )

    with eval_mode(model):
        steps, finished = _search(
            model,
            input_ids,
            num_beams,
            max_new_tokens,
            length_penalty,
            eos_token_id,
            early_stopping,
            use_cache,
        )

    best = finished[
        :num_return_sequences
    ]  # (final score, sum of log-probs, generated tokens)
    longest = max(len(tokens) for _, _, tokens in best)
    pad = eos_token_id if eos_token_id is not None else 0  # only ragged when EOS exists
    rows = [prompt + tokens + [pad] * (longest - len(tokens)) for _, _, tokens in best]
    return BeamSearchResult(
        sequences=torch.tensor(rows, dtype=torch.long, device=input_ids.device),
        scores=torch.tensor([s for s, _, _ in best]),
        sum_logprobs=torch.tensor([s for _, s, _ in best]),
        steps=steps,
        prompt_length=P,
    )


def _search(
    model,
    input_ids,
    num_beams,
    max_new_tokens,
    length_penalty,
    eos_token_id,
    early_stopping,
    use_cache,
):
    P = input_ids.shape[1]
    max_length = P + max_new_tokens
    num_candidates = 2 * num_beams  # enough that num_beams of them can always run on
    next_logits = NextTokenLogits(model, use_cache)

    ids = input_ids  # (live beams, current length); starts with one live beam
    beams: list[list[int]] = [[]]  # generated tokens of each live beam
    beam_scores = torch.zeros(1)  # sum of log-probs of each live beam
    finished: list[
        tuple[float, float, list[int]]
    ] = []  # (final score, sum, tokens), best first
    steps: list[BeamStep] = []
    cur = P  # current length, prompt included
    while True:
        logprobs = (
            next_logits(ids).float().log_softmax(dim=-1)
        )  # (beams, V): one pass for all beams
        V = logprobs.shape[-1]
        totals = (logprobs + beam_scores[:, None]).view(
            -1
        )  # score of every (beam, token) pair
        top_scores, top_index = torch.topk(totals, min(num_candidates, totals.numel()))
        possible = top_scores > float("-inf")  # -inf: the model rules the token out
        top_scores, top_index = top_scores[possible], top_index[possible]
        ends = cur + 1 >= max_length

        room = not (early_stopping is True and len(finished) >= num_beams)
        candidates, keep_rows, keep_tokens, keep_scores = [], [], [], []
        for rank, (score, flat) in enumerate(
            zip(top_scores.tolist(), top_index.tolist())
        ):
            parent, token = divmod(flat, V)
            hit = ends or token == eos_token_id
            cand = BeamCandidate(parent, token, score, "pruned")
            if hit and rank < num_beams and room:
                cand.status = "finished"
                cand.final_score = float(
                    top_scores[rank] / ((cur + 1 - P) ** length_penalty)
                )
                finished.append((cand.final_score, score, beams[parent] + [token]))
            elif not hit and len(keep_rows) < num_beams:
                cand.status = "kept"
                keep_rows.append(parent)
                keep_tokens.append(token)
                keep_scores.append(top_scores[rank])
            candidates.append(cand)
        steps.append(BeamStep([b[:] for b in beams], beam_scores.tolist(), candidates))
        finished = sorted(finished, key=lambda f: -f[0])[:num_beams]
        cur += 1

        all_ended = not keep_rows
        if all_ended or (early_stopping is True and len(finished) >= num_beams):
            return steps, finished
        rows = torch.tensor(keep_rows)
        next_logits.reorder(rows)
        ids = torch.cat(
            [ids[rows], torch.tensor(keep_tokens, device=ids.device)[:, None]], dim=1
        )
        beams = [beams[r] + [t] for r, t in zip(keep_rows, keep_tokens)]
        beam_scores = torch.stack(keep_scores)
        if len(finished) >= num_beams:
            # Can the best running beam still beat the worst finished hypothesis?
            length = (
                max_length - P
                if (early_stopping == "never" and length_penalty > 0)
                else cur - P
            )
            best_possible = float(beam_scores[0] / (length**length_penalty))
            if not best_possible > finished[-1][0]:
                return steps, finished
