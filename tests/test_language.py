"""The toy language: exact probabilities, sampling, entropy floor, the greedy trap, the
oracle."""

import math
from collections import defaultdict

import pytest
import torch

from toygpt.language import ToyLanguage

LESSON_WORDS = [
    "hello",
    "world",
    "this",
    "is",
    "a",
    "test",
    "model",
    "GPT",
    "language",
    "AI",
]


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


@pytest.fixture(scope="module")
def tree(lang):
    """Every reachable prefix and every sentence, found through the public API only."""
    prefixes, sentences = [], []
    stack = [[lang.bos_id]]
    while stack:
        prefix = stack.pop()
        prefixes.append(prefix)
        probs = lang.next_token_probs(prefix)
        for token in probs.nonzero().flatten().tolist():
            if token == lang.eos_id:
                sentences.append(prefix + [token])
            else:
                stack.append(prefix + [token])
    return prefixes, sentences


def completions(lang, prefix):
    """Every whole sentence that starts with ``prefix``, with its exact
    log-probability."""
    out, stack = [], [list(prefix)]
    while stack:
        ids = stack.pop()
        for token in lang.next_token_probs(ids).nonzero().flatten().tolist():
            (out if token == lang.eos_id else stack).append(ids + [token])
    return [(s, lang.sequence_log_prob(s)) for s in out]


def greedy_sentence(lang, prefix):
    ids = list(prefix)
    while ids[-1] != lang.eos_id:
        ids.append(int(lang.next_token_probs(ids).argmax()))
    return ids


def reference_beam_search(lang, prefix, num_beams):
    """Beam search with length penalty 0, by Hugging Face's rules (toygpt.beam follows
    them): 2 * num_beams candidates per step; an EOS candidate finishes only within the
    first num_beams; stop when the best running beam cannot beat the worst finished
    sentence."""
    running, finished = [(list(prefix), 0.0)], []
    while running:
        candidates = []
        for ids, score in running:
            probs = lang.next_token_probs(ids).double()
            for token in probs.nonzero().flatten().tolist():
                candidates.append((score + math.log(probs[token]), ids + [token]))
        candidates.sort(key=lambda c: -c[0])
        candidates = candidates[: 2 * num_beams]
        finished += [
            c
            for rank, c in enumerate(candidates)
            if rank < num_beams and c[1][-1] == lang.eos_id
        ]
        finished = sorted(finished, key=lambda c: -c[0])[:num_beams]
        running = [(ids, s) for s, ids in candidates if ids[-1] != lang.eos_id][
            :num_beams
        ]
        if len(finished) == num_beams and running and running[0][1] <= finished[-1][0]:
            break
    return finished[0][1], finished[0][0]


# ---- vocabulary and structure --------------------------------------------------------


def test_vocabulary(lang):
    assert len(lang.vocab) <= 64
    assert len(set(lang.vocab)) == len(lang.vocab)
    assert set(LESSON_WORDS) <= set(lang.vocab)
    assert lang.vocab[lang.bos_id] == "<s>" and lang.vocab[lang.eos_id] == "</s>"
    tok = lang.tokenizer()
    assert tok.vocab == lang.vocab and (tok.bos_id, tok.eos_id) == (
        lang.bos_id,
        lang.eos_id,
    )
    assert tok.encode("hello")[0].tolist() == [lang.bos_id, lang.vocab.index("hello")]


def test_every_word_is_used(lang, tree):
    _, sentences = tree
    used = {t for s in sentences for t in s}
    assert used == set(range(len(lang.vocab)))


def test_transitions_table_agrees_with_next_token_probs(lang, tree):
    prefixes, _ = tree
    for prefix in prefixes[::7]:
        state = lang.state_after(prefix)
        expected = torch.zeros(len(lang.vocab))
        for word, p, _ in lang.transitions[state]:
            expected[lang.vocab.index(word)] = p
        torch.testing.assert_close(lang.next_token_probs(prefix), expected)


# ---- exact probabilities -------------------------------------------------------------


def test_every_reachable_prefix_gives_a_distribution(lang, tree):
    prefixes, _ = tree
    assert len(prefixes) > 1000
    for prefix in prefixes:
        probs = lang.next_token_probs(prefix)
        assert probs.shape == (len(lang.vocab),) and probs.dtype == torch.float32
        assert (probs >= 0).all()
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert probs[lang.bos_id] == 0  # <s> never comes back


