"""Rules that depend on the prefix: penalties, the n-gram ban, allowed tokens.

Each takes ``scores (B, V)`` and ``input_ids (B, T)``, the whole sequence so far, prompt
included (what transformers' processors see in a decoder-only model), and returns new
scores. ``counted (B, T)``, where given, marks the positions a rule may look at (False
for left padding); ``None`` counts every position. ``prefix_ids`` and
``row_batch_ids`` check and flatten the prefix arguments of ``process_logits``.
"""

from __future__ import annotations

import math
import operator

import torch

NEG_INF = float("-inf")


def token_counts(input_ids, vocab_size, counted=None) -> torch.Tensor:
    """How often each token occurs in each row: ``(B, T) -> (B, V)`` (int64)."""
    ids = input_ids if counted is None else input_ids.masked_fill(~counted, vocab_size)
    counts = torch.zeros(ids.shape[0], vocab_size + 1, dtype=torch.long)
    counts.scatter_add_(1, ids, torch.ones_like(ids))
    return counts[:, :vocab_size]  # the spare column took the uncounted positions


def repetition_penalty_scores(scores, input_ids, penalty, counted=None):
    """CTRL's repetition penalty (Keskar et al. 2019), with transformers' sign rule
    (``RepetitionPenaltyLogitsProcessor``): every token that occurs in ``input_ids``
    (however often: it is penalised once) has its score divided by ``penalty`` if the
    score is positive and multiplied by it if negative, so ``penalty > 1`` always makes
    a seen token less likely. A score of 0 stays 0.

    >>> ids = torch.tensor([[0, 1, 1, 4]])
    >>> repetition_penalty_scores(torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0]]), ids, 2.0)
    tensor([[ 1.0000, -2.0000,  0.5000, -3.0000,  0.0000]])
    """
    seen = token_counts(input_ids, scores.shape[-1], counted) > 0
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def frequency_presence_scores(scores, input_ids, frequency, presence, counted=None):
    """The OpenAI API's penalties: ``score[j] -= count[j] * frequency + (count[j] > 0) *
    presence``, where ``count[j]`` is how often token j occurs in the counted positions
    of ``input_ids``. OpenAI and vLLM count only generated tokens; ``process_logits``
    does so when given ``prompt_length``, and otherwise counts the whole prefix.

    >>> ids = torch.tensor([[2, 2, 0]])
    >>> frequency_presence_scores(torch.zeros(1, 3), ids, 0.5, 1.0)
    tensor([[-1.5000,  0.0000, -2.0000]])
    """
    counts = token_counts(input_ids, scores.shape[-1], counted).to(scores.dtype)
    return scores - counts * frequency - (counts > 0).to(scores.dtype) * presence


def no_repeat_ngram_scores(scores, input_ids, n, counted=None):
    """Ban every token that would complete an n-gram already in the row
    (transformers' ``NoRepeatNGramLogitsProcessor``): for each earlier window whose
    first n - 1 tokens equal the row's last n - 1 tokens, the window's last token gets
    ``-inf``. With n = 1 every token already in the row is banned. Windows that touch an
    uncounted position (padding) never ban; a row with fewer than n counted tokens
    bans nothing, as it would alone.

    >>> no_repeat_ngram_scores(torch.zeros(1, 5), torch.tensor([[1, 2, 1, 3, 1]]), 2)
    tensor([[0., 0., -inf, -inf, 0.]])
    """
    length = input_ids.shape[-1]
    if length < n:
        return scores
    prefix = input_ids[:, length + 1 - n :]  # the last n - 1 tokens
    windows = input_ids.unfold(dimension=1, size=n, step=1)  # (B, L - n + 1, n)
    matches = (windows[..., :-1] == prefix.unsqueeze(1)).all(dim=-1)
    if counted is not None:
        matches &= counted.unfold(1, n, 1).all(dim=-1)
        matches &= counted[:, length + 1 - n :].all(dim=-1, keepdim=True)
    vocab_size = scores.shape[-1]
    banned = torch.zeros(scores.shape[0], vocab_size + 1, dtype=torch.bool)
    banned.scatter_(1, torch.where(matches, windows[..., -1], vocab_size), True)
    return scores.masked_fill(banned[:, :vocab_size], NEG_INF)


