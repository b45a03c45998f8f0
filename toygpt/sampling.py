"""The one place where logits become the next-token distribution, and the draw.

:func:`process_logits` applies every rule that is on, in the order of
``sampler_order`` (default: transformers' order, :data:`RULE_ORDER`)::

    repetition_penalty -> frequency_penalty -> presence_penalty
      -> no_repeat_ngram_size -> allowed_tokens_fn                  (processors)
      -> temperature -> top_k -> top_p -> min_p -> typical_p
      -> epsilon_cutoff -> eta_cutoff                               (warpers)

``sample_next``, ``generate``, ``beam_search``, the exact layer and the speculative
sampler all call it, so a rule cannot mean two things in two places.

Engine presets (:data:`SAMPLER_PRESETS`), each read from the engine's source and
restricted to the rules toygpt has:

- ``"transformers"``: ``GenerationMixin._get_logits_processor`` in
  ``transformers/generation/utils.py`` (huggingface/transformers; read in the installed
  5.x wheel): repetition penalty, no-repeat-ngram, prefix-allowed tokens, then (only
  when sampling) temperature, top-k, top-p, min-p, typical, epsilon, eta. transformers
  has no frequency/presence penalty; they sit after the repetition penalty, where vLLM
  applies them. Not here: top-h, bad words, min length, sequence bias, ...
- ``"llama.cpp"``: ``common_params_sampling::samplers`` in ``common/common.h``
  (ggml-org/llama.cpp, commit 001d906a): penalties, DRY, top-n-sigma, top-k, typical,
  top-p, min-p, XTC, temperature, i.e. temperature *last*: top-k/top-p/min-p/typical
  choose their tokens on the untempered distribution. Not here: DRY, top-n-sigma, XTC,
  mirostat, dynamic temperature. Semantic differences (``src/llama-sampling.cpp``,
  commit 0344068c): llama.cpp's top-k keeps exactly k tokens (ties cut by sort order;
  toygpt keeps ties); its typical keeps tokens while the mass *before* them is <= p
  (transformers: < p) and does not keep ties of the cut-off; its penalties count only
  the last ``penalty_last_n`` (default 64) tokens the sampler has accepted, not the
  whole sequence; its default top-k 40, top-p 0.95, min-p 0.05, temperature 0.8 are
  not applied by the preset (the preset is an order, the values are yours). Its
  grammar is checked after the chain and the draw is redone with the grammar first only
  if the token is rejected (``common_sampler_sample`` in ``common/sampling.cpp``); the
  preset applies ``allowed_tokens_fn`` first, which is llama.cpp's ``grammar_first``.
- ``"vllm"``: ``Sampler`` in ``vllm/v1/sample/sampler.py`` (vllm-project/vllm, commit
  3e342658): allowed token ids, penalties (repetition, frequency, presence;
  ``vllm/v1/sample/ops/penalties.py``), temperature, min-p, then top-k and top-p. Not
  here: bad words, logit bias, min tokens. vLLM counts frequency/presence over the
  *generated* tokens only (pass ``prompt_length`` to do the same) but the repetition
  penalty over prompt and output, as transformers; it has no typical/epsilon/eta or
  no-repeat-ngram rule, and treats temperature < 1e-5 as greedy.
"""

from __future__ import annotations

import torch

from toygpt.filters import (
    apply_temperature,
    epsilon_filter,
    eta_filter,
    min_p_filter,
    top_k_filter,
    top_p_filter,
    typical_filter,
)
from toygpt.penalties import (
    allowed_tokens_scores,
    frequency_presence_scores,
    no_repeat_ngram_scores,
    prefix_ids,
    repetition_penalty_scores,
    row_batch_ids,
)
from toygpt.rules import (
    PROCESSOR_RULES,
    RULE_ORDER,
    SAMPLER_PRESETS,
    SAMPLING_RULES,
    active_rules,
    check_logits,
    check_rule_options,
    resolve_order,
)

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "min_p_filter",
    "typical_filter",
    "epsilon_filter",
    "eta_filter",
    "greedy",
    "RULE_ORDER",
    "SAMPLING_RULES",
    "PROCESSOR_RULES",
    "SAMPLER_PRESETS",
    "active_rules",
    "check_logits",
    "check_rule_options",
    "check_sampling_options",
    "process_logits",
    "next_token_distribution",
    "sample_next",
]

_NEEDS_IDS = PROCESSOR_RULES


