"""The exact layer: brute force on a tiny grammar, the oracle, generate's samples,
exact_mode against exhaustive search, bad input."""

import itertools
import math
from unittest import mock

import pytest
import torch
from conftest import chi_square_pvalue

import toygpt.language as language_module
from toygpt import (
    GPTModel,
    SentenceTree,
    ToyLanguage,
    exact_mode,
    generate,
    load_pretrained,
    next_token_distribution,
    sentence_distribution,
)

TINY_VOCAB = ["a", "b", "c", "<s>", "</s>"]
TINY_TRANSITIONS = {
    "START": [("a", 0.5, "X"), ("b", 0.3, "Y"), ("c", 0.2, "DONE")],
    "X": [("</s>", 0.6, "END"), ("b", 0.4, "DONE")],
    "Y": [("a", 0.7, "DONE"), ("c", 0.3, "X")],
    "DONE": [("</s>", 1.0, "END")],
}
RULES = [
    {},
    dict(temperature=0.7),
    dict(temperature=0),
    dict(top_k=2),
    dict(top_p=0.8),
    dict(min_p=0.3),
    dict(temperature=1.5, top_k=3, top_p=0.9),
]


def tiny_language():
    """A real ToyLanguage built on a 5-word grammar (the module's tables patched while
    it is constructed): sentences a, a b, b a, b c, b c b, c, at most 5 tokens."""
    with (
        mock.patch.object(language_module, "VOCAB", TINY_VOCAB),
        mock.patch.object(language_module, "TRANSITIONS", TINY_TRANSITIONS),
    ):
        return ToyLanguage()


def tiny_model(seed=0, context_length=8):
    torch.manual_seed(seed)
    model = GPTModel(len(TINY_VOCAB), 16, 2, 2, 0.0, context_length).double().eval()
    with torch.no_grad():  # larger logits than the init, so the rules cut something
        model.output_layer.weight.mul_(30)
    return model


def brute_force(model, lang, prompt, max_new_tokens, **rule):
    """P(output) for every output of generate (first EOS ends it), by enumerating every
    token string and multiplying one forward per prefix, cropped as generate does."""
    C, eos = model.context_length, lang.eos_id
    law = {}

    def step(ids):
        x = torch.tensor([ids])
        logits = model(x[:, -C:])[0, -1].double()
        return next_token_distribution(logits, input_ids=x[0], **rule).tolist()

    def walk(ids, p):
        if (
            ids[-1] == eos
            and len(ids) > len(prompt)
            or len(ids) - len(prompt) == (max_new_tokens)
        ):
            law[tuple(ids)] = law.get(tuple(ids), 0.0) + p
            return
        for token, q in enumerate(step(ids)):
            if q > 0:
                walk(ids + [token], p * q)

    with torch.no_grad():
        walk(list(prompt), 1.0)
    assert sum(law.values()) == pytest.approx(1, abs=1e-12)
    return law


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()[0]


# ---- brute force on a tiny grammar ---------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize("context_length", [8, 2])
def test_tiny_grammar_matches_brute_force(rule, context_length):
    tiny = tiny_language()
    model = tiny_model(context_length=context_length)  # 2 < 5: prefixes are cropped
    prompt = [tiny.bos_id]
    tree = SentenceTree(model, tiny, torch.tensor([prompt]))
    assert tree.num_inner == 8 and tree.max_new_tokens == 4
    d = tree.distribution(**rule)
    full = brute_force(model, tiny, prompt, tree.max_new_tokens, **rule)
    law = dict(full)
    for s, p, t in zip(d.sentences, d.probs.tolist(), d.truth.tolist()):
        assert p == pytest.approx(law.pop(tuple(s), 0.0), rel=1e-9, abs=1e-15)
        assert t == pytest.approx(math.exp(tiny.sequence_log_prob(s)), rel=1e-12)
    # what is left of the brute-force law is exactly the ungrammatical output
    assert d.other == pytest.approx(sum(law.values()), rel=1e-9, abs=1e-15)
    assert d.other == pytest.approx(1 - float(d.probs.sum()), abs=1e-12)
    assert d.total_variation == pytest.approx(
        0.5 * (sum(abs(p - t) for p, t in zip(d.probs.tolist(), d.truth.tolist())))
        + 0.5 * sum(law.values()),
        abs=1e-12,
    )
    # the whole output's entropy sits inside the bounds
    entropy = -sum(p * math.log(p) for p in full.values() if p > 0)
    low, high = d.entropy_bounds()
    assert low - 1e-9 <= entropy <= high + 1e-9
    if d.other == 0:
        assert low == pytest.approx(high) == pytest.approx(entropy)


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_all_nodes_at_once_equals_depth_by_depth(lang, shipped, rule):
    # a rule that reads no prefix runs on every node at once; a no-op allowed_tokens_fn
    # reads the prefix, so the same rule then runs depth by depth, each depth with its
    # prefixes: the two laws must agree to the last bit
    tree = SentenceTree(shipped, lang, lang.tokenizer().encode("the dog"))
    every = list(range(len(lang.vocab)))
    at_once = tree.distribution(**rule)
    by_depth = tree.distribution(**rule, allowed_tokens_fn=lambda b, ids: every)
    assert torch.equal(at_once.probs, by_depth.probs)
    assert torch.equal(at_once.escape, by_depth.escape)


