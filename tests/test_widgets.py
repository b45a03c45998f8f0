"""The sliders build and draw their first figure without a running kernel."""

import matplotlib.pyplot as plt
import pytest
import torch

from toygpt import ToyLanguage, plots, widgets

pytest.importorskip("ipywidgets")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_sliders():
    logits = torch.randn(8, generator=torch.Generator().manual_seed(0))
    labels = list("abcdefgh")
    for explore in (
        widgets.explore_temperature,
        widgets.explore_top_k,
        widgets.explore_top_p,
        widgets.explore_min_p,
    ):
        box = explore(logits, labels)
        sliders = [
            c for c in box.widget.children if hasattr(c, "value") and c.description
        ]
        assert sliders, explore.__name__


def test_beam_slider():
    lang = ToyLanguage()
    box = widgets.explore_beams(
        lang.as_model(),
        lang.tokenizer().encode("the dog"),
        lang.vocab,
        eos_token_id=lang.eos_id,
    )
    assert {
        c.description for c in box.widget.children if hasattr(c, "description")
    } >= {"beams"}


def test_web_slider_embeds_one_frame_per_value():
    drawn = []

    def draw(value, ax):
        drawn.append(value)
        ax.bar([0, 1], [value, 1 - value])

    html = widgets.web_slider(draw, [0.2, 0.5, 0.8]).data
    assert 'type="range"' in html and html.count("data:image/png;base64") == 3
    assert set(drawn) == {0.2, 0.5, 0.8}
    with pytest.raises(ValueError, match="values"):
        widgets.web_slider(draw, [])


def test_web_slider_frames_share_one_colour_scale_and_axis_limits():
    axes = []

    def heat(scale, ax):
        plots.plot_heatmap(
            torch.tensor([0.1, 0.2, 0.3]) * scale / 2, ["a", "b", "c"], ax=ax
        )
        axes.append(ax.collections[0])  # the heatmap (outlives the cleared figure)

    html = widgets.web_slider(heat, [1.0, 2.0, 3.0]).data
    rendered = axes[-3:]
    clims = {mesh.get_clim() for mesh in rendered}
    # one scale: the smallest and largest value over all frames (0.1 and 0.9)
    assert len(clims) == 1
    low, high = clims.pop()
    assert (round(low, 6), round(high, 6)) == (0.05, 0.45)
    assert html.count("data:image/png;base64") == 3
    assert "font-awesome" not in html and "https://" not in html

    axes.clear()
    widgets.web_slider(heat, [1.0, 2.0], vmin=0.0, vmax=1.0)
    assert {mesh.get_clim() for mesh in axes[-2:]} == {(0.0, 1.0)}

    bars = []

    def bar(height, ax):
        ax.bar([0, 1], [height, 1])
        seen = [ax.get_ylim()]  # this frame's y limits, as they change
        bars.append(seen)
        ax.callbacks.connect("ylim_changed", lambda a: seen.append(a.get_ylim()))

    widgets.web_slider(bar, [0.5, 4.0])
    # every rendered frame was set to the union of the frames' limits
    final = {tuple(map(float, seen[-1])) for seen in bars[-2:]}
    assert len(final) == 1 and final.pop()[1] >= 4.0
    assert float(bars[0][0][1]) < 4.0  # frame 0 alone would have stopped lower


def test_web_slider_frames_are_small_and_sharp():
    html = widgets.web_slider(lambda v, ax: ax.plot([0, 1], [0, v]), [1, 2]).data
    import base64
    import io
    import re

    from PIL import Image

    frame = re.search(r"data:image/png;base64,([A-Za-z0-9+/=\\\s]+)", html).group(1)
    image = Image.open(io.BytesIO(base64.b64decode(re.sub(r"[\\\s]", "", frame))))
    assert image.mode == "P"  # 256 colours
    # the column at 110 dpi (matplotlib rounds the pixel size down)
    assert abs(image.width - widgets.COLUMN_INCHES * 110) <= 1


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"figsize": (12, 3)}, "figsize"),
        ({"dpi": 60}, "dpi"),
        ({"vmin": 1.0, "vmax": 0.5}, "vmin"),
    ],
)
def test_web_slider_rejects_settings_that_do_not_read(kwargs, words):
    with pytest.raises(ValueError, match=words):
        widgets.web_slider(lambda v, ax: None, [1], **kwargs)
