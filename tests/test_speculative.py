"""Speculative decoding: greedy equals the target's greedy, sampling follows the
target's exact law under the rule (seeded chi-square), and the common bugs fail the same
test."""

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toygpt.speculative as spec
from toygpt import GPTModel, ToyLanguage, generate, load_pretrained
from toygpt.sampling import next_token_distribution, process_logits
from toygpt.speculative import (
    SpeculativeStats,
    residual_distribution,
    speculative_generate,
)


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


@pytest.fixture(scope="module")
def target():
    return load_pretrained()[0]


@pytest.fixture(scope="module")
def draft():
    return load_pretrained("draft")[0]


def untrained(vocab_size=39, d_model=16, num_layers=1, seed=0, context_length=16):
    torch.manual_seed(seed)
    heads = 2 if d_model % 2 == 0 else 1
    model = GPTModel(vocab_size, d_model, heads, num_layers, 0.0, context_length)
    return model.eval()


# ---- greedy: the same tokens as the target's greedy generate ----


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    prompt_length=st.integers(1, 6),
    max_new=st.integers(0, 10),
    k=st.integers(1, 6),
    use_eos=st.booleans(),
    use_cache=st.booleans(),
)
def test_greedy_equals_target_greedy_untrained(
    seed, prompt_length, max_new, k, use_eos, use_cache
):
    V = 11
    target = untrained(V, d_model=16, num_layers=2, seed=seed)
    draft = untrained(V, d_model=8, num_layers=1, seed=seed + 1)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (1, prompt_length), generator=g)
    eos = 3 if use_eos else None
    want = generate(target, ids, max_new, eos_token_id=eos)
    got, stats = speculative_generate(
        target,
        draft,
        ids,
        max_new,
        num_draft_tokens=k,
        eos_token_id=eos,
        use_cache=use_cache,
        return_stats=True,
    )
    assert torch.equal(got, want)
    assert stats.new_tokens == want.shape[1] - prompt_length
    assert stats.target_calls == len(stats.rounds)
    assert all(0 <= a <= p <= k for p, a in stats.rounds)
    # every round emits its accepted tokens plus one (or ends at an accepted EOS)
    assert stats.new_tokens <= stats.accepted + stats.target_calls


def every_prefix(lang, n, seed):
    for s in lang.sample(n, generator=torch.Generator().manual_seed(seed)):
        for length in range(1, len(s)):
            yield torch.tensor([s[:length]])


@pytest.mark.parametrize("which", ["shipped draft", "untrained draft"])
def test_greedy_equals_target_greedy_shipped(lang, target, draft, which):
    small = draft if which == "shipped draft" else untrained(seed=3)
    for ids in every_prefix(lang, 25, seed=7):
        new = target.context_length - ids.shape[1]
        want = generate(target, ids, new, eos_token_id=lang.eos_id)
        for k in (1, 4):
            got = speculative_generate(
                target, small, ids, new, num_draft_tokens=k, eos_token_id=lang.eos_id
            )
            assert torch.equal(got, want), (ids, got, want)


def test_the_target_as_its_own_draft_accepts_everything(lang, target):
    ids = torch.tensor([[lang.bos_id]])
    out, stats = speculative_generate(
        target, target, ids, 12, num_draft_tokens=3, return_stats=True
    )
    assert torch.equal(out, generate(target, ids, 12))
    assert stats.acceptance_rate == 1.0
    assert stats.target_calls == math.ceil(12 / 4)  # k accepted + 1 bonus per pass


def test_stops_at_eos_and_never_exceeds_max_new_tokens(lang, target, draft):
    ids = torch.tensor([[lang.bos_id, lang.vocab.index("hello")]])
    out = speculative_generate(target, draft, ids, 14, eos_token_id=lang.eos_id)
    assert out[0, -1] == lang.eos_id and (out[0, 2:-1] != lang.eos_id).all()
    for n in range(5):
        out = speculative_generate(target, draft, ids, n, num_draft_tokens=4)
        assert out.shape == (1, 2 + n)
    same = speculative_generate(target, draft, ids, 0)
    assert torch.equal(same, ids) and same is not ids


