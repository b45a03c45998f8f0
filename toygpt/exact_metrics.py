"""The exact law of a decoding rule over the toy language's sentences, and its metrics.

A :class:`SentenceDistribution` is what :meth:`toygpt.SentenceTree.distribution`
returns: for every sentence of the language that starts with the prompt, the exact
probability that ``generate`` writes it (``probs``) beside the language's own
probability (``truth``). The rest of the mass, ``other``, is output the language cannot
produce. Every metric below is a finite sum over those sentences, so it is exact: no
sampling error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["SentenceDistribution"]


@dataclass(eq=False)
class SentenceDistribution:
    """Exact probabilities of every sentence under a model and a decoding rule.

    Attributes:
        sentences: every sentence ``<s> ... </s>`` of the language that starts with the
            prompt (prompt included), as lists of ids.
        probs: float64 ``(N,)``: P(``generate`` with this rule writes
            ``sentences[i]``).
        truth: float64 ``(N,)``: the language's probability of ``sentences[i]`` given
            the prompt (it sums to 1).
        other: the rest, ``1 - probs.sum()``: output the language cannot produce (a
            word the grammar does not allow there, or no ``</s>`` in time). Computed as
            the sum of the escaping mass (below), so it is exactly 0 when nothing
            escapes.
        new_tokens: int64 ``(N,)``: tokens after the prompt, ``</s>`` included.
        escape: float64 ``(inner nodes, V)``: the probability of reaching each prefix
            and then writing each word the grammar does not allow there (0 for the
            words it allows): every way to leave the grammar; ``other`` is its sum.
        escape_new_tokens: int64 ``(inner nodes,)``: tokens after the prompt once a
            prefix has left, the ungrammatical token included.
        eos_id: the id of ``</s>`` (an ungrammatical ``</s>`` ends the output).
        vocab: the words, to print sentences.
    """

    sentences: list[list[int]]
    probs: torch.Tensor
    truth: torch.Tensor
    other: float
    new_tokens: torch.Tensor
    escape: torch.Tensor = field(repr=False)
    escape_new_tokens: torch.Tensor = field(repr=False)
    eos_id: int = field(repr=False)
    vocab: list[str] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"SentenceDistribution({len(self.sentences)} sentences, grammatical mass "
            f"{self.grammatical_mass:.4f}, KL(truth||rule) {self.kl_truth_rule:.4f})"
        )

    @property
    def grammatical_mass(self) -> float:
        """The probability that the output is a sentence of the language:
        ``1 - other``."""
        return float(self.probs.sum())

    @property
    def coverage(self) -> float:
        """The truth's mass on the sentences the rule can write at all (``probs > 0``):
        1 for plain sampling from a model that gives every word some probability, the
        truth's probability of one sentence for greedy decoding."""
        return float(self.truth[self.probs > 0].sum())

    @property
    def kl_truth_rule(self) -> float:
        """KL(truth || rule) in nats: ``sum truth * log(truth / probs)`` over the
        sentences. Ungrammatical output has truth 0 and adds nothing; a sentence of the
        language the rule never writes makes it ``inf`` (greedy, a tight top-k)."""
        t, p = self.truth, self.probs
        if bool(((t > 0) & (p == 0)).any()):
            return math.inf
        keep = t > 0
        return float((t[keep] * (t[keep].log() - p[keep].log())).sum())

    @property
    def total_variation(self) -> float:
        """Total variation distance to the truth, ``max_A |P_rule(A) - P_truth(A)|``,
        over all outputs: ``(sum |probs - truth| + other) / 2``. The truth gives every
        ungrammatical output probability 0, so however ``other`` splits among them it
        adds ``other`` to the sum: exact, not a bound."""
        return 0.5 * (float((self.probs - self.truth).abs().sum()) + self.other)

    @property
    def entropy_grammatical(self) -> float:
        """The grammatical part of the output's entropy, in nats:
        ``-sum probs * log probs`` over the sentences (not renormalised). The whole
        output's entropy adds what ``other`` contributes: see :meth:`entropy_bounds`."""
        p = self.probs[self.probs > 0]
        return float(-(p * p.log()).sum())

    def entropy_bounds(self, max_new_tokens: int | None = None) -> tuple[float, float]:
        """Lower and upper bounds on the entropy (nats) of the whole output of
        ``generate(..., max_new_tokens)`` (default: the longest continuation in the
        language), diversity counted over every distinct output.

        ``entropy_grammatical`` is exact. ``other`` splits into escapes (a prefix and
        the first ungrammatical token), whose masses are known; how an escape continues
        is not. The lower bound counts each escape as one output (its continuation adds
        entropy >= 0); the upper bound lets each continuation be uniform over all
        ``V ** r`` strings of the ``r`` tokens left. Equal when ``other`` is 0.
        """
        where = self.escape > 0
        m = self.escape[where]
        low = self.entropy_grammatical + float(-(m * m.log()).sum())
        if max_new_tokens is None:
            max_new_tokens = int(self.new_tokens.max())
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
        if max_new_tokens < int(self.new_tokens.max()):
            raise ValueError(
                f"max_new_tokens must be >= {int(self.new_tokens.max())} (the longest "
                f"continuation), got {max_new_tokens}"
            )
        left = (max_new_tokens - self.escape_new_tokens).clamp(min=0)  # (inner,)
        left = left[:, None].expand_as(self.escape).clone()
        left[:, self.eos_id] = 0  # an ungrammatical </s> ends the output
        extra = float((m * left[where].double()).sum()) * math.log(len(self.vocab))
        return low, low + extra

    @property
    def quality(self) -> float:
        """Expected true log-probability per token of the grammatical output (nats):
        ``E[log truth(s) / new_tokens(s) | s is a sentence]``, ``s`` drawn by the rule;
        ``log truth(s)`` is given the prompt, ``new_tokens`` counts ``</s>``. Closer to
        0 means *more probable* text (not more typical: typical text sits near the
        entropy rate). ``-inf`` if the rule never writes a sentence. Sampling estimates
        it as ``evaluate_decoding(...).log_prob``.
        """
        mass = self.grammatical_mass
        if mass == 0:
            return -math.inf
        keep = self.probs > 0
        per_token = self.truth[keep].log() / self.new_tokens[keep]
        return float((self.probs[keep] * per_token).sum() / mass)

    def top(self, k: int = 10) -> list[tuple[str, float, float]]:
        """The ``k`` sentences the rule writes most often: ``(text, prob, truth)``, most
        probable first (ties: the language's order)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        order = torch.argsort(self.probs, descending=True, stable=True)[:k].tolist()
        return [
            (
                " ".join(self.vocab[i] for i in self.sentences[j]),
                float(self.probs[j]),
                float(self.truth[j]),
            )
            for j in order
        ]
