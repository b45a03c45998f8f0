"""GPTModel and TransformerBlock: shapes, causality, the residual path, the cache, bad input."""

import pytest
import torch
import torch.nn as nn
from conftest import sharpen, to_hf_gpt2

from toygpt import GPTModel, TransformerBlock


def test_shapes(tiny_model):
    ids = torch.randint(0, 11, (3, 8))
    assert tiny_model(ids).shape == (3, 8, 11)
    logits, attention = tiny_model(ids, return_attention=True)
    assert len(attention) == 2 and attention[0].shape == (3, 4, 8, 8)
    assert torch.allclose(logits, tiny_model(ids), atol=1e-5)


def test_lesson_attribute_names():
    model = GPTModel(
        vocab_size=100,
        d_model=128,
        num_heads=4,
        num_layers=4,
        dropout=0.1,
        context_length=20,
    )
    for name in (
        "token_embedding",
        "position_encoding",
        "blocks",
        "ln_final",
        "output_layer",
    ):
        assert hasattr(model, name)
    assert model.token_embedding.weight.shape == (100, 128)
    assert model.position_encoding.weight.shape == (20, 128)
    # each layer has its own weights (the lesson's `[block] * n` would share one)
    assert len({id(b) for b in model.blocks}) == 4
    assert not torch.equal(
        model.blocks[0].attn.qkv.weight, model.blocks[1].attn.qkv.weight
    )


def test_causality(tiny_model):
    """Changing a future token never changes an earlier position's logits."""
    ids = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(0))
    base = tiny_model(ids)
    for t in range(8):
        changed = ids.clone()
        changed[:, t] = (changed[:, t] + 1) % 11
        out = tiny_model(changed)
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not torch.allclose(out[:, t:], base[:, t:], atol=1e-6)


def test_attention_is_causal_and_normalised(tiny_model):
    ids = torch.randint(0, 11, (1, 8))
    _, attention = tiny_model(ids, return_attention=True)
    for w in attention:
        assert torch.allclose(w.sum(-1), torch.ones(1, 4, 8), atol=1e-5)
        assert (w.triu(diagonal=1) == 0).all()


def test_causal_mask_is_a_sliced_buffer(tiny_model):
    block = tiny_model.blocks[0]
    assert "causal_mask" in dict(block.attn.named_buffers())
    mask_before = block.attn.causal_mask
    tiny_model(torch.randint(0, 11, (1, 5)))
    assert block.attn.causal_mask is mask_before  # not rebuilt


def test_residual_path():
    """Pre-LN: a block whose sub-layers output zero is the identity, so the stream passes
    through unchanged (the lesson's `x = ln1(x); x = x + attn(x)` normalised it instead)."""
    torch.manual_seed(0)
    block = TransformerBlock(
        d_model=16, num_heads=2, dropout=0.0, context_length=8
    ).eval()
    with torch.no_grad():
        for lin in (block.attn.proj, block.ffn[2]):
            lin.weight.zero_()
            lin.bias.zero_()
    x = torch.randn(2, 8, 16) * 5 + 3  # far from normalised
    assert torch.equal(block(x), x)
    # and the gradient reaches the input through the identity path
    x.requires_grad_(True)
    block(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_kv_cache_matches_full_forward(tiny_model):
    ids = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    full = tiny_model(ids)
    cache = tiny_model.new_kv_cache()
    parts = [tiny_model(ids[:, :3], kv_cache=cache)] + [
        tiny_model(ids[:, t : t + 1], kv_cache=cache) for t in range(3, 8)
    ]
    assert len(cache) == 8
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_kv_cache_reorder(tiny_model):
    ids = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(2))
    cache = tiny_model.new_kv_cache()
    tiny_model(ids[:, :5], kv_cache=cache)
    rows = torch.tensor([2, 2, 0])
    cache.reorder(rows)
    step = tiny_model(ids[rows, 5:6], kv_cache=cache)
    assert torch.allclose(step[:, 0], tiny_model(ids[rows])[:, -1], atol=1e-5)


