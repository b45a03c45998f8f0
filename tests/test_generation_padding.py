"""generate() on left-padded batches, and at the edges: every row continues as its
prompt alone (greedy exactly, sampling in law), past the context and with EOS; id
dtypes, ordinary output tensors, bool flags, NaN model output, rules passed to
process_logits."""

import pytest
import torch
from conftest import TableModel, chi_square_pvalue, sharpen, to_hf_gpt2
from hypothesis import given, settings
from hypothesis import strategies as st

import toygpt.generation as generation
from toygpt import GPTModel, generate, next_token_distribution


def left_pad(prompts, pad=0):
    T = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (T - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.fixture
def sharp_model():
    return sharpen(GPTModel(20, 32, 4, 2, 0.1, 8))  # context 8: the window slides


PROMPTS = [[3], [1, 2, 3, 4, 5, 6, 7], [9, 9, 4], [11, 0, 2, 5, 5, 18, 7, 1], [6, 2]]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("n_new", [1, 4, 20])
def test_greedy_rows_equal_prompts_alone(sharp_model, use_cache, n_new):
    ids, mask = left_pad(PROMPTS, pad=13)
    out = generate(sharp_model, ids, n_new, attention_mask=mask, use_cache=use_cache)
    assert out.shape == (len(PROMPTS), ids.shape[1] + n_new)
    assert torch.equal(out[:, : ids.shape[1]], ids)
    for b, p in enumerate(PROMPTS):
        alone = generate(sharp_model, torch.tensor([p]), n_new)
        assert torch.equal(out[b, -len(p) - n_new :], alone[0])


def test_without_the_mask_padded_rows_go_wrong(sharp_model):
    """The test above can fail: padding the same batch without its mask changes rows."""
    ids, mask = left_pad(PROMPTS, pad=13)
    unmasked = generate(sharp_model, ids, 6)
    alone = [generate(sharp_model, torch.tensor([p]), 6)[0, -6:] for p in PROMPTS]
    assert any(not torch.equal(unmasked[b, -6:], alone[b]) for b in range(len(PROMPTS)))


def test_all_ones_mask_is_no_mask(sharp_model):
    ids = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(
        generate(sharp_model, ids, 12, attention_mask=torch.ones_like(ids)),
        generate(sharp_model, ids, 12),
    )


def test_padded_rows_stop_at_their_own_eos():
    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 8), eos=0, eos_bias=4.0, seed=3)
    prompts = [[5, 6], [1, 2, 3, 4, 5], [7], [9, 8, 7, 6]]
    ids, mask = left_pad(prompts, pad=0)
    out = generate(model, ids, 15, attention_mask=mask, eos_token_id=0)
    lengths = []
    for b, p in enumerate(prompts):
        alone = generate(model, torch.tensor([p]), 15, eos_token_id=0)[0, len(p) :]
        row = out[b, ids.shape[1] :]
        assert torch.equal(row[: len(alone)], alone)
        assert (row[len(alone) :] == 0).all()  # finished rows repeat EOS
        lengths.append(len(alone))
    assert len(set(lengths)) > 1  # rows really finished at different steps


def test_padded_greedy_matches_transformers():
    pytest.importorskip("transformers")
    from transformers import GenerationConfig

    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 32))
    hf = to_hf_gpt2(model)
    ids, mask = left_pad([[3, 4], [1, 2, 3, 4, 5, 6], [7, 7, 7]], pad=0)
    ours = generate(model, ids, 12, attention_mask=mask)
    cfg = GenerationConfig(max_new_tokens=12, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=mask, generation_config=cfg)
    assert torch.equal(ours, theirs)


RULES = [
    dict(),
    dict(temperature=0.7, top_k=5),
    dict(top_p=0.8),
    dict(min_p=0.2, temperature=1.3),
]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("use_cache", [True, False])
def test_sampling_law_of_every_row_is_its_prompts_alone(monkeypatch, rule, use_cache):
    """At every step, the distribution a padded row is drawn from equals the one its
    prompt alone gives after the same tokens (teacher forcing), past the context too."""
    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 8), weight_scale=2.0)
    drawn_from = []
    real_sample_next = generation.sample_next

    def recording(scores, **kwargs):
        drawn_from.append(scores.softmax(-1))
        return real_sample_next(scores, **kwargs)

    monkeypatch.setattr(generation, "sample_next", recording)
    ids, mask = left_pad(PROMPTS, pad=13)
    g = torch.Generator().manual_seed(0)
    out = generate(
        model,
        ids,
        10,
        attention_mask=mask,
        do_sample=True,
        generator=g,
        use_cache=use_cache,
        **rule,
    )
    assert len(drawn_from) == 10
    P = ids.shape[1]
    with torch.no_grad():
        for b, p in enumerate(PROMPTS):
            row = out[b, P - len(p) :]
            for s in range(10):
                prefix = row[: len(p) + s][-model.context_length :]
                logits = model(prefix[None])[0, -1]
                want = next_token_distribution(logits, **rule)
                assert torch.allclose(drawn_from[s][b], want, atol=1e-5)


