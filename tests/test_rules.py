"""The newer rules (typical, epsilon, eta, penalties, allowed tokens), the order as
data, engine presets: hand-worked examples, transformers parity, statistics, bad
input."""

import pytest
import torch
from conftest import chi_square_pvalue

from toygpt import (
    PROCESSOR_RULES,
    RULE_ORDER,
    SAMPLER_PRESETS,
    SAMPLING_RULES,
    active_rules,
    check_rule_options,
    epsilon_filter,
    eta_filter,
    next_token_distribution,
    process_logits,
    sample_next,
    typical_filter,
)
from toygpt.penalties import (
    frequency_presence_scores,
    no_repeat_ngram_scores,
    repetition_penalty_scores,
)

tr = pytest.importorskip("transformers")

P = torch.tensor([0.5, 0.3, 0.15, 0.05])
LOGITS = P.log()


def kept(logits):
    return (logits > float("-inf")).nonzero().flatten().tolist()


# ---------------------------------------------------------------- hand-worked examples


@pytest.mark.parametrize(
    "mass, expected",
    [(0.1, [1]), (0.3, [1]), (0.5, [0, 1]), (0.8, [0, 1]), (0.9, [0, 1, 2])]
    + [(0.99, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3])],
)
def test_typical_hand_worked(mass, expected):
    # H = 1.142 nats; |-log p - H| = [0.449, 0.062, 0.755, 1.854]: token 1 first.
    assert kept(typical_filter(LOGITS, mass)) == expected


@pytest.mark.parametrize(
    "eps, expected",
    [(0.0, [0, 1, 2, 3]), (0.04, [0, 1, 2, 3]), (0.1, [0, 1, 2]), (0.2, [0, 1])]
    + [(0.4, [0]), (0.9, [0])],
)
def test_epsilon_hand_worked(eps, expected):
    assert kept(epsilon_filter(LOGITS, eps)) == expected


def test_eta_hand_worked():
    h = float(-(P * P.log()).sum())  # 1.1421
    for eta in (0.04, 0.1, 0.3, 0.9):  # 0.05 would sit on the boundary
        cut = min(eta, eta**0.5 * torch.exp(torch.tensor(-h)).item())
        expected = [i for i, p in enumerate(P.tolist()) if p >= cut or i == 0]
        assert kept(eta_filter(LOGITS, eta)) == expected
    # eta=0.1: the cut is min(0.1, 0.316 * 0.319) = 0.1009 (just above 0.1)
    assert kept(eta_filter(LOGITS, 0.1)) == [0, 1, 2]
    assert kept(eta_filter(LOGITS, 0.0)) == [0, 1, 2, 3]


def test_eta_adapts_to_entropy():
    # A flat distribution keeps a token of probability 0.02, a peaked one does not.
    flat = torch.full((50,), 0.02).log()
    peaked = torch.tensor([0.9] + [0.1 / 49] * 49).log()
    assert len(kept(eta_filter(flat, 0.05))) == 50
    assert kept(eta_filter(peaked, 0.05)) == [0]


def test_penalties_hand_worked():
    scores = torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0]])
    ids = torch.tensor([[0, 1, 1, 4]])
    out = repetition_penalty_scores(scores, ids, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, -3.0, 0.0]]  # each seen token once
    # OpenAI: logit[j] -= count[j] * frequency + (count[j] > 0) * presence
    out = frequency_presence_scores(scores, ids, 0.5, 0.25)
    assert out.tolist() == [[2.0 - 0.75, -1.0 - 1.25, 0.5, -3.0, -0.75]]


@pytest.mark.parametrize(
    "n, row, banned",
    [(2, [1, 2, 3, 1], [2]), (2, [1, 2, 1, 3, 1], [2, 3]), (2, [1, 1], [1])]
    + [(3, [1, 2, 3, 1, 2], [3]), (1, [1, 3], [1, 3]), (3, [1, 2], [])],
)
def test_no_repeat_ngram_hand_worked(n, row, banned):
    out = no_repeat_ngram_scores(torch.zeros(1, 5), torch.tensor([row]), n)
    assert (out[0] == float("-inf")).nonzero().flatten().tolist() == banned