def test_sentence_probabilities_sum_to_one(lang, tree):
    _, sentences = tree
    total = math.fsum(math.exp(lang.sequence_log_prob(s)) for s in sentences)
    assert total == pytest.approx(1.0, abs=1e-9)
    assert max(len(s) for s in sentences) == lang.max_sentence_length
    assert lang.max_sentence_length <= 16  # fits the shipped model's context


def test_sequence_log_prob_is_the_sum_of_step_log_probs(lang):
    for s in lang.sample(200, generator=torch.Generator().manual_seed(3)):
        steps = sum(
            math.log(lang.next_token_probs(s[:t])[s[t]].item())
            for t in range(1, len(s))
        )
        assert lang.sequence_log_prob(s) == pytest.approx(steps, abs=1e-5)
        assert lang.sequence_log_prob(s[:3]) <= 0.0
    assert lang.sequence_log_prob([lang.bos_id]) == 0.0


def test_sequence_log_prob_of_impossible_sequences(lang):
    tok = lang.tokenizer()
    assert lang.sequence_log_prob(tok.encode("hello hello")) == -math.inf
    assert lang.sequence_log_prob(tok.encode("world")) == -math.inf
    assert lang.sequence_log_prob(tok.encode("hello world </s> hello")) == -math.inf
    assert lang.sequence_log_prob(tok.encode("hello world <s>")) == -math.inf
    # trailing copies of </s> are padding
    once = lang.sequence_log_prob(tok.encode("hello world </s>"))
    assert once == pytest.approx(math.log(0.30 * 0.90 * 0.25))
    assert lang.sequence_log_prob(tok.encode("hello world </s> </s> </s>")) == once


def test_entropy_floor_is_exact(lang, tree):
    _, sentences = tree
    logps = [lang.sequence_log_prob(s) for s in sentences]
    nll = math.fsum(-math.exp(lp) * lp for lp in logps)
    tokens = math.fsum(math.exp(lp) * (len(s) - 1) for lp, s in zip(logps, sentences))
    assert lang.entropy_floor == pytest.approx(nll / tokens, rel=1e-9)


def test_entropy_floor_matches_monte_carlo(lang):
    sentences = lang.sample(20000, generator=torch.Generator().manual_seed(11))
    nll = -sum(lang.sequence_log_prob(s) for s in sentences)
    tokens = sum(len(s) - 1 for s in sentences)
    assert nll / tokens == pytest.approx(lang.entropy_floor, rel=0.01)


# ---- sampling ------------------------------------------------------------------------


def test_samples_are_whole_possible_sentences(lang):
    for s in lang.sample(500, generator=torch.Generator().manual_seed(5)):
        assert (
            s[0] == lang.bos_id and s[-1] == lang.eos_id and lang.eos_id not in s[1:-1]
        )
        assert 3 <= len(s) <= lang.max_sentence_length
        assert lang.sequence_log_prob(s) > -math.inf


def test_sampling_is_reproducible(lang):
    a = lang.sample(50, generator=torch.Generator().manual_seed(1))
    b = lang.sample(50, generator=torch.Generator().manual_seed(1))
    c = lang.sample(50, generator=torch.Generator().manual_seed(2))
    assert a == b and a != c
    torch.manual_seed(0)
    d = lang.sample(50)
    torch.manual_seed(0)
    assert lang.sample(50) == d


def chi_square_p_value(stat: float, df: int) -> float:
    """P(chi-square with df degrees of freedom >= stat): the upper regularised gamma
    function."""
    return torch.special.gammaincc(
        torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2)
    ).item()


