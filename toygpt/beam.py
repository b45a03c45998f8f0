"""Beam search: keep the ``num_beams`` best partial sentences of each prompt.

A hypothesis is scored by the sum of its tokens' log-probabilities (log-softmax of the
logits). The rules are those of Hugging Face ``transformers`` (v4.50+), so the two
return the same sequences and scores on the same logits:

* the first step expands a single beam per prompt (all beams would hold the prompt);
* every step ranks the ``2 * num_beams`` best continuations of a prompt's beams
  together; the best ``num_beams`` that do not end the sentence run on;
* a continuation that ends the sentence (EOS, or the length limit) becomes a
  *finished* hypothesis only if it ranks among the first ``num_beams``; it is then
  scored ``sum_logprob / generated_length ** length_penalty`` (EOS counts, the prompt
  does not);
* ``early_stopping=True`` stops a prompt once it holds ``num_beams`` finished
  hypotheses; ``False`` stops it when its best running beam, scored as if it ended
  now, can no longer beat its worst finished one; ``"never"`` makes that test exact
  for ``length_penalty > 0``.

A batch of ``B`` prompts is searched at once: all running beams of all prompts go
through the model in one forward pass per step (with the KV cache, re-ordered with one
``index_select``), and each prompt ranks only its own candidates, so its rows equal its
search alone. A prompt that is done leaves the batch. The search tree of every prompt is
recorded step by step for plotting (:func:`toygpt.plots.plot_beam_tree`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from toygpt.generation import (
    NextTokenLogits,
    _check_max_new_tokens,
    _check_model,
    _check_model_output,
    _check_token_id,
    check_ids,
    check_prompt_mask,
)
from toygpt.model import eval_mode
from toygpt.sampling import greedy, process_logits

__all__ = ["beam_search", "BeamSearchResult", "BeamStep", "BeamCandidate"]


@dataclass
class BeamCandidate:
    """One continuation considered at a step."""

    parent: int  # index of the running beam it extends (in that step's ``beams``)
    token: int
    score: float  # sum of log-probabilities of the generated tokens, this one included
    status: str  # "kept" (runs on), "finished" (entered the finished list), "pruned"
    final_score: float | None = None  # length-penalised score, for finished candidates


@dataclass
class BeamStep:
    """The running beams before a step and the candidates ranked at that step."""

    beams: list[list[int]]  # generated tokens of each running beam (prompt left out)
    beam_scores: list[float]
    candidates: list[BeamCandidate]


@dataclass
class BeamSearchResult:
    """What :func:`beam_search` returns for ``B`` prompts, ``n = num_return_sequences``.

    Rows ``b * n`` to ``(b + 1) * n - 1`` belong to prompt ``b``, best first
    (transformers' layout). A row is the prompt, its generated tokens, then padding.
    """

    sequences: torch.Tensor  # (B * n, T + longest generated), int64
    scores: torch.Tensor  # (B * n,) length-penalised; -inf: no hypothesis (see below)
    sum_logprobs: torch.Tensor  # (B * n,) log-probability of the generated tokens
    generated_lengths: torch.Tensor  # (B * n,) tokens generated, EOS included
    trees: list[list[BeamStep]] = field(repr=False)  # one search tree per prompt
    prompt_length: int = 0  # T, the width of input_ids

    @property
    def num_return_sequences(self) -> int:
        return len(self.scores) // len(self.trees)

    @property
    def steps(self) -> list[BeamStep]:
        """The search tree of a one-prompt search (``trees[b]`` for prompt ``b``)."""
        if len(self.trees) != 1:
            raise ValueError(
                f"this result holds {len(self.trees)} prompts: use result.trees[b] or "
                "result.for_prompt(b) for prompt b"
            )
        return self.trees[0]

    def for_prompt(self, b: int) -> BeamSearchResult:
        """Prompt ``b``'s rows, scores and tree alone, cropped to its longest row."""
        if (
            isinstance(b, bool)
            or not isinstance(b, int)
            or not 0 <= b < len(self.trees)
        ):
            raise ValueError(f"b must be a prompt index in [0, {len(self.trees) - 1}]")
        n = self.num_return_sequences
        rows = slice(b * n, (b + 1) * n)
        width = self.prompt_length + int(self.generated_lengths[rows].max())
        return BeamSearchResult(
            self.sequences[rows, :width].clone(),
            self.scores[rows].clone(),
            self.sum_logprobs[rows].clone(),
            self.generated_lengths[rows].clone(),
            [self.trees[b]],
            self.prompt_length,
        )


def _check_options(
    num_beams, length_penalty, early_stopping, num_return_sequences, use_cache
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
    n = num_return_sequences
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(
            f"num_return_sequences must be an int in [1, num_beams], got {n!r}"
        )
    if not 1 <= n <= num_beams:
        raise ValueError(
            f"num_return_sequences must be in [1, num_beams={num_beams}], got {n}"
        )
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be True or False, got {use_cache!r}")


def _length_penalised(total: float, length: int, length_penalty: float):
    """``(key, score)``: ``score = total / length ** length_penalty`` and a key that
    ranks scores exactly. Computed in log space, so no finite ``length_penalty``
    overflows: the key stays exact where the score itself rounds to 0 or to -inf."""
    if total == 0.0 or total == -math.inf:
        return ((0, 0.0) if total == 0.0 else (-1, -math.inf)), total
    sign = 1 if total > 0 else -1  # log-probabilities are <= 0: sign is -1 in practice
    exponent = math.log(abs(total)) - length_penalty * math.log(length)
    try:
        magnitude = math.exp(exponent)
    except OverflowError:
        magnitude = math.inf
    # larger key = better: a larger positive score, or a smaller magnitude when negative
    return (sign, sign * exponent), sign * magnitude


class _Prompt:
    """One prompt's search: its running beams, finished hypotheses and tree."""

    def __init__(self):
        self.beams: list[list[int]] = [[]]  # generated tokens of each running beam
        self.sums: list[float] = [0.0]  # their sums of log-probabilities
        self.finished: list[tuple] = []  # (key, score, sum, tokens), best first
        self.tree: list[BeamStep] = []


def beam_search(
    model,
    input_ids: torch.Tensor,
    *,
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    attention_mask: torch.Tensor | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    allowed_tokens_fn=None,
    use_cache: bool = True,
) -> BeamSearchResult:
    """Beam search from the prompts ``input_ids`` ``(B, T)``.

    Returns a :class:`BeamSearchResult` with ``B * num_return_sequences`` rows grouped
    by prompt, best first: ``.sequences`` ``(B * n, T + longest)``, ``.scores``
    (length-penalised), ``.sum_logprobs``, ``.generated_lengths`` and ``.trees`` (one
    search tree per prompt; ``.steps`` is the tree when ``B == 1``).

    * ``length_penalty`` 0 ranks by total log-probability; 1 by the mean per token;
      larger values favour longer sentences. Any finite value ranks correctly.
    * ``attention_mask`` ``(B, T)``: 1 on tokens, 0 on left padding. Every prompt's
      rows then equal its search alone (same tokens, scores within float rounding);
      the rows keep the left padding, as transformers' do. The rules below never
      count the padding.
    * Rows shorter than the longest are padded with ``pad_token_id`` (default:
      ``eos_token_id``, as transformers does; 0 if neither is given).
    * ``repetition_penalty``, ``no_repeat_ngram_size`` and ``allowed_tokens_fn`` act as
      in transformers' beam search: on the log-probabilities of each beam (prompt
      included), through :func:`toygpt.sampling.process_logits` with
      ``batch_ids`` = each beam's prompt index.
    * ``num_beams=1`` is greedy decoding, as ``generate(num_beams=1)`` is in
      transformers: exactly :func:`toygpt.generate`'s tokens (``early_stopping`` then
      has no effect), scored like any hypothesis (sum of log-probs / length ** penalty).
    * Exactly ``num_return_sequences`` rows per prompt, always. A prompt stops early
      only once it holds ``num_beams`` finished hypotheses, so it has fewer only when
      fewer sentences exist (a tiny vocabulary, or every token but EOS at probability
      0). The missing rows are then the prompt and padding, with score and
      ``sum_logprobs`` -inf and generated length 0 (transformers fills them with
      placeholder beams scored -1e9).

    The outputs are ordinary tensors (not inference-mode ones): they can be edited and
    trained on. The model runs in eval mode and gets its mode back afterwards.
    """
    _check_model(model)
    ids = check_ids(model, input_ids)  # int64
    real = check_prompt_mask(model, attention_mask, ids)
    _check_max_new_tokens(max_new_tokens)
    _check_token_id(model, eos_token_id, "eos_token_id")
    _check_token_id(model, pad_token_id, "pad_token_id")
    _check_options(
        num_beams, length_penalty, early_stopping, num_return_sequences, use_cache
    )
    rules = {
        name: value
        for name, value in (
            ("repetition_penalty", repetition_penalty),
            ("no_repeat_ngram_size", no_repeat_ngram_size),
            ("allowed_tokens_fn", allowed_tokens_fn),
        )
        if value is not None  # passed on only when set
    }
    if rules:  # check the rules' values once, in the one place, before the model runs
        checked = {k: v for k, v in rules.items() if k != "allowed_tokens_fn"}
        process_logits(torch.zeros(1, model.vocab_size), ids[:1], **checked)
    pad = next((t for t in (pad_token_id, eos_token_id) if t is not None), 0)
    if max_new_tokens == 0:
        searches = [_Prompt() for _ in range(ids.shape[0])]
        for s in searches:
            s.finished = [(None, 0.0, 0.0, [])] * num_beams
    else:
        with torch.inference_mode(), eval_mode(model):
            searches = _search(
                model,
                ids,
                real,
                num_beams,
                max_new_tokens,
                length_penalty,
                eos_token_id,
                early_stopping,
                rules,
                use_cache,
            )
    return _collect(searches, ids.tolist(), num_return_sequences, pad)


def _search(model, ids, real, nb, max_new, lp, eos, early_stopping, rules, use_cache):
    """Run every prompt's search; return their :class:`_Prompt` states."""
    searches = [_Prompt() for _ in range(ids.shape[0])]
    pads = [0] * len(searches) if real is None else (~real).sum(dim=1).tolist()
    active = list(range(len(searches)))  # prompts still searching, in batch order
    next_logits = NextTokenLogits(model, use_cache, attention_mask=real)
    for step in range(max_new):  # ids holds one row per running beam of each active
        ends = step + 1 == max_new  # prompt, in order; this step generates token step+1
        logits = next_logits(ids).float()  # (rows, V): one pass for all beams
        _check_model_output(logits, step)
        batch_ids = [b for b in active for _ in searches[b].beams]
        logprobs = logits.log_softmax(dim=-1)
        if rules:  # transformers applies beam search's processors to log-probs
            logprobs = _processed(logprobs, ids, rules, batch_ids, pads)
        sums = torch.tensor([x for b in active for x in searches[b].sums])
        totals = logprobs + sums[:, None]  # score of every (beam, token) pair
        if nb == 1:  # greedy: generate's rule picks the token (ties: lowest id)
            raw = logits
            if rules:  # greedy applies the processors to the logits
                raw = _processed(logits, ids, rules, batch_ids, pads)
            choice = greedy(raw)[:, None]
            other = totals.scatter(1, choice, -math.inf).max(dim=1, keepdim=True)
            top = torch.cat([totals.gather(1, choice), other.values], dim=1)
            index = torch.cat([choice, other.indices], dim=1)
        else:
            top, index = _top_candidates(
                totals, [len(searches[b].beams) for b in active], nb
            )
        V = logits.shape[-1]
        rows, tokens, still_active, first_row = [], [], [], 0
        for b, scores, flats in zip(active, top.tolist(), index.tolist()):
            s = searches[b]
            kept = _rank(s, scores, flats, V, nb, step, ends, eos, lp)
            if kept and not _done(s, kept, nb, step, max_new, lp, early_stopping):
                rows += [first_row + c.parent for c in kept]
                tokens += [c.token for c in kept]
                s.beams = [s.beams[c.parent] + [c.token] for c in kept]
                s.sums = [c.score for c in kept]
                still_active.append(b)
            first_row += len(s.tree[-1].beams)
        if not still_active:
            break
        active = still_active
        rows = torch.tensor(rows, device=ids.device)
        next_logits.reorder(rows)
        new = torch.tensor(tokens, device=ids.device)[:, None]
        ids = torch.cat([ids.index_select(0, rows), new], dim=1)
    return searches


def _processed(scores, ids, rules, batch_ids, pads):
    """``process_logits`` on every row's real tokens: rows with the same left padding
    go through together, without it. ``batch_ids[r]`` is row r's prompt."""
    groups = {}
    for row, b in enumerate(batch_ids):
        groups.setdefault(pads[b], []).append(row)
    out = torch.empty_like(scores)
    for pad, rows in groups.items():
        extra = {}
        if "allowed_tokens_fn" in rules:  # it is told each row's prompt index
            extra["batch_ids"] = [batch_ids[r] for r in rows]
        rows = torch.tensor(rows, device=ids.device)
        out[rows] = process_logits(scores[rows], ids[rows, pad:], **rules, **extra)
    return out


def _top_candidates(totals, counts, nb):
    """The ``2 * nb`` best (beam, token) pairs of each prompt: ``(A, K)`` scores and
    flat indices ``beam * V + token``. A prompt's ``counts[i]`` beams are rows of
    ``totals``; fewer than ``nb`` (early steps) are padded with -inf rows."""
    A, V = len(counts), totals.shape[1]
    if sum(counts) != A * nb:
        slots = [i * nb + j for i, c in enumerate(counts) for j in range(c)]
        grid = totals.new_full((A * nb, V), -math.inf)
        grid[torch.tensor(slots, device=totals.device)] = totals
        totals = grid
    return totals.view(A, nb * V).topk(min(2 * nb, nb * V), dim=1)


def _rank(s, scores, flats, V, nb, step, ends, eos, lp):
    """Sort one prompt's candidates (best first) into finished, kept and pruned; record
    the step in its tree; return the kept candidates (the next running beams)."""
    candidates, kept = [], []
    for rank, (score, flat) in enumerate(zip(scores, flats)):
        if score == -math.inf:  # probability 0: not a hypothesis, nor are the rest
            break
        parent, token = divmod(flat, V)
        c = BeamCandidate(parent, token, score, "pruned")
        if ends or token == eos:
            if rank < nb:  # only the first num_beams candidates may finish
                key, c.final_score = _length_penalised(score, step + 1, lp)
                c.status = "finished"
                s.finished.append(
                    (key, c.final_score, score, s.beams[parent] + [token])
                )
        elif len(kept) < nb:
            c.status = "kept"
            kept.append(c)
        candidates.append(c)
    s.tree.append(BeamStep([b[:] for b in s.beams], list(s.sums), candidates))
    s.finished.sort(key=lambda f: f[0], reverse=True)  # stable: earlier ones first
    del s.finished[nb:]
    return kept


def _done(s, kept, nb, step, max_new, lp, early_stopping) -> bool:
    """Is this prompt's search over after ``step``? (``kept`` is best first.)"""
    if len(s.finished) < nb:
        return False
    if early_stopping is True or nb == 1:
        return True
    # Can the best running beam still beat the worst finished hypothesis?
    length = max_new if (early_stopping == "never" and lp > 0) else step + 1
    best_possible, _ = _length_penalised(kept[0].score, length, lp)
    return not best_possible > s.finished[-1][0]


def _collect(searches, prompts, n, pad) -> BeamSearchResult:
    """The ``n`` best hypotheses of each prompt as padded tensors, in batch order."""
    rows, scores, sums, lengths = [], [], [], []
    for prompt, s in zip(prompts, searches):
        best = s.finished[:n]
        best += [(None, -math.inf, -math.inf, [])] * (n - len(best))  # no hypothesis
        for _, score, total, tokens in best:
            rows.append(prompt + tokens)
            scores.append(score)
            sums.append(total)
            lengths.append(len(tokens))
    width = max(len(r) for r in rows)
    return BeamSearchResult(
        sequences=torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        scores=torch.tensor(scores, dtype=torch.float32),
        sum_logprobs=torch.tensor(sums, dtype=torch.float32),
        generated_lengths=torch.tensor(lengths, dtype=torch.long),
        trees=[s.tree for s in searches],
        prompt_length=len(prompts[0]),
    )
