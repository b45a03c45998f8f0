"""Tree attention against the model's own forward pass on every node's whole prefix."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toygpt import GPTModel, KVCache
from toygpt.tree_attention import tree_logits


def random_tree(seed, prompt_len, depths, vocab, width=4):
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab, (1, prompt_len), generator=g)
    tokens, parents, above = [], [], 1
    for _ in range(depths):
        n = int(torch.randint(1, width * above + 1, (1,), generator=g))
        parents.append(torch.randint(0, above, (n,), generator=g).sort().values)
        tokens.append(torch.randint(0, vocab, (n,), generator=g))
        above = n
    return prompt, tokens, parents


def prefixes(prompt, tokens, parents):
    """Every node's whole prefix, depth by depth: (n_d, T + d) tensors."""
    rows = [prompt]
    for token, parent in zip(tokens, parents):
        rows.append(torch.cat([rows[-1][parent], token[:, None]], dim=1))
    return rows


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    prompt_len=st.integers(1, 4),
    depths=st.integers(0, 4),
)
def test_equals_the_forward_pass_on_each_prefix(seed, prompt_len, depths):
    torch.manual_seed(seed)
    model = GPTModel(11, 16, 2, 2, 0.1, 8).double()  # dropout > 0, train mode
    prompt, tokens, parents = random_tree(seed, prompt_len, depths, 11)
    got = tree_logits(model, prompt, tokens, parents)
    assert model.training  # the mode it had is given back
    model.eval()
    for logits, ids in zip(got, prefixes(prompt, tokens, parents), strict=True):
        want = model(ids)[:, -1]
        torch.testing.assert_close(logits, want, rtol=0, atol=1e-12)


def test_float32_model_and_a_kv_cache_agree():
    torch.manual_seed(0)
    model = GPTModel(13, 32, 4, 3, 0.0, 16).eval()
    prompt, tokens, parents = random_tree(1, 3, 6, 13, width=3)
    got = tree_logits(model, prompt, tokens, parents)
    rows = prefixes(prompt, tokens, parents)
    cache = KVCache(3, 16)
    with torch.inference_mode():
        want = [model(prompt, kv_cache=cache)[:, -1]]
        for parent, ids in zip(parents, rows[1:]):
            cache.reorder(parent)
            want.append(model(ids[:, -1:], kv_cache=cache)[:, -1])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert [tuple(t.shape) for t in got] == [(1, 13)] + [(len(t), 13) for t in tokens]


@pytest.mark.parametrize(
    "case, error, words",
    [
        ("not a model", TypeError, "GPTModel"),
        ("prompt batch", ValueError, "(1, T)"),
        ("depth counts", ValueError, "same depths"),
        ("too deep", ValueError, "context_length"),
        ("bad token", ValueError, "tokens[0]"),
        ("token matrix", TypeError, "1-D"),
        ("float parents", TypeError, "parents[0]"),
        ("parent out of range", ValueError, "index the 2 nodes of depth 1"),
        ("lengths differ", ValueError, "shape"),
    ],
)
def test_bad_arguments(case, error, words):
    model = GPTModel(5, 8, 2, 1, 0.0, 4)
    prompt = torch.tensor([[0, 1]])
    tokens = [torch.tensor([2, 3]), torch.tensor([4])]
    parents = [torch.tensor([0, 0]), torch.tensor([1])]
    args = [model, prompt, tokens, parents]
    if case == "not a model":
        args[0] = torch.nn.Linear(2, 2)
    elif case == "prompt batch":
        args[1] = torch.tensor([[0, 1], [1, 0]])
    elif case == "depth counts":
        args[3] = parents[:1]
    elif case == "too deep":
        args[2], args[3] = tokens + [torch.tensor([1])], parents + [torch.tensor([0])]
    elif case == "bad token":
        args[2] = [torch.tensor([2, 5]), tokens[1]]
    elif case == "token matrix":
        args[2] = [torch.tensor([[2, 3]]), tokens[1]]
    elif case == "float parents":
        args[3] = [torch.tensor([0.0, 0.0]), parents[1]]
    elif case == "parent out of range":
        args[3] = [parents[0], torch.tensor([2])]
    elif case == "lengths differ":
        args[3] = [torch.tensor([0]), parents[1]]
    with pytest.raises(error, match=re.escape(words)):
        tree_logits(*args)
