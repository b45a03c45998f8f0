"""Two pictures drawn from the objects themselves, with matplotlib only (no Graphviz,
which Colab lacks): the toy language's grammar as a state graph, and the architecture of
a :class:`~toygpt.model.GPTModel` with the shapes its tensors have.

    from toygpt.diagrams import plot_grammar, plot_architecture
    plot_grammar(ToyLanguage())
    plot_architecture(model)
"""

from __future__ import annotations

from collections import defaultdict

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["plot_grammar", "plot_architecture"]

NODE_COLOR, START_COLOR, END_COLOR = "#dbe9f6", "#fde0c5", "#d9f0d3"
EDGE_COLOR, RESIDUAL_COLOR = "#555555", "#d62728"
FINAL_TEXT = "#2b7a2b"
START, END = "START", "END"


# ---- the grammar ---------------------------------------------------------------


def _final(lang) -> set[str]:
    """States after which the sentence can only end (``END``, and states like ``DONE``
    whose every word leads to ``END``)."""
    return {END} | {
        s for s, rows in lang.transitions.items() if all(n == END for _, _, n in rows)
    }


def _layers(lang, final) -> dict[str, int]:
    """Each other state's column: its longest path from START (every edge goes right)."""
    depth = {START: 0}
    for state in lang._topological_order():  # START first; each edge goes forward
        for _, _, nxt in lang.transitions[state]:
            if nxt not in final:
                depth[nxt] = max(depth.get(nxt, 0), depth[state] + 1)
    return depth


def _order_layers(depth, edges) -> dict[int, list[str]]:
    """States of each column, ordered to keep edges short (a few barycentre sweeps)."""
    columns = defaultdict(list)
    for state, d in sorted(depth.items(), key=lambda kv: kv[1]):
        columns[d].append(state)
    parents = defaultdict(list)
    for src, dst in edges:
        if dst in depth:
            parents[dst].append(src)
    for _ in range(4):
        place = {s: i for col in columns.values() for i, s in enumerate(col)}
        for d in sorted(columns)[1:]:
            columns[d].sort(
                key=lambda s: sum(place[p] for p in parents[s]) / len(parents[s])
            )
            place.update({s: i for i, s in enumerate(columns[d])})
    return columns


def _two_lines(state: str) -> str:
    """A long state name on two lines, cut after an underscore: ``HELLO_\\nWORLD``."""
    if len(state) <= 7 or "_" not in state:
        return state
    middle = len(state) // 2 - 1
    cut = state.index("_", middle) if "_" in state[middle:] else state.rindex("_")
    return state[: cut + 1] + "\n" + state[cut + 1 :]


def _words(pairs, per_line=3) -> str:
    pairs = sorted(pairs, key=lambda wp: -wp[1])
    items = [f"{w} {p:.2f}".replace("0.", ".") for w, p in pairs]
    return "\n".join(
        ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    )


