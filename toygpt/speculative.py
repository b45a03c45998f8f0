"""Speculative decoding: a small draft model proposes, the target model verifies.

One round (Leviathan et al. 2023; Chen et al. 2023), for a sequence ``x``:

1. the draft proposes ``k`` tokens one after another, each drawn from its distribution
   ``q`` (greedy: its most probable token);
2. the target runs once over ``x`` plus the ``k`` proposals and gives its distribution
   ``p`` at each of the ``k + 1`` positions, in one forward pass;
3. proposal ``t`` is accepted with probability ``min(1, p(t) / q(t))``, one after the
   other; the first rejected one is replaced by a draw from the *residual*
   ``norm(max(0, p - q))``, and the round ends there;
4. if all ``k`` were accepted, a bonus token is drawn from the target's last ``p``.

Every round emits at least one token for one target pass, and up to ``k + 1``. The
output follows the target's law exactly, whatever the draft: a token ``t`` comes out
with probability ``q(t) min(1, p/q) + P(reject) norm(max(0, p - q))(t) = p(t)``.
Greedy decoding is the same scheme with one-hot distributions: accept while the
target's argmax agrees, and the output is exactly the target's greedy output.

Both ``p`` and ``q`` are the distributions the decoding rule gives
(:func:`toygpt.sampling.next_token_distribution`: temperature, top-k, top-p, ...), so
the output follows the target *under that rule*. Both models keep a KV cache; rejected
proposals are taken back with :meth:`toygpt.model.KVCache.crop`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from toygpt.generation import _check_max_new_tokens, _check_model, _check_token_id
from toygpt.model import GPTModel, eval_mode
from toygpt.sampling import check_logits, greedy, process_logits

__all__ = ["speculative_generate", "SpeculativeStats", "residual_distribution"]


@dataclass
class SpeculativeStats:
    """What one ``speculative_generate`` call did.

    ``rounds`` holds one ``(proposed, accepted)`` pair per target pass;
    ``proposed`` and ``accepted`` are their totals; ``target_calls`` and
    ``draft_calls`` count forward passes; ``new_tokens`` counts the tokens emitted.
    """

    rounds: list[tuple[int, int]] = field(default_factory=list)
    target_calls: int = 0
    draft_calls: int = 0
    new_tokens: int = 0

    @property
    def proposed(self) -> int:
        return sum(p for p, _ in self.rounds)

    @property
    def accepted(self) -> int:
        return sum(a for _, a in self.rounds)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / proposed (``nan`` if nothing was proposed)."""
        return self.accepted / self.proposed if self.proposed else float("nan")

    @property
    def tokens_per_target_call(self) -> float:
        return self.new_tokens / self.target_calls if self.target_calls else 0.0


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``norm(max(0, p - q))``: where to draw from after a rejection.

    It holds the mass the target gives a token beyond what the draft already gave it.
    If ``p == q`` (a rejection then has probability 0) it returns ``p``.

    >>> p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.6, 0.2])
    >>> residual_distribution(p, q)
    tensor([1., 0., 0.])
    """
    residual = (p - q).clamp(min=0)
    total = residual.sum(-1, keepdim=True)
    return torch.where(total > 0, residual / total.clamp(min=1e-300), p)


class _Runner:
    """Logits of one model for the last positions of a growing sequence (batch 1),
    with a KV cache that holds a prefix of the sequence and is cropped on rejection."""

    def __init__(self, model, use_cache: bool, who: str):
        self.model, self.who = model, who
        self.cache = model.new_kv_cache() if use_cache else None
        self.calls = 0

    def logits(self, ids: torch.Tensor, last: int) -> torch.Tensor:
        """``ids (1, L)`` -> logits ``(last, V)`` predicting the tokens at positions
        ``L - last + 1 .. L``."""
        self.calls += 1
        if self.cache is None:
            out = self.model(ids)[0, -last:]
        else:
            out = self.model(ids[:, len(self.cache) :], kv_cache=self.cache)[0, -last:]
        try:
            check_logits(out)
        except ValueError as error:
            raise ValueError(
                f"the {self.who} model's output is unusable: {error}"
            ) from None
        return out

    def keep(self, length: int) -> None:
        if self.cache is not None:
            self.cache.crop(min(length, len(self.cache)))


def _distribution(logits, prefix, rule, who):
    """The rule's next-token distribution (float64) for one position: the one place
    the accept/reject test takes ``p`` (who="target") and ``q`` (who="draft") from."""
    scores = process_logits(logits.float().unsqueeze(0), prefix, **rule)[0]
    return scores.softmax(-1).double()


def _greedy_token(logits, prefix, rule) -> int:
    # A rule without a temperature (only allowed_tokens_fn is allowed in greedy mode)
    # only removes tokens, so greedy is the argmax of the processed scores.
    if rule:
        logits = process_logits(logits.float().unsqueeze(0), prefix, **rule)[0]
    return int(greedy(logits.float()))


def _check_bool(name, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_arguments(target, draft, input_ids, max_new_tokens, num_draft_tokens, eos):
    _check_model(target)
    try:
        _check_model(draft)
    except TypeError:
        raise TypeError(
            f"draft must be a GPTModel (or an nn.Module with a context_length), "
            f"got {type(draft).__name__}"
        ) from None
    if draft.vocab_size != target.vocab_size:
        raise ValueError(
            "draft and target must share one vocabulary: target.vocab_size is "
            f"{target.vocab_size}, draft.vocab_size is {draft.vocab_size}"
        )
    GPTModel.check_input_ids(target, input_ids)
    if input_ids.shape[0] != 1:
        raise ValueError(
            "input_ids must hold one sequence (batch 1), got batch "
            f"{input_ids.shape[0]}; "
            "speculative_generate accepts a different number of tokens in each row, so "
            "call it once per prompt"
        )
    _check_max_new_tokens(max_new_tokens)
    if isinstance(num_draft_tokens, bool) or not isinstance(num_draft_tokens, int):
        raise TypeError(
            f"num_draft_tokens must be an int >= 1, got {num_draft_tokens!r}"
        )
    if num_draft_tokens < 1:
        raise ValueError(
            f"num_draft_tokens must be an int >= 1, got {num_draft_tokens}"
        )
    _check_token_id(target, eos, "eos_token_id")
    window = min(target.context_length, draft.context_length)
    if input_ids.shape[1] + max_new_tokens > window:
        raise ValueError(
            f"the prompt ({input_ids.shape[1]} tokens) + max_new_tokens "
            f"({max_new_tokens}) must fit in the context window ({window} tokens: "
            f"target {target.context_length}, draft {draft.context_length}); "
            "speculative_generate does not slide the window, so lower max_new_tokens"
        )


@torch.inference_mode()
def speculative_generate(
    target,
    draft,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    num_draft_tokens: int = 4,
    do_sample: bool = False,
    allowed_tokens_fn=None,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    return_stats: bool = False,
    use_cache: bool = True,
    **rule,
):
    """Extend ``input_ids`` ``(1, T)`` by up to ``max_new_tokens`` tokens of ``target``,
    with ``draft`` proposing ``num_draft_tokens`` tokens per target pass.

    * ``do_sample=False``: the output equals ``generate(target, ...)``'s greedy output.
    * ``do_sample=True``: the output is distributed exactly as ``generate(target, ...,
      do_sample=True, **rule)``'s. ``rule`` is any keyword of
      :func:`toygpt.sampling.process_logits` (``temperature``, ``top_k``, ``top_p``,
      ``min_p``, ...); it is applied to both models before the accept/reject test.
    * ``allowed_tokens_fn``: ``(batch_id, ids) -> list[int]``, the tokens allowed after
      ``ids``, passed on to the rule (it needs a ``process_logits`` that takes it).
    * ``eos_token_id``: generation stops at it; proposals after it are discarded.
    * ``return_stats=True``: return ``(ids, SpeculativeStats)``.

    The prompt plus ``max_new_tokens`` must fit in both models' context window (else
    ``ValueError``): a sliding window would make every cached key stale.

    >>> from toygpt import GPTModel
    >>> _ = torch.manual_seed(0)
    >>> target, draft = (GPTModel(10, d, 2, n, 0.0, 16) for d, n in ((32, 2), (8, 1)))
    >>> ids = torch.tensor([[1, 2]])
    >>> out, stats = speculative_generate(target, draft, ids, 6, return_stats=True)
    >>> from toygpt import generate
    >>> torch.equal(out, generate(target, ids, 6)), stats.new_tokens
    (True, 6)
    """
    _check_arguments(
        target, draft, input_ids, max_new_tokens, num_draft_tokens, eos_token_id
    )
    for name, value in (
        ("do_sample", do_sample),
        ("return_stats", return_stats),
        ("use_cache", use_cache),
    ):
        _check_bool(name, value)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator or None, got "
            f"{type(generator).__name__}"
        )
    if allowed_tokens_fn is not None:
        if not callable(allowed_tokens_fn):
            raise TypeError(
                "allowed_tokens_fn must be a function (batch_id, ids) -> list[int], "
                f"got {type(allowed_tokens_fn).__name__}"
            )
        rule["allowed_tokens_fn"] = allowed_tokens_fn
    if not do_sample:
        unused = sorted(set(rule) - {"allowed_tokens_fn"})
        if unused:
            raise ValueError(
                f"{', '.join(unused)} only apply when do_sample=True "
                "(greedy ignores them)"
            )
    else:  # check every rule keyword once, before any model runs
        probe = dict(rule)
        probe.pop("allowed_tokens_fn", None)
        process_logits(torch.zeros(1, target.vocab_size), input_ids, **probe)

    ids = input_ids.to(torch.long)
    stats = SpeculativeStats()
    with eval_mode(target), eval_mode(draft):
        if max_new_tokens > 0:
            ids = _decode(
                target, draft, ids, max_new_tokens, num_draft_tokens, do_sample,
                rule, eos_token_id, generator, use_cache, stats,
            )  # fmt: skip
    ids = ids.clone()  # an ordinary tensor, never the caller's own
    stats.new_tokens = ids.shape[1] - input_ids.shape[1]
    return (ids, stats) if return_stats else ids


def _decode(
    target, draft, ids, max_new, k_max, do_sample, rule, eos, gen, cache, stats
):
    use_cache = cache and isinstance(target, GPTModel)
    big = _Runner(target, use_cache, "target")
    small = _Runner(draft, cache and isinstance(draft, GPTModel), "draft")
    prompt_length = ids.shape[1]
    tokens = ids[0].tolist()
    while True:
        remaining = max_new - (len(tokens) - prompt_length)
        if remaining <= 0 or (eos is not None and tokens[-1] == eos and
                              len(tokens) > prompt_length):  # fmt: skip
            break
        # 1. The draft proposes up to k tokens (k + 1 <= remaining: room for the bonus).
        k = min(k_max, remaining - 1)
        proposals, qs = [], []
        for _ in range(k):
            seq = torch.tensor([tokens + proposals])
            logits = small.logits(seq, 1)[0]
            if do_sample:
                q = _distribution(logits, seq, rule, "draft")
                token = int(torch.multinomial(q, 1, generator=gen))
                qs.append(q)
            else:
                token = _greedy_token(logits, seq, rule)
            proposals.append(token)
            if token == eos:  # nothing follows an end of sentence
                break
        # 2. The target scores every proposal, and the token after them, in one pass.
        seq = torch.tensor([tokens + proposals])
        target_logits = big.logits(seq, len(proposals) + 1)
        # 3. Accept proposals one by one; the first rejected one is replaced.
        accepted, emitted = 0, None
        for i, token in enumerate(proposals):
            prefix = seq[:, : len(tokens) + i]
            if do_sample:
                p = _distribution(target_logits[i], prefix, rule, "target")
                u = float(torch.rand((), generator=gen, dtype=torch.float64))
                if u * float(qs[i][token]) < float(p[token]):
                    accepted += 1
                    continue
                residual = residual_distribution(p, qs[i])
                emitted = int(torch.multinomial(residual, 1, generator=gen))
            else:
                best = _greedy_token(target_logits[i], prefix, rule)
                if best == token:
                    accepted += 1
                    continue
                emitted = best
            break
        stats.rounds.append((len(proposals), accepted))
        new = proposals[:accepted]
        if emitted is None and not (new and new[-1] == eos):
            # 4. Every proposal accepted (and none ended the sentence): a bonus token.
            if do_sample:
                p = _distribution(target_logits[-1], seq, rule, "target")
                emitted = int(torch.multinomial(p, 1, generator=gen))
            else:
                emitted = _greedy_token(target_logits[-1], seq, rule)
        if emitted is not None:
            new.append(emitted)
        tokens += new
        # The caches keep every token but the last (the next round feeds it).
        big.keep(len(tokens) - 1)
        small.keep(len(tokens) - 1)
    stats.target_calls, stats.draft_calls = big.calls, small.calls
    return torch.tensor([tokens], dtype=torch.long, device=ids.device)
