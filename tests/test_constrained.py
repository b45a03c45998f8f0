"""Constrained decoding with the grammar (``allowed_tokens_fn=lang.allowed_tokens_fn``):
every decoder writes only sentences, from any model; the exact layer's constrained law
is per-step renormalisation, computed here independently; exact_mode finds its mode.
(speculative_generate's constrained outputs: tests/test_speculative.py.)"""

import math

import pytest
import torch
from conftest import chi_square_pvalue

from toygpt import (
    GPTModel,
    SentenceTree,
    ToyLanguage,
    beam_search,
    exact_mode,
    generate,
)


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


def untrained(seed=0, vocab_size=39):
    torch.manual_seed(seed)
    return GPTModel(vocab_size, 32, 4, 2, 0.0, 16).eval()


def is_sentence(lang, row, start=0):
    """``row[start:]`` is ``<s> ... </s>`` (then only ``</s>`` padding), a sentence of
    the language."""
    row = list(row)[start:]
    while len(row) > 2 and row[-1] == row[-2] == lang.eos_id:
        row.pop()
    return row[-1] == lang.eos_id and lang.sequence_log_prob(row) > -math.inf


def test_generate_writes_only_sentences_from_an_untrained_model(lang):
    model = untrained(seed=1)
    ids, mask = lang.tokenizer().encode_batch(
        ["<s>", "the", "hello world", "the big dog"]
    )
    ids, mask = ids.repeat(25, 1), mask.repeat(25, 1)  # 100 rows, left-padded
    pads = (mask == 0).sum(dim=1).tolist()
    g = torch.Generator().manual_seed(0)
    for do_sample in (False, True):
        out = generate(
            model, ids, 12, attention_mask=mask, do_sample=do_sample,
            allowed_tokens_fn=lang.allowed_tokens_fn, eos_token_id=lang.eos_id,
            generator=g if do_sample else None,
        )  # fmt: skip
        for row, pad in zip(out.tolist(), pads):
            assert is_sentence(lang, row, pad), row
    # without the constraint the same model writes almost no sentence
    out = generate(model, ids, 12, attention_mask=mask, eos_token_id=lang.eos_id)
    assert not any(is_sentence(lang, r, p) for r, p in zip(out.tolist(), pads))


def test_beam_search_returns_only_sentences_from_an_untrained_model(lang):
    model = untrained(seed=2)
    for text in ("<s>", "the dog", "hello"):
        prompt = lang.tokenizer().encode(text)
        for num_beams, alpha in ((1, 1.0), (3, 0.0), (6, 1.0)):
            out = beam_search(
                model, prompt, num_beams=num_beams, max_new_tokens=12,
                length_penalty=alpha, eos_token_id=lang.eos_id,
                num_return_sequences=num_beams,
                allowed_tokens_fn=lang.allowed_tokens_fn,
            )  # fmt: skip
            for row in out.sequences.tolist():
                assert is_sentence(lang, row), row


def renormalised_law(model, lang, sentences, T):
    """P(sentence) under per-step renormalisation, computed directly: run the model on
    each whole prefix (no cache), keep the words ``lang.allowed_next`` allows,
    renormalise, multiply along the sentence."""
    law = []
    with torch.no_grad():
        for s in sentences:
            logits = model(torch.tensor([s[:-1]]))[0].double()  # (len - 1, V)
            p = 1.0
            for t in range(T, len(s)):
                probs = logits[t - 1].softmax(-1)
                allowed = lang.allowed_next(s[:t])
                p *= float(probs[s[t]] / probs[allowed].sum())
            law.append(p)
    return torch.tensor(law, dtype=torch.float64)


@pytest.mark.parametrize("text", ["<s>", "the dog", "hello world this is"])
def test_exact_constrained_law_is_per_step_renormalisation(lang, text):
    model = untrained(seed=3)
    prompt = lang.tokenizer().encode(text)
    tree = SentenceTree(model, lang, prompt)
    d = tree.distribution(allowed_tokens_fn=lang.allowed_tokens_fn)
    assert d.other == 0.0 and d.grammatical_mass == pytest.approx(1, abs=1e-12)
    if (
        text != "<s>"
    ):  # the whole language (3,867 sentences) is too slow to redo one by one
        want = renormalised_law(model, lang, tree.sentences, prompt.shape[1])
        assert torch.allclose(d.probs, want, rtol=1e-5, atol=1e-12)
    # ... and it is not the model conditioned on the grammar
    plain = tree.distribution()
    conditioned = plain.probs / plain.probs.sum()
    assert float((d.probs - conditioned).abs().max()) > 1e-3


def test_exact_constrained_law_agrees_with_generate(lang):
    model = untrained(seed=4)
    prompt = lang.tokenizer().encode("the dog")
    d = SentenceTree(model, lang, prompt).distribution(
        allowed_tokens_fn=lang.allowed_tokens_fn
    )
    index = {tuple(s): i for i, s in enumerate(d.sentences)}
    counts = torch.zeros(len(d.sentences), dtype=torch.float64)
    out = generate(
        model, prompt.repeat(4000, 1), 12, do_sample=True, eos_token_id=lang.eos_id,
        allowed_tokens_fn=lang.allowed_tokens_fn,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    for row in out.tolist():
        counts[index[tuple(row[: row.index(lang.eos_id, 3) + 1])]] += 1
    expected = d.probs * counts.sum()
    big = expected >= 5  # pool the rare sentences into one cell
    c = torch.cat([counts[big], counts[~big].sum().unsqueeze(0)])
    p = torch.cat([d.probs[big], d.probs[~big].sum().unsqueeze(0)])
    assert chi_square_pvalue(c, p) > 1e-3


def test_exact_mode_with_prefix_rules_is_the_mode_of_their_law(lang):
    """exact_mode takes allowed_tokens_fn and the penalties (they read the prefix) and
    returns the most probable sentence of the tree's law under the same rule."""
    model = untrained(seed=5)
    prompt = lang.tokenizer().encode("the")
    tree = SentenceTree(model, lang, prompt)
    for rule in (
        dict(allowed_tokens_fn=lang.allowed_tokens_fn),
        dict(allowed_tokens_fn=lang.allowed_tokens_fn, repetition_penalty=1.3),
    ):
        d = tree.distribution(**rule)
        best = int(d.probs.argmax())
        seq, lp = exact_mode(
            model, prompt, eos_token_id=lang.eos_id, max_new_tokens=12, **rule
        )
        assert seq[0].tolist() == d.sentences[best]
        assert lp == pytest.approx(math.log(float(d.probs[best])), abs=1e-5)
    # the function is told batch id 0, as generate tells a single prompt
    seen = set()

    def spy(batch_id, ids):
        seen.add(batch_id)
        return lang.allowed_tokens_fn(batch_id, ids)

    exact_mode(model, prompt, eos_token_id=lang.eos_id, max_new_tokens=12,
               allowed_tokens_fn=spy)  # fmt: skip
    assert seen == {0}
    with pytest.raises(TypeError, match="allowed_tokens_fn"):
        exact_mode(model, prompt, eos_token_id=lang.eos_id, max_new_tokens=12,
                   allowed_tokens_fn=[1, 2])  # fmt: skip
