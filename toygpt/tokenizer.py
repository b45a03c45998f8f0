"""A word-level tokenizer: one id per word of a fixed vocabulary.

Unlike the lesson's ``encode``, which silently dropped words it did not know (so the model
answered a different prompt than the one typed), unknown words raise an error naming them.
Text and vocabulary are NFC-normalised, so a Korean word typed in decomposed jamo (NFD)
is the same word as its composed form.
"""

from __future__ import annotations

import numbers
import unicodedata
from collections.abc import Sequence

import torch

__all__ = ["WordTokenizer"]


class WordTokenizer:
    """Map whitespace-separated words to ids and back.

    >>> tok = WordTokenizer(["hello", "world", "this", "is"])
    >>> tok.encode("hello world")
    tensor([[0, 1]])
    >>> tok.decode([1, 0])
    'world hello'
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
    ):
        # A list or tuple: its order gives the ids (a set's order is arbitrary).
        if isinstance(vocab, str) or not isinstance(vocab, Sequence):
            raise TypeError(
                "vocab must be an ordered sequence of words (a list or tuple), got "
                f"{type(vocab).__name__}"
            )
        vocab = list(vocab)
        if not vocab:
            raise ValueError("vocab must not be empty")
        for word in vocab:
            if (
                not isinstance(word, str)
                or not word
                or word != word.strip()
                or len(word.split()) != 1
            ):
                raise ValueError(
                    f"vocab entries must be single words without spaces, got {word!r}"
                )
        vocab = [unicodedata.normalize("NFC", word) for word in vocab]
        seen, dupes = set(), []
        for word in vocab:
            if word in seen and word not in dupes:
                dupes.append(word)
            seen.add(word)
        if dupes:
            raise ValueError(
                f"vocab must not contain duplicates (after NFC normalisation), got "
                f"{dupes} more than once"
            )
        self.vocab = vocab
        self.word_to_id = {word: i for i, word in enumerate(vocab)}
        specials = {}
        for name, token in (
            ("bos_token", bos_token),
            ("eos_token", eos_token),
            ("pad_token", pad_token),
        ):
            if token is not None and not isinstance(token, str):
                raise TypeError(f"{name} must be a str or None, got {token!r}")
            if token is not None:
                token = unicodedata.normalize("NFC", token)
                if token not in self.word_to_id:
                    raise ValueError(f"{name} {token!r} is not in vocab")
            specials[name] = token
        self.bos_token, self.eos_token, self.pad_token = specials.values()
        self.bos_id, self.eos_id, self.pad_id = (
            None if t is None else self.word_to_id[t] for t in specials.values()
        )

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"WordTokenizer({len(self)} words)"

    def encode(self, text: str, add_bos: bool | None = None) -> torch.Tensor:
        """``"hello world"`` -> ``LongTensor`` of shape ``(1, number_of_words)``.

        With a ``bos_token``, the sentence-start token is put first (unless the text already
        starts with it, or ``add_bos=False``).
        """
        return torch.tensor([self._ids(text, add_bos)], dtype=torch.long)

    def _ids(self, text: str, add_bos: bool | None, name: str = "text") -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        if add_bos is not None and not isinstance(add_bos, bool):
            raise TypeError(f"add_bos must be True, False or None, got {add_bos!r}")
        words = unicodedata.normalize("NFC", text).split()
        if not words:
            raise ValueError(
                f"{name} must contain at least one word (the prompt is empty)"
            )
        unknown = [w for w in dict.fromkeys(words) if w not in self.word_to_id]
        if unknown:
            known = (
                self.vocab if len(self) <= 20 else str(self.vocab[:20])[:-1] + ", ...]"
            )
            raise ValueError(
                f"{name} contains words that are not in the vocabulary: {unknown}; "
                f"known words: {known}"
            )
        if add_bos is None:
            add_bos = self.bos_token is not None
        if add_bos:
            if self.bos_token is None:
                raise ValueError(
                    "add_bos=True needs a tokenizer made with bos_token=..."
                )
            if words[0] != self.bos_token:
                words = [self.bos_token] + words
        return [self.word_to_id[w] for w in words]

    def encode_batch(
        self, texts: Sequence[str], add_bos: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Several texts -> ``(input_ids, attention_mask)``, both ``(B, T)`` int64,
        left-padded to the longest: ``attention_mask`` is 1 on words, 0 on padding.

        The pad id is ``pad_token``'s, or else ``eos_token``'s (it is never attended to).

        >>> tok = WordTokenizer(["</s>", "a", "b"], eos_token="</s>")
        >>> tok.encode_batch(["a", "b a b"])
        (tensor([[0, 0, 1],
                [2, 1, 2]]), tensor([[0, 0, 1],
                [1, 1, 1]]))
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(
                f"texts must be a list of str, got {type(texts).__name__} (for one "
                "text use encode)"
            )
        if not texts:
            raise ValueError("texts must hold at least one text")
        pad = self.pad_id if self.pad_id is not None else self.eos_id
        if pad is None:
            raise ValueError(
                "encode_batch needs a pad_token (or an eos_token) to pad with"
            )
        rows = [self._ids(t, add_bos, f"texts[{i}]") for i, t in enumerate(texts)]
        T = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (T - len(r)) + r for r in rows], dtype=torch.long)
        mask = torch.tensor(
            [[0] * (T - len(r)) + [1] * len(r) for r in rows], dtype=torch.long
        )
        return ids, mask

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> words joined by spaces. ``ids``: an int, a list of ints, or a tensor or
        NumPy array of any integer dtype of shape ``()``, ``(T,)`` or ``(1, T)``.

        ``skip_special_tokens=True`` leaves out the sentence start/end and pad tokens.
        """
        if not isinstance(skip_special_tokens, bool):
            raise TypeError(
                f"skip_special_tokens must be True or False, got {skip_special_tokens!r}"
            )
        what = (
            "an int, a list of ints, or an integer tensor or NumPy array of shape (T,) "
            "or (1, T)"
        )
        if type(ids).__module__ == "numpy" and hasattr(ids, "dtype"):
            if ids.dtype.kind not in "iu":
                raise TypeError(f"ids must be {what}, got a NumPy array of {ids.dtype}")
            ids = ids.tolist()  # NumPy ints become Python ints (also uint64)
        elif isinstance(ids, torch.Tensor):
            dtype = ids.dtype
            if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
                raise TypeError(f"ids must be {what}, got a tensor of dtype {dtype}")
            ids = ids.tolist()
        if isinstance(ids, numbers.Integral) and not isinstance(ids, bool):
            ids = [ids]
        if isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], list):
            ids = ids[0]  # shape (1, T)
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
            raise TypeError(f"ids must be {what}, got {type(ids).__name__}")
        special = (self.bos_id, self.eos_id, self.pad_id)
        words = []
        for i in ids:
            if isinstance(i, list):
                raise ValueError(f"ids must be one sequence: {what}")
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(f"ids must be ints, got {i!r}")
            i = int(i)  # a NumPy integer inside a list, say
            if not 0 <= i < len(self):
                raise ValueError(f"ids must be in [0, {len(self) - 1}], got {i}")
            if skip_special_tokens and i in special:
                continue
            words.append(self.vocab[i])
        return " ".join(words)
