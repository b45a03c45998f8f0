"""The grammar and architecture pictures draw from the objects, and show their sizes."""

import matplotlib.pyplot as plt
import pytest

from toygpt import GPTModel, ToyLanguage
from toygpt.diagrams import plot_architecture, plot_grammar


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(ax):
    # a long state name is drawn on two lines ("HELLO_\nWORLD")
    return [t.get_text().replace("_\n", "_") for t in ax.texts]


def test_grammar_shows_every_state_and_word():
    lang = ToyLanguage()
    ax = plot_grammar(lang)
    assert isinstance(ax, plt.Axes)
    shown = texts(ax)
    assert set(lang.transitions) | {"END"} <= set(shown)
    labels = "\n".join(shown)
    for rows in lang.transitions.values():
        for word, p, _ in rows:
            assert f"{word} {p:.2f}".replace("0.", ".") in labels
    # laid out left to right: every transition goes to a column further right
    x = {t: a.get_position()[0] for t, a in zip(shown, ax.texts)}
    for state, rows in lang.transitions.items():
        assert all(x[nxt] > x[state] for _, _, nxt in rows)


def test_grammar_is_read_from_the_object():
    lang = ToyLanguage()
    lang.transitions = {
        "START": [("hello", 0.6, "A"), ("the", 0.4, "END")],
        "A": [("</s>", 1.0, "END")],
    }
    # _topological_order reads lang.transitions; the picture follows the object
    shown = texts(plot_grammar(lang))
    assert {"START", "A", "END"} <= set(shown)
    for label in ("hello .60", "the .40", "</s> 1.00"):
        assert label in "\n".join(shown)
    assert "SUBJECT" not in shown


def test_grammar_writes_the_words_that_end_a_sentence_under_their_state():
    # no long arrows into DONE and END: those words are a note under their state
    lang = ToyLanguage()
    ax = plot_grammar(lang)
    notes = [t.get_text() for t in ax.texts if "\u2192" in t.get_text()]
    assert any("</s> .25 \u2192 END" in n for n in notes)  # after HELLO_WORLD
    assert any("GPT .05, AI .05 \u2192 DONE" in n for n in notes)  # after HELLO
    arrows = [p for p in ax.patches if hasattr(p, "_posA_posB")]
    pairs = {(s, n) for s, rows in lang.transitions.items() for _, _, n in rows}
    between_states = [p for p in pairs if p[1] not in ("DONE", "END")]
    assert len(arrows) == len(between_states) + 1  # and DONE -> END


def test_grammar_reads_at_column_width():
    ax = plot_grammar(ToyLanguage())
    width, _ = ax.figure.get_size_inches()
    assert width <= 9 and ax.figure.dpi >= 100
    assert min(t.get_fontsize() for t in ax.texts) >= 6


def test_grammar_rejects_other_objects():
    with pytest.raises(TypeError, match="lang"):
        plot_grammar({"START": []})


@pytest.mark.parametrize(
    "sizes",
    [
        dict(vocab_size=39, d_model=128, num_heads=4, num_layers=4, context_length=16),
        dict(vocab_size=11, d_model=48, num_heads=3, num_layers=2, context_length=7),
    ],
)
def test_architecture_reads_its_sizes_from_the_model(sizes):
    model = GPTModel(dropout=0.0, **sizes)
    ax = plot_architecture(model)
    assert isinstance(ax, plt.Axes)
    shown = "\n".join(texts(ax)) + ax.get_title()
    V, C, H = sizes["vocab_size"], sizes["d_model"], sizes["num_heads"]
    assert f"transformer block × {sizes['num_layers']}" in shown
    assert f"token embedding\n{V} × {C}" in shown
    assert f"position embedding\n{sizes['context_length']} × {C}" in shown
    assert f"{H} heads × {C // H} dims" in shown
    assert f"MLP  {C} → {4 * C} → {C}" in shown
    assert f"logits  (B, T, {V})" in shown
    assert f"(B, T, {C})" in shown
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in shown


def test_architecture_rejects_other_objects():
    with pytest.raises(TypeError, match="model"):
        plot_architecture(object())
