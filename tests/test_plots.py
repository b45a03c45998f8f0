"""Smoke tests: every figure draws, marks what it should, and rejects bad shapes."""

import matplotlib.pyplot as plt
import pytest
import torch
from conftest import TableModel

from toygpt import GPTModel, beam_search, plot_heatmap, plots, top_k_filter

VOCAB = ["hello", "world", "this", "is", "a", "test", "model", "GPT", "language", "AI"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_lesson_call_marks_the_selected_word():
    probs = torch.tensor([0.05, 0.1, 0.05, 0.1, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05])
    ax = plot_heatmap(probs, title="Greedy", selected_idx=4)
    frames = [p for p in ax.patches if p.get_edgecolor()[:3] != (1.0, 1.0, 1.0)]
    assert [(p.get_x(), p.get_y()) for p in frames] == [(4, 0)]
    assert ax.get_title() == "Greedy"
    ax = plot_heatmap(probs, VOCAB, selected_idx=4)
    assert [t.get_text() for t in ax.get_xticklabels()] == VOCAB
    assert ax.get_xticklabels()[4].get_fontweight() == "bold"


def test_several_rows():
    ax = plot_heatmap(
        torch.rand(3, 10).softmax(-1),
        VOCAB,
        row_labels=["a", "b", "c"],
        selected_idx=[1, None, 2],
    )
    assert len([p for p in ax.patches]) == 2


def test_embeddings_attention_filter_top_p():
    model = GPTModel(100, 128, 4, 4, 0.1, 20)
    ids = torch.randint(0, 100, (1, 20))
    fig = plots.plot_embeddings(
        model.token_embedding(ids)[0], model.position_encoding(torch.arange(20))
    )
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == [
        "Token Embedding",
        "Positional Encoding",
        "Token + Positional Encoding",
    ]
    _, attention = model(ids[:, :6], return_attention=True)
    fig = plots.plot_attention(
        attention[0][0], [f"w{i}" for i in range(6)], title="layer 0"
    )
    assert sum(1 for ax in fig.axes if ax.get_title().startswith("head")) == 4
    logits = torch.randn(10)
    ax = plots.plot_filter(logits, top_k_filter(logits, 3), VOCAB)
    assert ax.get_title() == "kept 3 of 10 tokens"
    ax = plots.plot_top_p_cut(
        torch.tensor([0.5, 0.3, 0.15, 0.05]), 0.6, ["a", "b", "c", "d"]
    )
    assert "holds 2 tokens" in ax.get_title()


def test_beam_tree():
    table = torch.tensor(
        [[0.0, 0.5, 0.4, 0.1], [0.0, 0.3, 0.3, 0.4], [0.0, 0.05, 0.05, 0.9], [0.25] * 4]
    )
    r = beam_search(
        TableModel(table),
        torch.tensor([[0]]),
        num_beams=2,
        max_new_tokens=4,
        eos_token_id=3,
    )
    ax = plots.plot_beam_tree(r, ["<s>", "A", "B", "</s>"])
    texts = [t.get_text() for t in ax.texts]
    assert "A  -0.69" in texts and "</s>  -1.02" in texts


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: plot_heatmap(torch.rand(2, 3, 4)), "probs"),
        (lambda: plot_heatmap(torch.full((4,), 0.25), ["a"]), "labels"),
        (lambda: plot_heatmap(torch.full((4,), 0.25), selected_idx=7), "selected_idx"),
        (
            lambda: plots.plot_attention(torch.rand(2, 2, 3, 3), ["a", "b", "c"]),
            "weights",
        ),
        (lambda: plots.plot_filter(torch.rand(3), torch.rand(4)), "same shape"),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError, match=words):
        call()


P4 = torch.tensor([0.5, 0.3, 0.15, 0.05])
NAN4 = torch.tensor([0.5, float("nan"), 0.25, 0.25])
NEG4 = torch.tensor([0.7, -0.1, 0.2, 0.2])
HALF4 = torch.tensor([0.2, 0.1, 0.1, 0.1])  # sums to 0.5: part of a distribution
ATTN = torch.tensor([[1.0, 0.0], [0.5, 0.5]])


@pytest.mark.parametrize(
    "call, words",
    [
        # labels of the wrong length, in every figure that takes them
        (lambda: plot_heatmap(P4, ["a", "b", "c"]), "labels has 3 entries"),
        (lambda: plot_heatmap(P4[None], row_labels=["x", "y"]), "row_labels"),
        (lambda: plots.plot_top_p_cut(P4, 0.5, ["a"]), "labels has 1 entries"),
        (lambda: plots.plot_filter(P4.log(), P4.log(), ["a"]), "labels"),
        (lambda: plots.plot_attention(ATTN, ["a", "b", "c"]), "tokens"),
        (
            lambda: plots.plot_embeddings(
                torch.zeros(3, 4), torch.zeros(3, 4), tokens=["a"]
            ),
            "tokens",
        ),
        # NaN, negative, above one
        (lambda: plot_heatmap(NAN4), "probs must be finite"),
        (lambda: plot_heatmap(NEG4), "probs must be probabilities in \\[0, 1\\]"),
        (lambda: plot_heatmap(torch.tensor([3.0, -1.0])), "logits\\?"),
        (lambda: plots.plot_top_p_cut(NAN4, 0.5), "probs must be finite"),
        (lambda: plots.plot_top_p_cut(NEG4, 0.5), "probs must be probabilities"),
        (lambda: plots.plot_attention(ATTN - 0.5, ["a", "b"]), "weights must be"),
        (lambda: plots.plot_filter(NAN4, P4.log()), "before must be logits"),
        (
            lambda: plots.plot_embeddings(
                torch.full((2, 2), float("nan")), torch.zeros(2, 2)
            ),
            "token has NaN",
        ),
        # rows that do not sum to one where a distribution is expected
        (lambda: plots.plot_top_p_cut(P4 * 1.5, 0.5), "sums to more than 1"),
        (lambda: plots.plot_attention(ATTN * 0.5, ["a", "b"]), "must sum to 1"),
        (lambda: plot_heatmap(torch.tensor([0.6, 0.6])), "sums to more than 1"),
        # selected_idx out of range or not an index
        (
            lambda: plot_heatmap(P4, selected_idx=4),
            "selected_idx must be in \\[0, 3\\]",
        ),
        (lambda: plot_heatmap(P4, selected_idx=-1), "selected_idx must be in"),
        (lambda: plot_heatmap(P4, selected_idx=1.5), "selected_idx must be an int"),
        (lambda: plot_heatmap(P4, selected_idx=True), "selected_idx must be an int"),
        (lambda: plot_heatmap(P4[None], selected_idx=[0, 1]), "selected_idx has 2"),
        (lambda: plots.plot_top_p_cut(P4, 0.0), "p must be a number in"),
    ],
)
def test_plots_check_their_inputs(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_plots_accept_what_is_allowed():
    # part of a distribution (the top words), a tensor index, a fixed colour scale
    ax = plot_heatmap(HALF4, selected_idx=torch.tensor(0), vmin=0.0, vmax=1.0)
    assert ax.collections[0].get_clim() == (0.0, 1.0)
    assert plots.plot_top_p_cut(P4.double(), 0.6).get_title().endswith("2 tokens")
    assert plots.plot_top_p_cut(HALF4, 0.3).get_title().endswith("2 tokens")
    fig = plots.plot_embeddings(torch.ones(2, 3), -torch.ones(2, 3), limit=4.0)
    assert fig.axes[0].collections[0].get_clim() == (-4.0, 4.0)