def test_batch_rows_are_independent(tiny_model):
    ids = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(3))
    together = tiny_model(ids)
    for b in range(4):
        assert torch.allclose(
            tiny_model(ids[b : b + 1]), together[b : b + 1], atol=1e-5
        )


def test_dropout_only_in_training(tiny_model):
    ids = torch.randint(0, 11, (2, 8))
    assert torch.equal(tiny_model(ids), tiny_model(ids))
    tiny_model.train()
    torch.manual_seed(0)
    assert not torch.equal(tiny_model(ids), tiny_model(ids))


def test_attention_matches_nn_multihead_attention():
    """Our fused-QKV attention computes what the lesson's nn.MultiheadAttention computes."""
    torch.manual_seed(0)
    block = TransformerBlock(
        d_model=32, num_heads=4, dropout=0.0, context_length=10
    ).eval()
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(block.attn.qkv.weight)
        mha.in_proj_bias.copy_(block.attn.qkv.bias)
        mha.out_proj.weight.copy_(block.attn.proj.weight)
        mha.out_proj.bias.copy_(block.attn.proj.bias)
    x = torch.randn(2, 10, 32)
    causal = torch.triu(
        torch.full((10, 10), float("-inf")), diagonal=1
    )  # the lesson's mask
    ref, ref_w = mha(x, x, x, attn_mask=causal, average_attn_weights=False)
    ours, ours_w = block.attn(x, return_attention=True)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(ours_w, ref_w, atol=1e-6)


def test_same_network_as_gpt2():
    pytest.importorskip("transformers")
    model = sharpen(
        GPTModel(
            vocab_size=20,
            d_model=32,
            num_heads=4,
            num_layers=2,
            dropout=0.0,
            context_length=16,
        )
    )
    hf = to_hf_gpt2(model)
    ids = torch.randint(0, 20, (2, 16))
    assert torch.allclose(model(ids), hf(ids).logits, atol=1e-4)


def test_too_long_input_is_explained(tiny_model):
    with pytest.raises(ValueError, match="context_length"):
        tiny_model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(d_model=30, num_heads=4), ValueError, "divisible by num_heads"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(dropout=-0.1), ValueError, "dropout"),
        (dict(dropout=float("nan")), ValueError, "dropout"),
        (dict(dropout="0.1"), TypeError, "dropout"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(vocab_size=10.0), TypeError, "vocab_size"),
        (dict(num_layers=0), ValueError, "num_layers"),
        (dict(num_heads=0), ValueError, "num_heads"),
        (dict(context_length=0), ValueError, "context_length"),
    ],
)
def test_bad_config(kwargs, error, words):
    config = (
        dict(
            vocab_size=10,
            d_model=32,
            num_heads=4,
            num_layers=1,
            dropout=0.1,
            context_length=8,
        )
        | kwargs
    )
    with pytest.raises(error, match=words):
        GPTModel(**config)


@pytest.mark.parametrize(
    "ids, error, words",
    [
        (torch.tensor([[1, 11]]), ValueError, "input_ids must be in"),
        (torch.tensor([[-1, 2]]), ValueError, "input_ids must be in"),
        (torch.tensor([[1.0, 2.0]]), TypeError, "integer"),
        (torch.tensor([1, 2]), ValueError, "shape"),
        (torch.zeros(1, 0, dtype=torch.long), ValueError, "empty"),
        ([[1, 2]], TypeError, "input_ids"),
    ],
)
def test_bad_input_ids(tiny_model, ids, error, words):
    with pytest.raises(error, match=words):
        tiny_model(ids)


def test_kv_cache_holds_context_length_positions(tiny_model):
    cache = tiny_model.new_kv_cache()
    tiny_model(torch.zeros(1, 8, dtype=torch.long), kv_cache=cache)
    assert len(cache) == 8 and cache.keys[0].shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="context_length"):
        tiny_model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


# --- padded batches: attention_mask ---------------------------------------------------