def test_tiny_grammar_from_a_longer_prompt():
    tiny = tiny_language()
    model = tiny_model(seed=1)
    prompt = [tiny.bos_id, tiny.word_to_id["b"], tiny.word_to_id["c"]]
    d = sentence_distribution(model, tiny, torch.tensor([prompt]), temperature=3.0)
    assert [s[:3] for s in d.sentences] == [prompt] * 2
    law = brute_force(model, tiny, prompt, 2, temperature=3.0)
    for s, p in zip(d.sentences, d.probs.tolist()):
        assert p == pytest.approx(law.get(tuple(s), 0.0), rel=1e-9, abs=1e-15)
    assert max(d.probs.tolist()) > 0
    assert float(d.truth.sum()) == pytest.approx(1)


# ---- the oracle: the identity rule gives the truth back ------------------------------


@pytest.mark.parametrize("prompt", ["", "hello world this is", "the dog", "GPT is a"])
def test_oracle_gives_the_truth(lang, prompt):
    ids = lang.tokenizer().encode(prompt) if prompt else torch.tensor([[lang.bos_id]])
    d = SentenceTree(lang.as_model(), lang, ids).distribution()
    start = lang.sequence_log_prob(ids)
    expected = [math.exp(lang.sequence_log_prob(s) - start) for s in d.sentences]
    assert d.truth.tolist() == pytest.approx(expected, rel=1e-12)
    assert float(d.truth.sum()) == pytest.approx(1, abs=1e-12)
    # the oracle's logits are float32 log-probabilities: equal up to float32 rounding
    torch.testing.assert_close(d.probs, d.truth, rtol=1e-6, atol=0)
    assert d.other == 0 and d.grammatical_mass == pytest.approx(1, abs=1e-12)
    assert d.kl_truth_rule == pytest.approx(0, abs=1e-9)
    assert d.total_variation == pytest.approx(0, abs=1e-6)
    assert d.coverage == pytest.approx(1)
    low, high = d.entropy_bounds()
    assert low == high == d.entropy_grammatical
    if prompt == "":
        assert len(d.sentences) == 3867
        assert len({tuple(s) for s in d.sentences}) == 3867
        assert d.quality == pytest.approx(
            float((d.truth * d.truth.log() / d.new_tokens).sum())
        )


def test_greedy_is_one_hot_and_the_truth_on_the_greedy_trap(lang):
    ids = lang.tokenizer().encode(lang.greedy_trap_prompt)
    d = sentence_distribution(lang.as_model(), lang, ids, temperature=0)
    assert sorted(d.probs.tolist())[-2:] == [0.0, 1.0]
    text, prob, truth = d.top(1)[0]
    assert text == "<s> the dog is happy </s>" and prob == 1.0
    assert truth == pytest.approx(0.40 * 0.16 * 0.85)
    assert d.coverage == pytest.approx(truth) and d.kl_truth_rule == math.inf
    assert d.entropy_grammatical == 0 and d.quality == pytest.approx(
        math.log(truth) / 3
    )
    # top-k 1 is greedy too; top-k 2 reaches the sentences whose every word is one of
    # the two most probable there (ties with the second kept)
    one = sentence_distribution(lang.as_model(), lang, ids, top_k=1)
    assert torch.equal(one.probs, d.probs)
    two = sentence_distribution(lang.as_model(), lang, ids, top_k=2)

    def kept(s):
        steps = [lang.next_token_probs(s[:t]) for t in range(3, len(s))]
        return all(p[w] >= p.sort().values[-2] for p, w in zip(steps, s[3:]))

    reach = sum(t for s, t in zip(two.sentences, two.truth.tolist()) if kept(s))
    assert two.coverage == pytest.approx(reach) and 0 < reach < 1


