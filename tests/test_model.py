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