def test_sampling_is_reproducible_with_a_seed(lang, target, draft):
    ids = torch.tensor([[lang.bos_id]])

    def run(seed):
        return speculative_generate(
            target, draft, ids, 10, do_sample=True, top_k=5,
            generator=torch.Generator().manual_seed(seed), eos_token_id=lang.eos_id,
        )  # fmt: skip

    assert torch.equal(run(1), run(1))
    assert any(not torch.equal(run(1), run(s)) for s in range(2, 8))


def test_residual_distribution():
    p = torch.tensor([0.5, 0.3, 0.2, 0.0], dtype=torch.float64)
    q = torch.tensor([0.1, 0.5, 0.1, 0.3], dtype=torch.float64)
    torch.testing.assert_close(
        residual_distribution(p, q),
        torch.tensor([0.8, 0.0, 0.2, 0.0], dtype=torch.float64),
    )
    torch.testing.assert_close(residual_distribution(p, p), p)  # nothing to reject


def test_kv_cache_crop(target):
    ids = torch.tensor([[37, 0, 1, 2, 3, 4]])
    cache = target.new_kv_cache()
    full = target(ids, kv_cache=cache)
    cache.crop(3)
    assert len(cache) == 3
    again = target(ids[:, 3:], kv_cache=cache)  # the cropped positions are recomputed
    torch.testing.assert_close(again, full[:, 3:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="length"):
        cache.crop(len(cache) + 1)
    with pytest.raises(TypeError, match="length"):
        cache.crop(2.0)


# ---- sampling: the target's exact law under the rule ----


def sentences_after(lang, prompt):
    """Every sentence of the language that extends ``prompt`` (a list of ids)."""
    out, stack = [], [list(prompt)]
    while stack:
        ids = stack.pop()
        if ids[-1] == lang.eos_id:
            out.append(ids)
            continue
        stack.extend(ids + [t] for t in lang.allowed_next(ids))
    return out


def exact_law(model, lang, prompt, rule):
    """{sentence: probability} of ``model``'s sampled continuation of ``prompt`` under
    ``rule``: the product of ``next_token_distribution`` along each sentence."""
    law = {}
    with torch.no_grad():
        for s in sentences_after(lang, prompt):
            ids = torch.tensor([s])
            logits = model(ids[:, :-1])[0]
            prob = 1.0
            for t in range(len(prompt), len(s)):
                p = next_token_distribution(
                    logits[t - 1 : t].float(), ids[:, :t], **rule
                )
                prob *= float(p[0, s[t]])
            law[tuple(s)] = prob
    return law


def chi_square_p_value(counts, law, n):
    """Pearson's test of ``counts`` against ``law``; cells expecting < 5 draws and every
    output outside ``law`` (ungrammatical ones included) are pooled into one cell."""
    observed, expected, pool_obs, pool_exp = [], [], 0, 1.0
    for s, prob in law.items():
        if prob * n >= 5:
            observed.append(counts.get(s, 0))
            expected.append(prob * n)
            pool_exp -= prob
    pool_obs = n - sum(observed)
    observed.append(pool_obs)
    expected.append(max(pool_exp, 0.0) * n)
    stat = sum(
        (o - e) ** 2 / e if e > 0 else (math.inf if o else 0.0)
        for o, e in zip(observed, expected)
    )
    df = len(observed) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2), torch.tensor(stat / 2)))


PROMPT_WORDS = ["the", "dog"]
N_DRAWS = 1500


