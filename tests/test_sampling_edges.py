"""Edges of the sampling functions: float64 end to end, extreme temperatures, ties in
top-p, exotic logits dtypes; then property-based tests (hypothesis)."""

import math

import pytest
import torch
from conftest import chi_square_pvalue
from hypothesis import given, settings
from hypothesis import strategies as st

from toygpt import (
    apply_temperature,
    epsilon_filter,
    eta_filter,
    greedy,
    min_p_filter,
    next_token_distribution,
    process_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

# ---------------------------------------------------------------- precision


def test_float64_stays_float64_end_to_end():
    logits = torch.tensor([[1.0, 0.5, -2.0]], dtype=torch.float64)
    ids = torch.tensor([[0]])
    rule = dict(temperature=0.7, top_k=2, typical_p=0.99, repetition_penalty=1.2)
    assert process_logits(logits, ids, **rule).dtype == torch.float64
    assert next_token_distribution(logits, ids, **rule).dtype == torch.float64
    for f, arg in [
        (apply_temperature, 0.3),
        (top_k_filter, 2),
        (top_p_filter, 0.5),
        (min_p_filter, 0.1),
        (typical_filter, 0.5),
        (epsilon_filter, 0.1),
        (eta_filter, 0.1),
    ]:
        assert f(logits, arg).dtype == torch.float64, f.__name__
    # half precision is computed in float32
    assert process_logits(logits.half(), temperature=0.5).dtype == torch.float32


def test_float64_near_tie_at_tiny_temperature_draws_the_larger():
    # 1 and 1 + 1e-9 are one number in float32 (a coin flip); in float64 the second
    # is larger by 1e-9, which T = 1e-12 turns into a gap of 1000 nats.
    logits = torch.tensor([1.0, 1.0 + 1e-9, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(2000, -1), temperature=1e-12, generator=g)
    assert (draws == 1).all()
    draws32 = sample_next(
        logits.float().expand(2000, -1), temperature=1e-12, generator=g
    )
    assert (draws32 == 0).any()  # the test can fail: float32 cannot see the gap


def test_float64_logits_beyond_float32_range_stay_finite():
    logits = torch.tensor([1e300, -1e300, 0.0, 3e299], dtype=torch.float64)
    out = process_logits(logits, top_k=3)
    assert torch.isfinite(out[[0, 2, 3]]).all() and out[1] == float("-inf")
    assert out[0] == 1e300
    probs = next_token_distribution(logits, temperature=1e300)
    assert torch.isfinite(probs).all() and math.isclose(float(probs.sum()), 1.0)
    assert int(sample_next(logits)) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [5e-324, 1e-310, 1e-45, 1e-30, 1e-6])
def test_tiny_temperature_draws_a_most_probable_token(dtype, t):
    logits = torch.tensor(
        [[0.5, 2.0, 2.0, float("-inf"), -3.0], [1.0, 0.0, 0.9, 0.2, -1e4]], dtype=dtype
    )
    probs = next_token_distribution(logits, temperature=t)
    assert not torch.isnan(probs).any()
    assert torch.equal(probs[0], torch.tensor([0, 0.5, 0.5, 0, 0], dtype=dtype))
    assert probs[1, 0] == 1
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.repeat(500, 1), temperature=t, generator=g)
    assert set(draws[0::2].tolist()) == {1, 2} and (draws[1::2] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [1e30, 1e39, 1e300])
def test_huge_temperature_is_uniform_over_the_kept_tokens(dtype, t):
    logits = torch.tensor([3.0, 1.0, float("-inf"), -2.0, 0.0], dtype=dtype)
    probs = next_token_distribution(logits, temperature=t)
    expected = torch.tensor([0.25, 0.25, 0, 0.25, 0.25], dtype=dtype)
    assert torch.allclose(probs, expected)
    # with a filter first in the chain (llama.cpp order): uniform over top-2
    probs = next_token_distribution(
        logits, temperature=t, top_k=2, sampler_order="llama.cpp"
    )
    assert torch.allclose(probs, torch.tensor([0.5, 0.5, 0, 0, 0], dtype=dtype))
    g = torch.Generator().manual_seed(2)
    counts = torch.bincount(
        sample_next(logits.expand(8000, -1), temperature=t, generator=g), minlength=5
    )
    assert chi_square_pvalue(counts, expected.float()) > 0.001


