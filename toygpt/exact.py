"""Exact laws of decoding: every sentence's probability under a model and a rule.

The toy language has finitely many sentences (3,867 after ``<s>``), so what
``generate`` does with a decoding rule can be computed instead of sampled. The sentences
that start with a prompt form a tree of prefixes; the model's logits are computed once
at every inner node (each token run once, by :mod:`toygpt.tree_attention`); a rule
turns each node's logits into the next-token distribution with
:func:`toygpt.sampling.next_token_distribution`, the very function ``sample_next``
draws from; a sentence's probability is the product of its tokens' probabilities along
its path.

>>> import torch
>>> from toygpt import ToyLanguage
>>> lang = ToyLanguage()
>>> tree = SentenceTree(lang.as_model(), lang, lang.tokenizer().encode("the dog"))
>>> d = tree.distribution(top_k=1)       # the truth, decoded greedily
>>> d.top(1)[0][0], round(d.coverage, 4)
('<s> the dog is happy </s>', 0.0544)

:func:`exact_mode` finds the model's most probable finished sequence by best-first
search.
"""

from __future__ import annotations

import heapq
import math

import torch

from toygpt.exact_metrics import SentenceDistribution
from toygpt.generation import check_ids
from toygpt.model import GPTModel, eval_mode
from toygpt.rules import PROCESSOR_RULES, active_rules
from toygpt.sampling import (
    check_rule_options,
    next_token_distribution,
    process_logits,
)
from toygpt.tree_attention import tree_logits

__all__ = ["SentenceTree", "sentence_distribution", "exact_mode"]


def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "context_length"):
        raise TypeError(
            "model must be a GPTModel (or an nn.Module with a context_length and a "
            f"vocab_size), got {type(model).__name__}"
        )


def _check_prompt(model, prompt_ids) -> torch.Tensor:
    check_ids(model, prompt_ids, "prompt_ids")
    if prompt_ids.shape[0] != 1:
        raise ValueError(
            f"prompt_ids must have shape (1, T), got {tuple(prompt_ids.shape)}"
        )
    return prompt_ids


