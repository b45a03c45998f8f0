"""beam_search on a batch, and its contract at the edges (issues 9 and 11).

Batched rows equal each prompt's search alone, match transformers' layout and scores,
there are always exactly num_return_sequences rows per prompt, any finite length
penalty ranks correctly, num_beams=1 is greedy, and the outputs are ordinary tensors.
"""

import itertools
import math

import pytest
import torch
from conftest import TableModel, sharpen, to_hf_gpt2
from hypothesis import given, settings
from hypothesis import strategies as st

from toygpt import GPTModel, beam_search, generate

EOS = 3


def tiny_gpt(vocab=16, eos_bias=2.0, seed=0):
    torch.manual_seed(seed)
    model = GPTModel(vocab, 32, 4, 2, 0.0, 32)
    return sharpen(model, eos=EOS, eos_bias=eos_bias, seed=seed)


def prompts(B, T=4, vocab=16, seed=0):
    return torch.randint(
        0, vocab, (B, T), generator=torch.Generator().manual_seed(seed)
    )


def alone(model, ids, b, **kw):
    return beam_search(model, ids[b : b + 1], **kw)


@pytest.mark.parametrize("B", [2, 3, 4])
@pytest.mark.parametrize("early_stopping", [False, True, "never"])
def test_batched_rows_equal_each_prompt_alone(B, early_stopping):
    model = tiny_gpt(eos_bias=6.0, seed=2)
    ids = prompts(B, seed=B)
    kw = dict(
        num_beams=3,
        max_new_tokens=8,
        eos_token_id=EOS,
        early_stopping=early_stopping,
        num_return_sequences=2,
    )
    batch = beam_search(model, ids, **kw)
    assert batch.sequences.shape[0] == B * 2 and batch.scores.shape == (B * 2,)
    assert (batch.generated_lengths < 8).any()  # rows of different lengths
    for b in range(B):
        one = alone(model, ids, b, **kw)
        mine = batch.for_prompt(b)
        assert torch.equal(mine.sequences, one.sequences), b
        assert torch.allclose(mine.scores, one.scores, atol=1e-5), b
        assert torch.equal(mine.generated_lengths, one.generated_lengths)
        assert len(batch.trees[b]) == len(one.steps)  # same number of steps
        rows = batch.sequences[2 * b : 2 * b + 2]
        assert (rows[:, one.sequences.shape[1] :] == EOS).all()  # padded with EOS