# ---------------------------------------------------------------- top-p and ties


def test_tiny_top_p_keeps_every_tied_maximum_everywhere():
    logits = torch.tensor([0.4, 0.4, 0.2]).log()
    assert (top_p_filter(logits, 1e-9) > float("-inf")).tolist() == [True, True, False]
    assert torch.equal(process_logits(logits, top_p=1e-9), top_p_filter(logits, 1e-9))
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(4000, -1), top_p=1e-9, generator=g)
    counts = torch.bincount(draws, minlength=3)
    assert chi_square_pvalue(counts, torch.tensor([0.5, 0.5, 0.0])) > 0.001
    # greedy (and temperature 0) still take the lowest index
    assert int(greedy(logits)) == 0
    assert int(sample_next(logits, temperature=0, top_p=1e-9)) == 0


def test_top_p_keeps_ties_with_the_crossing_token():
    # transformers keeps {0, 2} here (sort order decides); we keep the tie whole.
    logits = torch.tensor([0.4, 0.3, 0.3]).log()
    assert (top_p_filter(logits, 0.5) > float("-inf")).all()
    # the kept set follows the probabilities, not the positions
    perm = torch.tensor([2, 0, 1])
    assert torch.equal(top_p_filter(logits[perm], 0.5), top_p_filter(logits, 0.5)[perm])


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "dtype",
    [torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2, torch.bool]
    + [torch.int64, torch.uint8],
)
def test_exotic_logits_dtypes_are_refused(dtype):
    logits = torch.tensor([1.0, 0.0, 2.0]).to(dtype)
    for call in (
        lambda: greedy(logits),
        lambda: process_logits(logits),
        lambda: sample_next(logits),
        lambda: top_p_filter(logits, 0.5),
    ):
        with pytest.raises(TypeError, match="logits must be a float16, bfloat16"):
            call()


# ---------------------------------------------------------------- properties

finite = st.floats(-60, 60, allow_nan=False, allow_infinity=False, width=64)
rows = st.lists(finite, min_size=1, max_size=12)
unit = st.floats(1e-6, 1.0)
cutoff = st.floats(0.0, 0.999)
FAST = settings(max_examples=60, deadline=None)

FILTERS_KEEPING_THE_MAX = [
    (top_k_filter, st.integers(1, 15)),
    (top_p_filter, unit),
    (min_p_filter, st.floats(0.0, 1.0)),
    (epsilon_filter, cutoff),
    (eta_filter, cutoff),
]


def _kept(scores):
    return scores > float("-inf")


@pytest.mark.parametrize("f, arg", FILTERS_KEEPING_THE_MAX)
@FAST
@given(data=st.data())
def test_filters_keep_the_max_and_never_nan(f, arg, data):
    logits = torch.tensor(data.draw(rows), dtype=torch.float64)
    out = f(logits, data.draw(arg))
    assert not torch.isnan(out).any()
    assert (out[logits == logits.max()] == logits.max()).all()
    assert torch.equal(out[_kept(out)], logits[_kept(out)])  # kept logits unchanged


@FAST
@given(values=rows, mass=unit)
def test_typical_keeps_at_least_one_token(values, mass):
    logits = torch.tensor(values, dtype=torch.float64)
    out = typical_filter(logits, mass)
    assert _kept(out).any() and not torch.isnan(out).any()


@pytest.mark.parametrize(
    "f, arg, grows",
    [
        (top_k_filter, st.integers(1, 15), True),
        (top_p_filter, unit, True),
        (typical_filter, unit, True),
        (min_p_filter, st.floats(0.0, 1.0), False),
        (epsilon_filter, cutoff, False),
        (eta_filter, cutoff, False),
    ],
)
@FAST
@given(data=st.data())
def test_filters_are_monotone_in_their_parameter(f, arg, grows, data):
    logits = torch.tensor(data.draw(rows), dtype=torch.float64)
    a, b = sorted([data.draw(arg), data.draw(arg)])
    small, large = _kept(f(logits, a)), _kept(f(logits, b))
    if not grows:
        small, large = large, small
    assert (small <= large).all()  # the smaller set is inside the larger one


