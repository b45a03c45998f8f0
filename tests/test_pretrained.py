"""The shipped checkpoint: it loads safely, it is small, and it is close to the truth."""

import importlib.resources
import json
import math
import shutil

import pytest
import torch

from toygpt.language import ToyLanguage
from toygpt.pretrained import load_pretrained
from toygpt.training import evaluate, mean_kl

CHECKPOINTS = importlib.resources.files("toygpt") / "checkpoints"


@pytest.fixture(scope="module")
def lang():
    return ToyLanguage()


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()


def test_checkpoint_files_are_in_the_package_and_small():
    weights, config = CHECKPOINTS / "toygpt.pt", CHECKPOINTS / "config.json"
    assert weights.is_file() and config.is_file()
    with importlib.resources.as_file(weights) as path:
        assert path.stat().st_size <= 5 * 2**20


def test_shipped_model_and_tokenizer_match_the_language(lang, shipped):
    model, tokenizer = shipped
    assert not model.training
    assert tokenizer.vocab == lang.vocab
    assert (tokenizer.bos_id, tokenizer.eos_id) == (lang.bos_id, lang.eos_id)
    assert model.vocab_size == len(lang.vocab)
    assert model.context_length >= lang.max_sentence_length
    config = json.loads((CHECKPOINTS / "config.json").read_text())
    assert config["model"] == model.config


def test_shipped_model_is_close_to_the_truth(lang, shipped):
    model, _ = shipped
    sentences = lang.sample(
        300, generator=torch.Generator().manual_seed(2024)
    )  # not the training seed
    truth = -sum(lang.sequence_log_prob(s) for s in sentences) / sum(
        len(s) - 1 for s in sentences
    )
    assert mean_kl(model, lang, sentences) <= 0.02
    assert evaluate(model, lang, sentences) <= truth + 0.02


def test_shipped_model_predicts_the_lesson_prompt(lang, shipped):
    model, tokenizer = shipped
    ids = tokenizer.encode("hello world this is")
    with torch.no_grad():
        probs = model(ids)[0, -1].softmax(-1)
    torch.testing.assert_close(probs, lang.next_token_probs(ids), atol=0.03, rtol=0)


def test_greedy_trap_with_the_shipped_model(lang, shipped):
    from toygpt import beam_search, generate

    model, tokenizer = shipped
    ids = tokenizer.encode(lang.greedy_trap_prompt)
    greedy = generate(model, ids, lang.max_sentence_length, eos_token_id=lang.eos_id)[0]
    beam = beam_search(
        model,
        ids,
        num_beams=4,
        max_new_tokens=lang.max_sentence_length,
        length_penalty=0.0,
        eos_token_id=lang.eos_id,
    ).sequences[0]
    greedy_logp, beam_logp = (
        lang.sequence_log_prob(greedy),
        lang.sequence_log_prob(beam),
    )
    assert greedy[-1] == beam[-1] == lang.eos_id  # both whole sentences
    assert beam_logp - greedy_logp >= math.log(1.5), (
        tokenizer.decode(greedy),
        tokenizer.decode(beam),
    )


def test_load_from_a_path_or_a_folder(tmp_path, shipped):
    with importlib.resources.as_file(CHECKPOINTS) as folder:
        shutil.copytree(folder, tmp_path / "copy")
    for path in (
        tmp_path / "copy" / "toygpt.pt",
        tmp_path / "copy",
        str(tmp_path / "copy" / "toygpt.pt"),
    ):
        model, tokenizer = load_pretrained(path)
        assert not model.training and tokenizer.vocab == shipped[1].vocab
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, shipped[0].state_dict()[name])


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_pretrained(tmp_path / "nowhere.pt")
    with importlib.resources.as_file(CHECKPOINTS / "toygpt.pt") as weights:
        shutil.copy(weights, tmp_path / "toygpt.pt")  # no config.json beside it
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path / "toygpt.pt")


@pytest.fixture
def copy(tmp_path):
    with importlib.resources.as_file(CHECKPOINTS) as folder:
        shutil.copytree(folder, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_corrupt_weights_raise_value_error(copy):
    weights = copy / "toygpt.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match="not a valid toygpt checkpoint"):
        load_pretrained(weights)
    weights.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a valid toygpt checkpoint"):
        load_pretrained(weights)


def test_pickled_code_is_refused(copy):
    """weights_only=True: a file that needs arbitrary classes to unpickle is rejected."""
    torch.save({"weights": ToyLanguage()}, copy / "toygpt.pt")
    with pytest.raises(ValueError, match="not a valid toygpt checkpoint"):
        load_pretrained(copy)


def test_weights_that_do_not_fit_the_config_raise_value_error(copy):
    config = json.loads((copy / "config.json").read_text())
    config["model"]["num_layers"] += 1
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match"):
        load_pretrained(copy)


def test_corrupt_config_raises_value_error(copy):
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config"):
        load_pretrained(copy)


def test_bad_path_type_raises_type_error():
    with pytest.raises(TypeError, match="path"):
        load_pretrained(42)
