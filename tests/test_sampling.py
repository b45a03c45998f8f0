"""Decoding rules: hand-worked examples, transformers parity, statistics, bad input."""

import math

import pytest
import torch
from conftest import chi_square_pvalue

from toygpt import (
    apply_temperature,
    greedy,
    min_p_filter,
    sample_next,
    top_k_filter,
    top_p_filter,
)

P = torch.tensor([0.5, 0.3, 0.15, 0.05])
LOGITS = P.log()


def kept(logits):
    return (logits > float("-inf")).nonzero().flatten().tolist()


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.5, [0]),
        (0.6, [0, 1]),
        (0.8, [0, 1]),
        (0.81, [0, 1, 2]),
        (0.95, [0, 1, 2]),
        (0.96, [0, 1, 2, 3]),
        (1.0, [0, 1, 2, 3]),
        (1e-9, [0]),
    ],
)
def test_top_p_hand_worked(p, expected):
    assert kept(top_p_filter(LOGITS, p)) == expected


def test_top_p_keeps_crossing_token_in_any_order():
    # The same distribution shuffled: the kept set follows the probabilities, not
    # positions.
    perm = torch.tensor([2, 0, 3, 1])
    out = top_p_filter(LOGITS[perm], 0.6)
    assert sorted(perm[kept(out)].tolist()) == [0, 1]


@pytest.mark.parametrize(
    "k, expected", [(1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (10, [0, 1, 2, 3])]
)
def test_top_k_hand_worked(k, expected):
    assert kept(top_k_filter(LOGITS, k)) == expected


def test_top_k_keeps_ties_with_kth():
    assert kept(top_k_filter(torch.tensor([0.4, 0.3, 0.3]).log(), 2)) == [0, 1, 2]


@pytest.mark.parametrize(
    "min_p, expected",
    [(0.0, [0, 1, 2, 3]), (0.3, [0, 1, 2]), (0.6, [0, 1]), (0.61, [0]), (1.0, [0])],
)
def test_min_p_hand_worked(min_p, expected):
    assert kept(min_p_filter(LOGITS, min_p)) == expected


def test_filters_leave_kept_logits_unchanged():
    for out in (
        top_k_filter(LOGITS, 2),
        top_p_filter(LOGITS, 0.6),
        min_p_filter(LOGITS, 0.5),
    ):
        assert torch.equal(out[:2], LOGITS[:2])


def test_temperature_hand_worked():
    # T = 0.5 squares the probabilities before renormalising.
    expected = P**2 / (P**2).sum()
    assert torch.allclose(
        apply_temperature(LOGITS, 0.5).softmax(-1), expected, atol=1e-6
    )
    assert torch.allclose(apply_temperature(LOGITS, 1.0).softmax(-1), P, atol=1e-6)


def test_temperature_zero_is_greedy_and_entropy_rises_with_t():
    assert kept(apply_temperature(LOGITS, 0)) == [0]
    entropies = []
    for t in (0.1, 0.5, 1.0, 2.0, 10.0):
        q = apply_temperature(LOGITS, t).softmax(-1)
        entropies.append(float(-(q * q.log()).sum()))
    assert entropies == sorted(entropies)


def test_greedy_ties_go_to_lowest_index_and_batch_is_kept():
    logits = torch.tensor([[0.1, 2.0, 2.0], [3.0, 0.0, 3.0]])
    assert greedy(logits).tolist() == [1, 0]
    # the lesson's torch.argmax(probs) without dim flattens the batch:
    assert torch.argmax(logits.softmax(-1)).item() == 3


def test_filters_match_transformers_warpers():
    tr = pytest.importorskip("transformers")
    torch.manual_seed(0)
    logits = torch.randn(64, 50) * 3
    ids = torch.zeros(64, 1, dtype=torch.long)
    for k in (1, 5, 50, 100):
        assert torch.equal(top_k_filter(logits, k), tr.TopKLogitsWarper(k)(ids, logits))
    for p in (0.05, 0.3, 0.9, 0.99):
        assert torch.equal(top_p_filter(logits, p), tr.TopPLogitsWarper(p)(ids, logits))
    for m in (0.0, 0.05, 0.2, 0.9):
        assert torch.equal(min_p_filter(logits, m), tr.MinPLogitsWarper(m)(ids, logits))
    for t in (0.3, 1.7):  # we shift the logits first: the probabilities agree
        ours = apply_temperature(logits, t).softmax(-1)
        theirs = tr.TemperatureLogitsWarper(t)(ids, logits).softmax(-1)
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_sample_next_matches_transformers_chain_order():
    tr = pytest.importorskip("transformers")
    torch.manual_seed(1)
    logits = torch.randn(8, 30) * 2
    ids = torch.zeros(8, 1, dtype=torch.long)
    chain = tr.LogitsProcessorList(
        [
            tr.TemperatureLogitsWarper(0.7),
            tr.TopKLogitsWarper(12),
            tr.TopPLogitsWarper(0.8),
            tr.MinPLogitsWarper(0.05),
        ]
    )
    theirs = chain(ids, logits).softmax(-1)
    torch.manual_seed(123)
    ref = torch.multinomial(theirs, 1).squeeze(1)
    torch.manual_seed(123)
    ours = sample_next(logits, temperature=0.7, top_k=12, top_p=0.8, min_p=0.05)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(temperature=0.7),
        dict(top_k=3),
        dict(top_p=0.8),
        dict(min_p=0.2),
        dict(temperature=1.5, top_k=4, top_p=0.9),
    ],
)
def test_sampling_frequencies_match_probabilities(kwargs):
    """Seeded chi-square test: draws follow the filtered, renormalised distribution."""
    logits = torch.tensor([2.0, 1.5, 1.0, 0.2, -0.5, -1.0])
    scores = apply_temperature(logits, kwargs.get("temperature", 1.0))
    if "top_k" in kwargs:
        scores = top_k_filter(scores, kwargs["top_k"])
    if "top_p" in kwargs:
        scores = top_p_filter(scores, kwargs["top_p"])
    if "min_p" in kwargs:
        scores = min_p_filter(scores, kwargs["min_p"])
    probs = scores.softmax(-1)
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(20000, -1), generator=g, **kwargs)
    counts = torch.bincount(draws, minlength=6)
    assert chi_square_pvalue(counts, probs) > 0.001
    # ...and the test can fail: the same draws against the unfiltered distribution
    if kwargs:
        with pytest.raises(AssertionError):
            assert chi_square_pvalue(counts, logits.softmax(-1)) > 0.001


