"""The grammar and architecture pictures draw from the objects, and show their sizes."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

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
    # read from left to right: every arrow goes right (the words into DONE and END
    # are notes next to their state, not arrows)
    x = {t: a.get_position()[0] for t, a in zip(shown, ax.texts)}
    for state, rows in lang.transitions.items():
        assert all(x[n] > x[state] for _, _, n in rows if n not in ("DONE", "END"))
    assert x["END"] > x["DONE"]


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


def _extents(ax):
    """Every text's and every box's extent on the canvas, in pixels."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts if t.get_text().strip()]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    # a state drawn as a text in a framed box (the text's own bbox patch)
    boxes += [t.get_bbox_patch() for t in texts if t.get_fontweight() == "bold"]
    return (
        [(t, t.get_window_extent(renderer)) for t in texts],
        [b.get_window_extent(renderer) for b in boxes if b is not None],
    )


def _overlap(a, b, tol=1.0):
    return (
        a.x0 < b.x1 - tol
        and b.x0 < a.x1 - tol
        and a.y0 < b.y1 - tol
        and b.y0 < a.y1 - tol
    )


def _inside(box, points, tol=2.0):
    return (
        (points[:, 0] > box.x0 + tol)
        & (points[:, 0] < box.x1 - tol)
        & (points[:, 1] > box.y0 + tol)
        & (points[:, 1] < box.y1 - tol)
    ).any()


def _center_in(ext, box):
    x, y = (ext.x0 + ext.x1) / 2, (ext.y0 + ext.y1) / 2
    return box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def overlaps(ax):
    """The pairs of texts that overlap, and the texts that overlap a box they are not
    written in; at least 1 pixel."""
    texts, boxes = _extents(ax)
    clashes = []
    for i, (t, a) in enumerate(texts):
        for u, b in texts[i + 1 :]:
            if _overlap(a, b):
                clashes.append((t.get_text(), u.get_text()))
        for box in boxes:
            if not _center_in(a, box) and _overlap(a, box):
                clashes.append((t.get_text(), "a box"))
    return clashes


def crossings(ax):
    """The texts and boxes an arrow passes through, other than its own label and the
    two states it joins."""
    texts, boxes = _extents(ax)
    found = []
    for arrow in (p for p in ax.patches if isinstance(p, FancyArrowPatch)):
        parts = arrow.get_path().to_polygons(arrow.get_transform(), closed_only=False)
        line = parts[0]  # the shaft; then the head
        pts = np.concatenate(
            [np.linspace(a, b, 25) for p in parts for a, b in zip(p[:-1], p[1:])]
        )
        ends = [b for b in boxes if b.contains(*line[0]) or b.contains(*line[-1])]
        ends += [b for b in boxes if _inside(b.padded(4), line[[0, -1]], tol=0)]
        for t, ext in texts:
            mine = t.get_gid() is not None and t.get_gid() == arrow.get_gid()
            if not mine and not any(_center_in(ext, b) for b in ends):
                if _inside(ext, pts):
                    found.append((arrow.get_gid(), t.get_text()))
        found += [
            (arrow.get_gid(), "a box")
            for b in boxes
            if b not in ends and _inside(b, pts)
        ]
    return found


def test_grammar_reads_at_column_width():
    # the book's column is 7.5 inches at most (about 666 pixels on the web)
    ax = plot_grammar(ToyLanguage())
    fig = ax.figure
    width, _ = fig.get_size_inches()
    assert width <= 7.5 and fig.dpi >= 100
    assert min(t.get_fontsize() for t in ax.texts) * 7.5 / width >= 7
    assert overlaps(ax) == []
    assert crossings(ax) == []


def test_readability_checks_find_what_they_look_for():
    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    ax.text(0.5, 0.5, "STATE", fontweight="bold", bbox=dict(boxstyle="round"))
    ax.text(0.52, 0.5, "word .10")  # on the box
    ax.text(0.1, 0.1, "one label")
    ax.text(0.12, 0.1, "another")  # on a label
    ax.add_patch(FancyArrowPatch((0.0, 0.12), (0.4, 0.12), gid="edge:A>B"))
    assert len(overlaps(ax)) == 2
    assert {t for _, t in crossings(ax)} >= {"one label", "another"}


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