def check_sampling_options(
    temperature=1.0, top_k=None, top_p=None, min_p=None, generator=None, **rule
) -> None:
    """Validate the arguments of one sampling step (``None`` turns a rule off); every
    keyword of :func:`process_logits` is accepted (see :func:`check_rule_options`)."""
    check_rule_options(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, **rule
    )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator or None, "
            f"got {type(generator).__name__}"
        )


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most probable token of each row: ``(..., V) -> (...)``; ties go to the lowest
    index.

    Softmax is monotonic, so the argmax of the logits is the argmax of the
    probabilities: greedy decoding never needs the softmax.

    >>> greedy(torch.tensor([[0.1, 2.0, 2.0], [3.0, 0.0, 1.0]]))
    tensor([1, 0])
    """
    check_logits(logits)
    return torch.argmax(logits, dim=-1)


def process_logits(
    logits: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    epsilon_cutoff: float | None = None,
    eta_cutoff: float | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    allowed_tokens_fn=None,
    batch_ids=None,
    sampler_order: str | tuple[str, ...] | None = None,
    prompt_length: int | torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn logits ``(..., V)`` into the scores a draw is made from: every rule that is
    on is applied in the order of ``sampler_order`` (a tuple of rule names, a preset
    name of :data:`SAMPLER_PRESETS`, or ``None`` for :data:`RULE_ORDER`); removed tokens
    are ``-inf``. float64 logits stay float64 (float16/bfloat16 become float32).

    A rule is off when its argument is ``None`` (or neutral: temperature 1,
    repetition_penalty 1, frequency/presence 0, typical_p 1, epsilon/eta 0).
    ``temperature=0`` keeps only the greedy token of the scores at that point.

    The prefix rules read ``input_ids`` ``(..., T)``: the whole sequence so far, prompt
    included. ``attention_mask`` (same shape, 1 = real token) hides left padding from
    them, so a padded row is treated as its prompt alone. ``repetition_penalty`` (CTRL)
    and ``no_repeat_ngram_size`` see every real token, as in transformers.
    ``frequency_penalty``/``presence_penalty`` (OpenAI's definition) count every real
    token too, unless ``prompt_length`` is given: then only the columns of
    ``input_ids`` from ``prompt_length`` on (an int, or one per row), the generated
    tokens, as OpenAI and vLLM count them.
    ``allowed_tokens_fn(batch_id, ids)`` follows transformers'
    ``prefix_allowed_tokens_fn``; ``batch_ids`` (one per row, default ``0, 1, ...``)
    gives each row's prompt index (beam search passes ``row // num_beams``).

    >>> process_logits(torch.tensor([2.0, 1.0, 0.0]), temperature=0.5, top_k=2)
    tensor([ 0., -2., -inf])
    """
    check_logits(logits)
    options = dict(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        typical_p=typical_p,
        epsilon_cutoff=epsilon_cutoff,
        eta_cutoff=eta_cutoff,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty,
        allowed_tokens_fn=allowed_tokens_fn,
    )
    check_rule_options(
        sampler_order=sampler_order, prompt_length=prompt_length, **options
    )
    on = set(active_rules(**options))
    order = [rule for rule in resolve_order(sampler_order) if rule in on]
    scores = logits if logits.dtype == torch.float64 else logits.float()
    vocab_size = logits.shape[-1]
    if not any(rule in _NEEDS_IDS for rule in order):
        return _warp(scores, order, options) if order else scores.clone()
    if input_ids is None:
        needs = [rule for rule in order if rule in _NEEDS_IDS]
        raise ValueError(f"{needs} depend on the prefix: pass input_ids (..., T)")
    ids, counted = prefix_ids(input_ids, attention_mask, logits, vocab_size)
    rows = scores.reshape(-1, vocab_size)
    batch_ids = row_batch_ids(batch_ids, rows.shape[0])
    generated = counted
    if prompt_length is not None:
        start = torch.as_tensor(prompt_length).reshape(-1, 1)
        if start.shape[0] not in (1, ids.shape[0]):
            raise ValueError(
                f"prompt_length has {start.shape[0]} entries for {ids.shape[0]} rows"
            )
        positions = torch.arange(ids.shape[-1]) >= start
        generated = positions.expand_as(ids) if counted is None else counted & positions
    for rule in order:
        if rule == "repetition_penalty":
            rows = repetition_penalty_scores(rows, ids, repetition_penalty, counted)
        elif rule == "frequency_penalty":
            rows = frequency_presence_scores(rows, ids, frequency_penalty, 0, generated)
        elif rule == "presence_penalty":
            rows = frequency_presence_scores(rows, ids, 0, presence_penalty, generated)
        elif rule == "no_repeat_ngram_size":
            rows = no_repeat_ngram_scores(rows, ids, no_repeat_ngram_size, counted)
        elif rule == "allowed_tokens_fn":
            rows = allowed_tokens_scores(
                rows, ids, allowed_tokens_fn, batch_ids, counted
            )
        else:
            rows = _warp(rows, [rule], options)
            continue
        _check_after(rows, rule, options)
    return rows.reshape(scores.shape)


_WARPERS = {
    "temperature": apply_temperature,
    "top_k": top_k_filter,
    "top_p": top_p_filter,
    "min_p": min_p_filter,
    "typical_p": typical_filter,
    "epsilon_cutoff": epsilon_filter,
    "eta_cutoff": eta_filter,
}


def _warp(scores, order, options):
    for rule in order:
        scores = _WARPERS[rule](scores, options[rule])
    return scores


def _check_after(scores, rule, options):
    try:
        check_logits(scores, name="the scores")
    except ValueError as err:
        value = options[rule]
        shown = getattr(value, "__name__", value)
        raise ValueError(f"after {rule}={shown!r}, {err}") from None


def next_token_distribution(
    logits: torch.Tensor, input_ids: torch.Tensor | None = None, **rule
) -> torch.Tensor:
    """The probabilities ``(..., V)`` that one sampling step draws from: the softmax of
    :func:`process_logits`. Same arguments."""
    return process_logits(logits, input_ids, **rule).softmax(dim=-1)


def sample_next(
    logits: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    input_ids: torch.Tensor | None = None,
    **rule,
) -> torch.Tensor:
    """Draw one token per row of ``logits`` ``(B, V) -> (B,)`` (or ``(V,) -> ()``) from
    :func:`next_token_distribution` (every keyword of :func:`process_logits` works).

    ``temperature=0`` means greedy on the processed scores (no randomness is used).
    float64 logits are drawn from in float64.
    """
    check_logits(logits)
    check_sampling_options(generator=generator, **rule)
    scores = process_logits(logits, input_ids, **rule)
    if rule.get("temperature", 1.0) == 0:
        return torch.argmax(scores, dim=-1)
    probs = scores.softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])  # multinomial wants (rows, V)
    draws = torch.multinomial(flat, num_samples=1, generator=generator)
    return draws.reshape(probs.shape[:-1])
