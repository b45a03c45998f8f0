"""Sliders for the chapters (ipywidgets; Jupyter, Colab and Binder run them), and
:func:`web_slider`, a slider over pre-drawn frames that also works on the web page.

Each explorer redraws a figure from :mod:`toygpt.plots` when a slider moves. The
chapters always draw the same figure once with default values before calling one of
these, so the web book (which has no kernel) still shows it.

    from toygpt.widgets import explore_temperature
    explore_temperature(logits, labels)
"""

from __future__ import annotations

import base64
import io
import re

import matplotlib.pyplot as plt
import numpy as np
import torch

from toygpt import plots
from toygpt.beam import beam_search
from toygpt.sampling import apply_temperature, min_p_filter, top_k_filter, top_p_filter

__all__ = [
    "explore_temperature",
    "explore_top_k",
    "explore_top_p",
    "explore_min_p",
    "explore_beams",
    "web_slider",
]


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as error:  # pragma: no cover - the requirements install it
        raise ImportError(
            "the sliders need ipywidgets: pip install ipywidgets"
        ) from error
    return ipywidgets


def _entropy(logits: torch.Tensor) -> float:
    p = logits.softmax(-1)
    return float(-(p[p > 0] * p[p > 0].log()).sum())


def explore_temperature(logits, labels, *, start: float = 1.0):
    """A slider for T: the distribution after ``logits / T`` and its entropy."""
    w = _ipywidgets()
    logits = torch.as_tensor(logits, dtype=torch.float32).flatten()

    def show(temperature):
        scaled = apply_temperature(logits, temperature)
        plots.plot_heatmap(
            scaled.softmax(-1),
            labels,
            selected_idx=int(scaled.argmax()),
            title=f"T = {temperature:.2f}: entropy {_entropy(scaled):.2f} nats",
        )
        plt.show()

    slider = w.FloatSlider(
        value=start, min=0.05, max=3.0, step=0.05, description="temperature"
    )
    return w.interact(show, temperature=slider)


def explore_top_k(logits, labels, *, start: int = 3):
    """A slider for k: which tokens top-k keeps and their renormalised probabilities."""
    w = _ipywidgets()
    logits = torch.as_tensor(logits, dtype=torch.float32).flatten()

    def show(k):
        plots.plot_filter(
            logits, top_k_filter(logits, k), labels, title=f"top-k, k = {k}"
        )
        plt.show()

    return w.interact(
        show, k=w.IntSlider(value=start, min=1, max=logits.numel(), description="k")
    )


def explore_top_p(logits, labels, *, start: float = 0.9):
    """A slider for p: the cumulative sum with the cut, and the kept tokens
    renormalised."""
    w = _ipywidgets()
    logits = torch.as_tensor(logits, dtype=torch.float32).flatten()

    def show(p):
        fig, (left, right) = plt.subplots(1, 2, figsize=(14, 3.8))
        plots.plot_top_p_cut(logits.softmax(-1), p, labels, ax=left)
        plots.plot_filter(
            logits,
            top_p_filter(logits, p),
            labels,
            ax=right,
            title="after renormalising",
        )
        plt.show()

    return w.interact(
        show,
        p=w.FloatSlider(value=start, min=0.05, max=1.0, step=0.01, description="p"),
    )


def explore_min_p(logits, labels, *, start: float = 0.1):
    """A slider for min-p: tokens kept when the cut is a fraction of the top
    probability."""
    w = _ipywidgets()
    logits = torch.as_tensor(logits, dtype=torch.float32).flatten()

    def show(min_p):
        plots.plot_filter(
            logits, min_p_filter(logits, min_p), labels, title=f"min-p = {min_p:.2f}"
        )
        plt.show()

    return w.interact(
        show,
        min_p=w.FloatSlider(
            value=start, min=0.0, max=1.0, step=0.01, description="min_p"
        ),
    )


def explore_beams(
    model,
    input_ids,
    labels,
    *,
    eos_token_id=None,
    max_new_tokens: int = 6,
    start: int = 2,
):
    """Sliders for the number of beams and the length penalty: the search tree."""
    w = _ipywidgets()

    def show(num_beams, length_penalty):
        result = beam_search(
            model,
            input_ids,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            length_penalty=length_penalty,
            eos_token_id=eos_token_id,
        )
        best = " ".join(labels[t] for t in result.sequences[0].tolist())
        plots.plot_beam_tree(
            result,
            labels,
            show_pruned=num_beams <= 3,
            title=f"{num_beams} beams, length penalty {length_penalty:g}: {best}",
        )
        plt.show()

    return w.interact(
        show,
        num_beams=w.IntSlider(value=start, min=1, max=6, description="beams"),
        length_penalty=w.FloatSlider(
            value=1.0, min=0.0, max=2.0, step=0.5, description="length pen."
        ),
    )