class SentenceTree:
    """Every sentence of ``lang`` that continues ``prompt_ids`` ``(1, T)``, and the
    model's float64 logits at every prefix of them that is not finished.

    ``prompt_ids`` must start with ``<s>`` and be a prefix of a sentence that has not
    ended (else ``ValueError``). ``lang`` needs ``vocab``, ``bos_id``, ``eos_id``,
    ``transitions`` and ``state_after`` (as :class:`toygpt.ToyLanguage` has). The model
    runs in eval mode, each token of the tree once for a ``GPTModel`` (tree
    attention; any other module: the whole prefix, depth by depth). A prefix longer
    than the model's ``context_length`` is cropped to its last ``context_length``
    tokens, exactly as ``generate`` does.

    Attributes: ``sentences``, ``truth`` (float64 ``(N,)``), ``new_tokens``,
    ``max_new_tokens`` (the longest continuation: ``generate`` with at least this many
    new tokens can write every sentence), ``logits`` (float64 ``(inner nodes, V)``),
    ``prefixes`` (one ``(n_d, T + d)`` tensor per depth ``d``), ``num_inner``.
    """

    def __init__(self, model, lang, prompt_ids: torch.Tensor):
        _check_model(model)
        prompt = _check_prompt(model, prompt_ids)
        if model.vocab_size != len(lang.vocab):
            raise ValueError(
                f"model has vocab_size {model.vocab_size} but the language has "
                f"{len(lang.vocab)} words"
            )
        self.lang, self.vocab = lang, list(lang.vocab)
        try:
            state = lang.state_after(prompt)
        except ValueError as error:
            raise ValueError(
                "prompt_ids must be a prefix of a sentence of the language, starting "
                f"with <s> (id {lang.bos_id}): {error}"
            ) from None
        if state == "END":
            raise ValueError(
                "prompt_ids is a finished sentence (it ends with </s>): there is "
                "nothing to generate"
            )
        self._build(prompt[0].tolist(), state)
        self.logits = self._run(model, prompt)

    def _build(self, prompt: list[int], state: str) -> None:
        """Enumerate the tree breadth first, one depth at a time as tensors: inner
        nodes depth by depth (node-major, in the grammar's order of moves), and the
        sentences each depth finishes. A probability is its parent's times the move's,
        in float64, as a walk in Python would multiply them."""
        word_id, eos, V = self.lang.word_to_id, self.lang.eos_id, len(self.vocab)
        # the grammar as tables: (states, most moves), a move to "END" as state -1
        index = {st: i for i, st in enumerate(self.lang.transitions)}
        width = max(len(rows) for rows in self.lang.transitions.values())
        pad = [(-1, 0.0, -1)] * width
        table = [
            [
                (word_id[w], p, -1 if after == "END" else index[after])
                for w, p, after in rows
            ]
            + pad[len(rows) :]
            for rows in self.lang.transitions.values()
        ]
        move_token = torch.tensor([[m[0] for m in row] for row in table])
        move_p = torch.tensor(
            [[m[1] for m in row] for row in table], dtype=torch.float64
        )
        move_to = torch.tensor([[m[2] for m in row] for row in table])
        states = torch.tensor([index[state]])  # inner nodes of the current depth
        q = torch.ones(1, dtype=torch.float64)  # the truth's probability of each
        parents, tokens, allowed_rows, allowed, depth_sizes = [], [], [], [], []
        sentence_parent, sentence_token, truth = [], [], []
        first = 0  # global index of the current depth's first inner node
        while len(states):
            n = len(states)
            token = move_token[states]  # (n, width), -1 past a state's moves
            valid = token >= 0
            node = torch.arange(first, first + n)[:, None].expand(n, width)[valid]
            token = token[valid]
            prob = q[node - first] * move_p[states][valid]
            after = move_to[states][valid]
            allowed_rows.append(node)
            allowed.append(token)
            end = after < 0
            sentence_parent.append(node[end])
            sentence_token.append(token[end])
            truth.append(prob[end])
            parents.append(node[~end])
            tokens.append(token[~end])
            states, q = after[~end], prob[~end]
            depth_sizes.append(n)
            first += n
        sentence_token = torch.cat(sentence_token)
        if (sentence_token != eos).any():  # pragma: no cover (grammar checked)
            raise ValueError("the language's sentences must end with its eos_id")
        self.num_inner = first
        none = torch.tensor([-1])  # the prompt's node has no parent and no token
        self._parent = torch.cat([none] + parents)  # of every inner node
        self._token = torch.cat([none] + tokens)
        self._depth_sizes = depth_sizes
        self._first = [0] + torch.tensor(depth_sizes).cumsum(0).tolist()
        # (n_d, T + d) per depth: the parent's prefix, then the node's token
        self.prefixes = [torch.tensor([prompt])]
        for d in range(1, len(depth_sizes)):
            rows = slice(self._first[d], self._first[d + 1])
            above = self.prefixes[-1][self._parent[rows] - self._first[d - 1]]
            self.prefixes.append(torch.cat([above, self._token[rows, None]], dim=1))
        # sentences: the parent's prefix and </s>; the walk lists them by parent, so
        # those under one depth are consecutive
        self._sentence_parent = torch.cat(sentence_parent)
        depth_of = torch.searchsorted(
            torch.tensor(self._first[1:]), self._sentence_parent, right=True
        )
        self.sentences = []
        for d, ids in enumerate(self.prefixes):
            local = self._sentence_parent[depth_of == d] - self._first[d]
            ends = torch.full((len(local), 1), eos)
            self.sentences += torch.cat([ids[local], ends], dim=1).tolist()
        self.truth = torch.cat(truth)
        self.new_tokens = depth_of + 1  # a parent at depth d, then </s>
        self.max_new_tokens = int(self.new_tokens.max())
        # (inner, V): True for the words the grammar allows next
        self._allowed = torch.zeros(first, V, dtype=torch.bool)
        self._allowed[torch.cat(allowed_rows), torch.cat(allowed)] = True
        self._inner_depth = torch.repeat_interleave(
            torch.arange(len(depth_sizes)), torch.tensor(depth_sizes)
        )

    @torch.inference_mode()
    def _run(self, model, prompt: torch.Tensor) -> torch.Tensor:
        """The model's logits at every inner node, float64 ``(inner nodes, V)``: by
        tree attention for a ``GPTModel`` while the prefixes fit its context."""
        C, out = model.context_length, []
        fit = len(self.prefixes)  # depths whose prefixes fit in the context
        if isinstance(model, GPTModel):
            fit = max(0, min(fit, C - prompt.shape[1] + 1))
            depths = range(1, fit)
            tokens = [self._token[self._first[d] : self._first[d + 1]] for d in depths]
            parents = [
                self._parent[self._first[d] : self._first[d + 1]] - self._first[d - 1]
                for d in depths
            ]
            out = tree_logits(model, prompt, tokens, parents) if fit else []
        with eval_mode(model):
            for ids in self.prefixes[len(out) :]:  # generate's path, cropped
                out.append(model(ids[:, -C:])[:, -1])
        return torch.cat(out).double()

    def distribution(self, **rule) -> SentenceDistribution:
        """The exact law of ``generate(model, prompt_ids, max_new_tokens,
        do_sample=True, eos_token_id=lang.eos_id, **rule)`` over the sentences, for any
        ``max_new_tokens >= self.max_new_tokens``.

        ``rule`` is passed unchanged to
        :func:`toygpt.sampling.next_token_distribution` (``temperature``, ``top_k``,
        ``top_p``, ``min_p``, ``typical_p``, ``epsilon_cutoff``, ``eta_cutoff``,
        ``repetition_penalty``, ``no_repeat_ngram_size``, ``frequency_penalty``,
        ``presence_penalty``, ``allowed_tokens_fn``, ``sampler_order``), on all nodes
        at once, or depth by depth with every node's prefix as ``input_ids`` when a
        rule reads the prefix; with ``allowed_tokens_fn`` every node gets
        ``batch_ids`` 0.
        ``temperature=0`` gives greedy decoding's one-hot law. The logits come from a
        batched forward and ``generate``'s from its own, equal up to float rounding: a
        rule whose cut sits on a near-tie (within ~1e-6) may cut differently.
        """
        if not any(r in PROCESSOR_RULES for r in active_rules(**rule)):
            # no rule reads the prefix: every node's row at once
            dist = next_token_distribution(self.logits, **rule)
            return self._law(dist)
        dist = torch.empty_like(self.logits)
        start = 0
        for ids in self.prefixes:
            n = ids.shape[0]
            kwargs = dict(rule)
            if kwargs.get("allowed_tokens_fn") is not None:
                kwargs.setdefault("batch_ids", torch.zeros(n, dtype=torch.long))
            dist[start : start + n] = next_token_distribution(
                self.logits[start : start + n], input_ids=ids, **kwargs
            )
            start += n
        return self._law(dist)

    def _law(self, dist: torch.Tensor) -> SentenceDistribution:
        """The sentences' law from every inner node's next-token distribution."""
        # Probability of reaching each inner node: a product down the tree, by depth.
        reach = torch.ones(self.num_inner, dtype=torch.float64)
        step = dist[self._parent[1:], self._token[1:]]  # edge into every inner node
        start = self._depth_sizes[0]
        for n in self._depth_sizes[1:]:
            end = start + n
            reach[start:end] = (
                reach[self._parent[start:end]] * step[start - 1 : end - 1]
            )
            start = end
        parent = self._sentence_parent
        probs = reach[parent] * dist[parent, self.lang.eos_id]
        escape = reach[:, None] * dist.masked_fill(self._allowed, 0.0)  # (inner, V)
        return SentenceDistribution(
            sentences=self.sentences,
            probs=probs,
            truth=self.truth,
            other=float(escape.sum()),
            new_tokens=self.new_tokens,
            escape=escape,
            escape_new_tokens=self._inner_depth + 1,
            eos_id=self.lang.eos_id,
            vocab=self.vocab,
        )