def allowed_tokens_scores(scores, input_ids, fn, batch_ids, counted=None):
    """Keep only the tokens ``fn(batch_id, ids)`` allows (transformers'
    ``prefix_allowed_tokens_fn``): ``batch_id`` is the row's prompt index and ``ids``
    the row's tokens so far, ``(T,)``, without padding. Everything else gets ``-inf``.

    >>> fn = lambda batch_id, ids: [0, 2] if ids[-1] == 1 else [1]
    >>> allowed_tokens_scores(torch.zeros(2, 3), torch.tensor([[1], [0]]), fn, [0, 1])
    tensor([[0., -inf, 0.],
            [-inf, 0., -inf]])
    """
    vocab_size = scores.shape[-1]
    allowed = torch.zeros_like(scores, dtype=torch.bool)
    for row in range(scores.shape[0]):
        ids = input_ids[row] if counted is None else input_ids[row][counted[row]]
        batch_id = int(batch_ids[row])
        tokens = fn(batch_id, ids)
        where = f"allowed_tokens_fn({batch_id}, ids) (row {row})"
        if tokens is None:
            raise ValueError(f"{where} returned None; it must return a list of ids")
        if isinstance(tokens, torch.Tensor):
            if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
                raise TypeError(f"{where} returned a {tokens.dtype} tensor, not ids")
            tokens = tokens.flatten().tolist()
        try:
            tokens = list(tokens)
        except TypeError:
            raise TypeError(
                f"{where} returned {type(tokens).__name__}; it must return a list of "
                "token ids"
            ) from None
        if not tokens:
            raise ValueError(
                f"{where} returned no token: the constraint cannot be satisfied"
            )
        for i, t in enumerate(tokens):
            try:
                if isinstance(t, bool):
                    raise TypeError
                t = tokens[i] = operator.index(t)
            except TypeError:
                raise TypeError(
                    f"{where} returned {t!r}; token ids must be ints"
                ) from None
            if not 0 <= t < vocab_size:
                raise ValueError(
                    f"{where} returned id {t}, outside [0, {vocab_size - 1}]"
                )
        allowed[row, tokens] = True
    return scores.masked_fill(~allowed, NEG_INF)


def prefix_ids(input_ids, attention_mask, logits, vocab_size):
    """Check ``input_ids`` (and ``attention_mask``) against ``logits (..., V)`` and
    flatten them to ``(rows, T)``; the mask comes back as bools (None if not given)."""
    lead = logits.shape[:-1]
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(
            f"input_ids must be a LongTensor (..., T), got {type(input_ids).__name__}"
        )
    if input_ids.dtype == torch.bool or input_ids.dtype.is_floating_point:
        raise TypeError(f"input_ids must hold integer ids, got dtype {input_ids.dtype}")
    if input_ids.is_complex() or input_ids.dim() == 0:
        raise TypeError("input_ids must be an integer tensor of shape (..., T)")
    if input_ids.shape[:-1] != lead:
        raise ValueError(
            f"input_ids has shape {tuple(input_ids.shape)}; logits "
            f"{tuple(logits.shape)} need (..., T) with ... = {tuple(lead)}"
        )
    ids = input_ids.reshape(math.prod(lead), input_ids.shape[-1]).to(torch.int64)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"input_ids holds ids outside [0, {vocab_size - 1}], the logits' vocabulary"
        )
    if attention_mask is None:
        return ids, None
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError("attention_mask must be a tensor of 0/1 shaped like input_ids")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids "
            f"{tuple(input_ids.shape)}: they must match"
        )
    if (
        attention_mask.is_complex()
        or not ((attention_mask == 0) | (attention_mask == 1)).all()
    ):
        raise ValueError("attention_mask must hold only 0 and 1")
    return ids, attention_mask.reshape(ids.shape).bool()


def row_batch_ids(batch_ids, n_rows):
    """Each row's prompt index as a list of ints (default 0, 1, ..., n_rows - 1)."""
    if batch_ids is None:
        return list(range(n_rows))
    if isinstance(batch_ids, torch.Tensor):
        if batch_ids.dtype.is_floating_point or batch_ids.dtype == torch.bool:
            raise TypeError(f"batch_ids must hold ints, got dtype {batch_ids.dtype}")
        batch_ids = batch_ids.flatten().tolist()
    try:
        out = [operator.index(b) for b in batch_ids if not isinstance(b, bool)]
    except TypeError:
        raise TypeError("batch_ids must be a sequence of ints (one per row)") from None
    if len(out) != len(batch_ids) or len(out) != n_rows or any(b < 0 for b in out):
        raise ValueError(
            f"batch_ids must hold one int >= 0 per row ({n_rows} rows), "
            f"got {batch_ids!r}"
        )
    return out