def left_pad(prompts, pad=0):
    """Left-pad lists of ids into (input_ids, attention_mask)."""
    T = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (T - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def test_padded_rows_equal_their_prompts_alone(tiny_model):
    prompts = [[3], [1, 2, 3, 4, 5, 6, 7, 8], [5, 5, 9], [10, 0, 4, 2]]
    ids, mask = left_pad(prompts, pad=7)
    out = tiny_model(ids, attention_mask=mask)
    plot, _ = tiny_model(ids, mask, return_attention=True)
    for b, p in enumerate(prompts):
        alone = tiny_model(torch.tensor([p]))[0]
        assert torch.allclose(out[b, -len(p) :], alone, atol=1e-5)
        assert torch.allclose(plot[b, -len(p) :], alone, atol=1e-5)
    assert torch.isfinite(out).all() and torch.isfinite(plot).all()


def test_without_the_mask_padding_changes_the_logits(tiny_model):
    # The check above can fail: without the mask the padded row's logits differ.
    ids, mask = left_pad([[3, 4], [1, 2, 3, 4, 5]])
    alone = tiny_model(torch.tensor([[3, 4]]))[0]
    assert not torch.allclose(tiny_model(ids)[0, -2:], alone, atol=1e-3)
    assert torch.allclose(tiny_model(ids, mask)[0, -2:], alone, atol=1e-5)


def test_padding_anywhere_counts_only_real_tokens(tiny_model):
    """Right padding and holes too: positions count real tokens, padding is no key."""
    ids = torch.tensor([[4, 0, 5, 6, 0, 0], [1, 2, 3, 0, 0, 0]])
    mask = torch.tensor([[1, 0, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
    out = tiny_model(ids, mask)
    assert torch.allclose(
        out[0, [0, 2, 3]], tiny_model(torch.tensor([[4, 5, 6]]))[0], atol=1e-5
    )
    assert torch.allclose(
        out[1, :3], tiny_model(torch.tensor([[1, 2, 3]]))[0], atol=1e-5
    )
    assert torch.isfinite(out).all()


def test_padded_batch_with_the_cache(tiny_model):
    prompts = [[3, 1], [1, 2, 3, 4, 5]]
    ids, mask = left_pad(prompts)
    new = torch.tensor([[6, 2], [8, 9]])  # two more tokens per row, fed one at a time
    cache = tiny_model.new_kv_cache()
    first = tiny_model(ids, mask, kv_cache=cache)
    steps = [tiny_model(new[:, t : t + 1], kv_cache=cache) for t in range(2)]
    assert len(cache) == 7 and cache.mask[:, :7].sum(1).tolist() == [4, 7]
    for b, p in enumerate(prompts):
        alone = tiny_model(torch.tensor([p + new[b].tolist()]))[0]
        got = torch.cat([first[b, -len(p) :], steps[0][b], steps[1][b]])
        assert torch.allclose(got, alone, atol=1e-5)
    # reorder keeps each row's mask with its keys
    cache.reorder(torch.tensor([1, 0]))
    step = tiny_model(torch.tensor([[4], [4]]), kv_cache=cache)
    alone = tiny_model(torch.tensor([prompts[0] + new[0].tolist() + [4]]))[0, -1]
    assert torch.allclose(step[1, 0], alone, atol=1e-5)


def test_all_ones_mask_is_the_fast_path(tiny_model):
    ids = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(4))
    assert torch.equal(
        tiny_model(ids, torch.ones(3, 8, dtype=torch.long)), tiny_model(ids)
    )


@pytest.mark.parametrize(
    "mask, error, words",
    [
        (torch.ones(2, 3), TypeError, "attention_mask"),  # float
        (torch.ones(2, 4, dtype=torch.long), ValueError, "attention_mask"),  # shape
        (torch.tensor([[1, 2, 1], [1, 1, 1]]), ValueError, "attention_mask"),
        (torch.tensor([[0, 0, 0], [1, 1, 1]]), ValueError, "no real token"),
        ([[1, 1, 1], [1, 1, 1]], TypeError, "attention_mask"),
    ],
)
def test_bad_attention_mask(tiny_model, mask, error, words):
    with pytest.raises(error, match=words):
        tiny_model(torch.ones(2, 3, dtype=torch.long), attention_mask=mask)


# --- the custom mask, the cache's guards, id dtypes -----------------------------------


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(5, 5, dtype=torch.bool).tril(),
        torch.ones(5, 5, dtype=torch.bool),  # bidirectional
        torch.eye(5, dtype=torch.bool)[None, None],
        torch.zeros(5, 5, dtype=torch.bool),  # nothing to attend to: no NaN
        torch.rand(2, 4, 5, 5, generator=torch.Generator().manual_seed(0)) < 0.3,
    ],
)
def test_custom_mask_same_on_both_paths_and_finite(tiny_model, mask):
    ids = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(5))
    fast = tiny_model(ids, mask=mask)
    plot, attention = tiny_model(ids, mask=mask, return_attention=True)
    assert torch.isfinite(fast).all()
    assert torch.allclose(fast, plot, atol=1e-5)
    for w in attention:  # weights sum to one, or to zero where nothing may be seen
        sums = w.sum(-1)
        assert torch.allclose(sums, mask.any(-1).expand_as(sums).float(), atol=1e-5)