def sentence_distribution(model, lang, prompt_ids, **rule) -> SentenceDistribution:
    """``SentenceTree(model, lang, prompt_ids).distribution(**rule)``: for one rule."""
    return SentenceTree(model, lang, prompt_ids).distribution(**rule)


@torch.inference_mode()
def exact_mode(
    model,
    prompt_ids: torch.Tensor,
    *,
    eos_token_id: int,
    max_new_tokens: int,
    max_expansions: int = 100_000,
    batch_size: int = 64,
    return_expansions: bool = False,
    **rule,
):
    """The model's most probable finished continuation of ``prompt_ids`` ``(1, T)``:
    ``(ids (1, T + n), log_prob)``, ending in ``eos_token_id`` within
    ``max_new_tokens``, grammatical or not; ``log_prob`` is the sum of the new tokens'
    log-probabilities (float64). With ``rule`` (``temperature``, ``top_k``, ...), the
    mode of what sampling with that rule writes: each step's log-probabilities are the
    log of :func:`toygpt.sampling.next_token_distribution`, as in ``generate``. The
    prefix rules work too (penalties, ``allowed_tokens_fn``, told batch id 0 as
    ``generate`` tells a single prompt): with the grammar as ``allowed_tokens_fn``, the
    mode of constrained (per-step renormalised) sampling.

    Best-first (uniform-cost) search: prefixes wait in a priority queue by
    log-probability; the most probable ones are expanded, up to ``batch_size`` per
    forward pass. Adding a token never raises a log-probability, so once the best
    finished sequence is at least as probable as every prefix still waiting, no
    unexplored sequence can beat it: that is the proof, and the search stops. Ties go
    to the sequence found first. ``max_expansions`` caps the prefixes expanded; past it
    a ``RuntimeError`` says so (never a wrong answer). ``return_expansions=True`` also
    returns how many were expanded. Prefixes longer than ``context_length`` are cropped
    to their last ``context_length`` tokens, as ``generate`` does.
    """
    _check_model(model)
    prompt = _check_prompt(model, prompt_ids)
    for name, value, low in (
        ("eos_token_id", eos_token_id, 0),
        ("max_new_tokens", max_new_tokens, 1),
        ("max_expansions", max_expansions, 1),
        ("batch_size", batch_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if eos_token_id >= model.vocab_size:
        raise ValueError(
            f"eos_token_id must be in [0, {model.vocab_size - 1}], got {eos_token_id}"
        )
    # Check the rule first. The prefix rules read the prompt; allowed_tokens_fn is
    # only checked (callable), not called: the search calls it on each prefix.
    check_rule_options(**rule)
    fixed = {k: v for k, v in rule.items() if k != "allowed_tokens_fn"}
    process_logits(torch.zeros(1, model.vocab_size), prompt, **fixed)
    C, T = model.context_length, prompt.shape[1]
    best_lp, best = -math.inf, None
    queue = [(0.0, 0, prompt[0].tolist())]  # (-log-prob, order pushed, ids)
    pushed = expansions = 0
    with eval_mode(model):
        while queue and -queue[0][0] > best_lp:
            batch = []
            while queue and len(batch) < batch_size and -queue[0][0] > best_lp:
                batch.append(heapq.heappop(queue))
            expansions += len(batch)
            if expansions > max_expansions:
                raise RuntimeError(
                    f"exact_mode expanded more than max_expansions={max_expansions} "
                    "prefixes without a proof of the mode; raise max_expansions"
                )
            by_length = {}
            for entry in batch:
                by_length.setdefault(len(entry[2]), []).append(entry)
            for group in by_length.values():
                ids = torch.tensor([e[2] for e in group])
                logits = model(ids[:, -C:])[:, -1].double()
                kwargs = dict(rule)
                if rule.get("allowed_tokens_fn") is not None:  # one prompt: batch id 0
                    kwargs.setdefault("batch_ids", torch.zeros(len(group), dtype=int))
                logp = process_logits(logits, ids, **kwargs).log_softmax(-1)
                for (neg, _, seq), row in zip(group, logp.tolist()):
                    room = T + max_new_tokens - len(seq) - 1  # tokens left after one
                    for token, lp in enumerate(row):
                        total = -neg + lp
                        if total <= best_lp:  # also drops -inf (removed tokens)
                            continue
                        if token == eos_token_id:
                            best_lp, best = total, seq + [token]
                        elif room > 0:
                            pushed += 1
                            heapq.heappush(queue, (-total, pushed, seq + [token]))
    if best is None:
        raise ValueError(
            f"no sequence ends with eos_token_id={eos_token_id} within "
            f"max_new_tokens={max_new_tokens} with probability > 0"
        )
    out = (torch.tensor([best]), best_lp)
    return out + (expansions,) if return_expansions else out
