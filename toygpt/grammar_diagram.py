"""The toy language's grammar as a state graph, drawn from ``lang.transitions`` with
matplotlib only (no Graphviz, which Colab lacks).

    from toygpt.grammar_diagram import plot_grammar
    plot_grammar(ToyLanguage())

The shipped grammar has a hand-placed layout (:data:`LAYOUT`, in inches on a 7.5-inch
column); any other grammar is laid out in columns by its longest path from ``START``.
The labels are then put where they touch nothing: each word label next to its arrow,
each list of final words next to its state, clear of every box, label and other arrow.
"""

from __future__ import annotations

from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.transforms import Bbox

__all__ = ["plot_grammar", "LAYOUT"]

NODE_COLOR, START_COLOR, END_COLOR = "#dbe9f6", "#fde0c5", "#d9f0d3"
EDGE_COLOR, FINAL_TEXT = "#555555", "#2b7a2b"
START, END = "START", "END"

# Where each state of ToyLanguage's grammar sits, in inches (x right, y up).
LAYOUT = {
    "HELLO": (0.9, 7.75), "HELLO_WORLD": (2.05, 7.75), "THIS": (3.05, 7.75),
    "THIS_IS": (4.05, 7.75), "IS_NOT": (5.15, 7.75), "NOT_A": (6.25, 7.75),
    "IS_THE": (5.15, 7.0), "KIND": (6.3, 6.85), "IS_A": (5.15, 6.1),
    "LANGUAGE": (6.9, 5.6), "START": (0.35, 4.55), "MACHINE": (3.2, 4.55),
    "MACHINE_IS": (4.45, 5.5), "WRITES": (4.45, 4.85), "READS": (4.45, 4.2),
    "LEARNS": (4.45, 3.55), "TEXT": (6.05, 4.6), "SUBJECT": (0.8, 2.7),
    "SUBJECT_ADJ": (2.15, 2.75), "ANIMAL": (3.05, 1.5), "ANIMAL_IS": (4.1, 2.3),
    "RUNS": (4.1, 1.5), "LIKES": (4.1, 0.7), "VERY": (5.05, 3.3), "OBJECT": (5.45, 0.7),
    "ADJ_END": (6.4, 2.7), "AND_ADJ": (7.0, 2.1), "DONE": (6.5, 0.7),
    "END": (7.15, 0.7),
}  # fmt: skip
SIZE = (7.5, 8.6)  # inches: LAYOUT's figure


def _final(lang) -> set[str]:
    """States after which the sentence can only end (``END``, and states like ``DONE``
    whose every word leads to ``END``)."""
    return {END} | {
        s for s, rows in lang.transitions.items() if all(n == END for _, _, n in rows)
    }


def _auto_layout(lang, final) -> tuple[dict, tuple[float, float]]:
    """Columns by longest path from START (every edge goes right), rows ordered by the
    mean row of each state's parents; the final states top right. In inches."""
    depth = {START: 0}
    for state in lang._topological_order():  # START first; each edge goes forward
        for _, _, nxt in lang.transitions[state]:
            if nxt not in final:
                depth[nxt] = max(depth.get(nxt, 0), depth[state] + 1)
    columns, row = defaultdict(list), {}
    for state in sorted(depth, key=depth.get):
        parents = [s for s, r in lang.transitions.items() for *_, n in r if n == state]
        row[state] = np.mean([row[p] for p in parents if p in row] or [0])
        columns[depth[state]].append(state)
    height = max(len(c) for c in columns.values())
    pos = {}
    for d, states in columns.items():
        for i, state in enumerate(sorted(states, key=row.get)):
            pos[state] = (0.5 + 1.3 * d, 1.1 * (height - i) + 0.4)
    top = 1.1 * height + 0.4
    for k, state in enumerate(sorted(final - {END}) + [END]):
        pos[state] = (0.5 + 1.3 * (len(columns) + k), top)
    return pos, (1.3 * (len(columns) + len(final)), top + 0.8)


def _two_lines(state: str) -> str:
    """A long state name on two lines, cut after an underscore: ``HELLO_\\nWORLD``."""
    if len(state) <= 7 or "_" not in state:
        return state
    middle = len(state) // 2 - 1
    cut = state.index("_", middle) if "_" in state[middle:] else state.rindex("_")
    return state[: cut + 1] + "\n" + state[cut + 1 :]


