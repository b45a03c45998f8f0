"""Decoding rules: pure functions on logits of shape ``(..., V)``.

Each filter returns new logits in which the tokens it removes are ``-inf`` (so softmax gives
them probability 0) and the others are unchanged. One sampling step applies, in this order
(the order Hugging Face ``transformers`` uses)::

    temperature  ->  top-k  ->  top-p  ->  min-p  ->  softmax  ->  draw

On input without ties the filters keep exactly the tokens that ``transformers``'
``TopKLogitsWarper``, ``TopPLogitsWarper`` and ``MinPLogitsWarper`` keep.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "min_p_filter",
    "greedy",
    "RULE_ORDER",
    "process_logits",
    "next_token_distribution",
    "sample_next",
]

# The order in which one sampling step applies its rules (transformers' order). A rule
# whose argument is None (or temperature 1.0) is skipped. ``process_logits(order=...)``
# takes another order; engine presets are tuples like this one.
RULE_ORDER = ("temperature", "top_k", "top_p", "min_p")


def _is_number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float))


def check_logits(logits, name: str = "logits") -> None:
    """Raise a clear error unless ``logits`` is a float tensor ``(..., V)`` a softmax can use."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (..., vocab_size), got {type(logits).__name__}"
        )
    if not logits.dtype.is_floating_point:
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {logits.dtype}"
        )
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(
            f"{name} must have shape (..., vocab_size) with vocab_size >= 1, got {tuple(logits.shape)}"
        )
    # One reduction finds all three problems: a row's max is NaN if the row holds a NaN,
    # +inf if it holds +inf, and -inf if every entry is -inf.
    row_max = logits.amax(dim=-1)
    if not torch.isfinite(row_max).all():
        if torch.isnan(row_max).any():
            raise ValueError(f"{name} contains NaN")
        if (row_max == float("inf")).any():
            raise ValueError(
                f"{name} contains +inf; only finite values and -inf (removed tokens) are allowed"
            )
        raise ValueError(
            f"{name} has a row where every entry is -inf: no token is left to choose"
        )


def _check_temperature(temperature) -> None:
    if not _is_number(temperature):
        raise TypeError(f"temperature must be a number >= 0, got {temperature!r}")
    if math.isnan(temperature) or temperature < 0:
        raise ValueError(
            f"temperature must be >= 0 (0 means greedy), got {temperature}"
        )
    if math.isinf(temperature):
        raise ValueError("temperature must be finite, got inf")


def _check_top_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"top_k must be an int >= 1, got {k!r}")
    if k < 1:
        raise ValueError(
            f"top_k must be an int >= 1, got {k} (use top_k=None to turn the filter off)"
        )


def _check_top_p(p) -> None:
    if not _is_number(p):
        raise TypeError(f"top_p must be a number in (0, 1], got {p!r}")
    if not 0 < p <= 1:  # also rejects NaN
        raise ValueError(
            f"top_p must be in (0, 1], got {p} (use top_p=None to turn the filter off)"
        )


def _check_min_p(min_p) -> None:
    if not _is_number(min_p):
        raise TypeError(f"min_p must be a number in [0, 1], got {min_p!r}")
    if not 0 <= min_p <= 1:
        raise ValueError(f"min_p must be in [0, 1], got {min_p}")