def test_frequency_presence_count_what_the_docstring_says():
    logits = torch.zeros(1, 4)
    ids = torch.tensor([[3, 3, 1, 3]])  # prompt [3, 3], generated [1, 3]
    full = process_logits(logits, ids, frequency_penalty=1.0, presence_penalty=0.5)
    assert full.tolist() == [[0.0, -1.5, 0.0, -3.5]]
    gen = process_logits(
        logits, ids, frequency_penalty=1.0, presence_penalty=0.5, prompt_length=2
    )
    assert gen.tolist() == [[0.0, -1.5, 0.0, -1.5]]


def test_attention_mask_hides_left_padding_from_prefix_rules():
    pad = 0
    alone = torch.tensor([[2, 3, 2]])
    padded = torch.tensor([[pad, pad, 2, 3, 2]])
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    logits = torch.randn(1, 5, generator=torch.Generator().manual_seed(0))
    seen = []
    rule = dict(
        repetition_penalty=1.7,
        frequency_penalty=0.3,
        presence_penalty=0.2,
        no_repeat_ngram_size=2,
        allowed_tokens_fn=lambda b, ids: seen.append(ids.tolist()) or [0, 1, 3, 4],
    )
    a = process_logits(logits, alone, **rule)
    b = process_logits(logits, padded, attention_mask=mask, **rule)
    assert torch.equal(a, b)
    assert seen == [[2, 3, 2], [2, 3, 2]]  # the function never sees padding
    # ...and without the mask the padding counts (the test can fail)
    assert not torch.equal(a, process_logits(logits, padded, **rule))


# ---------------------------------------------------------------- transformers parity


def _random(seed, rows=64, vocab=50, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * scale


def test_new_filters_match_transformers_warpers():
    logits = _random(0)
    ids = torch.zeros(64, 1, dtype=torch.long)
    for mass in (0.05, 0.2, 0.5, 0.9, 0.99):
        theirs = tr.TypicalLogitsWarper(mass)(ids, logits)
        assert torch.equal(typical_filter(logits, mass), theirs)
    for eps in (1e-4, 3e-3, 0.02, 0.1, 0.5):
        theirs = tr.EpsilonLogitsWarper(eps)(ids, logits)
        assert torch.equal(epsilon_filter(logits, eps), theirs)
    for eta in (1e-4, 3e-3, 0.02, 0.1, 0.5):
        theirs = tr.EtaLogitsWarper(eta)(ids, logits)
        assert torch.equal(eta_filter(logits, eta), theirs)
    # the test can fail: the filters do remove something here
    assert not torch.equal(typical_filter(logits, 0.5), logits)


def test_new_filters_match_transformers_on_filtered_input():
    # Rows with -inf already (after an earlier filter), as in a chain.
    logits = tr.TopKLogitsWarper(20)(None, _random(1))
    ids = torch.zeros(64, 1, dtype=torch.long)
    assert torch.equal(
        typical_filter(logits, 0.7), tr.TypicalLogitsWarper(0.7)(ids, logits)
    )
    assert torch.equal(
        epsilon_filter(logits, 0.01), tr.EpsilonLogitsWarper(0.01)(ids, logits)
    )
    assert torch.equal(eta_filter(logits, 0.01), tr.EtaLogitsWarper(0.01)(ids, logits))


def _random_ids(seed, rows, length, vocab):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (rows, length), generator=g)


def test_penalties_match_transformers_processors():
    logits = _random(2, rows=16, vocab=12)
    ids = _random_ids(3, 16, 20, 12)
    for penalty in (0.5, 1.3, 2.0):
        theirs = tr.RepetitionPenaltyLogitsProcessor(penalty)(ids, logits)
        ours = process_logits(logits, ids, repetition_penalty=penalty)
        assert torch.equal(ours, theirs)
    for n, length in ((1, 6), (2, 20), (3, 20), (4, 20), (25, 20)):
        theirs = tr.NoRepeatNGramLogitsProcessor(n)(ids[:, :length], logits)
        ours = process_logits(logits, ids[:, :length], no_repeat_ngram_size=n)
        assert torch.equal(ours, theirs)
    # where transformers leaves a row with every token banned (then NaN), we refuse
    with pytest.raises(ValueError, match="no_repeat_ngram_size=1.*every entry is -inf"):
        process_logits(logits, ids, no_repeat_ngram_size=1)
    assert (process_logits(logits, ids, no_repeat_ngram_size=2) == float("-inf")).any()