def test_top_lists_the_most_probable_sentences(lang, shipped):
    d = sentence_distribution(shipped, lang, lang.tokenizer().encode("hello"))
    top = d.top(3)
    assert [p for _, p, _ in top] == sorted(d.probs.tolist(), reverse=True)[:3]
    assert top[0][0].startswith("<s> hello") and top[0][0].endswith("</s>")


# ---- agreement with generate's samples -----------------------------------------------


def sampled_counts(model, lang, d, prompt, rule, n, seed, batch=5000):
    index = {tuple(s): i for i, s in enumerate(d.sentences)}
    counts = torch.zeros(len(d.sentences) + 1, dtype=torch.float64)  # last: other
    g = torch.Generator().manual_seed(seed)
    T = prompt.shape[1]
    for _ in range(n // batch):
        out = generate(
            model,
            prompt.repeat(batch, 1),
            12,
            do_sample=True,
            eos_token_id=lang.eos_id,
            generator=g,
            **rule,
        ).tolist()
        for row in out:
            end = row.index(lang.eos_id, T) + 1 if lang.eos_id in row[T:] else None
            counts[index.get(tuple(row[:end]), len(d.sentences))] += 1
    return counts


def pooled_pvalue(counts, probs, other):
    """Chi-square with every cell of expected count < 5 pooled (with `other`)."""
    expected = torch.cat([probs, torch.tensor([other])]) * counts.sum()
    big = expected >= 5
    big[-1] = False
    c = torch.cat([counts[big], counts[~big].sum().unsqueeze(0)])
    p = torch.cat([expected[big], expected[~big].sum().unsqueeze(0)]) / counts.sum()
    if p[-1] == 0:
        c, p = c[:-1], p[:-1]
    return chi_square_pvalue(c, p)


SAMPLED_RULES = [
    {},
    dict(temperature=0.7),
    dict(top_k=3),
    dict(top_p=0.8),
    dict(min_p=0.2, temperature=1.3),
]


@pytest.mark.parametrize("rule", SAMPLED_RULES, ids=str)
def test_exact_law_agrees_with_generate(lang, shipped, rule):
    prompt = lang.tokenizer().encode("hello world this is")
    tree = SentenceTree(shipped, lang, prompt)
    d = tree.distribution(**rule)
    counts = sampled_counts(shipped, lang, d, prompt, rule, 20_000, seed=1)
    assert pooled_pvalue(counts, d.probs, d.other) > 1e-3
    # and the test can fail: another rule's law is rejected
    wrong = tree.distribution(**(dict(temperature=0.7) if not rule else {}))
    assert pooled_pvalue(counts, wrong.probs, wrong.other) < 1e-6


# ---- exact_mode ----------------------------------------------------------------------


def exhaustive_mode(model, prompt, eos, max_new_tokens, **rule):
    best = (-math.inf, None)
    V = model.vocab_size
    for n in range(1, max_new_tokens + 1):
        for tail in itertools.product(range(V), repeat=n - 1):
            if eos in tail:
                continue
            ids = list(prompt) + list(tail) + [eos]
            x, C = torch.tensor([ids]), model.context_length
            lp = 0.0
            for t in range(len(prompt) - 1, len(ids) - 1):
                with torch.no_grad():  # one forward per prefix, cropped like generate
                    logits = model(x[:, max(0, t + 1 - C) : t + 1])[0, -1].double()
                dist = next_token_distribution(logits, input_ids=x[0, : t + 1], **rule)
                lp += math.log(dist[ids[t + 1]]) if dist[ids[t + 1]] > 0 else -math.inf
            if lp > best[0]:
                best = (lp, ids)
    return best


@pytest.mark.parametrize("rule", [{}, dict(temperature=0.5), dict(top_k=2)], ids=str)
@pytest.mark.parametrize("seed", [0, 3])
def test_exact_mode_matches_exhaustive_search(rule, seed):
    model = tiny_model(seed, context_length=3)
    prompt = [3, 0]
    lp, ids = exhaustive_mode(model, prompt, 4, 4, **rule)
    for batch_size in (1, 64):
        got, got_lp, n = exact_mode(
            model,
            torch.tensor([prompt]),
            eos_token_id=4,
            max_new_tokens=4,
            batch_size=batch_size,
            return_expansions=True,
            **rule,
        )
        assert got[0].tolist() == ids and got_lp == pytest.approx(lp, rel=1e-9)
        assert n <= 1 + 4 + 16 + 64


def test_exact_mode_of_the_oracle_is_the_languages_mode(lang):
    for prompt in ["", "the dog", "hello world this is"]:
        ids = lang.tokenizer().encode(prompt) if prompt else torch.tensor([[37]])
        d = sentence_distribution(lang.as_model(), lang, ids)
        best = int(d.truth.argmax())
        got, lp = exact_mode(
            lang.as_model(), ids, eos_token_id=lang.eos_id, max_new_tokens=15
        )
        assert got[0].tolist() == d.sentences[best]
        assert lp == pytest.approx(math.log(float(d.truth[best])), rel=1e-6)


def test_exact_mode_of_trained_and_untrained_models(lang, shipped):
    ids = lang.tokenizer().encode("the dog")
    got, lp = exact_mode(shipped, ids, eos_token_id=lang.eos_id, max_new_tokens=12)
    d = sentence_distribution(shipped, lang, ids)
    # no grammatical sentence is more probable under the model than its mode
    # (up to float32 rounding: the two computations batch the forward differently)
    assert lp >= math.log(float(d.probs.max())) - 1e-6
    assert got[0, -1] == lang.eos_id and got[0, :3].tolist() == ids[0].tolist()
    torch.manual_seed(0)
    untrained = GPTModel(len(lang.vocab), 32, 2, 2, 0.0, 16).eval()
    got, lp, n = exact_mode(
        untrained,
        ids,
        eos_token_id=lang.eos_id,
        max_new_tokens=12,
        return_expansions=True,
    )
    with torch.no_grad():
        logp = untrained(ids)[0, -1].double().log_softmax(-1)
    if got.shape[1] == 4:  # the mode ends at once: it beats every longer sequence
        assert lp == pytest.approx(float(logp[lang.eos_id]))
    assert lp >= float(logp[lang.eos_id]) - 1e-9


def test_exact_mode_refuses_to_guess(lang, shipped):
    ids = lang.tokenizer().encode("the")
    with pytest.raises(RuntimeError, match="max_expansions"):
        exact_mode(
            shipped, ids, eos_token_id=lang.eos_id, max_new_tokens=12, max_expansions=1
        )


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(eos_token_id=39), ValueError, "eos_token_id"),
        (dict(eos_token_id=True), TypeError, "eos_token_id"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
        (dict(max_expansions=0), ValueError, "max_expansions"),
        (dict(top_k=0), ValueError, "top_k"),
        (dict(temperature=-1.0), ValueError, "temperature"),
    ],
)
def test_exact_mode_bad_arguments(lang, kwargs, error, words):
    args = dict(eos_token_id=lang.eos_id, max_new_tokens=5) | kwargs
    with pytest.raises(error, match=words):
        exact_mode(lang.as_model(), lang.tokenizer().encode("the"), **args)


