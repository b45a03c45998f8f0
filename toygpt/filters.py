"""Temperature and the truncation filters: pure functions on logits ``(..., V)``.

Each filter returns new logits in which the tokens it removes are ``-inf`` (softmax
gives them probability 0) and the others are unchanged. On input without ties each
keeps exactly what the transformers warper of the same name keeps
(``TopKLogitsWarper``, ``TopPLogitsWarper``, ``MinPLogitsWarper``,
``TypicalLogitsWarper``, ``EpsilonLogitsWarper``, ``EtaLogitsWarper``, with
``min_tokens_to_keep=1``). The dtype of the logits is kept (float64 stays float64).
"""

from __future__ import annotations

import torch

from toygpt.rules import (
    _check_epsilon,
    _check_eta,
    _check_min_p,
    _check_temperature,
    _check_top_k,
    _check_top_p,
    _check_typical_p,
    check_logits,
)

NEG_INF = float("-inf")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature``: T < 1 sharpens, T > 1 flattens.

    The logits are first shifted so that the largest is 0 (softmax does not change under
    a shift). Any finite T > 0 works: as T -> 0 only the largest logits stay finite (a
    tiny T draws one of the most probable tokens), as T -> inf every kept token gets the
    same probability; removed tokens (-inf) stay removed, and no NaN appears even when T
    is too small or too large for the logits' dtype. ``temperature=0`` is the limit
    itself: only the most probable token (the lowest index among ties) stays.

    >>> apply_temperature(torch.log(torch.tensor([0.5, 0.3, 0.2])), 0.5).softmax(-1)
    tensor([0.6579, 0.2368, 0.1053])
    """
    check_logits(logits)
    _check_temperature(temperature)
    shifted = logits - logits.amax(dim=-1, keepdim=True)  # max -> 0; -inf stays -inf
    if temperature == 0:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep.scatter_(-1, torch.argmax(logits, dim=-1, keepdim=True), True)
        return shifted.masked_fill(~keep, NEG_INF)
    # torch rounds T to the tensor's dtype: a subnormal T becomes 0 and a huge one inf
    # in float32, so 0/T and -inf/T could be NaN. Both are pinned to their limits.
    scaled = shifted / temperature
    scaled = scaled.masked_fill(shifted == 0, 0.0)
    return scaled.masked_fill(shifted == NEG_INF, NEG_INF)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits, set the rest to ``-inf``.

    ``k`` larger than the vocabulary keeps everything. Tokens tied with the k-th largest
    are all kept, as in transformers.

    >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2)
    tensor([-inf, 3., 2., -inf])
    """
    check_logits(logits)
    _check_top_k(k)
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al. 2020): keep the smallest set of most probable
    tokens whose total probability reaches ``p``; the token that crosses ``p`` is kept,
    and so is the most probable token.

    Ties: a token tied with a kept token is kept too, so the kept set depends only on
    the probabilities, not on token positions. In particular a tiny ``p`` keeps *every*
    tied maximum (sampling then picks among them uniformly), not only greedy's
    lowest-index one. transformers breaks such ties by sort order instead; on input
    without ties the two agree exactly.

    With probabilities [0.5, 0.3, 0.15, 0.05]: p=0.6 keeps two tokens (0.5 < 0.6, and
    0.3 crosses it), p=0.81 keeps three, p=1 keeps all.

    >>> top_p_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.6).softmax(-1)
    tensor([0.6250, 0.3750, 0.0000, 0.0000])
    """
    check_logits(logits)
    _check_top_p(p)
    if p == 1:
        return logits.clone()
    # transformers' operations: sort ascending; a token is removed when the mass of all
    # tokens below it (itself included) is at most 1 - p, i.e. when the tokens above it
    # already hold at least p.
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= 1 - p
    remove_sorted[..., -1] = False  # the most probable token always stays
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    # Ties: keep everything at least as large as the smallest kept logit.
    smallest_kept = logits.masked_fill(remove, float("inf")).amin(-1, keepdim=True)
    return logits.masked_fill(logits < smallest_kept, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least ``min_p`` times the largest probability
    (Nguyen et al. 2024).

    The cut scales with the model's confidence: a sure model keeps few tokens, an unsure
    one keeps many. ``min_p=0`` keeps everything; the most probable token always stays.

    >>> min_p_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.5).softmax(-1)
    tensor([0.6250, 0.3750, 0.0000, 0.0000])
    """
    check_logits(logits)
    _check_min_p(min_p)
    probs = logits.softmax(dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)
    return logits.masked_fill(probs < threshold, NEG_INF)


