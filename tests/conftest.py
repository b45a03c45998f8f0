"""Shared helpers for the tests: tiny models with known logits, and a bridge to
transformers."""

import pytest
import torch
import torch.nn as nn

from toygpt import GPTModel


class TableModel(nn.Module):
    """A model whose next-token log-probabilities depend only on the last token (a
    bigram table), so beam search and generation can be checked by hand."""

    def __init__(self, table, context_length=64):
        super().__init__()
        table = torch.as_tensor(table, dtype=torch.float64)
        self.register_buffer("log_table", table.log().float())
        self.vocab_size = table.shape[0]
        self.context_length = context_length

    def forward(self, input_ids):
        return self.log_table[input_ids]  # (B, T, V)


class PrefixModel(nn.Module):
    """A model whose next-token distribution is a fixed random function of the whole
    prefix (no ties between different sentences), with exact probabilities for
    brute-force checks."""

    def __init__(self, vocab_size, seed=0, context_length=64):
        super().__init__()
        self.vocab_size, self.seed, self.context_length = (
            vocab_size,
            seed,
            context_length,
        )

    def probs(self, prefix):
        g = torch.Generator().manual_seed(hash((self.seed, *prefix)) % 2**31)
        p = torch.rand(self.vocab_size, generator=g, dtype=torch.float64) + 0.05
        return p / p.sum()

    def forward(self, input_ids):
        rows = [
            [self.probs(tuple(seq[: t + 1])) for t in range(len(seq))]
            for seq in input_ids.tolist()
        ]
        return torch.stack([torch.stack(r) for r in rows]).log().float()  # (B, T, V)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global random state, so a model built without an
    explicit seed is the same whichever tests ran before it."""
    torch.manual_seed(0)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return GPTModel(
        vocab_size=11,
        d_model=32,
        num_heads=4,
        num_layers=2,
        dropout=0.1,
        context_length=8,
    ).eval()


def sharpen(model, weight_scale=20.0, eos=None, eos_bias=0.0, seed=0):
    """Scale a random model's weights up so its distributions are peaked (few
    near-ties), and optionally make EOS likelier so that hypotheses of different lengths
    finish."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(weight_scale)
        model.output_layer.bias.copy_(
            torch.randn(model.output_layer.bias.shape, generator=g)
        )
        if eos is not None:
            model.output_layer.bias[eos] += eos_bias
    return model.eval()


def to_hf_gpt2(model: GPTModel):
    """The same network as a transformers GPT2LMHeadModel (needs vocab_size <= d_model).

    GPT-2's head has no bias, so the output bias b is moved into the final LayerNorm's
    bias: W (g * x + beta + c) = W (g * x + beta) + b when W c = b, solvable since W
    has full row rank.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    cfg = GPT2Config(
        vocab_size=c["vocab_size"],
        n_positions=c["context_length"],
        n_embd=c["d_model"],
        n_layer=c["num_layers"],
        n_head=c["num_heads"],
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
    )
    hf = GPT2LMHeadModel(cfg).eval()
    sd = {
        "transformer.wte.weight": model.token_embedding.weight,
        "transformer.wpe.weight": model.position_encoding.weight,
        "transformer.ln_f.weight": model.ln_final.weight,
        "lm_head.weight": model.output_layer.weight,
    }
    for i, b in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        sd |= {
            p + "ln_1.weight": b.ln1.weight,
            p + "ln_1.bias": b.ln1.bias,
            p + "ln_2.weight": b.ln2.weight,
            p + "ln_2.bias": b.ln2.bias,
            # GPT-2 stores Linear weights transposed (its Conv1D is x @ W)
            p + "attn.c_attn.weight": b.attn.qkv.weight.T,
            p + "attn.c_attn.bias": b.attn.qkv.bias,
            p + "attn.c_proj.weight": b.attn.proj.weight.T,
            p + "attn.c_proj.bias": b.attn.proj.bias,
            p + "mlp.c_fc.weight": b.ffn[0].weight.T,
            p + "mlp.c_fc.bias": b.ffn[0].bias,
            p + "mlp.c_proj.weight": b.ffn[2].weight.T,
            p + "mlp.c_proj.bias": b.ffn[2].bias,
        }
    W = model.output_layer.weight.double()
    shift = torch.linalg.lstsq(W, model.output_layer.bias.double()[:, None]).solution[
        :, 0
    ]
    sd["transformer.ln_f.bias"] = (model.ln_final.bias.double() + shift).float()
    hf.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=True)
    return hf


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square goodness-of-fit p-value (tokens with probability 0 must
    have count 0)."""
    n = counts.sum()
    support = probs > 0
    assert counts[~support].sum() == 0, "a token with probability 0 was drawn"
    expected = n * probs[support].double()
    stat = ((counts[support].double() - expected) ** 2 / expected).sum()
    df = int(support.sum()) - 1
    return float(
        torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), stat / 2)
    )


__all__ = ["PrefixModel", "TableModel", "sharpen", "to_hf_gpt2", "chi_square_pvalue"]