@pytest.mark.parametrize(
    "mask, error",
    [
        (torch.ones(5, 5), TypeError),  # float (additive) masks are refused
        (torch.ones(5, 5, dtype=torch.long), TypeError),
        (torch.ones(4, 5, dtype=torch.bool), ValueError),
        (torch.ones(3, 4, 5, 5, dtype=torch.bool), ValueError),
        ("causal", TypeError),
    ],
)
def test_bad_custom_mask(tiny_model, mask, error):
    with pytest.raises(error, match="mask"):
        tiny_model(torch.ones(2, 5, dtype=torch.long), mask=mask)


def test_kv_cache_refuses_what_would_give_wrong_logits(tiny_model):
    other = GPTModel(11, 32, 4, 3, 0.0, 8).eval()
    with pytest.raises(ValueError, match="layers"):
        tiny_model(torch.ones(1, 2, dtype=torch.long), kv_cache=other.new_kv_cache())
    cache = tiny_model.new_kv_cache()
    tiny_model(torch.ones(2, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="rows"):
        tiny_model(torch.ones(3, 1, dtype=torch.long), kv_cache=cache)
    small = GPTModel(11, 32, 4, 2, 0.0, 8).eval()
    from toygpt import KVCache

    tiny = KVCache(2, 4)
    small(torch.ones(1, 3, dtype=torch.long), kv_cache=tiny)
    with pytest.raises(ValueError, match="holds 4 positions"):
        small(torch.ones(1, 2, dtype=torch.long), kv_cache=tiny)
    assert tiny.lengths == [3, 3]  # nothing was written by the refused call
    with pytest.raises(TypeError, match="kv_cache"):
        tiny_model(torch.ones(1, 2, dtype=torch.long), kv_cache={})


INT_DTYPES = [
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_integer_dtype_is_its_values(tiny_model, dtype):
    ids = torch.tensor([[1, 5, 10, 0]])
    assert torch.equal(tiny_model(ids.to(dtype)), tiny_model(ids))
    with pytest.raises(ValueError, match=r"input_ids must be in \[0, 10\].*got id 11"):
        tiny_model(torch.tensor([[1, 11]]).to(dtype))


@pytest.mark.parametrize("dtype", [torch.bool, torch.float16, torch.float64])
def test_bool_and_float_ids_are_refused(tiny_model, dtype):
    with pytest.raises(TypeError, match="input_ids must hold integer"):
        tiny_model(torch.ones(1, 2, dtype=dtype))


def test_huge_uint64_id_is_named_as_given(tiny_model):
    with pytest.raises(ValueError, match="got id 18446744073709551615"):
        tiny_model(torch.tensor([[2**64 - 1]], dtype=torch.uint64))
