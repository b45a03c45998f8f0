"""A toy language whose true next-word probabilities are known exactly.

A real language model is judged against text whose "true" probabilities nobody knows.
Here the text comes from a small probabilistic grammar, so for any prefix we can say
exactly how likely each next word is, and compare a trained model (or a decoding
strategy) with the truth.

The grammar (``toygpt.grammar``, where its table is written out) is a *probabilistic
finite-state machine*: every sentence starts in the state ``START`` right after ``<s>``;
each state lists the words that may come next, each with its probability and the state
it leads to; ``</s>`` ends the sentence. A word appears at most once per state, so the
prefix alone tells which state we are in, and the next-word distribution after a prefix
is that state's row of the table. No state is visited twice in one sentence, so every
sentence is short (11 tokens at most, ``<s>`` and ``</s>`` included) and exact sums over
all sentences are cheap.

Words that play the same part lead to the same state (``dog``, ``cat`` and ``bird`` all
lead from ``SUBJECT`` to ``ANIMAL``), so a model trained on this language learns similar
embeddings for them.

Some contexts are nearly certain (after ``hello`` comes ``world`` 90% of the time),
others are flat (after ``the`` ten words share the mass), and one is a trap for greedy
decoding: after ``the dog`` the likeliest word, ``is`` (0.40), leads to eight adjectives
none of which is likely, while ``runs`` (0.30) is followed by ``</s>`` 80% of the time.
Greedy decoding says "the dog is happy" (probability 0.40 x 0.16 x 0.85 = 0.054 given
the prompt); beam search finds "the dog runs" (0.30 x 0.80 = 0.24), four times as
probable.

>>> lang = ToyLanguage()
>>> tok = lang.tokenizer()
>>> probs = lang.next_token_probs(tok.encode("hello world this is"))
>>> {lang.vocab[i]: round(float(p), 2) for i, p in enumerate(probs) if p > 0}
{'a': 0.35, 'GPT': 0.15, 'AI': 0.1, 'the': 0.15, 'not': 0.1, 'new': 0.07, 'good': 0.08}
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

import torch

from toygpt.grammar import BOS, END, EOS, EXAMPLE_CONTEXTS, START, TRANSITIONS, VOCAB
from toygpt.oracle import LanguageOracle
from toygpt.tokenizer import WordTokenizer

__all__ = ["ToyLanguage", "LanguageOracle", "VOCAB", "TRANSITIONS"]


def _check_ids(ids, name: str) -> list[int]:
    """A list of ints from a list/tuple of ints, a 1-D tensor or a (1, T) tensor."""
    if isinstance(ids, torch.Tensor):
        if (
            ids.dtype.is_floating_point
            or ids.dtype.is_complex
            or ids.dtype == torch.bool
        ):
            raise TypeError(
                f"{name} must hold integer token ids, got dtype {ids.dtype}"
            )
        if ids.dim() == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.dim() != 1:
            raise ValueError(
                f"{name} must be one sequence, shape (T,) or (1, T), "
                f"got {tuple(ids.shape)}"
            )
        return ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(
            f"{name} must be a list of token ids or a 1-D LongTensor, "
            f"got {type(ids).__name__}"
        )
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{name} must contain ints (token ids), got {i!r}")
    return list(ids)


class ToyLanguage:
    """The toy language: vocabulary, grammar, exact probabilities, sampling.

    Attributes:
        vocab: the words, in id order (``WordTokenizer`` and the shipped model use this
            order).
        bos_id, eos_id: ids of ``<s>`` and ``</s>``.
        transitions: ``state -> [(word, probability, next_state), ...]``, the grammar
            table of the module docstring; ``"START"`` is the state after ``<s>``,
            ``"</s>"`` leads to ``"END"`` (which has no row). Use it to draw the
            grammar.
        example_contexts: ``name -> prompt`` (without ``<s>``) for the chapters:
            ``"lesson"`` (several plausible words), ``"peaked"`` (one word >= 0.9),
            ``"flat"`` (many words, none above 0.12), ``"medium"``, ``"greedy_trap"``.
        greedy_trap_prompt: a prompt where greedy decoding ends in a less probable
            sentence than beam search finds (see the module docstring).
        max_sentence_length: the longest sentence in tokens, ``<s>`` and ``</s>``
            included.
        entropy_floor: the lowest cross-entropy any model can reach, in nats per
            predicted token (every token after ``<s>``, ``</s>`` included): ``E[-log
            p(sentence)] / E[tokens]``.

    >>> lang = ToyLanguage()
    >>> len(lang.vocab), lang.max_sentence_length, round(lang.entropy_floor, 4)
    (39, 11, 1.0869)
    >>> sentences = lang.sample(2, generator=torch.Generator().manual_seed(0))
    >>> sentences
    [[37, 9, 3, 32, 12, 34, 38], [37, 0, 1, 2, 3, 10, 5, 38]]
    >>> lang.tokenizer().decode(sentences[0])
    '<s> AI is new and quiet </s>'
    """

    def __init__(self):
        self.vocab = list(VOCAB)
        self.word_to_id = {w: i for i, w in enumerate(self.vocab)}
        self.bos_token, self.eos_token = BOS, EOS
        self.bos_id, self.eos_id = self.word_to_id[BOS], self.word_to_id[EOS]
        self.transitions = {state: list(rows) for state, rows in TRANSITIONS.items()}
        self.example_contexts = dict(EXAMPLE_CONTEXTS)
        self.greedy_trap_prompt = self.example_contexts["greedy_trap"]
        self._check_grammar()

        V = len(self.vocab)
        # (word id -> (probability, next state)) per state: one dict lookup per token.
        self._step = {
            state: {self.word_to_id[w]: (p, nxt) for w, p, nxt in rows}
            for state, rows in self.transitions.items()
        }
        # For constraints: each state's allowed ids, in increasing order.
        self._allowed = {
            state: tuple(sorted(self._step[state])) for state in self.transitions
        }
        # For sampling: each state's word ids and cumulative probabilities.
        self._cdf = {}
        for state, rows in self.transitions.items():
            ids = [self.word_to_id[w] for w, _, _ in rows]
            self._cdf[state] = (ids, list(itertools.accumulate(p for _, p, _ in rows)))
        # Each state's next-token distribution as a row of a table, plus a uniform row
        # (the last one) that the oracle model uses for prefixes that cannot happen.
        self._state_index = {state: i for i, state in enumerate(self.transitions)}
        table = torch.zeros(len(self.transitions) + 1, V, dtype=torch.float64)
        for state, rows in self.transitions.items():
            for w, p, _ in rows:
                table[self._state_index[state], self.word_to_id[w]] = p
        table[-1] = 1.0 / V
        self._table = table

        self._order = (
            self._topological_order()
        )  # START first; every transition goes forward
        self.max_sentence_length = self._longest_sentence()
        self.entropy_floor = self._entropy_floor()

    def __repr__(self) -> str:
        return (
            f"ToyLanguage({len(self.vocab)} words, {len(self.transitions)} states, "
            f"entropy floor {self.entropy_floor:.4f} nats/token)"
        )

    # ---- the grammar's structure -----------------------------------------------------

    def _check_grammar(self) -> None:
        """Every row is a probability distribution over distinct known words; states
        exist."""
        for state, rows in self.transitions.items():
            words = [w for w, _, _ in rows]
            if len(set(words)) != len(words):
                raise ValueError(f"state {state} lists a word twice: {words}")
            for w, p, nxt in rows:
                if w not in self.word_to_id or w == BOS:
                    raise ValueError(
                        f"state {state}: {w!r} is not a word of the vocabulary"
                    )
                if not p > 0:
                    raise ValueError(
                        f"state {state}: probability of {w!r} must be > 0, got {p}"
                    )
                if (w == EOS) != (nxt == END):
                    raise ValueError(
                        f"state {state}: '</s>' and only '</s>' leads to END, "
                        f"got {w!r} -> {nxt}"
                    )
                if nxt != END and nxt not in self.transitions:
                    raise ValueError(f"state {state}: unknown next state {nxt!r}")
            total = sum(p for _, p, _ in rows)
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"state {state}: probabilities sum to {total}, not 1")

    def _topological_order(self) -> list[str]:
        """States such that every transition goes forward; raises if the grammar has a
        loop."""
        order, mark = [], {}

        def visit(state, path):
            if mark.get(state) == "done":
                return
            if mark.get(state) == "visiting":
                raise ValueError(
                    f"the grammar has a loop through {' -> '.join(path + [state])}"
                )
            mark[state] = "visiting"
            for _, _, nxt in self.transitions[state]:
                if nxt != END:
                    visit(nxt, path + [state])
            mark[state] = "done"
            order.append(state)

        visit(START, [])
        unreachable = set(self.transitions) - set(order)
        if unreachable:
            raise ValueError(
                f"states {sorted(unreachable)} cannot be reached from START"
            )
        return order[::-1]  # reversed post-order: START first

    def _longest_sentence(self) -> int:
        # longest[s] = most tokens from state s up to and including </s>
        longest = {}
        for state in reversed(self._order):
            longest[state] = 1 + max(
                0 if nxt == END else longest[nxt]
                for _, _, nxt in self.transitions[state]
            )
        return 1 + longest[START]  # + 1 for <s>

    def state_visits(self) -> dict[str, float]:
        """Expected number of visits of each state per sentence (each state at most
        once, so it is the probability that a sentence passes through it). ``START`` has
        1.0.

        Computed exactly, in topological order: a state's visits are the sum, over the
        transitions into it, of (visits of the source state) x (transition probability).
        """
        visits = dict.fromkeys(self.transitions, 0.0)
        visits[START] = 1.0
        for state in self._order:
            for _, p, nxt in self.transitions[state]:
                if nxt != END:
                    visits[nxt] += visits[state] * p
        return visits

    def _entropy_floor(self) -> float:
        # Every visit of a state emits exactly one token, drawn from that state's row.
        # So
        #   E[-log p(sentence)] = sum_s visits(s) * H(row s)   and   E[tokens] = sum_s
        # visits(s).
        visits = self.state_visits()
        entropy = {
            s: -sum(p * math.log(p) for _, p, _ in rows)
            for s, rows in self.transitions.items()
        }
        expected_nll = sum(visits[s] * entropy[s] for s in self.transitions)
        expected_tokens = sum(visits.values())
        return expected_nll / expected_tokens

    # ---- walking a prefix through the grammar ----------------------------------------

    def _walk(self, ids: list[int], name: str) -> tuple[str | None, float]:
        """(state after ``ids``, log-probability of ``ids[1:]``); state ``None`` if
        impossible."""
        if not ids:
            raise ValueError(
                f"{name} must not be empty; it starts with <s> (id {self.bos_id})"
            )
        bad = [i for i in ids if not 0 <= i < len(self.vocab)]
        if bad:
            raise ValueError(
                f"{name} must be ids in [0, {len(self.vocab) - 1}], got {bad[0]}"
            )
        if ids[0] != self.bos_id:
            raise ValueError(
                f"{name} must start with <s> (id {self.bos_id}), "
                f"got {self.vocab[ids[0]]!r} (id {ids[0]}); "
                "tokenizer.encode adds it for you"
            )
        state, log_prob = START, 0.0
        for i in ids[1:]:
            if state == END or i not in self._step[state]:
                return None, -math.inf
            p, state = self._step[state][i]
            log_prob += math.log(p)
        return state, log_prob

    def state_after(self, prefix_ids) -> str:
        """The grammar state after a prefix (``"START"`` after ``<s>``, ``"END"`` after
        ``</s>``).

        >>> lang = ToyLanguage()
        >>> lang.state_after(lang.tokenizer().encode("hello world this is"))
        'THIS_IS'
        """
        ids = _check_ids(prefix_ids, "prefix_ids")
        state, _ = self._walk(ids, "prefix_ids")
        if state is None:
            raise ValueError(
                f"prefix_ids {self._words(ids)!r} is impossible in this language "
                "(probability 0)"
            )
        return state

    def _words(self, ids: list[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)

    def next_token_probs(self, prefix_ids) -> torch.Tensor:
        """The exact distribution of the next token after a prefix, as a float32 tensor
        ``(V,)``.

        ``prefix_ids`` (a list of ids, a 1-D tensor or a ``(1, T)`` tensor) must start
        with ``<s>``, be possible in the language and not be a finished sentence;
        otherwise ``ValueError``.

        >>> lang = ToyLanguage()
        >>> probs = lang.next_token_probs(lang.tokenizer().encode("hello"))
        >>> lang.vocab[int(probs.argmax())], round(float(probs.max()), 2)
        ('world', 0.9)
        """
        ids = _check_ids(prefix_ids, "prefix_ids")
        state = self.state_after(ids)
        if state == END:
            raise ValueError(
                f"prefix_ids {self._words(ids)!r} is a finished sentence: "
                "nothing follows </s> "
                "(every sentence starts afresh with <s>)"
            )
        return self._table[self._state_index[state]].float()

    def allowed_next(self, prefix_ids) -> list[int]:
        """The ids the grammar allows after a prefix, in increasing order.

        ``prefix_ids`` (a list of ids, a 1-D tensor or a ``(1, T)`` tensor) must start
        with ``<s>`` (else ``ValueError``). After a possible prefix: the words of its
        state's row, the words of positive probability. After a finished sentence, or
        after a prefix the grammar cannot produce (probability 0): only ``</s>``, so
        that a constrained decoder ends the row at once (decoders pad finished rows with
        ``</s>``) instead of continuing text that is not a sentence.

        >>> lang = ToyLanguage()
        >>> [lang.vocab[i] for i in lang.allowed_next(lang.tokenizer().encode("hello"))]
        ['world', 'GPT', 'AI']
        """
        ids = _check_ids(prefix_ids, "prefix_ids")
        state, _ = self._walk(ids, "prefix_ids")
        if state is None or state == END:
            return [self.eos_id]
        return list(self._allowed[state])

    def allowed_tokens_fn(self, batch_id: int, ids) -> list[int]:
        """:meth:`allowed_next` with the ``(batch_id, ids) -> list[int]`` convention of
        ``allowed_tokens_fn`` (transformers' ``prefix_allowed_tokens_fn``): pass
        ``allowed_tokens_fn=lang.allowed_tokens_fn`` to a decoder, with prompts that
        start with ``<s>``. Every row follows the same grammar, so ``batch_id`` is not
        used."""
        return self.allowed_next(ids)

    def sequence_log_prob(self, ids) -> float:
        """Exact log-probability (natural log) of ``ids[1:]`` given ``ids[0] = <s>``.

        ``-inf`` if the sequence cannot occur. ``ids`` may be a whole sentence (ending
        in ``</s>``) or a prefix of one. Extra copies of ``</s>`` at the end are padding
        (``generate`` and ``beam_search`` pad finished sentences with it) and are
        ignored.

        >>> lang = ToyLanguage()
        >>> ids = lang.tokenizer().encode("hello world </s>")
        >>> round(math.exp(lang.sequence_log_prob(ids)), 4)  # 0.30 * 0.90 * 0.25
        0.0675
        """
        ids = _check_ids(ids, "ids")
        while len(ids) > 2 and ids[-1] == ids[-2] == self.eos_id:
            ids = ids[:-1]
        return self._walk(ids, "ids")[1]

    # ---- sampling --------------------------------------------------------------------

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> list[list[int]]:
        """``n`` whole sentences ``[<s>, ..., </s>]`` as lists of ids, drawn from the
        grammar.

        Randomness comes from ``generator`` (or torch's global generator if None), so a
        seeded generator gives the same sentences every time.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int >= 1, got {n!r}")
        if n < 1:
            raise ValueError(f"n must be an int >= 1, got {n}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                "generator must be a torch.Generator or None, "
                f"got {type(generator).__name__}"
            )
        # One uniform number per token: the word is the first whose cumulative
        # probability exceeds it (inverse-CDF sampling), so P(word) = its probability.
        uniforms = torch.rand(
            n, self.max_sentence_length, generator=generator, dtype=torch.float64
        ).tolist()
        sentences = []
        for u in uniforms:
            state, sentence = START, [self.bos_id]
            for t in range(self.max_sentence_length - 1):
                ids, cdf = self._cdf[state]
                k = min(
                    bisect.bisect_right(cdf, u[t]), len(ids) - 1
                )  # min(): guards rounding in cdf[-1]
                sentence.append(ids[k])
                state = self._step[state][ids[k]][1]
                if state == END:
                    break
            sentences.append(sentence)
        return sentences

    # ---- helpers for the chapters ----------------------------------------------------

    def tokenizer(self) -> WordTokenizer:
        """A ``WordTokenizer`` for this vocabulary; ``encode`` puts ``<s>`` first."""
        return WordTokenizer(self.vocab, bos_token=BOS, eos_token=EOS)

    def as_model(self, context_length: int = 16) -> LanguageOracle:
        """The language as an ``nn.Module`` that toygpt's decoders can run: "the truth".

        Its forward returns log true probabilities ``(B, T, V)``; see
        :class:`LanguageOracle`.
        """
        return LanguageOracle(self, context_length)