def plot_grammar(lang, *, ax=None, figsize=(9, 8.5), fontsize=8.5):
    """The grammar of a :class:`~toygpt.language.ToyLanguage` as a state graph.

    Boxes are states (``START`` after ``<s>``, ``END`` after ``</s>``), laid out left to
    right by their longest distance from ``START``; an arrow joins two states and is
    labelled with every word that leads from one to the other, with its probability.
    The words after which the sentence must end (they lead to a state such as ``DONE``,
    from which only ``</s>`` follows, or are ``</s>`` itself) are written in green under
    their state instead of as arrows to the far right, which would cross the picture.
    Returns the ``Axes``.
    """
    if not hasattr(lang, "transitions") or not hasattr(lang, "_topological_order"):
        raise TypeError(f"lang must be a ToyLanguage, got {type(lang).__name__}")
    final = _final(lang)
    edges = defaultdict(list)  # (state, next state) -> [(word, probability), ...]
    for state, rows in lang.transitions.items():
        for word, p, nxt in rows:
            edges[state, nxt].append((word, p))
    depth = _layers(lang, final)
    inner = {k: v for k, v in edges.items() if k[1] not in final}
    columns = _order_layers(depth, inner)
    height = max(len(c) for c in columns.values())
    pos = {}
    for d, states in columns.items():
        for i, state in enumerate(states):
            # each column spread over the full height, centred
            gap = (height - 1) / max(len(states) - 1, 1)
            pos[state] = (d * 1.0, (len(states) - 1) * gap / 2 - i * gap)
    last = max(depth.values())
    top = (height - 1) / 2
    ends = sorted(final - {END}) + [END]
    for k, state in enumerate(ends):  # the final states, top right
        pos[state] = (last + 0.75 * (k + 1), top)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, dpi=110)
    f = fontsize
    for (src, dst), words in edges.items():
        if dst in final and src not in final:
            continue  # written under the state below
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.add_patch(
            FancyArrowPatch(
                (x0, y0),
                (x1, y1),
                arrowstyle="-|>",
                mutation_scale=9,
                color=EDGE_COLOR,
                lw=0.8,
                alpha=0.55,
                shrinkA=2.2 * f,
                shrinkB=2.2 * f,
            )
        )
        t = 0.5 if depth.get(dst, last + 1) - depth.get(src, 0) == 1 else 0.35
        flat = (
            abs(y1 - y0) < 0.3
        )  # a level arrow: its label sits above it, clear of boxes
        ax.text(
            x0 + t * (x1 - x0),
            y0 + t * (y1 - y0) + (0.12 if flat else 0.0),
            _words(words, per_line=1 if len(words) > 2 else 2),
            fontsize=f - 1.5,
            ha="center",
            va="bottom" if flat else "center",
            color="#222222",
            linespacing=1.0,
            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85),
            zorder=3,
        )
    for state, (x, y) in pos.items():
        color = {START: START_COLOR, END: END_COLOR}.get(state, NODE_COLOR)
        if state in final and state != END:
            color = END_COLOR
        ax.text(
            x,
            y,
            _two_lines(state),
            fontsize=f - 0.5,
            fontweight="bold",
            ha="center",
            va="center",
            bbox=dict(boxstyle="round,pad=0.25", fc=color, ec="#4a4a4a", lw=0.8),
            zorder=4,
        )
        ending = [
            f"{_words(words, per_line=2)} \u2192 {dst}"
            for (src, dst), words in edges.items()
            if src == state and dst in final and state not in final
        ]
        if ending:
            ax.text(
                x,
                # alternate columns a little lower, so neighbouring notes do not touch
                y - (0.3 if "\n" in _two_lines(state) else 0.22) - 0.22 * (x % 2),
                "\n".join(ending),
                fontsize=f - 2,
                ha="center",
                va="top",
                color=FINAL_TEXT,
                linespacing=1.0,
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85),
                zorder=5,
            )
    ax.set_xlim(-0.5, last + 0.75 * len(ends) + 0.4)
    ax.set_ylim(-top - 0.8, top + 0.5)
    ax.axis("off")
    ax.set_title(
        f"The toy language: {len(lang.transitions)} states, "
        f"{sum(len(r) for r in lang.transitions.values())} word transitions "
        "(word, probability)\ngreen: the words after which the sentence ends",
        fontsize=f + 1,
    )
    return ax


# ---- the model -----------------------------------------------------------------


def _box(ax, x, y, w, h, text, color, fontsize):
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=color,
            ec="#4a4a4a",
            lw=0.9,
            zorder=2,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3)


def _arrow(ax, start, end, color=EDGE_COLOR, **kw):
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=10, color=color, lw=1.1, **kw
        )
    )