def _words(pairs, per_line=2) -> str:
    pairs = sorted(pairs, key=lambda wp: -wp[1])
    items = [f"{w} {p:.2f}".replace("0.", ".") for w, p in pairs]
    return "\n".join(
        ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    )


def _hits(box: Bbox, a, b) -> int:
    """How many of the segments ``a[i]``-``b[i]`` pass through the box."""
    d, inside = b - a, (a >= box.min) & (a <= box.max)
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = (box.min - a) / d, (box.max - a) / d
    lo = np.where(d == 0, np.where(inside, -np.inf, np.inf), np.minimum(u, v))
    hi = np.where(d == 0, np.where(inside, np.inf, -np.inf), np.maximum(u, v))
    return int((np.maximum(lo.max(1), 0) <= np.minimum(hi.min(1), 1)).sum())


class _Placer:
    """Puts texts at the free candidate spot closest to where they belong."""

    def __init__(self, ax, limits):
        self.ax, self.limits, self.taken, self.segments = ax, limits, [], []
        self.renderer = ax.figure.canvas.get_renderer()

    def size(self, text, **kw):
        t = self.ax.text(0, 0, text, **kw)
        box = t.get_window_extent(self.renderer).transformed(
            self.ax.transData.inverted()
        )
        t.remove()
        return box.width, box.height

    def place(self, texts, anchors, own=(), gap=0.03, **kw):
        """Writes the first of ``texts`` (ways to write the same thing) that fits, at
        the free spot nearest the first of ``anchors``, ``(x, y, dx, dy)``: a point and
        the side the text may lie on (in half widths and heights). A spot no other
        arrow crosses wins; if none is free, the first spot is taken anyway."""
        texts = [texts] if isinstance(texts, str) else list(dict.fromkeys(texts))
        (x0, y0), (x1, y1), (ax0, ay0) = *self.limits, anchors[0][:2]
        best, taken = None, np.array([b.extents for b in self.taken]).reshape(-1, 4)
        ends = [
            np.array([s[i] for s in self.segments if s[0] not in own]).reshape(-1, 2)
            for i in (1, 2)
        ]
        for rank, text in enumerate(texts):
            w, h = self.size(text, **kw)
            for x, y, dx, dy in anchors:
                cx, cy = x + dx * (w / 2 + gap), y + dy * (h / 2 + gap)
                box = Bbox.from_extents(
                    cx - w / 2 - gap,
                    cy - h / 2 - gap,
                    cx + w / 2 + gap,
                    cy + h / 2 + gap,
                )
                if box.x0 < x0 or box.x1 > x1 or box.y0 < y0 or box.y1 > y1:
                    continue
                if (
                    (taken[:, 0] < box.x1)
                    & (taken[:, 2] > box.x0)
                    & (taken[:, 1] < box.y1)
                    & (taken[:, 3] > box.y0)
                ).any():
                    continue
                cross = _hits(box, *ends) if len(ends[0]) else 0
                cost = 100 * cross + np.hypot(cx - ax0, cy - ay0) + 0.25 * rank
                cost += 0.4 * (dx != 0 or dy != 0)  # on its arrow is clearest
                if best is None or cost < best[0]:
                    best = (cost, cx, cy, box, text)
        if best is None:  # nowhere free: the first spot, overlapping
            x, y = anchors[0][:2]
            best = (0, x, y, Bbox.from_extents(x, y, x, y), texts[0])
        self.taken.append(best[3])
        return self.ax.text(best[1], best[2], best[4], ha="center", va="center", **kw)


def _along(p, q):
    """Candidate spots along the arrow p -> q, from its middle out, on it or beside."""
    for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85):
        x, y = p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])
        for dx, dy in (
            (0, 0),
            (0, 1),
            (0, -1),
            (1, 0),
            (-1, 0),
            (1, 1),
            (-1, 1),
            (1, -1),
            (-1, -1),
            (0, 2.5),
            (0, -2.5),
        ):
            yield (x, y, dx, dy)


