"""beam_search(): the hand-traced example, exhaustive search, transformers parity, the
tree."""

import itertools
import math

import pytest
import torch
from conftest import PrefixModel, TableModel, sharpen, to_hf_gpt2

from toygpt import GPTModel, beam_search, generate

# 0 = BOS, 1 = A, 2 = B, 3 = EOS (the worked example of the decoding reference, section
# 5.10)
BIGRAM = torch.tensor(
    [
        [0.0, 0.5, 0.4, 0.1],
        [0.0, 0.3, 0.3, 0.4],
        [0.0, 0.05, 0.05, 0.9],
        [0.25, 0.25, 0.25, 0.25],
    ]
)


def test_hand_traced_example():
    model = TableModel(BIGRAM)
    prompt = torch.tensor([[0]])
    # greedy: BOS -> A (0.5) -> EOS (0.4)
    assert generate(model, prompt, 4, eos_token_id=3).tolist() == [[0, 1, 3]]
    r = beam_search(
        model,
        prompt,
        num_beams=2,
        max_new_tokens=4,
        eos_token_id=3,
        num_return_sequences=2,
    )
    assert r.sequences.tolist() == [[0, 2, 3], [0, 1, 3]]
    assert r.scores.tolist() == pytest.approx(
        [math.log(0.4 * 0.9) / 2, math.log(0.5 * 0.4) / 2], abs=1e-5
    )
    # step 1: EOS ranks third, outside the first num_beams, so it cannot finish
    first = r.steps[0].candidates
    assert [(c.token, c.status) for c in first[:3]] == [
        (1, "kept"),
        (2, "kept"),
        (3, "pruned"),
    ]
    # step 2: both EOS candidates rank first and finish; A-A and A-B run on
    second = r.steps[1].candidates
    assert [(c.parent, c.token, c.status) for c in second] == [
        (1, 3, "finished"),
        (0, 3, "finished"),
        (0, 1, "kept"),
        (0, 2, "kept"),
    ]
    r0 = beam_search(
        model,
        prompt,
        num_beams=2,
        max_new_tokens=4,
        eos_token_id=3,
        length_penalty=0.0,
        num_return_sequences=2,
    )
    assert r0.scores.tolist() == pytest.approx(
        [math.log(0.36), math.log(0.2)], abs=1e-5
    )


def test_hand_traced_never_and_length_penalty_two():
    model = TableModel(BIGRAM)
    prompt = torch.tensor([[0]])
    r = beam_search(
        model,
        prompt,
        num_beams=2,
        max_new_tokens=4,
        eos_token_id=3,
        early_stopping="never",
        num_return_sequences=2,
    )
    assert r.sequences.tolist() == [[0, 2, 3, 3], [0, 1, 2, 3]]
    assert r.scores[1].item() == pytest.approx(math.log(0.5 * 0.3 * 0.9) / 3, abs=1e-5)
    r2 = beam_search(
        model,
        prompt,
        num_beams=2,
        max_new_tokens=4,
        eos_token_id=3,
        early_stopping="never",
        length_penalty=2.0,
        num_return_sequences=2,
    )
    assert r2.sequences.tolist() == [[0, 1, 1, 2, 3], [0, 1, 2, 3, 3]]


def all_hypotheses(model, prompt, max_new, eos, lp):
    """Every sentence beam search could return, scored exactly by brute force."""
    hyps = []
    for n in range(1, max_new + 1):
        for tail in itertools.product(range(model.vocab_size), repeat=n):
            if eos in tail[:-1] or (n < max_new and tail[-1] != eos):
                continue
            seq = (prompt, *tail)
            s = sum(math.log(model.probs(seq[:t])[seq[t]]) for t in range(1, len(seq)))
            hyps.append((s / n**lp, tail))
    return sorted(hyps, key=lambda h: -h[0])


@pytest.mark.parametrize("lp", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_exhaustive_search_when_nothing_is_pruned(lp, seed):
    model = PrefixModel(4, seed=seed)
    hyps = all_hypotheses(model, 0, 3, eos=3, lp=lp)
    n = len(hyps)  # 1 + 3 + 36 = 40
    r = beam_search(
        model,
        torch.tensor([[0]]),
        num_beams=n,
        max_new_tokens=3,
        eos_token_id=3,
        length_penalty=lp,
        num_return_sequences=n,
    )
    assert r.scores.tolist() == pytest.approx([h[0] for h in hyps], abs=1e-5)
    for row, (_, tail) in zip(r.sequences.tolist(), hyps):
        assert row[1 : 1 + len(tail)] == list(tail)
        assert all(t == 3 for t in row[1 + len(tail) :])  # EOS padding


@pytest.mark.parametrize("num_beams", [1, 2, 3, 5])
def test_best_hypothesis_is_found_on_small_vocabulary(num_beams):
    """With lp=0 the returned score is the true log-probability of the returned
    sentence, and enough beams find the global optimum found by brute force."""
    model = PrefixModel(5, seed=3)
    exact = all_hypotheses(model, 0, 4, eos=4, lp=0.0)
    r = beam_search(
        model,
        torch.tensor([[0]]),
        num_beams=num_beams,
        max_new_tokens=4,
        eos_token_id=4,
        length_penalty=0.0,
    )
    assert r.scores[0] <= exact[0][0] + 1e-6
    tail = r.sequences[0, 1:].tolist()
    got = tuple(tail[: tail.index(4) + 1] if 4 in tail else tail)
    assert r.scores[0].item() == pytest.approx(
        dict((t, s) for s, t in exact)[got], abs=1e-5
    )
    big = beam_search(
        model,
        torch.tensor([[0]]),
        num_beams=64,
        max_new_tokens=4,
        eos_token_id=4,
        length_penalty=0.0,
    )
    assert big.scores[0].item() == pytest.approx(exact[0][0], abs=1e-5)


def test_one_beam_with_no_length_penalty_is_greedy():
    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 16), eos=5, eos_bias=2.0)
    for seed in range(5):
        ids = torch.randint(
            0, 20, (1, 3), generator=torch.Generator().manual_seed(seed)
        )
        r = beam_search(
            model,
            ids,
            num_beams=1,
            max_new_tokens=10,
            eos_token_id=5,
            length_penalty=0.0,
        )
        g = generate(model, ids, 10, eos_token_id=5)
        assert r.sequences.tolist() == g.tolist()