def test_allowed_tokens_match_prefix_constrained_with_beams():
    logits = _random(4, rows=6, vocab=10)
    ids = _random_ids(5, 6, 7, 10)

    def fn(batch_id, sent):
        return [(int(sent[-1]) + batch_id) % 10, (int(sent.sum()) * 3) % 10, 9]

    for num_beams in (1, 2, 3):
        theirs = tr.PrefixConstrainedLogitsProcessor(fn, num_beams)(ids, logits)
        rows = torch.arange(6) // num_beams
        ours = process_logits(logits, ids, allowed_tokens_fn=fn, batch_ids=rows)
        assert torch.equal(ours, theirs)


def _chain(ids_fn):
    return tr.LogitsProcessorList(
        [
            tr.RepetitionPenaltyLogitsProcessor(1.4),
            tr.NoRepeatNGramLogitsProcessor(2),
            tr.PrefixConstrainedLogitsProcessor(ids_fn, 1),
            tr.TemperatureLogitsWarper(0.8),
            tr.TopKLogitsWarper(25),
            tr.TopPLogitsWarper(0.95),
            tr.MinPLogitsWarper(0.02),
            tr.TypicalLogitsWarper(0.97),
            tr.EpsilonLogitsWarper(1e-3),
            tr.EtaLogitsWarper(1e-3),
        ]
    )


ALL_RULES = dict(
    repetition_penalty=1.4,
    no_repeat_ngram_size=2,
    temperature=0.8,
    top_k=25,
    top_p=0.95,
    min_p=0.02,
    typical_p=0.97,
    epsilon_cutoff=1e-3,
    eta_cutoff=1e-3,
)


def test_process_logits_matches_transformers_whole_chain_and_draws():
    logits = _random(6, rows=32, vocab=40, scale=2.0)
    ids = _random_ids(7, 32, 30, 40)

    def fn(batch_id, sent):
        return list(range(int(sent[-1]) % 5, 40, 2))

    theirs = _chain(fn)(ids, logits)
    ours = process_logits(logits, ids, allowed_tokens_fn=fn, **ALL_RULES)
    assert torch.equal(ours == float("-inf"), theirs == float("-inf"))
    assert torch.allclose(ours.softmax(-1), theirs.softmax(-1), atol=1e-6)
    torch.manual_seed(11)
    ref = torch.multinomial(theirs.softmax(-1), 1).squeeze(1)
    torch.manual_seed(11)
    draws = sample_next(logits, input_ids=ids, allowed_tokens_fn=fn, **ALL_RULES)
    assert torch.equal(draws, ref)
    # order matters: the same rules with temperature last give other kept sets
    late = process_logits(
        logits,
        ids,
        allowed_tokens_fn=fn,
        sampler_order=RULE_ORDER[:5] + RULE_ORDER[6:] + ("temperature",),
        **ALL_RULES,
    )
    assert not torch.equal(late == float("-inf"), theirs == float("-inf"))


# ---------------------------------------------------------------- order and presets


def test_rule_names_partition_the_order():
    assert set(SAMPLING_RULES) | set(PROCESSOR_RULES) == set(RULE_ORDER)
    assert not set(SAMPLING_RULES) & set(PROCESSOR_RULES)
    assert RULE_ORDER == PROCESSOR_RULES + SAMPLING_RULES
    assert SAMPLER_PRESETS["transformers"] == RULE_ORDER
    for name, order in SAMPLER_PRESETS.items():
        assert set(order) <= set(RULE_ORDER), name
    ll = SAMPLER_PRESETS["llama.cpp"]
    assert ll[-1] == "temperature"
    assert ll.index("top_k") < ll.index("typical_p") < ll.index("top_p")
    assert ll.index("top_p") < ll.index("min_p")
    vl = SAMPLER_PRESETS["vllm"]
    assert vl.index("temperature") < vl.index("min_p") < vl.index("top_k")


def test_active_rules():
    assert active_rules() == ()
    assert active_rules(temperature=1, top_p=None, repetition_penalty=1.0) == ()
    assert active_rules(top_p=0.9, temperature=0, eta_cutoff=0.0) == (
        "temperature",
        "top_p",
    )