def plot_grammar(lang, *, ax=None, fontsize=7.5):
    """The grammar of a :class:`~toygpt.language.ToyLanguage` as a state graph.

    Boxes are states (``START`` after ``<s>``, ``END`` after ``</s>``), read from left
    to right; an arrow joins two states and is labelled with every word that leads from
    one to the other, with its probability. The words after which the sentence must end
    (they lead to a state such as ``DONE``, from which only ``</s>`` follows, or are
    ``</s>`` itself) are written in green next to their state instead of as arrows to
    the far right, which would cross the picture. Returns the ``Axes``.
    """
    if not hasattr(lang, "transitions") or not hasattr(lang, "_topological_order"):
        raise TypeError(f"lang must be a ToyLanguage, got {type(lang).__name__}")
    if not isinstance(fontsize, (int, float)) or fontsize <= 0:
        raise ValueError(f"fontsize must be a positive number, got {fontsize!r}")
    final = _final(lang)
    edges = defaultdict(list)  # (state, next state) -> [(word, probability), ...]
    for state, rows in lang.transitions.items():
        for word, p, nxt in rows:
            edges[state, nxt].append((word, p))
    if set(LAYOUT) == set(lang.transitions) | {END}:
        pos, (width, height) = LAYOUT, SIZE
    else:
        pos, (width, height) = _auto_layout(lang, final)
    if ax is None:
        fig = plt.figure(figsize=(width, height), dpi=110, layout="none")
        ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    f = fontsize
    placer = _Placer(ax, ((0, 0), (width, height)))
    title = (
        f"The toy language: {len(lang.transitions)} states, "
        f"{sum(len(r) for r in lang.transitions.values())} word transitions "
        "(word, probability)\ngreen: the words after which the sentence ends"
    )
    placer.place(title, [(width / 2, height, 0, -1)], fontsize=f + 1.5, gap=0.05)
    boxes = {}
    for state, (x, y) in pos.items():
        color = START_COLOR if state == START else NODE_COLOR
        color = END_COLOR if state in final else color
        t = ax.text(
            x,
            y,
            _two_lines(state),
            fontsize=f + 0.5,
            fontweight="bold",
            ha="center",
            va="center",
            zorder=4,
            gid=f"state:{state}",
        )
        ext = t.get_window_extent(placer.renderer).transformed(ax.transData.inverted())
        box = FancyBboxPatch(
            (ext.x0, ext.y0),
            ext.width,
            ext.height,
            fc=color,
            boxstyle="round,pad=0.04",
            ec="#4a4a4a",
            lw=0.8,
            zorder=3,
            gid=f"state:{state}",
        )
        ax.add_patch(box)
        boxes[state] = box
        placer.taken.append(ext.padded(0.07))
    drawn = {k: v for k, v in edges.items() if k[1] not in final or k[0] in final}
    for src, dst in drawn:
        placer.segments.append(((src, dst), pos[src], pos[dst]))
        ax.add_artist(  # not add_patch: the limits are set, the clipping is slow
            FancyArrowPatch(
                pos[src],
                pos[dst],
                patchA=boxes[src],
                patchB=boxes[dst],
                arrowstyle="-|>",
                mutation_scale=8,
                color=EDGE_COLOR,
                lw=0.8,
                shrinkA=1,
                shrinkB=2,
                zorder=2,
                gid=f"edge:{src}>{dst}",
            )
        )
    label = dict(fontsize=f, linespacing=1.05, zorder=5)
    white = dict(boxstyle="square,pad=0.05", fc="white", ec="none")
    notes = defaultdict(list)
    for (src, dst), words in edges.items():
        if dst in final and src not in final:
            notes[src].append((words, dst))
    for state, ends in notes.items():  # next to their state: below, above, beside
        x, y = pos[state]
        ww, hh = placer.size(_two_lines(state), fontsize=f + 0.5, fontweight="bold")
        low, high = y - hh / 2 - 0.09, y + hh / 2 + 0.09
        spots = [(x + s, low, 0, -1) for s in (0, 0.25, -0.25, 0.5, -0.5)]
        spots += [(x + s, high, 0, 1) for s in (0, 0.25, -0.25, 0.5, -0.5)]
        spots += [(x + ww / 2 + 0.09, y, 1, 0), (x - ww / 2 - 0.09, y, -1, 0)]
        texts = [
            "\n".join(f"{_words(words, n)} \u2192 {dst}" for words, dst in ends)
            for n in (2, 1, 3)
        ]
        placer.place(texts, spots, color=FINAL_TEXT, gid=f"note:{state}", **label)
    for src, dst in sorted(drawn, key=lambda k: -len(edges[k])):
        words = edges[src, dst]
        placer.place(
            [_words(words, n) for n in (2, 1, 3)],
            list(_along(pos[src], pos[dst])),
            own=[(src, dst)],
            color="#222222",
            gid=f"edge:{src}>{dst}",
            bbox=white,
            **label,
        )
    return ax
