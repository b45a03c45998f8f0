"""The benchmarks' measuring sticks: the lean decode loop must pick generate's tokens
(else its times mean nothing), and the round timing must pair rounds correctly."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lean_decode import lean_greedy  # noqa: E402
from timing import interleaved, ratio, ratios  # noqa: E402

from toygpt import generate  # noqa: E402


def test_lean_loop_picks_generates_tokens_at_batch_one(tiny_model):
    ids = torch.tensor([[3, 1, 4]])
    assert torch.equal(lean_greedy(tiny_model, ids, 5), generate(tiny_model, ids, 5))
    with pytest.raises(ValueError, match="max_new_tokens"):
        lean_greedy(tiny_model, ids, 0)  # would still append one token


def test_lean_loop_picks_generates_tokens_for_a_padded_batch(tiny_model):
    ids = torch.tensor([[0, 0, 7, 2], [5, 6, 7, 8], [0, 9, 9, 1]])
    mask = (ids != 0).long()
    want = generate(tiny_model, ids, 4, attention_mask=mask)
    assert torch.equal(lean_greedy(tiny_model, ids, 4, attention_mask=mask), want)


def test_interleaved_times_every_workload_every_round():
    calls = []
    work = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = interleaved(work, 3)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up each, then 3 rounds
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    with pytest.raises(ValueError, match="repeats"):
        interleaved({"a": lambda: None}, 0)


def test_ratio_pairs_rounds_and_takes_the_median():
    assert ratios([2.0, 9.0, 4.0], [1.0, 3.0, 1.0]) == [2.0, 3.0, 4.0]
    assert ratio([2.0, 9.0, 4.0], [1.0, 3.0, 1.0]) == 3.0
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])