rule_sets = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.one_of(st.just(0), st.floats(1e-300, 1e300)),
        "top_k": st.integers(1, 15),
        "top_p": unit,
        "min_p": st.floats(0.0, 1.0),
        "typical_p": unit,
        "epsilon_cutoff": cutoff,
        "eta_cutoff": cutoff,
        "repetition_penalty": st.floats(0.1, 10.0),
        "frequency_penalty": st.floats(-2.0, 2.0),
        "presence_penalty": st.floats(-2.0, 2.0),
        "no_repeat_ngram_size": st.integers(2, 4),
        "sampler_order": st.sampled_from([None, "transformers", "llama.cpp"]),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(finite, min_size=3, max_size=12),
    ids=st.lists(st.integers(0, 2), max_size=8),
    rule=rule_sets,
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_any_legal_rule_gives_a_distribution(values, ids, rule, dtype):
    logits = torch.tensor([values], dtype=dtype)
    input_ids = torch.tensor([ids], dtype=torch.long).reshape(1, len(ids))
    try:
        probs = next_token_distribution(logits, input_ids, **rule)
    except ValueError as err:  # only the rules that need a place can refuse
        assert "sampler_order" in str(err) or "every entry is -inf" in str(err)
        return
    assert probs.dtype == dtype
    assert not torch.isnan(probs).any() and (probs >= 0).all()
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)
    draw = sample_next(
        logits, input_ids=input_ids, generator=torch.Generator().manual_seed(0), **rule
    )
    assert probs[0, int(draw)] > 0


@FAST
@given(values=rows, t=st.floats(1e-300, 1e-12))
def test_tiny_temperature_puts_all_mass_on_the_maxima(values, t):
    logits = torch.tensor(values, dtype=torch.float64)
    probs = next_token_distribution(logits, temperature=t)
    top = logits == logits.max()
    gap = (logits.max() - logits[~top].max()) if (~top).any() else math.inf
    if gap / t > 800:  # exp(-800) underflows: the limit is reached exactly
        assert torch.allclose(probs[top], torch.full_like(probs[top], 1 / top.sum()))
        assert (probs[~top] == 0).all()


@FAST
@given(values=rows, t=st.floats(1e200, 1e300))
def test_huge_temperature_is_uniform(values, t):
    logits = torch.tensor(values, dtype=torch.float64)
    probs = next_token_distribution(logits, temperature=t)
    assert torch.allclose(probs, torch.full_like(probs, 1 / len(values)))


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 3), min_size=0, max_size=10),
    pads=st.integers(0, 4),
    n=st.integers(1, 4),
    penalty=st.floats(0.2, 5.0),
    freq=st.floats(-2, 2),
    pres=st.floats(-2, 2),
    seed=st.integers(0, 2**16),
)
def test_left_padding_with_a_mask_changes_nothing(
    ids, pads, n, penalty, freq, pres, seed
):
    logits = torch.randn(1, 6, generator=torch.Generator().manual_seed(seed))
    rule = dict(
        repetition_penalty=penalty,
        frequency_penalty=freq,
        presence_penalty=pres,
        no_repeat_ngram_size=n,
    )
    alone = torch.tensor([ids], dtype=torch.long).reshape(1, len(ids))
    padded = torch.cat([torch.full((1, pads), 5), alone], dim=1)
    mask = torch.cat([torch.zeros(1, pads), torch.ones(1, len(ids))], dim=1)
    try:
        a = process_logits(logits, alone, **rule)
    except ValueError:  # every token banned: the padded row must refuse too
        with pytest.raises(ValueError):
            process_logits(logits, padded, attention_mask=mask, **rule)
        return
    b = process_logits(logits, padded, attention_mask=mask, **rule)
    assert torch.equal(a, b)
