"""The toy language as a model: ``ToyLanguage.as_model()`` returns a LanguageOracle.

The oracle's output is the truth (log true probabilities), in the shape of a model's
logits, so that toygpt's decoders can decode the language itself.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from toygpt.grammar import END, START
from toygpt.model import GPTModel

__all__ = ["LanguageOracle"]


class LanguageOracle(nn.Module):
    """A "model" that knows the truth: ``forward(input_ids (B, T)) -> (B, T, V)``
    log-probabilities.

    ``out[b, t]`` is ``log lang.next_token_probs(input_ids[b, : t + 1])`` (``-inf`` for
    impossible words), in float32. Since log-softmax of log-probabilities gives them
    back, ``generate`` and ``beam_search`` treat it like a model's logits and decode the
    language itself.

    Where the prefix itself is impossible (it does not start with ``<s>``, contains a
    word the grammar does not allow, or continues after ``</s>``) there is no truth to
    report; the oracle then returns the uniform distribution, ``log(1 / V)`` for every
    word, rather than raising. Decoders may build such prefixes (a beam search with more
    beams than possible sentences, a batch row that has already ended) and must keep
    running; a prefix of probability 0 keeps a score of ``-inf``, so it never beats a
    real sentence.

    >>> lang = ToyLanguage()
    >>> oracle = lang.as_model()
    >>> logp = oracle(lang.tokenizer().encode("hello"))  # (1, 2, V)
    >>> lang.vocab[int(logp[0, -1].argmax())]
    'world'
    """

    def __init__(self, language, context_length: int = 16):
        super().__init__()
        if isinstance(context_length, bool) or not isinstance(context_length, int):
            raise TypeError(f"context_length must be an int, got {context_length!r}")
        if context_length < language.max_sentence_length:
            raise ValueError(
                f"context_length must be >= {language.max_sentence_length} "
                "(the longest sentence), "
                f"got {context_length}"
            )
        self.language = language
        self.vocab_size = len(language.vocab)
        self.context_length = context_length
        self.register_buffer(
            "log_table", language._table.log().float(), persistent=False
        )  # (states + 1, V)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        GPTModel.check_input_ids(
            self, input_ids
        )  # the same checks and messages as a GPTModel's
        lang, uniform = self.language, self.log_table.shape[0] - 1
        rows = []
        for ids in input_ids.tolist():
            state = START if ids[0] == lang.bos_id else None
            row = [lang._state_index[state] if state is not None else uniform]
            for i in ids[1:]:
                if state is not None and state != END and i in lang._step[state]:
                    state = lang._step[state][i][1]
                else:
                    state = None
                row.append(
                    uniform if state in (None, END) else lang._state_index[state]
                )
            rows.append(row)
        index = torch.tensor(rows, dtype=torch.long, device=self.log_table.device)
        return self.log_table[index]  # (B, T, V)