def left_padded(lengths, vocab=16, seed=0, pad=EOS):
    """Prompts of the given lengths, left-padded, with their attention mask."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.full((len(lengths), T), pad)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    alone = []
    for b, n in enumerate(lengths):
        alone.append(torch.randint(0, vocab, (1, n), generator=g))
        ids[b, T - n :], mask[b, T - n :] = alone[-1][0], 1
    return ids, mask, alone


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("context", [32, 8])
def test_left_padded_rows_equal_each_prompt_alone(use_cache, context):
    torch.manual_seed(6)
    model = sharpen(GPTModel(16, 32, 4, 2, 0.0, context), eos=EOS, eos_bias=2.0)
    lengths = [2, 6, 4, 1]
    ids, mask, singles = left_padded(lengths, seed=6)
    kw = dict(
        num_beams=3,
        max_new_tokens=10,  # past the context of 8: the window slides
        eos_token_id=EOS,
        num_return_sequences=3,
        use_cache=use_cache,
    )
    batch = beam_search(model, ids, attention_mask=mask, **kw)
    assert batch.sequences.shape[0] == 12
    assert torch.equal(batch.sequences[:, :6], ids.repeat_interleave(3, 0))
    for b, one_ids in enumerate(singles):
        one = beam_search(model, one_ids, **kw)
        mine = batch.for_prompt(b)
        assert torch.equal(mine.sequences[:, 6 - lengths[b] :], one.sequences), b
        assert torch.allclose(mine.scores, one.scores, atol=1e-5), b


def test_left_padded_batch_matches_transformers():
    from transformers import GenerationConfig

    model = tiny_gpt(eos_bias=3.0, seed=1)
    hf = to_hf_gpt2(model)
    ids, mask, _ = left_padded([2, 5, 3], seed=7)
    for num_beams, lp in [(3, 1.0), (2, 0.0)]:
        ours = beam_search(
            model,
            ids,
            attention_mask=mask,
            num_beams=num_beams,
            max_new_tokens=8,
            length_penalty=lp,
            eos_token_id=EOS,
            num_return_sequences=2,
        )
        cfg = GenerationConfig(
            do_sample=False,
            num_beams=num_beams,
            max_new_tokens=8,
            length_penalty=lp,
            eos_token_id=EOS,
            pad_token_id=EOS,
            num_return_sequences=2,
            output_scores=True,
            return_dict_in_generate=True,
        )
        theirs = hf.generate(ids, attention_mask=mask, generation_config=cfg)
        assert torch.equal(ours.sequences, theirs.sequences)
        assert torch.allclose(ours.scores, theirs.sequences_scores, atol=1e-4)


@pytest.mark.parametrize(
    "mask, words",
    [
        (torch.tensor([[1, 1, 0]]), "left-padded"),
        (torch.tensor([[0, 0, 0]]), "no real token"),
        (torch.tensor([[1, 1]]), "attention_mask"),
        (torch.tensor([[0.0, 1.0, 1.0]]), "attention_mask"),
    ],
)
def test_bad_attention_mask(mask, words):
    with pytest.raises((ValueError, TypeError), match=words):
        beam_search(
            tiny_gpt(),
            torch.tensor([[1, 2, 3]]),
            attention_mask=mask,
            num_beams=2,
            max_new_tokens=2,
        )


def test_steps_needs_one_prompt():
    model = tiny_gpt()
    r = beam_search(model, prompts(2), num_beams=2, max_new_tokens=3)
    with pytest.raises(ValueError, match="trees"):
        r.steps  # noqa: B018 (the property raises)
    assert r.for_prompt(1).steps is r.trees[1]


HF_GRID = [
    (2, 1.0, False),
    (3, 0.0, True),
    (3, 2.0, "never"),
    (4, 1.0, "never"),
    (2, -1.0, False),
]


@pytest.mark.parametrize("num_beams, lp, early", HF_GRID)
def test_batch_matches_transformers(num_beams, lp, early):
    from transformers import GenerationConfig

    model = tiny_gpt(eos_bias=6.0, seed=2)
    hf = to_hf_gpt2(model)
    ids = prompts(3, seed=num_beams)
    n = num_beams
    ours = beam_search(
        model,
        ids,
        num_beams=num_beams,
        max_new_tokens=8,
        length_penalty=lp,
        eos_token_id=EOS,
        early_stopping=early,
        num_return_sequences=n,
    )
    cfg = GenerationConfig(
        do_sample=False,
        num_beams=num_beams,
        max_new_tokens=8,
        length_penalty=lp,
        early_stopping=early,
        eos_token_id=EOS,
        pad_token_id=EOS,
        num_return_sequences=n,
        output_scores=True,
        return_dict_in_generate=True,
    )
    theirs = hf.generate(ids, generation_config=cfg)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert torch.allclose(ours.scores, theirs.sequences_scores, atol=1e-4)
    assert (ours.generated_lengths < 8).any()  # some hypotheses ended with EOS


def test_more_beams_than_the_vocabulary():
    # V = 4 (EOS = 3): one new token allows only 4 sentences; 6 rows are asked for
    table = torch.tensor([[0.1, 0.4, 0.3, 0.2]] * 4)
    model = TableModel(table)
    r = beam_search(
        model,
        torch.tensor([[0], [1]]),
        num_beams=6,
        max_new_tokens=1,
        eos_token_id=EOS,
        num_return_sequences=6,
    )
    assert r.sequences.shape == (12, 2)
    for b in range(2):
        rows = slice(6 * b, 6 * b + 6)
        assert r.sequences[rows, 1].tolist()[:4] == [1, 2, 3, 0]  # by probability
        assert r.scores[rows][:4].tolist() == pytest.approx(
            [math.log(p) for p in (0.4, 0.3, 0.2, 0.1)], abs=1e-6
        )
        assert r.scores[rows][4:].tolist() == [-math.inf, -math.inf]  # no hypothesis
        assert r.generated_lengths[rows].tolist() == [1, 1, 1, 1, 0, 0]
        assert r.sequences[rows][4:, 1].tolist() == [EOS, EOS]  # prompt, then padding
    # two new tokens allow enough sentences: all rows are real, as in transformers
    r2 = beam_search(
        model,
        torch.tensor([[0]]),
        num_beams=6,
        max_new_tokens=2,
        eos_token_id=EOS,
        num_return_sequences=6,
    )
    assert torch.isfinite(r2.scores).all() and len(r2.scores) == 6


def test_more_beams_than_the_vocabulary_matches_transformers():
    from transformers import GenerationConfig

    model = tiny_gpt(vocab=4, eos_bias=1.0, seed=2)
    hf = to_hf_gpt2(model)
    ids = prompts(2, vocab=4, seed=2)
    for early in (False, "never"):
        ours = beam_search(
            model,
            ids,
            num_beams=6,
            max_new_tokens=4,
            eos_token_id=EOS,
            early_stopping=early,
            num_return_sequences=6,
        )
        cfg = GenerationConfig(
            do_sample=False,
            num_beams=6,
            max_new_tokens=4,
            early_stopping=early,
            eos_token_id=EOS,
            pad_token_id=EOS,
            num_return_sequences=6,
            output_scores=True,
            return_dict_in_generate=True,
        )
        theirs = hf.generate(ids, generation_config=cfg)
        assert torch.equal(ours.sequences, theirs.sequences)
        assert torch.allclose(ours.scores, theirs.sequences_scores, atol=1e-4)


def test_eos_with_probability_one():
    # after token 0 only EOS is possible: one sentence exists, three rows are asked for
    table = torch.tensor(
        [[0.0, 0.0, 0.0, 1.0], [0.2, 0.3, 0.3, 0.2], [0.1, 0.5, 0.2, 0.2], [0.25] * 4]
    )
    model = TableModel(table)
    r = beam_search(
        model,
        torch.tensor([[0], [1]]),
        num_beams=3,
        max_new_tokens=4,
        eos_token_id=EOS,
        num_return_sequences=3,
    )
    assert r.sequences.shape[0] == 6
    assert r.sequences[0].tolist()[:2] == [0, EOS] and r.scores[0].item() == 0.0
    assert r.scores[1:3].tolist() == [-math.inf, -math.inf]
    assert r.generated_lengths[:3].tolist() == [1, 0, 0]
    assert torch.isfinite(r.scores[3:]).all()  # the other prompt has real rows
    one = beam_search(
        model,
        torch.tensor([[1]]),
        num_beams=3,
        max_new_tokens=4,
        eos_token_id=EOS,
        num_return_sequences=3,
    )
    assert torch.equal(r.for_prompt(1).sequences, one.sequences)


def test_eos_almost_certain_on_a_real_model_matches_transformers():
    from transformers import GenerationConfig

    model = tiny_gpt(eos_bias=40.0, seed=3)  # EOS has probability 1 in float32
    hf = to_hf_gpt2(model)
    ids = prompts(2, seed=3)
    ours = beam_search(
        model,
        ids,
        num_beams=3,
        max_new_tokens=5,
        eos_token_id=EOS,
        num_return_sequences=3,
    )
    assert ours.sequences.shape[0] == 6 and torch.isfinite(ours.scores).all()
    cfg = GenerationConfig(
        do_sample=False,
        num_beams=3,
        max_new_tokens=5,
        eos_token_id=EOS,
        pad_token_id=EOS,
        num_return_sequences=3,
        output_scores=True,
        return_dict_in_generate=True,
    )
    theirs = hf.generate(ids, generation_config=cfg)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert torch.allclose(ours.scores, theirs.sequences_scores, rtol=1e-4)


def test_every_beam_finished_early():
    model = tiny_gpt(eos_bias=4.0, seed=4)
    ids = prompts(4, seed=4)
    r = beam_search(
        model,
        ids,
        num_beams=2,
        max_new_tokens=30,
        eos_token_id=EOS,
        early_stopping=True,
        num_return_sequences=2,
    )
    assert r.sequences.shape[0] == 8 and torch.isfinite(r.scores).all()
    assert r.generated_lengths.max() < 30  # every prompt stopped before the limit
    for b in range(4):
        one = alone(
            model,
            ids,
            b,
            num_beams=2,
            max_new_tokens=30,
            eos_token_id=EOS,
            early_stopping=True,
            num_return_sequences=2,
        )
        assert torch.equal(r.for_prompt(b).sequences, one.sequences)


@pytest.mark.parametrize("lp", [1e6, -1e6, 1e300, -1e300, 709.0, -745.0])
def test_extreme_length_penalties_rank_correctly(lp):
    table = torch.tensor([[0.1, 0.4, 0.3, 0.2]] * 4)
    model = TableModel(table)
    r = beam_search(
        model,
        torch.tensor([[0]]),
        num_beams=8,
        max_new_tokens=3,
        eos_token_id=EOS,
        length_penalty=lp,
        early_stopping="never",
        num_return_sequences=8,
    )
    L = r.generated_lengths.tolist()
    # |lp| this large: the length decides (longer first if lp > 0), then the sum
    key = [(m if lp > 0 else -m, s) for m, s in zip(L, r.sum_logprobs.tolist())]
    assert key == sorted(key, reverse=True)
    assert not torch.isnan(r.scores).any()
    assert r.scores.tolist() == sorted(r.scores.tolist(), reverse=True)


def test_num_beams_one_is_greedy_on_a_batch():
    model = tiny_gpt(vocab=20, eos_bias=2.0, seed=5)
    ids = prompts(4, vocab=20, seed=5)
    g = generate(model, ids, 10, eos_token_id=EOS)
    for lp, early in itertools.product([0.0, 1.0, 3.0], [False, True, "never"]):
        r = beam_search(
            model,
            ids,
            num_beams=1,
            max_new_tokens=10,
            eos_token_id=EOS,
            length_penalty=lp,
            early_stopping=early,
        )
        assert torch.equal(r.sequences, g), (lp, early)
    # the score: the sum of the chosen tokens' log-probs / length ** length_penalty
    logp = model(g).log_softmax(-1)[:, 3:-1].gather(2, g[:, 4:, None])[..., 0]
    for b in range(4):
        n = int(r.generated_lengths[b])
        assert r.sum_logprobs[b].item() == pytest.approx(
            logp[b, :n].sum().item(), abs=1e-4
        )
        assert r.scores[b].item() == pytest.approx(
            r.sum_logprobs[b].item() / n**3.0, rel=1e-5
        )


def test_outputs_are_ordinary_tensors():
    model = tiny_gpt()
    r = beam_search(model, prompts(2), num_beams=2, max_new_tokens=4)
    for t in (r.sequences, r.scores, r.sum_logprobs, r.generated_lengths):
        assert not t.is_inference()
    r.sequences[0, -1] = 0  # editable in place
    r.scores.add_(1.0)
    loss = model(r.sequences).logsumexp(-1).mean()  # usable for training
    loss.backward()
    assert model.token_embedding.weight.grad is not None
    zero = beam_search(model, prompts(2), num_beams=2, max_new_tokens=0)
    assert not zero.sequences.is_inference() and zero.sequences.shape == (2, 4)


def recomputed(table, row, P, n):
    """The exact sum of log-probabilities of a row's n generated tokens."""
    return sum(math.log(table[row[t - 1], row[t]]) for t in range(P, P + n))


