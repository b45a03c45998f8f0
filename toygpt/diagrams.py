"""Two pictures drawn from the objects themselves, with matplotlib only (no Graphviz,
which Colab lacks): the toy language's grammar as a state graph (drawn by
:mod:`toygpt.grammar_diagram`), and the architecture of a
:class:`~toygpt.model.GPTModel` with the shapes its tensors have.

    from toygpt.diagrams import plot_grammar, plot_architecture
    plot_grammar(ToyLanguage())
    plot_architecture(model)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from toygpt.grammar_diagram import plot_grammar

__all__ = ["plot_grammar", "plot_architecture"]

EDGE_COLOR, RESIDUAL_COLOR = "#555555", "#d62728"


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