def _rows(logits):
    """(..., V) -> (rows, V), and back."""
    flat = logits.reshape(-1, logits.shape[-1])
    return flat, lambda out: out.reshape(logits.shape)


def typical_filter(logits: torch.Tensor, mass: float) -> torch.Tensor:
    """Locally typical sampling (Meister et al. 2023): keep the tokens whose surprisal
    ``-log p`` is closest to the entropy ``H`` of the distribution, most typical first,
    until their total probability reaches ``mass`` (the token that crosses it is kept,
    and so are tokens exactly as typical as that one).

    Unlike the other filters it can drop the most probable token: with probabilities
    [0.5, 0.3, 0.15, 0.05], H = 1.142 nats and the distances |-log p - H| are
    [0.449, 0.062, 0.755, 1.854], so token 1 is the most typical; mass=0.3 keeps only
    token 1, mass=0.5 keeps tokens 1 and 0. ``mass=1`` keeps everything.

    >>> typical_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.3).softmax(-1)
    tensor([0., 1., 0., 0.])
    """
    check_logits(logits)
    _check_typical_p(mass)
    if mass == 1:
        return logits.clone()
    scores, back = _rows(logits)
    # transformers' TypicalLogitsWarper, operation for operation.
    log_p = torch.nn.functional.log_softmax(scores, dim=-1)
    entropy = -(log_p * log_p.exp()).nansum(-1, keepdim=True)  # 0 * -inf ignored
    distance = torch.abs(-log_p - entropy)
    sorted_distance, order = torch.sort(distance, descending=False)
    cumulative = scores.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
    last = (cumulative < mass).sum(dim=1).clamp_(max=scores.shape[-1] - 1)
    cutoff = sorted_distance.gather(1, last.view(-1, 1))
    remove_sorted = sorted_distance > cutoff
    remove_sorted[..., :1] = False  # the most typical token always stays
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return back(scores.masked_fill(remove, NEG_INF))


def _keep_top_token(remove, scores):
    # transformers' min_tokens_to_keep=1: the most probable token (and its ties) stays.
    return remove & (scores < scores.amax(dim=-1, keepdim=True))


def epsilon_filter(logits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Epsilon sampling (Hewitt et al. 2022): remove every token whose probability is
    below ``epsilon``; the most probable token always stays. ``epsilon=0`` keeps all.

    >>> epsilon_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.1).softmax(-1)
    tensor([0.5263, 0.3158, 0.1579, 0.0000])
    """
    check_logits(logits)
    _check_epsilon(epsilon)
    probs = logits.softmax(dim=-1)
    return logits.masked_fill(_keep_top_token(probs < epsilon, logits), NEG_INF)


def eta_filter(logits: torch.Tensor, eta: float) -> torch.Tensor:
    """Eta sampling (Hewitt et al. 2022): an epsilon cut that adapts to the entropy
    ``H`` (nats): remove tokens with probability below
    ``min(eta, sqrt(eta) * exp(-H))``; the most probable token always stays. A flat
    distribution (high H) gets a low cut, a peaked one the full ``eta``. ``eta=0``
    keeps everything.

    With probabilities [0.5, 0.3, 0.15, 0.05] (H = 1.142) and eta=0.1 the cut is
    min(0.1, 0.316 * 0.319) = 0.1009, which removes 0.05.

    >>> eta_filter(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), 0.1).softmax(-1)
    tensor([0.5263, 0.3158, 0.1579, 0.0000])
    """
    check_logits(logits)
    _check_eta(eta)
    probs = logits.softmax(dim=-1)
    # The entropy as torch.distributions.Categorical computes it (transformers uses it):
    # normalised logits clamped to the dtype's lowest finite value, times the probs.
    log_p = logits - logits.logsumexp(dim=-1, keepdim=True)
    lowest = torch.finfo(logits.dtype).min
    entropy = -(log_p.clamp(min=lowest) * log_p.softmax(dim=-1)).sum(-1, keepdim=True)
    eta_t = torch.tensor(eta, dtype=logits.dtype)
    cut = torch.minimum(eta_t, torch.sqrt(eta_t) * torch.exp(-entropy))
    return logits.masked_fill(_keep_top_token(probs < cut, logits), NEG_INF)
