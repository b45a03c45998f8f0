"""The shipped checkpoint: it loads safely, it is small, and it is close to the
truth."""

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
    with pytest.raises(ValueError, match="toygpt.pt is not a valid toygpt checkpoint"):
        load_pretrained(weights)
    weights.write_bytes(data[:-100])  # a little truncated: the zip's end is gone
    with pytest.raises(ValueError, match="toygpt.pt is not a valid toygpt checkpoint"):
        load_pretrained(weights)
    weights.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a valid toygpt checkpoint"):
        load_pretrained(weights)


def test_pickled_code_is_refused(copy):
    """weights_only=True: a file that needs arbitrary classes to unpickle is
    rejected."""
    torch.save({"weights": ToyLanguage()}, copy / "toygpt.pt")
    with pytest.raises(ValueError, match="not a valid toygpt checkpoint"):
        load_pretrained(copy)


def test_weights_that_do_not_fit_the_config_raise_value_error(copy):
    config = json.loads((copy / "config.json").read_text())
    config["model"]["num_layers"] -= 1  # fewer weights than the file holds
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


# ---- issue 11 item 7: self-contained, validated checkpoints ----

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from toygpt.model import GPTModel  # noqa: E402
from toygpt.pretrained import config_path_for, save_pretrained  # noqa: E402
from toygpt.tokenizer import WordTokenizer  # noqa: E402


def test_the_shipped_default_keeps_its_file_names_and_the_draft_has_its_own():
    assert config_path_for(CHECKPOINTS / "toygpt.pt").name == "config.json"
    assert config_path_for(CHECKPOINTS / "draft.pt").name == "draft.json"
    draft, tokenizer = load_pretrained("draft")
    default, _ = load_pretrained("default")
    assert draft.config["num_layers"] == 1 and draft.config["d_model"] <= 64
    assert default.config["num_layers"] == 4 and default.config["d_model"] == 128
    assert tokenizer.vocab == ToyLanguage().vocab
    with importlib.resources.as_file(CHECKPOINTS / "draft.pt") as path:
        assert path.stat().st_size <= 512 * 2**10


def test_two_checkpoints_in_one_folder_keep_their_own_configs(tmp_path):
    torch.manual_seed(0)
    a = GPTModel(5, 8, 2, 1, 0.0, 8)
    b = GPTModel(7, 16, 4, 2, 0.0, 12)
    save_pretrained(a, WordTokenizer(list("abcde")), tmp_path / "a.pt")
    save_pretrained(b, WordTokenizer(list("ABCDEFG")), tmp_path / "b.pt")
    (ma, ta), (mb, tb) = (
        load_pretrained(tmp_path / "a.pt"),
        load_pretrained(tmp_path / "b.pt"),
    )
    assert (ta.vocab, ma.config) == (list("abcde"), a.config)
    assert (tb.vocab, mb.config) == (list("ABCDEFG"), b.config)


def test_saving_over_a_checkpoint_is_refused_unless_allowed(tmp_path):
    model, tok = GPTModel(5, 8, 2, 1, 0.0, 8), WordTokenizer(list("abcde"))
    save_pretrained(model, tok, tmp_path / "a.pt")
    with pytest.raises(FileExistsError, match="a.pt"):
        save_pretrained(model, tok, tmp_path / "a.pt")
    (tmp_path / "b.json").write_text("{}")  # someone's config, without its weights
    with pytest.raises(FileExistsError, match="b.json"):
        save_pretrained(model, tok, tmp_path / "b.pt")
    save_pretrained(model, tok, tmp_path / "a.pt", overwrite=True)
    with pytest.raises(ValueError, match="folder"):
        save_pretrained(model, tok, tmp_path)
    with pytest.raises(ValueError, match=".pt"):
        save_pretrained(model, tok, tmp_path / "a.bin")


