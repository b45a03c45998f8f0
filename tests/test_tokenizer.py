import pytest
import torch

from toygpt import WordTokenizer

VOCAB = ["hello", "world", "this", "is", "a", "test", "model", "GPT", "language", "AI"]


def test_round_trip():
    tok = WordTokenizer(VOCAB)
    ids = tok.encode("hello world this is")
    assert ids.tolist() == [[0, 1, 2, 3]] and ids.dtype == torch.long
    assert tok.decode(ids) == "hello world this is"
    assert tok.decode([9, 7]) == "AI GPT"
    assert len(tok) == 10


def test_unknown_words_are_named_not_dropped():
    tok = WordTokenizer(VOCAB)
    with pytest.raises(ValueError, match=r"\['banana', 'cat'\]"):
        tok.encode("hello banana world cat banana")


def test_bos_and_eos():
    tok = WordTokenizer(["<s>", "</s>"] + VOCAB, bos_token="<s>", eos_token="</s>")
    assert tok.encode("hello").tolist() == [[0, 2]]
    assert tok.encode("<s> hello").tolist() == [[0, 2]]
    assert tok.encode("hello", add_bos=False).tolist() == [[2]]
    assert tok.decode([0, 2, 1], skip_special_tokens=True) == "hello"
    assert (tok.bos_id, tok.eos_id) == (0, 1)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: WordTokenizer([]), ValueError, "vocab must not be empty"),
        (lambda: WordTokenizer(["a", "b", "a"]), ValueError, "duplicates"),
        (lambda: WordTokenizer("hello world"), TypeError, "vocab"),
        (lambda: WordTokenizer(["two words"]), ValueError, "vocab"),
        (lambda: WordTokenizer(VOCAB, bos_token="<s>"), ValueError, "bos_token"),
        (lambda: WordTokenizer(VOCAB).encode(""), ValueError, "empty"),
        (lambda: WordTokenizer(VOCAB).encode("   "), ValueError, "empty"),
        (lambda: WordTokenizer(VOCAB).encode(3), TypeError, "text"),
        (lambda: WordTokenizer(VOCAB).decode([10]), ValueError, "ids"),
        (lambda: WordTokenizer(VOCAB).decode([1.0]), TypeError, "ids"),
        (
            lambda: WordTokenizer(VOCAB).decode(torch.zeros(2, 2, dtype=torch.long)),
            ValueError,
            "ids",
        ),
    ],
)
def test_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()