def test_llama_cpp_and_transformers_disagree_on_temperature_then_top_p():
    # p = [0.5, 0.3, 0.15, 0.05], T = 2, top_p = 0.7. transformers flattens first
    # (T=2 gives [0.38, 0.29, 0.21, 0.12]) and keeps three tokens; llama.cpp cuts the
    # untempered distribution (0.5 + 0.3 >= 0.7: two tokens) and then flattens them.
    hf = next_token_distribution(LOGITS, temperature=2.0, top_p=0.7)
    ll = next_token_distribution(
        LOGITS, temperature=2.0, top_p=0.7, sampler_order="llama.cpp"
    )
    assert kept(hf.log()) == [0, 1, 2]
    assert kept(ll.log()) == [0, 1]
    w = P[:2].sqrt()
    assert torch.allclose(ll[:2], w / w.sum())


def test_preset_refuses_a_rule_its_engine_lacks():
    with pytest.raises(ValueError, match="typical_p"):
        process_logits(LOGITS, typical_p=0.9, sampler_order="vllm")
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        check_rule_options(no_repeat_ngram_size=2, sampler_order="llama.cpp")


def test_custom_order_is_data():
    # top-k after min-p, or before: the same here, since both keep the top tokens
    a = process_logits(LOGITS, top_k=2, min_p=0.2, sampler_order=("min_p", "top_k"))
    b = process_logits(LOGITS, top_k=2, min_p=0.2)
    assert torch.equal(a, b)
    # a custom order without a rule that is on is an error, not a silent skip
    with pytest.raises(ValueError, match="top_k"):
        process_logits(LOGITS, top_k=2, sampler_order=("min_p",))


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    "kwargs",
    [dict(typical_p=0.6), dict(epsilon_cutoff=0.1), dict(eta_cutoff=0.2)]
    + [dict(temperature=1.3, typical_p=0.8, epsilon_cutoff=0.05)],
)
def test_new_rules_sampling_frequencies(kwargs):
    logits = torch.tensor([2.0, 1.5, 1.0, 0.2, -0.5, -1.0])
    scores = logits
    if "temperature" in kwargs:
        scores = scores / kwargs["temperature"]
    if "typical_p" in kwargs:
        scores = typical_filter(scores, kwargs["typical_p"])
    if "epsilon_cutoff" in kwargs:
        scores = epsilon_filter(scores, kwargs["epsilon_cutoff"])
    if "eta_cutoff" in kwargs:
        scores = eta_filter(scores, kwargs["eta_cutoff"])
    probs = scores.softmax(-1)
    assert (probs == 0).any()  # the rule does remove tokens here
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(20000, -1), generator=g, **kwargs)
    counts = torch.bincount(draws, minlength=6)
    assert chi_square_pvalue(counts, probs) > 0.001
    with pytest.raises(AssertionError):
        assert chi_square_pvalue(counts, logits.softmax(-1)) > 0.001


def test_repetition_penalty_sampling_frequencies():
    logits = torch.tensor([1.0, 0.5, -0.5, 0.0])
    ids = torch.tensor([[0, 2]])
    probs = torch.tensor([0.5, 0.5, -1.0, 0.0]).softmax(-1)  # 1/2 and -0.5*2
    g = torch.Generator().manual_seed(1)
    draws = sample_next(
        logits.expand(20000, -1),
        input_ids=ids.expand(20000, -1),
        repetition_penalty=2.0,
        generator=g,
    )
    counts = torch.bincount(draws, minlength=4)
    assert chi_square_pvalue(counts, probs) > 0.001
    assert chi_square_pvalue(counts, logits.softmax(-1)) < 1e-6


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(typical_p=0), ValueError, r"typical_p must be in \(0, 1\]"),
        (dict(typical_p=1.5), ValueError, "typical_p"),
        (dict(typical_p="0.9"), TypeError, "typical_p"),
        (dict(epsilon_cutoff=1.0), ValueError, r"epsilon_cutoff must be in \[0, 1\)"),
        (dict(epsilon_cutoff=-0.1), ValueError, "epsilon_cutoff"),
        (dict(eta_cutoff=1.0), ValueError, r"eta_cutoff must be in \[0, 1\)"),
        (dict(eta_cutoff=float("nan")), ValueError, "eta_cutoff"),
        (dict(repetition_penalty=0), ValueError, "repetition_penalty"),
        (dict(repetition_penalty=-1.0), ValueError, "repetition_penalty"),
        (dict(repetition_penalty=float("inf")), ValueError, "repetition_penalty"),
        (dict(repetition_penalty=True), TypeError, "repetition_penalty"),
        (dict(no_repeat_ngram_size=0), ValueError, "no_repeat_ngram_size"),
        (dict(no_repeat_ngram_size=2.0), TypeError, "no_repeat_ngram_size"),
        (dict(frequency_penalty=2.5), ValueError, r"frequency_penalty .*\[-2, 2\]"),
        (dict(presence_penalty=-3), ValueError, r"presence_penalty .*\[-2, 2\]"),
        (dict(allowed_tokens_fn=[1, 2]), TypeError, "allowed_tokens_fn"),
        (dict(sampler_order="ollama"), ValueError, "sampler_order"),
        (dict(sampler_order=("top_k", "top_q")), ValueError, "top_q"),
        (dict(sampler_order=("top_k", "top_k")), ValueError, "twice"),
        (dict(sampler_order=3), TypeError, "sampler_order"),
        (dict(prompt_length=-1), ValueError, "prompt_length"),
        (dict(top_q=0.5), TypeError, "top_q"),
    ],
)
def test_check_rule_options_names_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        check_rule_options(**kwargs)
    with pytest.raises(error, match=words):
        process_logits(torch.zeros(2, 3), torch.zeros(2, 1, dtype=torch.long), **kwargs)


