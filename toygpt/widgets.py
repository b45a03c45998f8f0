"""Sliders for the chapters (ipywidgets; Jupyter, Colab and Binder run them), and
:func:`web_slider`, a slider over pre-drawn frames that also works on the web page.

Each explorer redraws a figure from :mod:`toygpt.plots` when a slider moves. The chapters
always draw the same figure once with default values before calling one of these, so the
web book (which has no kernel) still shows it.

    from toygpt.widgets import explore_temperature
    explore_temperature(logits, labels)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
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
    """A slider for p: the cumulative sum with the cut, and the kept tokens renormalised."""
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
    """A slider for min-p: tokens kept when the cut is a fraction of the top probability."""
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


def web_slider(draw, values, *, figsize=(10, 3.2), dpi=60, interval_ms=700):
    """A slider that needs no kernel: one figure is drawn in advance for each of ``values``,
    and matplotlib's JavaScript player shows them with a slider and play buttons.

    ``draw(value, ax)`` draws one frame into ``ax``. The chapters put one under each live
    slider, so readers of the web book can move something too. Returns an ``IPython``
    ``HTML`` object (the frames are embedded as images, about 10-20 kB each).
    """
    from IPython.display import HTML
    from matplotlib import animation

    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    fig = plt.figure(figsize=figsize, dpi=dpi)

    def frame(i):
        fig.clear()  # colour bars and legends are redrawn with each frame
        draw(values[i], fig.add_subplot())

    player = animation.FuncAnimation(
        fig, frame, frames=len(values), interval=interval_ms
    )
    html = player.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(html)
