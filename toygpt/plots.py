"""Every figure of the book, in one style.

``plot_heatmap`` is the lesson's figure (a row of next-word probabilities with the
chosen word marked); it also draws several rows at once, e.g. one per temperature. The
others: embeddings (token / position / sum), attention per head, a filter's kept vs
removed tokens, the top-p cut on the cumulative sum, and the beam-search tree.

Figures carry English text only (fonts for other scripts differ between machines).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.patches import Rectangle

__all__ = [
    "use_book_style",
    "plot_heatmap",
    "plot_embeddings",
    "plot_attention",
    "plot_filter",
    "plot_top_p_cut",
    "plot_beam_tree",
    "PROB_CMAP",
    "EMBED_CMAP",
]

PROB_CMAP = "Blues"  # probabilities: sequential, white = 0
EMBED_CMAP = "coolwarm"  # embeddings: diverging around 0, as in the lesson
MARK_COLOR = "#d62728"  # the chosen word
KEPT_COLOR, REMOVED_COLOR, FINISHED_COLOR = "#1f77b4", "#c7c7c7", "#2ca02c"


def use_book_style() -> None:
    """The book's one style: seaborn's white theme, readable sizes, tight layouts."""
    # seaborn 0.13 calls a matplotlib method that matplotlib >= 3.11 plans to deprecate;
    # the warning is not the reader's concern and would clutter every chapter.
    warnings.filterwarnings(
        "ignore", message="The set_bad function", category=PendingDeprecationWarning
    )
    sns.set_theme(style="white", context="notebook", font_scale=0.95)
    plt.rcParams.update(
        {
            "figure.dpi": 90,
            "figure.autolayout": True,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "svg.hashsalt": "toygpt",
        }
    )


use_book_style()


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _check_probs(data: np.ndarray, name: str, *, rows_sum_to_one: bool) -> None:
    """Probabilities: finite, in [0, 1]; each row sums to 1 where a distribution is
    expected, and never to more than 1 (a part of a distribution may sum to less)."""
    if data.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(data).all():
        raise ValueError(f"{name} must be finite probabilities, got NaN or inf")
    if data.min() < 0 or data.max() > 1:
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got values in "
            f"[{data.min():.4g}, {data.max():.4g}] (logits? apply softmax first)"
        )
    sums = np.atleast_1d(data.sum(-1)).ravel()
    if rows_sum_to_one and not np.allclose(sums, 1.0, atol=1e-4):
        raise ValueError(
            f"each row of {name} must sum to 1 (a distribution), got sums "
            f"{np.round(sums, 4).tolist()[:8]}"
        )
    if (sums > 1 + 1e-4).any():
        raise ValueError(
            f"a row of {name} sums to more than 1: {np.round(sums, 4).tolist()[:8]}"
        )


def _index(value, n: int, name: str) -> int:
    """An int in [0, n): a Python or NumPy int, or a one-element integer tensor."""
    if (
        isinstance(value, torch.Tensor)
        and value.numel() == 1
        and not (value.dtype.is_floating_point or value.dtype == torch.bool)
    ):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int index, got {value!r}")
    if not 0 <= value < n:
        raise ValueError(f"{name} must be in [0, {n - 1}], got {int(value)}")
    return int(value)


def _labels_for(
    n: int, labels: Sequence[str] | None, name: str = "labels"
) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n)]
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(
            f"{name} has {len(labels)} entries but the data has {n} columns"
        )
    return labels


def plot_heatmap(
    probs,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    selected_idx=None,
    ax=None,
    row_labels: Sequence[str] | None = None,
    annotate: bool | None = None,
    cmap: str = PROB_CMAP,
    vmin: float = 0.0,
    vmax: float | None = None,
):
    """Probabilities as a heatmap: one row ``(V,)``, or several rows ``(R, V)``.

    ``labels`` names the columns (the words); ``selected_idx`` marks the chosen word
    with a red frame: an int (every row) or one int per row (``None`` for no mark in
    that row). Numbers are written in the cells when there are few enough columns.
    ``vmin``/``vmax`` fix the colour scale (default: 0 to the largest value), so that
    figures to be compared (a slider's frames) share one scale. Values must be
    probabilities: in [0, 1], no row summing to more than 1. Returns the ``Axes``.

    The lesson's call works as is:
    ``plot_heatmap(probs, title="Greedy", selected_idx=3)``.
    """
    data = _to_numpy(probs)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise ValueError(f"probs must have shape (V,) or (rows, V), got {data.shape}")
    _check_probs(data, "probs", rows_sum_to_one=False)
    rows, cols = data.shape
    labels = _labels_for(cols, labels)
    row_labels = (
        _labels_for(rows, row_labels, "row_labels")
        if row_labels is not None
        else [""] * rows
    )
    if annotate is None:
        annotate = cols <= 16
    if ax is None:
        width = min(max(6.0, 0.55 * cols + 1.5), 18.0)
        _, ax = plt.subplots(figsize=(width, 0.55 * rows + 1.6))
    sns.heatmap(
        data,
        ax=ax,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax if vmax is not None else max(float(data.max()), vmin + 1e-9),
        annot=annotate,
        fmt=".2f",
        annot_kws={"fontsize": 8},
        cbar=True,
        cbar_kws={"label": "probability", "shrink": 0.9},
        linewidths=0.5,
        linecolor="white",
        xticklabels=labels,
        yticklabels=row_labels,
        square=False,
    )
    ax.tick_params(
        axis="x", rotation=90 if cols > 10 or max(map(len, labels)) > 6 else 0
    )
    ax.tick_params(axis="y", rotation=0)
    if selected_idx is not None:
        per_row = (
            list(selected_idx)
            if isinstance(selected_idx, (list, tuple))
            else [selected_idx] * rows
        )
        if len(per_row) != rows:
            raise ValueError(f"selected_idx has {len(per_row)} entries for {rows} rows")
        per_row = [
            None if idx is None else _index(idx, cols, "selected_idx")
            for idx in per_row
        ]
        for r, idx in enumerate(per_row):
            if idx is None:
                continue
            ax.add_patch(
                Rectangle(
                    (idx, r),
                    1,
                    1,
                    fill=False,
                    edgecolor=MARK_COLOR,
                    lw=2.5,
                    clip_on=False,
                )
            )
        if rows == 1:
            tick = (
                ax.get_xticklabels()[int(per_row[0])]
                if per_row[0] is not None
                else None
            )
            if tick is not None:
                tick.set_color(MARK_COLOR)
                tick.set_fontweight("bold")
    if title:
        ax.set_title(title)
    return ax


def plot_embeddings(
    token,
    position,
    combined=None,
    *,
    tokens: Sequence[str] | None = None,
    titles=("Token Embedding", "Positional Encoding", "Token + Positional Encoding"),
    figsize=(18, 5),
    limit: float | None = None,
):
    """The lesson's three heatmaps side by side: token embeddings, position embeddings
    and their sum (the transformer's input), each ``(seq_len, d_model)``. One colour
    scale, ``-limit`` to ``limit`` (default: the largest absolute value). Returns
    the figure."""
    token, position = _to_numpy(token), _to_numpy(position)
    combined = token + position if combined is None else _to_numpy(combined)
    if not token.shape == position.shape == combined.shape or token.ndim != 2:
        raise ValueError(
            "token, position and combined must have one shape (seq_len, d_model), got "
            f"{token.shape}, {position.shape} and {combined.shape}"
        )
    for name, m in (("token", token), ("position", position), ("combined", combined)):
        if not np.isfinite(m).all():
            raise ValueError(f"{name} has NaN or inf entries")
    if tokens is not None and len(tokens) != token.shape[0]:
        raise ValueError(
            f"tokens has {len(tokens)} entries but the data has {token.shape[0]} rows"
        )
    if limit is None:
        limit = float(max(abs(m).max() for m in (token, position, combined))) or 1.0
    elif not limit > 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    fig, axes = plt.subplots(1, 3, figsize=figsize)
    yticks = list(tokens) if tokens is not None else "auto"
    for ax, data, title in zip(axes, (token, position, combined), titles):
        sns.heatmap(
            data,
            ax=ax,
            cmap=EMBED_CMAP,
            center=0.0,
            vmin=-limit,
            vmax=limit,
            yticklabels=yticks,
            xticklabels=16,
            cbar_kws={"shrink": 0.8},
        )
        ax.set_title(title)
        ax.set_xlabel("embedding dimension")
        ax.set_ylabel(
            "token"
            if tokens is not None and title != titles[1]
            else "position in the sequence"
        )
        ax.tick_params(axis="y", rotation=0)
    return fig


def plot_attention(
    weights, tokens: Sequence[str], *, title: str | None = None, head_titles=None
):
    """Attention weights of one layer, ``(heads, T, T)`` (or ``(T, T)``): row = the word
    that looks, column = the word it looks at. Returns the figure."""
    w = _to_numpy(weights)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise ValueError(
            f"weights must have shape (heads, T, T) or (T, T), got {w.shape}"
        )
    heads, T, keys = w.shape
    if keys != T:
        raise ValueError(f"weights must be square (T, T) per head, got {w.shape}")
    _check_probs(w, "weights", rows_sum_to_one=True)
    tokens = _labels_for(T, tokens, "tokens")
    if head_titles is not None and len(head_titles) != heads:
        raise ValueError(
            f"head_titles has {len(head_titles)} entries for {heads} heads"
        )
    cols = min(heads, 4)
    rows = (heads + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols + 0.8, 3.4 * rows + 0.4), squeeze=False
    )
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        sns.heatmap(
            w[h],
            ax=ax,
            cmap="viridis",
            vmin=0.0,
            vmax=1.0,
            square=True,
            cbar=h == heads - 1,
            xticklabels=tokens,
            yticklabels=tokens if h % cols == 0 else False,
        )
        ax.set_title(head_titles[h] if head_titles else f"head {h}", fontsize=10)
        ax.tick_params(axis="x", rotation=90)
        ax.tick_params(axis="y", rotation=0)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


def plot_filter(
    before,
    after,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    ax=None,
    sort: bool = True,
):
    """A decoding filter's effect: probabilities before (grey) and after the filter and
    renormalisation (blue); removed tokens keep only their grey bar and are struck out.

    ``before``/``after`` are logits (or log-probabilities) ``(V,)``; ``after`` has
    ``-inf`` where the filter removed a token. Returns the ``Axes``."""
    b = torch.as_tensor(before, dtype=torch.float32).detach().flatten()
    a = torch.as_tensor(after, dtype=torch.float32).detach().flatten()
    if b.shape != a.shape:
        raise ValueError(
            "before and after must have the same shape, "
            f"got {tuple(b.shape)} and {tuple(a.shape)}"
        )
    for name, t in (("before", b), ("after", a)):
        if t.numel() == 0:
            raise ValueError(f"{name} is empty")
        if torch.isnan(t).any() or (t == float("inf")).any():
            raise ValueError(f"{name} must be logits: finite or -inf, got NaN or +inf")
    if torch.isinf(b).all() or torch.isinf(a).all():
        raise ValueError("before and after must each keep at least one token")
    p_before, p_after = b.softmax(-1).numpy(), a.softmax(-1).numpy()
    kept = torch.isfinite(a).numpy()
    labels = np.array(_labels_for(len(p_before), labels))
    order = np.argsort(-p_before, kind="stable") if sort else np.arange(len(p_before))
    x = np.arange(len(order))
    if ax is None:
        _, ax = plt.subplots(figsize=(min(max(6.0, 0.45 * len(order) + 2), 18.0), 3.6))
    ax.bar(x - 0.2, p_before[order], width=0.4, color=REMOVED_COLOR, label="before")
    ax.bar(
        x + 0.2,
        np.where(kept[order], p_after[order], 0.0),
        width=0.4,
        color=KEPT_COLOR,
        label="after (renormalised)",
    )
    ax.set_xticks(x, labels[order], rotation=90 if len(order) > 6 else 0)
    for tick, k in zip(ax.get_xticklabels(), kept[order]):
        if not k:
            tick.set_color("#999999")
            tick.set_fontstyle("italic")
    ax.set_ylabel("probability")
    ax.set_ylim(0, max(p_before.max(), p_after.max()) * 1.15)
    ax.legend(frameon=False, loc="upper right")
    sns.despine(ax=ax)
    ax.set_title(title or f"kept {int(kept.sum())} of {len(kept)} tokens")
    return ax


def plot_top_p_cut(
    probs,
    p: float,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    ax=None,
):
    """Top-p on the sorted distribution: bars = probabilities (blue = kept), line =
    running total, dashed line = p. The token whose bar crosses the line is the last
    one kept."""
    q = _to_numpy(probs)
    if q.ndim != 1:
        raise ValueError(f"probs must have shape (V,), got {q.shape}")
    # the top words of a distribution may leave out a tail (sum < 1), never exceed 1
    _check_probs(q, "probs", rows_sum_to_one=False)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"p must be a number in (0, 1], got {p!r}")
    labels = np.array(_labels_for(len(q), labels))
    order = np.argsort(-q, kind="stable")
    q = q[order]
    cumulative = np.cumsum(q)
    before = cumulative - q  # mass of the tokens ranked above
    kept = before < p
    kept[0] = True
    x = np.arange(len(q))
    if ax is None:
        _, ax = plt.subplots(figsize=(min(max(6.0, 0.45 * len(q) + 2), 18.0), 3.8))
    ax.bar(x, q, color=np.where(kept, KEPT_COLOR, REMOVED_COLOR))
    ax.plot(x, cumulative, "o-", color="#ff7f0e", ms=4, label="cumulative probability")
    ax.axhline(p, ls="--", color=MARK_COLOR, lw=1.2, label=f"p = {p:g}")
    ax.set_xticks(x, labels[order], rotation=90 if len(q) > 6 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("probability")
    ax.legend(frameon=False, loc="center right")
    sns.despine(ax=ax)
    ax.set_title(title or f"top-p = {p:g}: the nucleus holds {int(kept.sum())} tokens")
    return ax


def plot_beam_tree(
    result,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    ax=None,
    show_pruned: bool = True,
):
    """The search tree of a :func:`toygpt.beam_search` result.

    Columns are steps. Each node is a candidate (word and total log-probability):
    green = finished (ended with EOS or at the length limit), blue = kept as a running
    beam, grey = pruned. Edges join a candidate to the beam it extends. Returns
    the ``Axes``."""
    steps = result.steps
    if not steps:
        raise ValueError("the result has no search steps (max_new_tokens=0)")
    if labels is not None:
        needed = 1 + max(c.token for s in steps for c in s.candidates)
        if len(labels) < needed:
            raise ValueError(
                f"labels has {len(labels)} entries, but the tree has token id "
                f"{needed - 1}: give one label per vocabulary id"
            )
    words = (lambda t: labels[t]) if labels is not None else str
    if ax is None:
        height = max(len(s.candidates) for s in steps)
        _, ax = plt.subplots(figsize=(2.3 * (len(steps) + 1), 0.55 * height + 1.6))
    # y positions: the root, then each step's candidates top to bottom by rank
    beam_y = [0.0]  # y of each running beam before the current step
    ax.scatter([0], [0], s=220, color="#444444", zorder=3)
    ax.annotate(
        "prompt",
        (0, 0),
        xytext=(0, 10),
        textcoords="offset points",
        ha="center",
        fontsize=9,
    )
    colors = {"kept": KEPT_COLOR, "finished": FINISHED_COLOR, "pruned": REMOVED_COLOR}
    for s, step in enumerate(steps, start=1):
        cands = [c for c in step.candidates if show_pruned or c.status != "pruned"]
        n = len(cands)
        ys = [(n - 1) / 2 - i for i in range(n)]
        next_beam_y = []
        for c, y in zip(cands, ys):
            color = colors[c.status]
            ax.plot(
                [s - 1, s],
                [beam_y[c.parent], y],
                color=color,
                lw=1.6 if c.status != "pruned" else 0.8,
                zorder=1,
            )
            ax.scatter([s], [y], s=160, color=color, zorder=3, edgecolor="white")
            ax.annotate(
                f"{words(c.token)}  {c.score:.2f}",
                (s, y),
                xytext=(9, -3),
                textcoords="offset points",
                fontsize=8.5,
                color="black" if c.status != "pruned" else "#888888",
            )
            if c.status == "kept":
                next_beam_y.append(y)
        beam_y = next_beam_y
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color=colors[k], label=k)
        for k in ("kept", "finished", "pruned")
    ]
    ax.legend(
        handles=handles, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0)
    )
    ax.set_xticks(
        range(len(steps) + 1),
        ["start"] + [f"step {i}" for i in range(1, len(steps) + 1)],
    )
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(steps) + 0.9)
    sns.despine(ax=ax, left=True)
    ax.set_title(title or "beam search tree (score = sum of log-probabilities)")
    return ax