@settings(max_examples=40, deadline=None)
@given(
    V=st.integers(2, 5),
    seed=st.integers(0, 10_000),
    B=st.integers(1, 3),
    num_beams=st.integers(1, 4),
    data=st.data(),
)
def test_properties_of_beam_search(V, seed, B, num_beams, data):
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(V, V, generator=g, dtype=torch.float64) + 0.05
    table /= table.sum(1, keepdim=True)
    model = TableModel(table)
    n = data.draw(st.integers(1, num_beams))
    max_new = data.draw(st.integers(1, 4))
    lp = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0]))
    early = data.draw(st.sampled_from([False, True, "never"]))
    eos = data.draw(st.sampled_from([None, V - 1]))
    ids = torch.randint(0, V, (B, 2), generator=g)
    r = beam_search(
        model,
        ids,
        num_beams=num_beams,
        max_new_tokens=max_new,
        length_penalty=lp,
        eos_token_id=eos,
        early_stopping=early,
        num_return_sequences=n,
    )
    assert r.sequences.shape[0] == B * n and r.scores.shape == (B * n,)
    t = table.float().double()  # the model's own (float32) probabilities
    for b in range(B):
        scores = r.scores[b * n : (b + 1) * n].tolist()
        assert scores == sorted(scores, reverse=True)
        for i in range(b * n, (b + 1) * n):
            L = int(r.generated_lengths[i])
            if L == 0:  # no hypothesis exists for this row
                assert r.scores[i] == -math.inf
                continue
            row = r.sequences[i].tolist()
            total = recomputed(t, row, 2, L)
            assert r.sum_logprobs[i].item() == pytest.approx(total, abs=1e-4)
            assert r.scores[i].item() == pytest.approx(total / L**lp, abs=1e-4)
            if eos is not None and L < max_new:
                assert row[1 + L] == eos  # ended early only with EOS
    if num_beams == 1:
        assert torch.equal(r.sequences, generate(model, ids, max_new, eos_token_id=eos))