def test_a_config_of_another_checkpoint_is_refused(tmp_path):
    model, tok = GPTModel(5, 8, 2, 1, 0.0, 8), WordTokenizer(list("abcde"))
    save_pretrained(model, tok, tmp_path / "a.pt")
    shutil.copy(tmp_path / "a.pt", tmp_path / "c.pt")
    shutil.copy(tmp_path / "a.json", tmp_path / "c.json")
    with pytest.raises(ValueError, match="config of a.pt"):
        load_pretrained(tmp_path / "c.pt")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(d_model=10**9), "parameters"),
        (dict(context_length=10**8), "parameters"),
        (dict(vocab_size=50), "vocab"),
        (dict(num_layers=10**6), "parameters"),
        (dict(d_model=1e9), "d_model"),
        (dict(d_model=-3), "d_model"),
        (dict(num_layers=True), "num_layers"),
        (dict(extra=1), "exactly"),
    ],
)
def test_config_sizes_are_checked_before_allocating(copy, change, message):
    config = json.loads((copy / "config.json").read_text())
    config["model"].update(change)
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message) as info:
        load_pretrained(copy)
    assert "config.json" in str(info.value)


def test_altered_weights_are_detected_by_their_hash(tmp_path):
    torch.manual_seed(0)
    model, tok = GPTModel(5, 8, 2, 1, 0.0, 8), WordTokenizer(list("abcde"))
    save_pretrained(model, tok, tmp_path / "a.pt")
    data = bytearray((tmp_path / "a.pt").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    (tmp_path / "a.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="a.pt .*altered"):
        load_pretrained(tmp_path / "a.pt")


small_configs = st.fixed_dictionaries(
    {
        "vocab_size": st.integers(2, 12),
        "heads": st.integers(1, 4),
        "head_dim": st.integers(1, 4),
        "num_layers": st.integers(1, 3),
        "context_length": st.integers(1, 12),
        "seed": st.integers(0, 1000),
    }
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(config=small_configs)
def test_random_small_checkpoints_round_trip(tmp_path, config):
    torch.manual_seed(config["seed"])
    d = config["heads"] * config["head_dim"]
    model = GPTModel(
        config["vocab_size"], d, config["heads"], config["num_layers"], 0.0,
        config["context_length"],
    )  # fmt: skip
    tok = WordTokenizer([f"w{i}" for i in range(config["vocab_size"])])
    path = tmp_path / f"m{config['seed']}_{d}.pt"
    save_pretrained(model, tok, path, overwrite=True)
    loaded, loaded_tok = load_pretrained(path)
    assert loaded.config == model.config and loaded_tok.vocab == tok.vocab
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_corrupted_bytes_are_a_clear_error_naming_the_file(tmp_path, data):
    path = tmp_path / "c.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_pretrained(
            GPTModel(5, 8, 2, 1, 0.0, 8), WordTokenizer(list("abcde")), path
        )
    original = path.read_bytes()
    which = data.draw(st.sampled_from(["weights", "config"]))
    target = path if which == "weights" else tmp_path / "c.json"
    good = target.read_bytes()
    kind = data.draw(st.sampled_from(["flip", "truncate"]))
    if kind == "flip":
        i = data.draw(st.integers(0, len(good) - 1))
        bad = bytearray(good)
        bad[i] ^= data.draw(st.integers(1, 255))
        bad = bytes(bad)
    else:
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    target.write_bytes(bad)
    try:
        try:
            loaded, tok = load_pretrained(path)
        except (ValueError, FileNotFoundError) as error:
            assert target.name in str(error) or "c." in str(error)
        else:
            # a flipped byte may leave the config meaning the same (JSON whitespace, a
            # digit of a metric): then the model must be exactly the original one
            assert which == "config"
            assert loaded.config == GPTModel(5, 8, 2, 1, 0.0, 8).config
            assert tok.vocab == list("abcde")
    finally:
        target.write_bytes(good)
        assert path.read_bytes() == original
