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
        (lambda: plot_heatmap(torch.rand(4), ["a"]), "labels"),
        (lambda: plot_heatmap(torch.rand(4), selected_idx=7), "selected_idx"),
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