def test_sample_frequencies_match_next_token_probs(lang):
    """Chi-square tests of the words drawn after each prefix, and after each grammar
    state (all prefixes that lead to it), wherever every possible word has an expected
    count >= 5; Bonferroni-corrected for the number of tests, plus one test pooled over
    all prefixes."""
    sentences = lang.sample(20000, generator=torch.Generator().manual_seed(0))
    V = len(lang.vocab)
    observed = {"prefix": defaultdict(lambda: torch.zeros(V, dtype=torch.float64))}
    observed["state"] = defaultdict(lambda: torch.zeros(V, dtype=torch.float64))
    probs = {}
    for s in sentences:
        for t in range(1, len(s)):
            prefix, state = tuple(s[:t]), lang.state_after(s[:t])
            if prefix not in probs:
                probs[prefix] = probs[state] = lang.next_token_probs(s[:t]).double()
            observed["prefix"][prefix][s[t]] += 1
            observed["state"][state][s[t]] += 1
    tests = []  # (what, statistic, degrees of freedom)
    for kind in ("prefix", "state"):
        for key, counts in observed[kind].items():
            p = probs[key]
            assert counts[p == 0].sum() == 0  # never an impossible word
            expected, possible = counts.sum() * p, p > 0
            if possible.sum() >= 2 and expected[possible].min() >= 5:
                stat = (((counts - expected) ** 2 / expected)[possible]).sum().item()
                tests.append((kind, key, stat, int(possible.sum()) - 1))
    assert sum(t[0] == "state" for t in tests) >= 20  # most of the grammar was tested
    alpha = 1e-3
    for kind, key, stat, df in tests:
        p_value = chi_square_p_value(stat, df)
        assert p_value > alpha / len(tests), (
            f"{kind} {key}: chi-square {stat:.1f} on {df} df, p = {p_value:.2g}"
        )
    by_prefix = [t for t in tests if t[0] == "prefix"]
    assert (
        chi_square_p_value(sum(t[2] for t in by_prefix), sum(t[3] for t in by_prefix))
        > alpha
    )


# ---- the contexts the chapters use ---------------------------------------------------


def entropy(probs):
    p = probs[probs > 0].double()
    return float(-(p * p.log()).sum())


def test_lesson_prompt_has_several_plausible_continuations(lang):
    probs = lang.next_token_probs(lang.tokenizer().encode("hello world this is"))
    assert int((probs >= 0.05).sum()) >= 5
    assert probs.max() < 0.5
    words = {lang.vocab[i] for i in (probs >= 0.05).nonzero().flatten().tolist()}
    assert {"a", "GPT", "AI"} <= words
    assert lang.example_contexts["lesson"] == "hello world this is"


def test_example_contexts_are_peaked_and_flat(lang):
    tok = lang.tokenizer()
    dists = {
        name: lang.next_token_probs(tok.encode(text))
        for name, text in lang.example_contexts.items()
    }
    assert dists["peaked"].max() >= 0.9
    assert dists["flat"].max() <= 0.15 and int((dists["flat"] > 0).sum()) >= 8
    assert entropy(dists["flat"]) > 2.0 > 0.5 > entropy(dists["peaked"])
    assert lang.greedy_trap_prompt == lang.example_contexts["greedy_trap"]
    assert "<s>" not in lang.greedy_trap_prompt


def test_greedy_trap_on_the_language(lang):
    prompt = lang.tokenizer().encode(lang.greedy_trap_prompt)[0].tolist()
    greedy = greedy_sentence(lang, prompt)
    best, best_logp = max(completions(lang, prompt), key=lambda c: c[1])
    beam, beam_logp = reference_beam_search(lang, prompt, num_beams=4)
    assert beam == best
    assert beam_logp == pytest.approx(
        best_logp - lang.sequence_log_prob(prompt)
    )  # beam scores exclude the prompt
    gap = math.exp(best_logp - lang.sequence_log_prob(greedy))
    assert gap >= 1.5, f"beam's sentence only {gap:.2f}x as probable as greedy's"


def test_greedy_trap_with_toygpt_decoders(lang):
    from toygpt import beam_search, generate

    oracle, tok = lang.as_model(), lang.tokenizer()
    ids = tok.encode(lang.greedy_trap_prompt)
    greedy = generate(oracle, ids, lang.max_sentence_length, eos_token_id=lang.eos_id)[
        0
    ].tolist()
    assert greedy == greedy_sentence(lang, ids[0].tolist())
    result = beam_search(
        oracle,
        ids,
        num_beams=4,
        max_new_tokens=lang.max_sentence_length,
        length_penalty=0.0,
        eos_token_id=lang.eos_id,
    )
    beam = result.sequences[0].tolist()
    best, best_logp = max(completions(lang, ids[0].tolist()), key=lambda c: c[1])
    assert lang.sequence_log_prob(beam) == pytest.approx(best_logp, abs=1e-5)
    assert result.scores[0].item() == pytest.approx(
        best_logp - lang.sequence_log_prob(ids), abs=1e-4
    )
    assert lang.sequence_log_prob(beam) - lang.sequence_log_prob(greedy) >= math.log(
        1.5
    )


# ---- the oracle model ----------------------------------------------------------------


