"""A word-level tokenizer: one id per word of a fixed vocabulary.

Unlike the lesson's ``encode``, which silently dropped words it did not know (so the model
answered a different prompt than the one typed), unknown words raise an error naming them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    ):
        if isinstance(vocab, str) or not isinstance(vocab, Iterable):
            raise TypeError(
                f"vocab must be a list of words, got {type(vocab).__name__}"
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
        seen, dupes = set(), []
        for word in vocab:
            if word in seen and word not in dupes:
                dupes.append(word)
            seen.add(word)
        if dupes:
            raise ValueError(
                f"vocab must not contain duplicates, got {dupes} more than once"
            )
        self.vocab = vocab
        self.word_to_id = {word: i for i, word in enumerate(vocab)}
        for name, token in (("bos_token", bos_token), ("eos_token", eos_token)):
            if token is not None and token not in self.word_to_id:
                raise ValueError(f"{name} {token!r} is not in vocab")
        self.bos_token, self.eos_token = bos_token, eos_token
        self.bos_id = None if bos_token is None else self.word_to_id[bos_token]
        self.eos_id = None if eos_token is None else self.word_to_id[eos_token]

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"WordTokenizer({len(self)} words)"

    def encode(self, text: str, add_bos: bool | None = None) -> torch.Tensor:
        """``"hello world"`` -> ``LongTensor`` of shape ``(1, number_of_words)``.

        With a ``bos_token``, the sentence-start token is put first (unless the text already
        starts with it, or ``add_bos=False``).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        words = text.split()
        if not words:
            raise ValueError(
                "text must contain at least one word (the prompt is empty)"
            )
        unknown = [w for w in dict.fromkeys(words) if w not in self.word_to_id]
        if unknown:
            raise ValueError(
                f"text contains words that are not in the vocabulary: {unknown}; "
                f"known words: {self.vocab if len(self) <= 20 else str(self.vocab[:20])[:-1] + ', ...]'}"
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
        return torch.tensor([[self.word_to_id[w] for w in words]], dtype=torch.long)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids (a list, or a tensor of shape ``(T,)`` or ``(1, T)``) -> words joined by spaces.

        ``skip_special_tokens=True`` leaves out the sentence start/end tokens.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dtype.is_floating_point or ids.dtype == torch.bool:
                raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}")
            if ids.dim() == 2 and ids.shape[0] == 1:
                ids = ids[0]
            if ids.dim() > 1:
                raise ValueError(
                    f"ids must be one sequence, shape (T,) or (1, T), got {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        words = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"ids must be ints, got {i!r}")
            if not 0 <= i < len(self):
                raise ValueError(f"ids must be in [0, {len(self) - 1}], got {i}")
            if skip_special_tokens and i in (self.bos_id, self.eos_id):
                continue
            words.append(self.vocab[i])
        return " ".join(words)
