"""evaluate_decoding: judging generated sentences with the toy language's exact probabilities."""

import math

import pytest
import torch

from toygpt import ToyLanguage, evaluate_decoding


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


def test_sampling_the_truth_is_always_valid(lang):
    oracle = lang.as_model()
    prompt = lang.tokenizer().encode("the")
    report = evaluate_decoding(oracle, lang, prompt, n=100, seed=0, do_sample=True)
    assert report.valid == 1.0
    assert report.distinct > 0.3
    # each reported sentence starts with the prompt and ends at its first </s>
    for s in report.sentences:
        assert (
            s[:2] == prompt[0].tolist()
            and s[-1] == lang.eos_id
            and s.count(lang.eos_id) == 1
        )
    per_token = [
        (lang.sequence_log_prob(s) - lang.sequence_log_prob(s[:2])) / (len(s) - 2)
        for s in report.sentences
    ]
    assert report.log_prob == pytest.approx(sum(per_token) / len(per_token))


def test_greedy_has_one_sentence_and_is_seed_independent(lang):
    oracle = lang.as_model()
    prompt = lang.tokenizer().encode("the dog")
    a = evaluate_decoding(oracle, lang, prompt, n=20, seed=0)
    b = evaluate_decoding(oracle, lang, prompt, n=20, seed=1)
    assert a.distinct == 1 / 20 and a.sentences == b.sentences


def test_a_random_model_writes_invalid_sentences(lang):
    from toygpt import GPTModel

    torch.manual_seed(0)
    model = GPTModel(len(lang.vocab), 32, 4, 1, 0.0, 16)
    report = evaluate_decoding(
        model, lang, lang.tokenizer().encode("the"), n=50, seed=0, do_sample=True
    )
    assert report.valid < 0.2
    assert math.isfinite(report.log_prob) or report.valid == 0


def test_seeded(lang):
    oracle = lang.as_model()
    prompt = lang.tokenizer().encode("hello")
    a = evaluate_decoding(
        oracle, lang, prompt, n=30, seed=3, do_sample=True, temperature=1.5
    )
    b = evaluate_decoding(
        oracle, lang, prompt, n=30, seed=3, do_sample=True, temperature=1.5
    )
    assert a == b


@pytest.mark.parametrize(
    "kwargs, words",
    [(dict(n=0), "n must"), (dict(prompt_ids=torch.tensor([1, 2])), "prompt_ids")],
)
def test_bad_arguments(lang, kwargs, words):
    args = dict(prompt_ids=lang.tokenizer().encode("the"), n=5) | kwargs
    with pytest.raises(ValueError, match=words):
        evaluate_decoding(lang.as_model(), lang, args.pop("prompt_ids"), **args)


@pytest.mark.parametrize("rule", [dict(temperature=1.5), dict(top_k=5)], ids=str)
def test_estimates_agree_with_the_exact_layer(lang, rule):
    from toygpt import load_pretrained, sentence_distribution

    model = load_pretrained()[0]
    prompt = lang.tokenizer().encode("the")
    report = evaluate_decoding(
        model, lang, prompt, n=2000, seed=0, do_sample=True, **rule
    )
    exact = sentence_distribution(model, lang, prompt, **rule)
    assert report.valid_se < 0.02 and 0 < report.log_prob_se < 0.05
    # 3 / n: the rule of three, for when every sample (or none) was valid
    assert abs(report.valid - exact.grammatical_mass) < 4 * report.valid_se + 3 / 2000
    assert abs(report.log_prob - exact.quality) < 4 * report.log_prob_se
