"""The sliders build and draw their first figure without a running kernel."""

import matplotlib.pyplot as plt
import pytest
import torch

from toygpt import ToyLanguage, widgets

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