def test_cache_and_context_cropping():
    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 8), eos=5, eos_bias=1.0)
    ids = torch.randint(0, 20, (1, 4), generator=torch.Generator().manual_seed(0))
    a = beam_search(
        model,
        ids,
        num_beams=3,
        max_new_tokens=12,
        eos_token_id=5,
        num_return_sequences=3,
    )
    b = beam_search(
        model,
        ids,
        num_beams=3,
        max_new_tokens=12,
        eos_token_id=5,
        num_return_sequences=3,
        use_cache=False,
    )
    assert torch.equal(a.sequences, b.sequences)
    assert torch.allclose(a.scores, b.scores, atol=1e-5)


def test_search_tree_is_consistent():
    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 16), eos=5, eos_bias=2.0)
    ids = torch.tensor([[1, 2]])
    r = beam_search(model, ids, num_beams=3, max_new_tokens=8, eos_token_id=5)
    assert len(r.steps[0].beams) == 1  # one live beam at the start
    for step, nxt in zip(r.steps, r.steps[1:]):
        kept = [c for c in step.candidates if c.status == "kept"]
        assert len(kept) <= 3 and len(step.candidates) <= 6
        assert nxt.beams == [step.beams[c.parent] + [c.token] for c in kept]
        assert nxt.beam_scores == pytest.approx([c.score for c in kept])
        scores = [c.score for c in step.candidates]
        assert scores == sorted(scores, reverse=True)


GRID = list(itertools.product([2, 3, 4], [0.0, 1.0, 2.0], [False, True]))


@pytest.mark.parametrize("eos_bias", [0.0, 3.0])
def test_matches_transformers_beam_search(eos_bias):
    pytest.importorskip("transformers")
    from transformers import GenerationConfig

    eos = 3
    model = sharpen(
        GPTModel(16, 32, 4, 2, 0.0, 32), eos=eos, eos_bias=eos_bias, seed=int(eos_bias)
    )
    hf = to_hf_gpt2(model)
    ends_early = 0
    for (num_beams, lp, early), seed in itertools.product(GRID, [0, 1]):
        ids = torch.randint(
            0, 16, (1, 4), generator=torch.Generator().manual_seed(seed)
        )
        ours = beam_search(
            model,
            ids,
            num_beams=num_beams,
            max_new_tokens=10,
            length_penalty=lp,
            eos_token_id=eos,
            early_stopping=early,
            num_return_sequences=num_beams,
        )
        cfg = GenerationConfig(
            do_sample=False,
            num_beams=num_beams,
            max_new_tokens=10,
            length_penalty=lp,
            early_stopping=early,
            eos_token_id=eos,
            pad_token_id=eos,
            num_return_sequences=num_beams,
            output_scores=True,
            return_dict_in_generate=True,
        )
        theirs = hf.generate(ids, generation_config=cfg)
        assert torch.equal(ours.sequences, theirs.sequences), (
            num_beams,
            lp,
            early,
            seed,
        )
        assert torch.allclose(ours.scores, theirs.sequences_scores, atol=1e-4), (
            num_beams,
            lp,
            early,
            seed,
        )
        ends_early += int((ours.sequences[:, 4:-1] == eos).any())
    if eos_bias:
        assert (
            ends_early > 10
        )  # the comparison covered hypotheses that end before the limit


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(num_beams=0), ValueError, "num_beams"),
        (dict(num_beams=2.0), TypeError, "num_beams"),
        (dict(num_return_sequences=3), ValueError, "num_return_sequences"),
        (dict(num_return_sequences=0), ValueError, "num_return_sequences"),
        (dict(max_new_tokens=-2), ValueError, "max_new_tokens"),
        (dict(length_penalty=float("nan")), ValueError, "length_penalty"),
        (dict(early_stopping="always"), ValueError, "early_stopping"),
        (dict(eos_token_id=-1), ValueError, "eos_token_id"),
        (dict(pad_token_id=4), ValueError, "pad_token_id"),
        (dict(use_cache=1), TypeError, "use_cache"),
        (dict(input_ids=torch.tensor([[0.0]])), TypeError, "input_ids"),
        (dict(input_ids=torch.tensor([[1, 99]])), ValueError, "input_ids"),
    ],
)
def test_bad_arguments(kwargs, error, words):
    model = TableModel(BIGRAM)
    args = dict(input_ids=torch.tensor([[0]]), num_beams=2, max_new_tokens=3) | kwargs
    with pytest.raises(error, match=words):
        beam_search(model, args.pop("input_ids"), **args)