def plot_architecture(model, *, ax=None, figsize=(7.5, 9.5), fontsize=8.5):
    """The architecture of a :class:`~toygpt.model.GPTModel`, bottom to top, with the
    shapes of the tensors between the layers, read from the model itself: ``B`` batch,
    ``T`` positions. One block is drawn (the model repeats it ``num_layers`` times),
    with its two residual paths (red): ``x + attention(LN(x))``, ``x + MLP(LN(x))``.
    Returns the ``Axes``.
    """
    try:
        V, C = model.token_embedding.weight.shape
        ctx = model.position_encoding.weight.shape[0]
        blocks = list(model.blocks)
        block = blocks[0]
        heads, head_dim = block.attn.num_heads, block.attn.head_dim
        hidden = block.ffn[0].out_features
    except (AttributeError, IndexError, TypeError) as error:
        raise TypeError(
            f"model must be a toygpt GPTModel, got {type(model).__name__}"
        ) from error
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, dpi=110)
    f = fontsize
    w, h = 3.6, 0.55
    ys = {}

    def layer(name, y, text, color="#ffffff", width=w, x=0.0):
        _box(ax, x, y, width, h, text, color, f)
        ys[name] = y

    def shape(y, text):
        ax.text(2.05, y, text, ha="left", va="center", fontsize=f - 0.5, color="#333")

    # bottom to top
    layer("ids", 0.0, f"token ids  (B, T),  T ≤ {ctx}", "#eeeeee")
    layer("tok", 1.2, f"token embedding\n{V} × {C}", "#fde0c5", width=2.2, x=-1.25)
    layer("posn", 1.2, f"position embedding\n{ctx} × {C}", "#fde0c5", width=2.2, x=1.25)
    _arrow(ax, (-0.6, 0.3), (-1.0, 0.9))
    _arrow(ax, (0.6, 0.3), (1.0, 0.9))
    add0 = 2.25
    ax.text(0, add0, "+", ha="center", va="center", fontsize=f + 6, zorder=3)
    _arrow(ax, (-1.25, 1.5), (-0.2, add0 - 0.05))
    _arrow(ax, (1.25, 1.5), (0.2, add0 - 0.05))
    shape(add0, f"x: (B, T, {C})")

    # one block, framed, "× N"
    b0 = add0 + 0.55
    ln1, att, add1 = b0 + 0.55, b0 + 1.45, b0 + 2.3
    ln2, mlp, add2 = b0 + 3.1, b0 + 4.0, b0 + 4.85
    frame_top = add2 + 0.45
    ax.add_patch(
        FancyBboxPatch(
            (-2.35, b0),
            4.3,
            frame_top - b0,
            boxstyle="round,pad=0.02,rounding_size=0.15",
            fc="#f4f8fc",
            ec="#1f77b4",
            lw=1.2,
            ls="--",
            zorder=0,
        )
    )
    ax.text(
        -2.2,
        frame_top - 0.22,
        f"transformer block × {len(blocks)}",
        fontsize=f,
        fontweight="bold",
        color="#1f77b4",
        va="center",
    )
    layer("ln1", ln1, "LayerNorm", "#e8e8e8", width=2.4)
    layer(
        "att",
        att,
        f"causal self-attention\n{heads} heads × {head_dim} dims",
        "#dbe9f6",
        width=2.4,
    )
    layer("ln2", ln2, "LayerNorm", "#e8e8e8", width=2.4)
    layer("mlp", mlp, f"MLP  {C} → {hidden} → {C}\n(GELU)", "#dbe9f6", width=2.4)
    for y in (add1, add2):
        ax.text(0, y, "+", ha="center", va="center", fontsize=f + 6, zorder=3)
        shape(y, f"(B, T, {C})")
    _arrow(ax, (0, add0 + 0.15), (0, ln1 - h / 2))
    _arrow(ax, (0, ln1 + h / 2), (0, att - h / 2))
    _arrow(ax, (0, att + h / 2), (0, add1 - 0.15))
    _arrow(ax, (0, add1 + 0.15), (0, ln2 - h / 2))
    _arrow(ax, (0, ln2 + h / 2), (0, mlp - h / 2))
    _arrow(ax, (0, mlp + h / 2), (0, add2 - 0.15))
    # residual paths: around each sub-layer, into the "+"
    for low, high in ((add0 + 0.3, add1), (add1 + 0.3, add2)):
        ax.plot([0, -1.7, -1.7], [low, low, high], color=RESIDUAL_COLOR, lw=1.4)
        _arrow(ax, (-1.7, high), (-0.15, high), color=RESIDUAL_COLOR)
    ax.text(
        -1.75,
        (add0 + add1) / 2 + 0.1,
        "residual",
        rotation=90,
        ha="right",
        va="center",
        fontsize=f - 1,
        color=RESIDUAL_COLOR,
    )

    top = frame_top + 0.6
    layer("lnf", top, "final LayerNorm", "#e8e8e8", width=2.4)
    layer("head", top + 1.0, f"output head (linear)\n{C} → {V}", "#d9f0d3", width=2.4)
    layer("logits", top + 2.0, f"logits  (B, T, {V})", "#eeeeee")
    _arrow(ax, (0, add2 + 0.15), (0, top - h / 2))
    _arrow(ax, (0, top + h / 2), (0, top + 1.0 - h / 2))
    _arrow(ax, (0, top + 1.0 + h / 2), (0, top + 2.0 - h / 2))
    shape(top, f"(B, T, {C})")
    ax.set_xlim(-2.6, 3.6)
    ax.set_ylim(-0.5, top + 2.5)
    ax.set_aspect("equal")
    ax.axis("off")
    params = sum(p.numel() for p in model.parameters())
    ax.set_title(
        f"GPTModel: {len(blocks)} blocks, d_model {C}, {heads} heads, "
        f"vocabulary {V}, context {ctx} ({params:,} parameters)",
        fontsize=f + 1,
    )
    return ax
