"""Training on the toy language: batches, losses against the truth, a few steps that
help, the CLI."""

import json
import math

import pytest
import torch

from toygpt.language import ToyLanguage
from toygpt.model import GPTModel
from toygpt.pretrained import load_pretrained
from toygpt.training import (
    agreement,
    distill,
    evaluate,
    main,
    make_batch,
    mean_kl,
    train,
)


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
    """The oracle's log-probabilities as logits: its loss is the truth's own, its KL is
    0."""
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


# ---- issue 11 item 6: every option checked before the first step ------------------


@pytest.mark.parametrize(
    "option, value, error",
    [
        ("warmup", math.nan, TypeError),
        ("warmup", -1, ValueError),
        ("warmup", 5, ValueError),  # more warm-up steps than steps
        ("weight_decay", math.nan, ValueError),
        ("weight_decay", -0.1, ValueError),
        ("weight_decay", "0.1", TypeError),
        ("seed", -1, ValueError),
        ("seed", 2**64, ValueError),
        ("seed", 1.0, TypeError),
        ("eval_every", 0, ValueError),
        ("progress", "no", TypeError),
        ("lr", math.inf, ValueError),
        ("val_sentences", [[37, 99, 38]], ValueError),
        ("val_sentences", [[37, 1.0, 38]], TypeError),
        ("val_sentences", [[37]], ValueError),
    ],
)
def test_train_checks_every_option_first(lang, option, value, error):
    model = tiny_model(lang)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    options = dict(steps=4, batch_size=4, lr=1e-3, seed=0, progress=False)
    options[option] = value
    with pytest.raises(error, match=option):
        train(model, lang, **options)
    for k, v in model.state_dict().items():  # not one step was taken
        assert torch.equal(v, before[k])


def test_distill_brings_the_student_to_its_teacher(lang):
    teacher = tiny_model(lang, seed=1)
    train(teacher, lang, steps=60, batch_size=32, lr=3e-3, seed=0, progress=False)
    student = tiny_model(lang, seed=2)
    val = lang.sample(200, generator=torch.Generator().manual_seed(3))
    kl_before, _ = agreement(student, teacher, lang, val)
    history = distill(
        student, teacher, lang, steps=60, batch_size=32, lr=3e-3, seed=0,
        val_sentences=val, progress=False,
    )  # fmt: skip
    kl_after, agree = agreement(student, teacher, lang, val)
    assert kl_after < 0.5 * kl_before
    assert history["val_kl"][-1] == pytest.approx(kl_after, rel=1e-4)
    assert history["val_agreement"][-1] == pytest.approx(agree)
    assert agreement(teacher, teacher, lang, val) == (pytest.approx(0.0, abs=1e-6), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        distill(student, teacher, lang, steps=1, batch_size=2, lr=1e-3, seed=0,
                temperature=0.0)  # fmt: skip
    with pytest.raises(ValueError, match="warmup"):
        distill(student, teacher, lang, steps=1, batch_size=2, lr=1e-3, seed=0,
                warmup=-2)  # fmt: skip


TINY = ["--d-model", "16", "--num-heads", "2", "--num-layers", "1"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", str(2**64)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--test-sentences", "0"], "--test-sentences"),
        (["--steps", "0"], "steps"),
        (["--batch-size", "0"], "batch_size"),
        (["--lr", "nan"], "lr"),
        (["--num-heads", "3"], "divisible"),
        (["--context-length", "4"], "context_length"),
        (["--distill-from", "/nowhere/x.pt"], "--distill-from"),
    ],
)
def test_command_refuses_bad_settings_before_training(tmp_path, capsys, extra, message):
    # 10**9 steps: the command would run for days if it started before checking.
    args = ["--output", str(tmp_path / "m.pt"), "--steps", "1000000000", *TINY]
    with pytest.raises(SystemExit):
        main(args + extra + ["--no-progress"])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_command_checks_its_output_path(tmp_path, capsys):
    (tmp_path / "taken.pt").write_bytes(b"x")
    (tmp_path / "ckpt").mkdir()
    for output, message in (
        ("", "empty"),
        ("  ", "empty"),
        (str(tmp_path / "taken.pt"), "already exists"),
        (str(tmp_path / "ckpt"), "folder"),
        (str(tmp_path / "m.bin"), ".pt"),
    ):
        with pytest.raises(SystemExit):
            main(["--output", output, "--steps", "1000000000", "--no-progress", *TINY])
        assert message in capsys.readouterr().err, output
    assert (tmp_path / "taken.pt").read_bytes() == b"x"


def test_command_distills_a_draft(lang, tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    main(["--output", str(teacher), "--steps", "3", *TINY, "--test-sentences", "50",
          "--no-progress"])  # fmt: skip
    out = tmp_path / "draft.pt"
    main(["--output", str(out), "--distill-from", str(teacher), "--steps", "3",
          "--d-model", "8", "--test-sentences", "50", "--no-progress"])  # fmt: skip
    assert "greedy agreement" in capsys.readouterr().out
    model, _ = load_pretrained(out)
    assert model.config["d_model"] == 8 and model.config["num_layers"] == 1
    config = json.loads((tmp_path / "draft.json").read_text())
    assert config["training"]["distill_from"] == str(teacher)
    assert 0 <= config["metrics"]["greedy_agreement"] <= 1
    with pytest.raises(SystemExit):  # the same output again: refused ...
        main(["--output", str(out), "--distill-from", str(teacher), "--steps", "1",
              "--test-sentences", "5", "--no-progress"])  # fmt: skip
    main(["--output", str(out), "--distill-from", str(teacher), "--steps", "1",
          "--d-model", "8", "--test-sentences", "5", "--no-progress",
          "--overwrite"])  # fmt: skip
