"""Training on the toy language: batches, losses against the truth, a few steps that help, the CLI."""

import math

import pytest
import torch

from toygpt.language import ToyLanguage
from toygpt.model import GPTModel
from toygpt.pretrained import load_pretrained
from toygpt.training import evaluate, main, make_batch, mean_kl, train


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


def tiny_model(lang, seed=0):
    torch.manual_seed(seed)
    return GPTModel(
        len(lang.vocab),
        d_model=16,
        num_heads=2,
        num_layers=1,
        dropout=0.0,
        context_length=16,
    )


def test_make_batch_pads_and_masks():
    inputs, targets = make_batch([[7, 1, 2, 8], [7, 3, 8]], pad_id=8)
    assert inputs.tolist() == [[7, 1, 2], [7, 3, 8]]
    assert targets.tolist() == [[1, 2, 8], [3, 8, -100]]


def test_padding_does_not_change_the_loss(lang):
    model = tiny_model(lang)
    long, short = (
        [lang.bos_id, 0, 1, 2, 3, 4, 5, lang.eos_id],
        [lang.bos_id, 0, 1, lang.eos_id],
    )
    together = evaluate(model, lang, [long, short])
    alone = (
        evaluate(model, lang, [long]) * 7 + evaluate(model, lang, [short]) * 3
    ) / 10
    assert together == pytest.approx(alone, rel=1e-5)


def test_the_truth_scores_the_floor_and_zero_kl(lang):
    """The oracle's log-probabilities as logits: its loss is the truth's own, its KL is 0."""
    oracle = lang.as_model()
    sentences = lang.sample(300, generator=torch.Generator().manual_seed(8))
    truth = -sum(lang.sequence_log_prob(s) for s in sentences) / sum(
        len(s) - 1 for s in sentences
    )
    assert evaluate(oracle, lang, sentences) == pytest.approx(truth, rel=1e-5)
    assert mean_kl(oracle, lang, sentences) == pytest.approx(0.0, abs=1e-6)


def test_mean_kl_by_hand(lang):
    model = tiny_model(lang)
    sentence = lang.sample(1, generator=torch.Generator().manual_seed(2))[0]
    with torch.no_grad():
        log_q = model(torch.tensor([sentence[:-1]]))[0].log_softmax(-1)
    by_hand = []
    for t in range(len(sentence) - 1):
        p = lang.next_token_probs(sentence[: t + 1])
        kept = p > 0
        by_hand.append(float((p[kept] * (p[kept].log() - log_q[t][kept])).sum()))
    assert mean_kl(model, lang, [sentence]) == pytest.approx(
        sum(by_hand) / len(by_hand), rel=1e-4
    )
    assert (
        mean_kl(model, lang, [sentence]) > 0.1
    )  # an untrained model is far from the truth


def test_a_few_steps_lower_the_loss(lang):
    model = tiny_model(lang)
    val = lang.sample(200, generator=torch.Generator().manual_seed(1))
    before = evaluate(model, lang, val)
    history = train(
        model,
        lang,
        steps=40,
        batch_size=16,
        lr=1e-2,
        seed=0,
        val_sentences=val,
        eval_every=10,
        progress=False,
    )
    after = evaluate(model, lang, val)
    assert after < before - 0.5
    assert history["val_loss"][-1] == pytest.approx(after)
    assert (
        len(history["step"])
        == len(history["train_loss"])
        == len(history["val_loss"])
        == 4
    )
    assert history["step"][-1] == 40
    assert history["entropy_floor"] == lang.entropy_floor
    assert history["val_floor"] == pytest.approx(
        -sum(lang.sequence_log_prob(s) for s in val) / sum(len(s) - 1 for s in val)
    )
    assert not model.training


def test_training_is_reproducible(lang):
    losses = []
    for _ in range(2):
        model = tiny_model(lang)
        losses.append(
            train(model, lang, steps=5, batch_size=8, lr=1e-3, seed=3, progress=False)[
                "train_loss"
            ]
        )
    assert losses[0] == losses[1]


def test_bad_arguments_raise(lang):
    model = tiny_model(lang)
    with pytest.raises(ValueError, match="steps"):
        train(model, lang, steps=0, batch_size=8, lr=1e-3, seed=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, lang, steps=1, batch_size=0, lr=1e-3, seed=0, progress=False)
    with pytest.raises(TypeError, match="steps"):
        train(model, lang, steps=1.5, batch_size=8, lr=1e-3, seed=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(model, lang, steps=1, batch_size=8, lr=-1.0, seed=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(model, lang, steps=1, batch_size=8, lr=math.nan, seed=0, progress=False)
    with pytest.raises(TypeError, match="lang"):
        train(model, "language", steps=1, batch_size=8, lr=1e-3, seed=0, progress=False)
    with pytest.raises(TypeError, match="model"):
        evaluate("model", lang, [[lang.bos_id, lang.eos_id]])
    wrong = GPTModel(
        10, d_model=16, num_heads=2, num_layers=1, dropout=0.0, context_length=16
    )
    with pytest.raises(ValueError, match="vocab_size"):
        evaluate(wrong, lang, [[lang.bos_id, lang.eos_id]])
    with pytest.raises(ValueError, match="sentences"):
        evaluate(model, lang, [])
    with pytest.raises(ValueError, match="sentences"):
        mean_kl(model, lang, [[lang.bos_id]])


def test_command_line_writes_a_loadable_checkpoint(lang, tmp_path, capsys):
    out = tmp_path / "small.pt"
    args = [
        "--output",
        str(out),
        "--steps",
        "3",
        "--d-model",
        "16",
        "--num-heads",
        "2",
        "--num-layers",
        "1",
    ]
    main(args + ["--test-sentences", "100", "--no-progress"])
    assert "entropy floor" in capsys.readouterr().out
    model, tokenizer = load_pretrained(out)
    assert model.config["d_model"] == 16 and tokenizer.vocab == lang.vocab
    assert not model.training