def test_top_k_draw_is_weighted_not_uniform():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(
        sample_next(logits.expand(20000, -1), top_k=2, generator=g), minlength=4
    )
    assert chi_square_pvalue(counts, torch.tensor([0.625, 0.375, 0, 0])) > 0.001
    assert chi_square_pvalue(counts, torch.tensor([0.5, 0.5, 0, 0])) < 1e-6


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(4, 20, generator=torch.Generator().manual_seed(0))
    a = sample_next(logits, generator=torch.Generator().manual_seed(5))
    b = sample_next(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_temperature_zero_samples_greedily():
    logits = torch.randn(16, 20, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next(logits, temperature=0, top_k=5), greedy(logits))


@pytest.mark.parametrize("t", [1e-6, 1e-3, 1e3])
@pytest.mark.parametrize("top_p", [None, 1e-9, 0.5])
def test_extreme_legal_input_never_nan(t, top_p):
    logits = torch.tensor(
        [
            [3.0, float("-inf"), 1e4, -1e4, 0.0],
            [float("-inf"), float("-inf"), 0.0, 1.0, 2.0],
        ]
    )
    scores = apply_temperature(logits, t)
    if top_p is not None:
        scores = top_p_filter(scores, top_p)
    probs = scores.softmax(-1)
    assert not torch.isnan(probs).any()
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    assert (probs[logits == float("-inf")] == 0).all()
    draws = sample_next(
        logits, temperature=t, top_p=top_p, generator=torch.Generator().manual_seed(0)
    )
    assert (logits[torch.arange(2), draws] > float("-inf")).all()


def test_tiny_temperature_picks_the_argmax():
    logits = torch.tensor([1.0, 1.001, 0.5])
    assert apply_temperature(logits, 1e-6).softmax(-1).argmax() == 1
    assert math.isclose(float(apply_temperature(logits, 1e-6).softmax(-1)[1]), 1.0)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: apply_temperature(LOGITS, -0.1), ValueError, "temperature"),
        (lambda: apply_temperature(LOGITS, float("nan")), ValueError, "temperature"),
        (lambda: apply_temperature(LOGITS, float("inf")), ValueError, "temperature"),
        (lambda: apply_temperature(LOGITS, "1"), TypeError, "temperature"),
        (lambda: top_k_filter(LOGITS, 0), ValueError, "top_k"),
        (lambda: top_k_filter(LOGITS, -3), ValueError, "top_k"),
        (lambda: top_k_filter(LOGITS, 2.0), TypeError, "top_k"),
        (lambda: top_k_filter(LOGITS, True), TypeError, "top_k"),
        (lambda: top_p_filter(LOGITS, 0), ValueError, "top_p"),
        (lambda: top_p_filter(LOGITS, 1.01), ValueError, "top_p"),
        (lambda: top_p_filter(LOGITS, -0.5), ValueError, "top_p"),
        (lambda: top_p_filter(LOGITS, float("nan")), ValueError, "top_p"),
        (lambda: min_p_filter(LOGITS, -0.01), ValueError, "min_p"),
        (lambda: min_p_filter(LOGITS, 1.5), ValueError, "min_p"),
        (lambda: sample_next(LOGITS, top_k=0), ValueError, "top_k"),
        (lambda: sample_next(LOGITS, top_p=0), ValueError, "top_p"),
        (lambda: sample_next(LOGITS, temperature=-1), ValueError, "temperature"),
        (lambda: sample_next(LOGITS, generator=0), TypeError, "generator"),
        (lambda: greedy([0.1, 0.2]), TypeError, "logits"),
        (lambda: greedy(torch.tensor([1, 2])), TypeError, "logits"),
        (lambda: greedy(torch.tensor([float("nan"), 1.0])), ValueError, "NaN"),
        (lambda: greedy(torch.full((3,), float("-inf"))), ValueError, "-inf"),
        (lambda: greedy(torch.tensor([float("inf"), 1.0])), ValueError, "+inf"),
        (lambda: greedy(torch.zeros(2, 0)), ValueError, "logits"),
    ],
)
def test_bad_arguments_name_themselves(call, error, words):
    with pytest.raises(error, match=words.replace("+", r"\+")):
        call()