def test_oracle_returns_log_true_probabilities(lang):
    oracle = lang.as_model()
    assert oracle.vocab_size == len(lang.vocab)
    assert oracle.context_length >= lang.max_sentence_length
    sentences = lang.sample(8, generator=torch.Generator().manual_seed(4))
    T = min(len(s) for s in sentences)
    ids = torch.tensor([s[:T] for s in sentences])
    out = oracle(ids)
    assert out.shape == (8, T, len(lang.vocab)) and out.dtype == torch.float32
    for b, s in enumerate(sentences):
        for t in range(T - 1 if s[T - 1] == lang.eos_id else T):
            torch.testing.assert_close(
                out[b, t].exp(), lang.next_token_probs(s[: t + 1])
            )


def test_oracle_is_uniform_on_impossible_prefixes(lang):
    oracle, tok = lang.as_model(), lang.tokenizer()
    uniform = torch.full((len(lang.vocab),), -math.log(len(lang.vocab)))
    out = oracle(tok.encode("hello world </s> hello"))[0]
    torch.testing.assert_close(out[:2].exp().sum(-1), torch.ones(2))  # <s>, hello: real
    torch.testing.assert_close(out[3], uniform)  # after </s>
    torch.testing.assert_close(out[4], uniform)
    torch.testing.assert_close(
        oracle(tok.encode("dog", add_bos=False))[0, 0], uniform
    )  # no <s>
    with pytest.raises(ValueError, match="context_length"):
        lang.as_model(context_length=lang.max_sentence_length - 1)


# ---- bad arguments -------------------------------------------------------------------


def test_bad_arguments_raise(lang):
    tok = lang.tokenizer()
    with pytest.raises(ValueError, match="prefix_ids.*start with <s>"):
        lang.next_token_probs(tok.encode("hello world", add_bos=False))
    with pytest.raises(ValueError, match="prefix_ids must not be empty"):
        lang.next_token_probs([])
    with pytest.raises(ValueError, match="prefix_ids.*impossible"):
        lang.next_token_probs(tok.encode("hello dog"))
    with pytest.raises(ValueError, match="prefix_ids.*impossible"):
        lang.next_token_probs(tok.encode("hello world </s> hello"))
    with pytest.raises(ValueError, match="prefix_ids.*finished sentence"):
        lang.next_token_probs(tok.encode("hello world </s>"))
    with pytest.raises(ValueError, match=r"prefix_ids must be ids in \[0, 38\]"):
        lang.next_token_probs([lang.bos_id, 99])
    with pytest.raises(TypeError, match="prefix_ids"):
        lang.next_token_probs(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="prefix_ids"):
        lang.next_token_probs("hello world")
    with pytest.raises(ValueError, match="prefix_ids must be one sequence"):
        lang.next_token_probs(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="ids must start with <s>"):
        lang.sequence_log_prob([lang.vocab.index("hello")])
    with pytest.raises(TypeError, match="n must be an int"):
        lang.sample(2.0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        lang.sample(0)
    with pytest.raises(TypeError, match="generator"):
        lang.sample(1, generator=0)


def test_allowed_next_is_the_support_of_next_token_probs(lang):
    """Every reachable prefix: allowed_next lists exactly the words of positive
    probability; walking only allowed words always ends in a sentence."""
    stack, seen = [[lang.bos_id]], 0
    while stack:
        ids = stack.pop()
        allowed = lang.allowed_next(ids)
        if ids[-1] == lang.eos_id:
            assert allowed == [lang.eos_id]  # a finished sentence: only padding
            assert lang.sequence_log_prob(ids) > float("-inf")
            seen += 1
            continue
        probs = lang.next_token_probs(ids)
        assert allowed == sorted(int(i) for i in torch.nonzero(probs > 0))
        assert lang.allowed_tokens_fn(0, torch.tensor(ids)) == allowed
        stack.extend(ids + [t] for t in allowed)
    assert seen == 3867  # every sentence of the language, once


def test_allowed_next_after_an_impossible_prefix_allows_only_eos(lang):
    tok = lang.tokenizer()
    assert lang.allowed_next(tok.encode("hello hello")) == [lang.eos_id]
    assert lang.allowed_next(tok.encode("hello world </s> the")) == [lang.eos_id]
    with pytest.raises(ValueError, match="<s>"):
        lang.allowed_next([0, 1])
    with pytest.raises(ValueError, match="empty"):
        lang.allowed_next([])
    with pytest.raises(ValueError, match="prefix_ids"):
        lang.allowed_next([lang.bos_id, 99])
    with pytest.raises(TypeError, match="prefix_ids"):
        lang.allowed_next("hello")