# The web book's text column at 1280 px is about 720 px wide: a frame drawn this wide
# (at >= 100 dpi) is shown at its own size, so its 9-10 pt labels stay readable.
COLUMN_INCHES = 7.5
# matplotlib's player draws its buttons with Font Awesome, linked from a CDN; plain
# characters need no font download (the web book requests nothing outside itself).
_ICONS = {
    "fa fa-minus": "&minus;",
    "fa fa-fast-backward": "|&#9664;&#9664;",
    "fa fa-step-backward": "|&#9664;",
    "fa fa-play fa-flip-horizontal": "&#9664;",
    "fa fa-pause": "&#10074;&#10074;",
    "fa fa-play": "&#9654;",
    "fa fa-step-forward": "&#9654;|",
    "fa fa-fast-forward": "&#9654;&#9654;|",
    "fa fa-plus": "+",
}
_CDN_LINK = re.compile(
    r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">'
)
# a frame in the player's script: base64 lines joined by a backslash and a newline
_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\\\s]+)")


def _mappables(ax):
    return [a for a in [*ax.collections, *ax.images] if a.get_array() is not None]


def _small_png(match) -> str:
    """A frame re-encoded as an optimised 256-colour PNG (figures have few colours)."""
    from PIL import Image

    data = base64.b64decode(re.sub(r"[\\\s]", "", match.group(1)))
    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, "png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def web_slider(
    draw,
    values,
    *,
    figsize=(COLUMN_INCHES, 3.0),
    dpi=110,
    interval_ms=700,
    vmin=None,
    vmax=None,
    colorbar_label="probability",
    share_axes=True,
):
    """A slider that needs no kernel: one figure is drawn in advance for each of
    ``values``, and matplotlib's JavaScript player shows them with a slider and play
    buttons. The chapters put one under each live slider, so that readers of the web
    book can move something too.

    ``draw(value, ax)`` draws one frame into ``ax``. Every frame uses ONE scale, so the
    eye compares like with like: colour-mapped artists (heatmaps) get the colour limits
    ``vmin``/``vmax`` (default: the smallest and largest value over all frames) and one
    colour bar labelled ``colorbar_label`` (a colour bar ``draw`` made is replaced);
    with ``share_axes`` the x and y limits are the union over all frames. Pass the same
    limits to the plotting call too (``plot_heatmap(..., vmin=0, vmax=0.4)``) so that
    its cell annotations pick their text colour on that scale.

    Frames are drawn at most ``COLUMN_INCHES`` wide (the web column) at >= 100 dpi, and
    stored as 256-colour PNGs. Returns an ``IPython`` ``HTML`` object (its element ids
    are random: mark the cell ``# NBVAL_IGNORE_OUTPUT``).

    >>> web_slider(lambda t, ax: ax.plot([0, 1], [0, t]), [0.5, 1.0])  # doctest: +SKIP
    """
    from IPython.display import HTML
    from matplotlib import animation

    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    if not callable(draw):
        raise TypeError(f"draw must be a function draw(value, ax), got {draw!r}")
    width, height = figsize
    if not 0 < width <= COLUMN_INCHES or not height > 0:
        raise ValueError(
            f"figsize must be (width, height) with 0 < width <= {COLUMN_INCHES} inches "
            f"(the web column; wider frames are shrunk and their text with them), "
            f"got {figsize}"
        )
    if not dpi >= 100:
        raise ValueError(f"dpi must be >= 100 so that frames read sharply, got {dpi}")
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ValueError(f"vmin must be < vmax, got {vmin} and {vmax}")

    fig = plt.figure(figsize=figsize, dpi=dpi)

    def draw_frame(i):
        fig.clear()
        ax = fig.add_subplot()
        draw(values[i], ax)
        for other in fig.axes:
            if other is not ax:
                other.remove()  # a colour bar of the frame's own scale
        return ax

    # A first pass over the frames finds the common scale (drawing is cheap; rendering
    # the images is what costs).
    low, high, xlims, ylims = [], [], [], []
    for i in range(len(values)):
        ax = draw_frame(i)
        for m in _mappables(ax):
            data = np.ma.masked_invalid(np.asarray(m.get_array(), dtype=float))
            if data.count():
                low.append(float(data.min()))
                high.append(float(data.max()))
        xlims.append(ax.get_xlim())
        ylims.append(ax.get_ylim())
    colour = bool(low)
    if colour:
        vmin = min(low) if vmin is None else vmin
        vmax = max(high) if vmax is None else vmax
        vmax = vmax if vmax > vmin else vmin + 1e-9

    def union(limits):
        lo = min(min(a, b) for a, b in limits)
        hi = max(max(a, b) for a, b in limits)
        return (hi, lo) if limits[0][0] > limits[0][1] else (lo, hi)

    def frame(i):
        ax = draw_frame(i)
        if share_axes:
            ax.set_xlim(union(xlims))
            ax.set_ylim(union(ylims))
        mappables = _mappables(ax)
        for m in mappables:
            m.set_clim(vmin, vmax)
        if colour and mappables:
            fig.colorbar(mappables[0], ax=ax, label=colorbar_label, shrink=0.9)

    player = animation.FuncAnimation(
        fig, frame, frames=len(values), interval=interval_ms
    )
    html = player.to_jshtml(default_mode="once")
    plt.close(fig)
    html = _CDN_LINK.sub("", html)
    for icon, text in _ICONS.items():
        html = html.replace(f'<i class="{icon}"></i>', text)
    return HTML(_PNG.sub(_small_png, html))