def test_sampling_chi_square_padded_row_against_exact_law():
    """Seeded draws from a short prompt padded beside a long one: the first two tokens
    follow the prompt's exact two-step law (alone)."""
    model = sharpen(GPTModel(5, 16, 2, 1, 0.0, 8), weight_scale=1.5)
    short, long_ = [2], [1, 3, 4, 0, 2]
    n = 3000
    ids, mask = left_pad([short] * n + [long_] * 8, pad=4)
    out = generate(
        model,
        ids,
        2,
        attention_mask=mask,
        do_sample=True,
        top_k=4,
        generator=torch.Generator().manual_seed(1),
    )
    pairs = out[:n, -2] * 5 + out[:n, -1]
    counts = torch.bincount(pairs, minlength=25)
    with torch.no_grad():
        first = next_token_distribution(model(torch.tensor([short]))[0, -1], top_k=4)
        both = torch.stack([torch.tensor(short + [t]) for t in range(5)])
        second = next_token_distribution(model(both)[:, -1], top_k=4)
    exact = (first[:, None] * second).flatten()
    assert chi_square_pvalue(counts, exact) > 1e-3


tiny = sharpen(GPTModel(20, 32, 4, 2, 0.0, 8))


@settings(max_examples=20, deadline=None)
@given(
    prompts=st.lists(
        st.lists(st.integers(0, 19), min_size=1, max_size=10), min_size=1, max_size=4
    ),
    n_new=st.integers(0, 12),
    use_cache=st.booleans(),
    pad=st.integers(0, 19),
)
def test_property_padded_greedy_is_each_prompt_alone(prompts, n_new, use_cache, pad):
    ids, mask = left_pad(prompts, pad=pad)
    out = generate(tiny, ids, n_new, attention_mask=mask, use_cache=use_cache)
    for b, p in enumerate(prompts):
        alone = generate(tiny, torch.tensor([p]), n_new, use_cache=use_cache)[0]
        assert torch.equal(out[b, ids.shape[1] - len(p) :], alone)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 8), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_property_forward_padded_rows_are_their_prompts(lengths, seed):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, 20, (n,), generator=g).tolist() for n in lengths]
    ids, mask = left_pad(prompts, pad=int(torch.randint(0, 20, (), generator=g)))
    with torch.no_grad():
        out = tiny(ids, mask)
        plot, _ = tiny(ids, mask, return_attention=True)
        for b, p in enumerate(prompts):
            alone = tiny(torch.tensor([p]))[0]
            assert torch.allclose(out[b, -len(p) :], alone, atol=1e-4)
            assert torch.allclose(plot[b, -len(p) :], alone, atol=1e-4)


# --- bad masks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mask, error, words",
    [
        (torch.tensor([[1, 1, 0]]), ValueError, "left-padded"),  # right padding
        (torch.tensor([[0, 1, 0]]), ValueError, "left-padded"),
        (torch.tensor([[0, 0, 0]]), ValueError, "no real token"),
        (torch.tensor([[0, 1, 2]]), ValueError, "0 .*1"),
        (torch.tensor([[0.0, 1.0, 1.0]]), TypeError, "attention_mask"),
        (torch.tensor([[1, 1]]), ValueError, "shape"),
        ([[1, 1, 1]], TypeError, "attention_mask"),
    ],
)
def test_bad_attention_mask(sharp_model, mask, error, words):
    with pytest.raises(error, match=words):
        generate(sharp_model, torch.tensor([[1, 2, 3]]), 2, attention_mask=mask)


def test_padding_needs_a_model_that_takes_a_mask():
    model = TableModel(torch.full((4, 4), 0.25))
    with pytest.raises(TypeError, match="attention_mask"):
        generate(
            model, torch.tensor([[0, 1]]), 2, attention_mask=torch.tensor([[0, 1]])
        )
    # an all-ones mask needs nothing from the model
    assert generate(
        model, torch.tensor([[0, 1]]), 2, attention_mask=torch.ones(1, 2).long()
    ).shape == (1, 4)


# --- ids, outputs, flags, NaN ---------------------------------------------------

INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
INT_DTYPES += [torch.uint16, torch.uint32, torch.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("n_new", [0, 3])
def test_every_integer_dtype_gives_int64(sharp_model, dtype, n_new):
    ids = torch.tensor([[1, 5, 19]])
    out = generate(sharp_model, ids.to(dtype), n_new)
    assert out.dtype == torch.int64
    assert torch.equal(out, generate(sharp_model, ids, n_new))


def test_out_of_range_id_is_named_for_every_dtype(sharp_model):
    for dtype in INT_DTYPES:
        with pytest.raises(ValueError, match="got id 20"):
            generate(sharp_model, torch.tensor([[1, 20]], dtype=dtype), 2)
    for dtype in (torch.bool, torch.float32):
        with pytest.raises(TypeError, match="input_ids must hold integer"):
            generate(sharp_model, torch.ones(1, 2, dtype=dtype), 2)


def test_zero_new_tokens_returns_a_new_tensor(sharp_model):
    ids = torch.tensor([[1, 2, 3]])
    out = generate(sharp_model, ids, 0)
    assert torch.equal(out, ids) and out is not ids
    out[0, 0] = 7
    assert ids[0, 0] == 1  # the caller's tensor is untouched


def test_output_is_an_ordinary_tensor(sharp_model):
    out = generate(sharp_model, torch.tensor([[1, 2]]), 4)
    assert not out.is_inference()
    out[0, -1] = 0  # editable in place
    logits = sharp_model(out)  # and usable for training
    torch.nn.functional.cross_entropy(logits[0, :-1], out[0, 1:]).backward()
    assert sharp_model.output_layer.weight.grad is not None


@pytest.mark.parametrize("flag", ["do_sample", "use_cache"])
@pytest.mark.parametrize("value", ["no", 1, None])
def test_flags_take_only_bools(sharp_model, flag, value):
    with pytest.raises(TypeError, match=flag):
        generate(sharp_model, torch.tensor([[1]]), 2, **{flag: value})


@pytest.mark.parametrize("do_sample", [False, True])
def test_nan_model_output_is_named(sharp_model, do_sample):
    with torch.no_grad():
        sharp_model.output_layer.bias[3] = float("nan")
    with pytest.raises(ValueError, match="model's output.*NaN"):
        generate(sharp_model, torch.tensor([[1]]), 2, do_sample=do_sample)


def test_temperature_true_is_not_a_temperature(sharp_model):
    with pytest.raises(TypeError, match="temperature"):
        generate(sharp_model, torch.tensor([[1]]), 2, do_sample=True, temperature=True)


# --- rules reach process_logits, with each row's real tokens only ---------------


def test_prefix_rules_see_each_rows_real_tokens(monkeypatch, sharp_model):
    seen = []

    def fake_process_logits(logits, input_ids=None, **rule):
        seen.append((input_ids.tolist(), rule))
        return logits.clone()

    monkeypatch.setattr(generation, "process_logits", fake_process_logits)
    prompts = [[5], [1, 2, 3], [4, 6]]
    ids, mask = left_pad(prompts, pad=13)
    out = generate(
        sharp_model,
        ids,
        2,
        attention_mask=mask,
        repetition_penalty=1.5,
        allowed_tokens_fn=lambda batch_id, row: list(range(20)),
    )
    calls = seen[1:]  # the first call only checks the values
    # one call per distinct padding per step, each with the unpadded rows
    assert len(calls) == 2 * 3
    P = ids.shape[1]
    for input_ids, rule in calls:
        assert rule["repetition_penalty"] == 1.5 and "allowed_tokens_fn" in rule
        (b,) = rule["batch_ids"].tolist()
        assert (
            input_ids[0]
            == out[
                b, P - len(prompts[b]) : len(input_ids[0]) + P - len(prompts[b])
            ].tolist()
        )
        assert 13 not in input_ids[0][: len(prompts[b])]


def test_sampling_rules_reach_process_logits_only_when_set(monkeypatch, sharp_model):
    seen = []
    real = generation.process_logits

    def recording(logits, input_ids=None, **rule):
        seen.append((input_ids.shape, rule))
        return real(logits, input_ids, **rule)

    monkeypatch.setattr(generation, "process_logits", recording)
    generate(sharp_model, torch.tensor([[1, 2]]), 3)
    assert not seen[1:]  # plain greedy: no rule, argmax of the logits
    seen.clear()
    generate(
        sharp_model, torch.tensor([[1, 2]]), 3, do_sample=True, top_k=3, temperature=0.5
    )
    assert [s[1] for s in seen] == [dict(temperature=0.5, top_k=3)] * 4
    assert [s[0][1] for s in seen[1:]] == [2, 3, 4]  # the whole sequence so far


@pytest.mark.parametrize(
    "rule",
    [
        dict(typical_p=0.9),
        dict(epsilon_cutoff=0.01),
        dict(eta_cutoff=0.01),
        dict(sampler_order=("top_k", "temperature")),
    ],
)
def test_sampling_only_rules_need_do_sample(sharp_model, rule):
    with pytest.raises(ValueError, match="do_sample=True"):
        generate(sharp_model, torch.tensor([[1]]), 2, **rule)