# ---- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt, error, words",
    [
        (torch.tensor([[38, 0]]), ValueError, "must start with <s>"),
        (torch.tensor([[37, 0, 10]]), ValueError, "prefix of a sentence"),
        (torch.tensor([[37, 0, 1, 38]]), ValueError, "finished sentence"),
        (torch.tensor([[37], [37]]), ValueError, r"shape \(1, T\)"),
        (torch.tensor([37]), ValueError, "batch, seq_len"),
        (torch.tensor([[37.0]]), TypeError, "integer"),
        (torch.tensor([[37, 99]]), ValueError, "vocabulary"),
        ([37, 0], TypeError, "prompt_ids"),
    ],
)
def test_bad_prompts(lang, prompt, error, words):
    with pytest.raises(error, match=words):
        SentenceTree(lang.as_model(), lang, prompt)


@pytest.mark.parametrize(
    "rule, error, words",
    [
        (dict(top_k=0), ValueError, "top_k"),
        (dict(top_p=1.5), ValueError, "top_p"),
        (dict(min_p=-0.1), ValueError, "min_p"),
        (dict(temperature=float("nan")), ValueError, "temperature"),
        (dict(top_kk=3), TypeError, "top_kk"),
    ],
)
def test_bad_rules(lang, rule, error, words):
    tree = SentenceTree(lang.as_model(), lang, lang.tokenizer().encode("hello"))
    with pytest.raises(error, match=words):
        tree.distribution(**rule)


def test_bad_models(lang):
    with pytest.raises(TypeError, match="model must be"):
        SentenceTree(object(), lang, lang.tokenizer().encode("hello"))
    other = GPTModel(10, 16, 2, 1, 0.0, 16)
    with pytest.raises(ValueError, match="vocab_size"):
        SentenceTree(other, lang, torch.tensor([[0]]))
