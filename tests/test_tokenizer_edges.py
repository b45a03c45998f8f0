"""WordTokenizer at the edges: padded batches, ordered vocabularies, NFC, what decode
takes, and property-based round trips."""

import unicodedata

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toygpt import WordTokenizer

VOCAB = ["<s>", "</s>", "<pad>", "hello", "world", "this", "is", "a", "test"]
WORDS = VOCAB[3:]


def test_encode_batch_left_pads_with_eos_by_default():
    tok = WordTokenizer(VOCAB, bos_token="<s>", eos_token="</s>")
    ids, mask = tok.encode_batch(["hello", "this is a test"])
    assert ids.dtype == mask.dtype == torch.int64
    assert ids.tolist() == [[1, 1, 1, 0, 3], [0, 5, 6, 7, 8]]
    assert mask.tolist() == [[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    ids, mask = tok.encode_batch(["hello", "this is"], add_bos=False)
    assert ids.tolist() == [[1, 3], [5, 6]] and mask.tolist() == [[0, 1], [1, 1]]


def test_encode_batch_uses_the_pad_token():
    tok = WordTokenizer(VOCAB, eos_token="</s>", pad_token="<pad>")
    ids, _ = tok.encode_batch(["hello world", "a"])
    assert ids.tolist() == [[3, 4], [2, 7]] and tok.pad_id == 2
    assert tok.decode(ids[1], skip_special_tokens=True) == "a"


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda t: t.encode_batch("hello"), TypeError, "texts"),
        (lambda t: t.encode_batch([]), ValueError, "texts"),
        (lambda t: t.encode_batch(["hello", 3]), TypeError, r"texts\[1\]"),
        (lambda t: t.encode_batch(["hello", "  "]), ValueError, r"texts\[1\]"),
        (lambda t: t.encode_batch(["banana"]), ValueError, "banana"),
        (lambda t: t.encode_batch(["hello"], add_bos="no"), TypeError, "add_bos"),
    ],
)
def test_bad_encode_batch(call, error, words):
    with pytest.raises(error, match=words):
        call(WordTokenizer(VOCAB, eos_token="</s>"))


def test_encode_batch_needs_something_to_pad_with():
    with pytest.raises(ValueError, match="pad_token"):
        WordTokenizer(VOCAB).encode_batch(["hello"])


def test_flags_take_only_bools():
    tok = WordTokenizer(VOCAB, bos_token="<s>")
    with pytest.raises(TypeError, match="add_bos"):
        tok.encode("hello", add_bos="no")  # used to add <s>
    with pytest.raises(TypeError, match="add_bos"):
        tok.encode("hello", add_bos=0)
    with pytest.raises(TypeError, match="skip_special_tokens"):
        tok.decode([3], skip_special_tokens="yes")


@pytest.mark.parametrize(
    "vocab", [set(WORDS), frozenset(WORDS), dict.fromkeys(WORDS).keys(), iter(WORDS)]
)
def test_vocab_must_be_ordered(vocab):
    with pytest.raises(TypeError, match="ordered sequence"):
        WordTokenizer(vocab)


def test_tuple_vocab_is_fine_and_duplicates_are_named():
    assert WordTokenizer(tuple(WORDS)).encode("a test").tolist() == [[4, 5]]
    with pytest.raises(ValueError, match="'a'"):
        WordTokenizer(["a", "b", "a"])


@pytest.mark.parametrize(
    "token, error", [(3, TypeError), ("nope", ValueError), (["<s>"], TypeError)]
)
def test_special_tokens_are_strings_of_the_vocabulary(token, error):
    for name in ("bos_token", "eos_token", "pad_token"):
        with pytest.raises(error, match=name):
            WordTokenizer(VOCAB, **{name: token})


def test_korean_typed_decomposed_encodes():
    words = ["안녕", "세상"]
    tok = WordTokenizer(words)
    nfd = unicodedata.normalize("NFD", "안녕 세상")
    assert nfd != "안녕 세상"  # really different code points
    assert tok.encode(nfd).tolist() == [[0, 1]]
    # a vocabulary written decomposed is normalised too, and the same word twice is a
    # duplicate
    assert WordTokenizer([unicodedata.normalize("NFD", "안녕")]).encode(
        "안녕"
    ).tolist() == [[0]]
    with pytest.raises(ValueError, match="duplicates"):
        WordTokenizer(["안녕", unicodedata.normalize("NFD", "안녕")])


INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
INT_DTYPES += [torch.uint16, torch.uint32, torch.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_decode_takes_tensors_of_every_integer_dtype(dtype):
    tok = WordTokenizer(WORDS)
    assert tok.decode(torch.tensor([1, 0], dtype=dtype)) == "world hello"
    assert tok.decode(torch.tensor([[1, 0]], dtype=dtype)) == "world hello"
    assert tok.decode(torch.tensor(2, dtype=dtype)) == "this"


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64]
)
def test_decode_takes_numpy_arrays(dtype):
    tok = WordTokenizer(WORDS)
    assert tok.decode(np.array([1, 0], dtype=dtype)) == "world hello"
    assert tok.decode(np.array([[1, 0]], dtype=dtype)) == "world hello"
    assert tok.decode(dtype(2)) == "this"
    assert tok.decode([dtype(1), 0]) == "world hello"


@pytest.mark.parametrize(
    "ids, error",
    [
        (np.array([1.0]), TypeError),
        (torch.tensor([True]), TypeError),
        (torch.tensor([1.0]), TypeError),
        ("1 2", TypeError),
        (None, TypeError),
        ([[1], [2]], ValueError),
        (np.array([[1], [2]]), ValueError),
        ([6], ValueError),
        (-1, ValueError),
    ],
)
def test_decode_says_what_it_takes(ids, error):
    with pytest.raises(error, match="ids"):
        WordTokenizer(WORDS).decode(ids)


sentences = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(texts=sentences, add_bos=st.sampled_from([None, True, False]))
def test_property_encode_batch_rows_are_encode_left_padded(texts, add_bos):
    tok = WordTokenizer(VOCAB, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    ids, mask = tok.encode_batch(texts, add_bos=add_bos)
    assert ids.shape == mask.shape == (len(texts), ids.shape[1])
    for b, text in enumerate(texts):
        alone = tok.encode(text, add_bos=add_bos)[0]
        n = len(alone)
        assert mask[b].tolist() == [0] * (ids.shape[1] - n) + [1] * n
        assert torch.equal(ids[b, -n:], alone)
        assert (ids[b, : ids.shape[1] - n] == tok.pad_id).all()
        assert tok.decode(ids[b], skip_special_tokens=True) == " ".join(text.split())
    assert mask.sum(1).max() == ids.shape[1]  # the longest row is not padded


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=10),
    spaces=st.sampled_from([" ", "  ", "\t", "\n "]),
)
def test_property_round_trip(words, spaces):
    tok = WordTokenizer(WORDS)
    ids = tok.encode(spaces + spaces.join(words) + spaces)
    assert tok.decode(ids) == " ".join(words)
    assert tok.decode(ids.numpy()) == tok.decode(ids[0].tolist()) == " ".join(words)