def sample_counts(target, small, lang, rule, seed, n=N_DRAWS, k=3):
    prompt = [lang.bos_id] + [lang.vocab.index(w) for w in PROMPT_WORDS]
    ids, g, counts = torch.tensor([prompt]), torch.Generator().manual_seed(seed), {}
    for _ in range(n):
        out = speculative_generate(
            target, small, ids, 8, num_draft_tokens=k, do_sample=True,
            eos_token_id=lang.eos_id, generator=g, **rule,
        )  # fmt: skip
        key = tuple(out[0].tolist())
        counts[key] = counts.get(key, 0) + 1
    return prompt, counts


RULES = {"top_k": dict(top_k=4, temperature=1.5), "plain": {}}


@pytest.mark.parametrize(
    "which, rule",
    [
        ("shipped draft", "top_k"),
        ("untrained draft", "top_k"),
        ("untrained draft", "plain"),
    ],
)
def test_sampling_follows_the_targets_exact_law(lang, target, draft, which, rule):
    small = draft if which == "shipped draft" else untrained(seed=5)
    prompt, counts = sample_counts(target, small, lang, RULES[rule], seed=11)
    law = exact_law(target, lang, prompt, RULES[rule])
    assert chi_square_p_value(counts, law, N_DRAWS) > 1e-3


def _resample_from_p(p, q):
    return p  # bug: forgets to take away what the draft already proposed


def _positive_part_unclamped(p, q):
    # bug: "where p > q, draw in proportion to p" instead of to max(0, p - q)
    kept = torch.where(p > q, p, torch.zeros_like(p))
    return kept / kept.sum()


def _rule_skipped_for(who):
    original = spec._distribution

    def distribution(logits, prefix, rule, model):
        return original(logits, prefix, {} if model == who else rule, model)

    return distribution


BUGS = {
    "residual drawn from p": ("residual_distribution", _resample_from_p),
    "residual without max(0, p - q)": (
        "residual_distribution",
        _positive_part_unclamped,
    ),
    "rule not applied to the target": ("_distribution", _rule_skipped_for("target")),
}


def first_token_law(p, q, residual):
    """The exact law of the first token one speculative round emits: the draft's
    proposal x ~ q is kept with probability min(1, p(x)/q(x)), else the token is drawn
    from ``residual(p, q)``."""
    kept = torch.minimum(p, q)  # q(x) * min(1, p(x) / q(x))
    return kept + (1 - kept.sum()) * residual(p, q)


@pytest.mark.parametrize(
    "bug", ["residual drawn from p", "residual without max(0, p - q)"]
)
def test_the_residual_bugs_change_the_law_exactly(lang, target, bug):
    """Computed, not sampled: with the real residual one round emits exactly the
    target's distribution; each wrong residual emits another one."""
    prompt = [lang.bos_id] + [lang.vocab.index(w) for w in PROMPT_WORDS]
    ids, rule = torch.tensor([prompt]), RULES["plain"]  # overlapping supports
    with torch.no_grad():
        p, q = (
            next_token_distribution(m(ids)[:, -1].double(), ids, **rule)[0]
            for m in (target, untrained(seed=5))
        )
    assert torch.allclose(first_token_law(p, q, residual_distribution), p, atol=1e-12)
    wrong = first_token_law(p, q, BUGS[bug][1])
    assert 0.5 * float((wrong - p).abs().sum()) > 0.01


def test_the_common_bugs_fail_the_same_test(lang, target, monkeypatch):
    """The chi-square test above can fail: a bug patched into the real sampler (the
    rule left off the target) gives a law far from the target's."""
    name, replacement = BUGS["rule not applied to the target"]
    monkeypatch.setattr(spec, name, replacement)
    small = untrained(seed=5)
    prompt, counts = sample_counts(target, small, lang, RULES["top_k"], seed=11)
    law = exact_law(target, lang, prompt, RULES["top_k"])
    assert chi_square_p_value(counts, law, N_DRAWS) < 1e-6