def check_sampling_options(
    temperature=1.0, top_k=None, top_p=None, min_p=None, generator=None
) -> None:
    """Validate the arguments of one sampling step (``None`` turns a filter off)."""
    _check_temperature(temperature)
    if top_k is not None:
        _check_top_k(top_k)
    if top_p is not None:
        _check_top_p(top_p)
    if min_p is not None:
        _check_min_p(min_p)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature``: T < 1 sharpens, T = 1 keeps, T > 1 flattens.

    The logits are first shifted so that the largest is 0. Softmax does not change under a
    shift, and the shift keeps a tiny T (say 1e-6) from overflowing to ``inf``.
    ``temperature=0`` is the limit T -> 0: only the most probable token (the lowest index
    among ties) stays, which makes sampling greedy.

    >>> apply_temperature(torch.log(torch.tensor([0.5, 0.3, 0.2])), 0.5).softmax(-1)
    tensor([0.6579, 0.2368, 0.1053])
    """
    check_logits(logits)
    _check_temperature(temperature)
    shifted = logits - logits.amax(
        dim=-1, keepdim=True
    )  # largest becomes 0; -inf stays -inf
    if temperature == 0:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep.scatter_(-1, greedy(logits).unsqueeze(-1), True)
        return shifted.masked_fill(~keep, float("-inf"))
    return shifted / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits, set the rest to ``-inf``.

    ``k`` larger than the vocabulary keeps everything. Tokens tied with the k-th largest are
    all kept, as in ``transformers``.

    >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2)
    tensor([-inf, 3., 2., -inf])
    """
    check_logits(logits)
    _check_top_k(k)
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most probable tokens whose total probability
    reaches ``p``; the token that crosses ``p`` is kept, and so is the most probable token.

    With probabilities [0.5, 0.3, 0.15, 0.05]: p=0.6 keeps two tokens (0.5 < 0.6, and 0.3
    crosses it), p=0.81 keeps three, p=1 keeps all.

    >>> top_p_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.6).softmax(-1)
    tensor([0.6250, 0.3750, 0.0000, 0.0000])
    """
    check_logits(logits)
    _check_top_p(p)
    if p == 1:
        return logits.clone()
    # Same operations as transformers: sort ascending, then a token is removed when the
    # probability of all tokens *below* it (itself included) is at most 1 - p, i.e. when the
    # tokens above it already hold at least p.
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= 1 - p
    remove_sorted[..., -1] = False  # the most probable token always stays
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least ``min_p`` times the largest probability.

    The cut scales with the model's confidence: a sure model keeps few tokens, an unsure one
    keeps many. ``min_p=0`` keeps everything; the most probable token is always kept.

    >>> min_p_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.5).softmax(-1)
    tensor([0.6250, 0.3750, 0.0000, 0.0000])
    """
    check_logits(logits)
    _check_min_p(min_p)
    probs = logits.softmax(dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)
    return logits.masked_fill(probs < threshold, float("-inf"))


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most probable token of each row: ``(..., V) -> (...)``; ties go to the lowest index.

    Softmax is monotonic, so the argmax of the logits is the argmax of the probabilities:
    greedy decoding never needs the softmax.

    >>> greedy(torch.tensor([[0.1, 2.0, 2.0], [3.0, 0.0, 1.0]]))
    tensor([1, 0])
    """
    check_logits(logits)
    return torch.argmax(logits, dim=-1)


def process_logits(
    logits: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    order: tuple[str, ...] | None = None,
) -> torch.Tensor:
    """The one place where a decoding rule turns logits ``(..., V)`` into the scores a
    draw is made from: every rule of ``order`` (default :data:`RULE_ORDER`) is applied in
    turn; removed tokens are ``-inf``. ``input_ids`` (the prefix, ``(..., T)``) is for
    rules that depend on it. float64 logits stay float64. ``temperature=0`` keeps only
    the greedy token.

    ``sample_next``, ``generate``, ``beam_search`` and the exact layer all call this, so
    a rule cannot mean two things in two places.
    """
    check_logits(logits)
    check_sampling_options(temperature, top_k, top_p, min_p)
    order = RULE_ORDER if order is None else tuple(order)
    scores = logits if logits.dtype == torch.float64 else logits.float()
    for rule in order:
        if rule == "temperature":
            if temperature != 1.0:
                scores = apply_temperature(scores, temperature)
        elif rule == "top_k":
            if top_k is not None:
                scores = top_k_filter(scores, top_k)
        elif rule == "top_p":
            if top_p is not None:
                scores = top_p_filter(scores, top_p)
        elif rule == "min_p":
            if min_p is not None:
                scores = min_p_filter(scores, min_p)
        else:
            raise ValueError(
                f"order holds an unknown rule {rule!r}; known: {RULE_ORDER}"
            )
    return scores


def next_token_distribution(
    logits: torch.Tensor, input_ids: torch.Tensor | None = None, **rule
) -> torch.Tensor:
    """The probabilities ``(..., V)`` that one sampling step draws from: the softmax of
    :func:`process_logits`. Same arguments."""
    return process_logits(logits, input_ids, **rule).softmax(dim=-1)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row of ``logits`` ``(B, V) -> (B,)`` (or ``(V,) -> ()``).

    Order: temperature -> top-k -> top-p -> min-p -> softmax -> draw. ``None`` turns a filter
    off. ``temperature=0`` means greedy (no randomness is used). The draw is weighted by the
    renormalised probabilities of the tokens that survive the filters.
    """
    check_logits(logits)
    check_sampling_options(temperature, top_k, top_p, min_p, generator)
    if temperature == 0:
        return greedy(logits)
    probs = next_token_distribution(
        logits, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p
    )
    flat = probs.reshape(-1, probs.shape[-1])  # multinomial wants (rows, V)
    draws = torch.multinomial(flat, num_samples=1, generator=generator)
    return draws.reshape(probs.shape[:-1])
