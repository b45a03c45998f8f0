"""generate(): greedy and sampling, the KV cache, context cropping, EOS, batches,
bad input."""

import pytest
import torch
from conftest import TableModel, sharpen, to_hf_gpt2

from toygpt import GPTModel, generate, greedy


def reference_loop(model, ids, n):
    """The lesson's loop, fixed: forward the (cropped) sequence, argmax, append."""
    for _ in range(n):
        logits = model(ids[:, -model.context_length :])[:, -1, :]
        ids = torch.cat([ids, greedy(logits)[:, None]], dim=1)
    return ids


@pytest.fixture
def sharp_model():
    return sharpen(
        GPTModel(
            vocab_size=20,
            d_model=32,
            num_heads=4,
            num_layers=2,
            dropout=0.1,
            context_length=8,
        )
    )


def test_greedy_matches_reference_loop_past_context(sharp_model):
    ids = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    out = generate(sharp_model, ids, 30)  # 35 tokens through an 8-token window
    assert out.shape == (3, 35)
    assert torch.equal(out[:, :5], ids)
    with torch.no_grad():
        assert torch.equal(out, reference_loop(sharp_model, ids, 30))


@pytest.mark.parametrize("n_new", [3, 12, 40])
def test_cache_equals_recompute_greedy(sharp_model, n_new):
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(1))
    assert torch.equal(
        generate(sharp_model, ids, n_new, use_cache=True),
        generate(sharp_model, ids, n_new, use_cache=False),
    )


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(temperature=0.8, top_k=5), dict(top_p=0.9), dict(min_p=0.1)]
)
def test_cache_equals_recompute_sampling(sharp_model, kwargs):
    model = sharpen(
        GPTModel(20, 32, 4, 2, 0.0, 8), weight_scale=2.0
    )  # flatter: many tokens drawn
    ids = torch.randint(0, 20, (3, 4), generator=torch.Generator().manual_seed(2))
    a = generate(
        model,
        ids,
        25,
        do_sample=True,
        generator=torch.Generator().manual_seed(7),
        **kwargs,
    )
    b = generate(
        model,
        ids,
        25,
        do_sample=True,
        generator=torch.Generator().manual_seed(7),
        use_cache=False,
        **kwargs,
    )
    assert torch.equal(a, b)
    c = generate(
        model,
        ids,
        25,
        do_sample=True,
        generator=torch.Generator().manual_seed(8),
        **kwargs,
    )
    assert not torch.equal(a, c)


def test_batch_rows_are_independent_greedy(sharp_model):
    ids = torch.randint(0, 20, (4, 5), generator=torch.Generator().manual_seed(3))
    together = generate(sharp_model, ids, 15)
    for b in range(4):
        assert torch.equal(
            generate(sharp_model, ids[b : b + 1], 15), together[b : b + 1]
        )


def test_eos_per_row():
    # token 3 = EOS. From 0 the chain goes 0 -> 1 -> 3; from 2 it goes 2 -> 2 -> ...
    # never ending.
    table = torch.full((4, 4), 0.01)
    table[0, 1] = table[1, 3] = table[2, 2] = table[3, 0] = 0.97
    model = TableModel(table / table.sum(1, keepdim=True))
    out = generate(model, torch.tensor([[0], [2]]), 6, eos_token_id=3)
    assert out.tolist() == [[0, 1, 3, 3, 3, 3, 3], [2, 2, 2, 2, 2, 2, 2]]
    # when every row has finished the loop stops early
    assert generate(model, torch.tensor([[0], [1]]), 10, eos_token_id=3).tolist() == [
        [0, 1, 3],
        [1, 3, 3],
    ]


def test_temperature_zero_sampling_is_greedy(sharp_model):
    ids = torch.randint(0, 20, (2, 3))
    assert torch.equal(
        generate(sharp_model, ids, 10, do_sample=True, temperature=0),
        generate(sharp_model, ids, 10),
    )


def test_restores_training_mode(sharp_model):
    sharp_model.train()
    generate(sharp_model, torch.zeros(1, 1, dtype=torch.long), 3)
    assert sharp_model.training


def test_zero_new_tokens(sharp_model):
    ids = torch.randint(0, 20, (2, 3))
    assert torch.equal(generate(sharp_model, ids, 0), ids)


def test_greedy_matches_transformers(sharp_model):
    pytest.importorskip("transformers")
    from transformers import GenerationConfig

    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 32))
    hf = to_hf_gpt2(model)
    ids = torch.randint(0, 20, (2, 4), generator=torch.Generator().manual_seed(4))
    ours = generate(model, ids, 20)
    theirs = hf.generate(
        ids,
        generation_config=GenerationConfig(
            max_new_tokens=20, do_sample=False, pad_token_id=0
        ),
    )
    assert torch.equal(ours, theirs)


def test_seeded_sampling_matches_transformers():
    pytest.importorskip("transformers")
    from transformers import GenerationConfig

    model = sharpen(GPTModel(20, 32, 4, 2, 0.0, 32), weight_scale=2.0)
    hf = to_hf_gpt2(model)
    ids = torch.randint(0, 20, (2, 4), generator=torch.Generator().manual_seed(5))
    cfg = GenerationConfig(
        max_new_tokens=15,
        do_sample=True,
        temperature=0.7,
        top_k=8,
        top_p=0.9,
        pad_token_id=0,
    )
    torch.manual_seed(11)
    theirs = hf.generate(ids, generation_config=cfg)
    torch.manual_seed(11)  # transformers draws from the global generator
    ours = generate(model, ids, 15, do_sample=True, temperature=0.7, top_k=8, top_p=0.9)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
        (dict(max_new_tokens=2.0), TypeError, "max_new_tokens"),
        (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), ValueError, "empty"),
        (dict(input_ids=torch.tensor([[0, 20]])), ValueError, "input_ids"),
        (dict(input_ids=torch.tensor([[0.0, 1.0]])), TypeError, "input_ids"),
        (dict(input_ids=torch.tensor([0, 1])), ValueError, "shape"),
        (dict(do_sample=True, temperature=-0.5), ValueError, "temperature"),
        (dict(do_sample=True, temperature=float("nan")), ValueError, "temperature"),
        (dict(do_sample=True, top_k=0), ValueError, "top_k"),
        (dict(do_sample=True, top_k=2.5), TypeError, "top_k"),
        (dict(do_sample=True, top_p=0), ValueError, "top_p"),
        (dict(do_sample=True, top_p=1.5), ValueError, "top_p"),
        (dict(do_sample=True, min_p=2), ValueError, "min_p"),
        (dict(top_k=5), ValueError, "do_sample=True"),
        (dict(eos_token_id=20), ValueError, "eos_token_id"),
        (dict(do_sample="yes"), TypeError, "do_sample"),
        (dict(model=torch.nn.Linear(2, 2)), TypeError, "model"),
    ],
)
def test_bad_arguments(sharp_model, kwargs, error, words):
    args = (
        dict(model=sharp_model, input_ids=torch.tensor([[1, 2]]), max_new_tokens=3)
        | kwargs
    )
    with pytest.raises(error, match=words):
        generate(
            args.pop("model"), args.pop("input_ids"), args.pop("max_new_tokens"), **args
        )