IDS = torch.tensor([[0, 1]])


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(input_ids=None, repetition_penalty=1.2), ValueError, "input_ids"),
        (dict(input_ids=IDS.float(), repetition_penalty=1.2), TypeError, "input_ids"),
        (dict(input_ids=IDS.bool(), repetition_penalty=1.2), TypeError, "input_ids"),
        (dict(input_ids=IDS + 5, repetition_penalty=1.2), ValueError, "outside"),
        (dict(input_ids=IDS - 1, repetition_penalty=1.2), ValueError, "outside"),
        (
            dict(input_ids=IDS.expand(3, -1), no_repeat_ngram_size=1),
            ValueError,
            "shape",
        ),
        (dict(allowed_tokens_fn=lambda b, i: []), ValueError, "returned no token"),
        (dict(allowed_tokens_fn=lambda b, i: None), ValueError, "returned None"),
        (dict(allowed_tokens_fn=lambda b, i: [7]), ValueError, r"id 7, outside"),
        (dict(allowed_tokens_fn=lambda b, i: [-1]), ValueError, "outside"),
        (dict(allowed_tokens_fn=lambda b, i: [1.0]), TypeError, "ints"),
        (dict(allowed_tokens_fn=lambda b, i: 3), TypeError, "list of token ids"),
        (
            dict(allowed_tokens_fn=lambda b, i: [1], batch_ids=[0, 1]),
            ValueError,
            "batch",
        ),
        (
            dict(allowed_tokens_fn=lambda b, i: [1], attention_mask=torch.ones(2, 2)),
            ValueError,
            "attention_mask",
        ),
        (
            dict(no_repeat_ngram_size=1, allowed_tokens_fn=lambda b, i: [0, 1]),
            ValueError,
            "no token is left|-inf",
        ),
    ],
)
def test_bad_prefix_arguments_name_themselves(kwargs, error, words):
    kwargs = {"input_ids": IDS, **kwargs}
    with pytest.raises(error, match=words):
        process_logits(torch.zeros(1, 3), **kwargs)


def test_prompt_length_per_row_with_left_padding():
    # Two prefixes of different lengths left-padded into one batch, each counting only
    # its generated tokens: the same scores as each alone.
    logits = torch.zeros(2, 4)
    rule = dict(frequency_penalty=1.0, presence_penalty=0.5)
    alone = [
        process_logits(logits[:1], torch.tensor([[3, 1, 1]]), prompt_length=1, **rule),
        process_logits(logits[:1], torch.tensor([[3, 2]]), prompt_length=1, **rule),
    ]
    padded = torch.tensor([[3, 1, 1], [0, 3, 2]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    together = process_logits(
        logits, padded, attention_mask=mask, prompt_length=torch.tensor([1, 2]), **rule
    )
    assert torch.equal(together, torch.cat(alone))
    assert together.tolist() == [[0.0, -2.5, 0.0, 0.0], [0.0, 0.0, -1.5, 0.0]]
    with pytest.raises(ValueError, match="prompt_length has 3 entries"):
        process_logits(logits, padded, prompt_length=torch.tensor([1, 2, 3]), **rule)
    with pytest.raises(TypeError, match="prompt_length"):
        check_rule_options(prompt_length=torch.tensor([1.0]))