def test_a_draft_without_the_rule_only_costs_acceptance(lang, target, monkeypatch):
    """Not a bug for the law: with the draft's raw distribution used both to propose
    and in the ratio, the output still follows the target under the rule (the proof
    holds for any q); only the acceptance rate drops."""
    monkeypatch.setattr(spec, "_distribution", _rule_skipped_for("draft"))
    prompt, counts = sample_counts(target, untrained(seed=5), lang, RULES["top_k"], 11)
    law = exact_law(target, lang, prompt, RULES["top_k"])
    assert chi_square_p_value(counts, law, N_DRAWS) > 1e-3


# ---- constraints (needs process_logits' allowed_tokens_fn from the rules helper) ----

HAS_ALLOWED = "allowed_tokens_fn" in inspect.signature(process_logits).parameters


@pytest.mark.skipif(not HAS_ALLOWED, reason="process_logits has no allowed_tokens_fn")
def test_grammar_constraint_gives_sentences_from_an_untrained_target(lang):
    target, small = untrained(d_model=16, num_layers=2, seed=1), untrained(seed=2)
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[lang.bos_id]])
    for do_sample in (False, True):
        for _ in range(20):
            out = speculative_generate(
                target, small, ids, 12, do_sample=do_sample,
                allowed_tokens_fn=lang.allowed_tokens_fn,
                eos_token_id=lang.eos_id, generator=g if do_sample else None,
            )  # fmt: skip
            assert lang.sequence_log_prob(out[0]) > -math.inf


# ---- bad arguments ----


def test_bad_arguments_are_rejected(lang, target, draft):
    ids = torch.tensor([[lang.bos_id]])
    run = speculative_generate
    with pytest.raises(ValueError, match="vocabulary"):
        run(target, untrained(vocab_size=20), ids, 4)
    with pytest.raises(ValueError, match="num_draft_tokens"):
        run(target, draft, ids, 4, num_draft_tokens=0)
    with pytest.raises(TypeError, match="num_draft_tokens"):
        run(target, draft, ids, 4, num_draft_tokens=2.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        run(target, draft, ids, -1)
    with pytest.raises(TypeError, match="max_new_tokens"):
        run(target, draft, ids, "4")
    with pytest.raises(ValueError, match="context window"):
        run(target, draft, ids, 16)
    with pytest.raises(ValueError, match="batch 1"):
        run(target, draft, ids.repeat(2, 1), 4)
    with pytest.raises(ValueError, match="input_ids"):
        run(target, draft, torch.tensor([[39]]), 4)
    with pytest.raises(TypeError, match="draft"):
        run(target, "draft", ids, 4)
    with pytest.raises(TypeError, match="model"):
        run(None, draft, ids, 4)
    with pytest.raises(ValueError, match="eos_token_id"):
        run(target, draft, ids, 4, eos_token_id=39)
    with pytest.raises(TypeError, match="do_sample"):
        run(target, draft, ids, 4, do_sample=1)
    with pytest.raises(TypeError, match="return_stats"):
        run(target, draft, ids, 4, return_stats="yes")
    with pytest.raises(ValueError, match="top_k"):
        run(target, draft, ids, 4, top_k=3)  # greedy ignores rules: say so
    with pytest.raises(ValueError, match="top_k"):
        run(target, draft, ids, 4, do_sample=True, top_k=0)
    with pytest.raises(TypeError, match="no_such_rule"):
        run(target, draft, ids, 4, do_sample=True, no_such_rule=1)
    with pytest.raises(TypeError, match="generator"):
        run(target, draft, ids, 4, do_sample=True, generator=0)
    with pytest.raises(TypeError, match="allowed_tokens_fn"):
        run(target, draft, ids, 4, allowed_tokens_fn=[1, 2])


def test_stats_dataclass():
    stats = SpeculativeStats(rounds=[(4, 4), (4, 1)], target_calls=2, new_tokens=7)
    assert (stats.proposed, stats.accepted, stats.acceptance_rate) == (8, 5, 5 / 8)
    assert stats.tokens_per_target_call == 3.5
    assert math.isnan(SpeculativeStats().acceptance_rate)
