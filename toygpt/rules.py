"""The decoding rules as data: their names, their order, engine presets, and the checks
that reject a bad argument before any tensor is touched.

A rule is named by the keyword that sets it (``top_p``, ``repetition_penalty``, ...).
transformers splits them in two kinds, and so do we:

- :data:`PROCESSOR_RULES` change the scores in every decoding mode (greedy, sampling and
  beam search): the penalties, the n-gram ban and the allowed-token constraint.
- :data:`SAMPLING_RULES` (transformers' "warpers") only make sense when a token is
  drawn: temperature and the truncation filters. ``generate(do_sample=False)`` should
  refuse them rather than silently ignore them.

:data:`RULE_ORDER` is transformers' order (``_get_logits_processor`` in
``transformers/generation/utils.py``): processors first, then the warpers, temperature
first among them. :data:`SAMPLER_PRESETS` holds the default chains of other engines.
"""

from __future__ import annotations

import math

import torch

PROCESSOR_RULES = (
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "no_repeat_ngram_size",
    "allowed_tokens_fn",
)
SAMPLING_RULES = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
)
RULE_ORDER = PROCESSOR_RULES + SAMPLING_RULES

# Each engine's default chain, restricted to the rules toygpt has. Sources and the
# differences that remain are in the docstring of ``toygpt.sampling``.
SAMPLER_PRESETS = {
    # transformers/generation/utils.py, GenerationMixin._get_logits_processor.
    # transformers has no frequency/presence penalty: they sit where vLLM puts them.
    "transformers": RULE_ORDER,
    # ggml-org/llama.cpp common/common.h, common_params_sampling::samplers:
    # penalties, dry, top_n_sigma, top_k, typical_p, top_p, min_p, xtc, temperature.
    # The grammar (our allowed_tokens_fn) is applied before the chain, as llama.cpp
    # does with grammar_first (common/sampling.cpp, common_sampler_sample).
    "llama.cpp": (
        "allowed_tokens_fn",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
        "top_k",
        "typical_p",
        "top_p",
        "min_p",
        "temperature",
    ),
    # vllm-project/vllm vllm/v1/sample/sampler.py, Sampler: allowed token ids, then
    # penalties (vllm/v1/sample/ops/penalties.py: repetition, frequency, presence),
    # temperature, the argmax-invariant processors (min_p), then top-k and top-p.
    "vllm": (
        "allowed_tokens_fn",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
        "temperature",
        "min_p",
        "top_k",
        "top_p",
    ),
}

# The value that turns a rule off (besides None, which turns every rule off).
_NEUTRAL = {
    "temperature": 1.0,
    "repetition_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
}

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _is_number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float))


def check_logits(logits, name: str = "logits") -> None:
    """Raise a clear error unless ``logits`` is a real float tensor ``(..., V)``
    (float16, bfloat16, float32 or float64) a softmax can use."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (..., vocab_size), "
            f"got {type(logits).__name__}"
        )
    if logits.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a float16, bfloat16, float32 or float64 tensor, "
            f"got dtype {logits.dtype}"
        )
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(
            f"{name} must have shape (..., vocab_size) with vocab_size >= 1, "
            f"got {tuple(logits.shape)}"
        )
    # One reduction finds all three problems: a row's max is NaN if the row holds a
    # NaN, +inf if it holds +inf, and -inf if every entry is -inf.
    row_max = logits.amax(dim=-1)
    if not torch.isfinite(row_max).all():
        if torch.isnan(row_max).any():
            raise ValueError(f"{name} contains NaN")
        if (row_max == float("inf")).any():
            raise ValueError(
                f"{name} contains +inf; only finite values and -inf (removed tokens) "
                "are allowed"
            )
        raise ValueError(
            f"{name} has a row where every entry is -inf: no token is left to choose"
        )


def _number(name, value, allowed):
    if not _is_number(value):
        raise TypeError(f"{name} must be a number in {allowed}, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number in {allowed}, got nan")


def _check_temperature(t) -> None:
    _number("temperature", t, "[0, inf)")
    if t < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {t}")
    if math.isinf(t):
        raise ValueError("temperature must be finite, got inf")


def _check_positive_int(name, k, off="") -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{name} must be an int >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be an int >= 1, got {k}{off}")


def _check_top_k(k) -> None:
    _check_positive_int("top_k", k, " (use top_k=None to turn the filter off)")


def _check_unit(name, x, low_open, high_open, off=""):
    allowed = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
    _number(name, x, allowed)
    low_ok = x > 0 if low_open else x >= 0
    high_ok = x < 1 if high_open else x <= 1
    if not (low_ok and high_ok):
        raise ValueError(f"{name} must be in {allowed}, got {x}{off}")


def _check_top_p(p) -> None:
    _check_unit("top_p", p, True, False, " (use top_p=None to turn the filter off)")


def _check_min_p(m) -> None:
    _check_unit("min_p", m, False, False)


def _check_typical_p(m) -> None:
    _check_unit("typical_p", m, True, False)


def _check_epsilon(e) -> None:
    _check_unit("epsilon_cutoff", e, False, True)


def _check_eta(e) -> None:
    _check_unit("eta_cutoff", e, False, True)


def _check_repetition_penalty(r) -> None:
    _number("repetition_penalty", r, "(0, inf)")
    if not (0 < r < math.inf):
        raise ValueError(
            f"repetition_penalty must be finite and > 0 (1 = off), got {r}"
        )


def _check_openai_penalty(name, x) -> None:
    _number(name, x, "[-2, 2]")
    if not -2 <= x <= 2:
        raise ValueError(f"{name} must be in [-2, 2] (0 = off), got {x}")


def _check_ngram(n) -> None:
    _check_positive_int(
        "no_repeat_ngram_size", n, " (use no_repeat_ngram_size=None to turn it off)"
    )


def _check_allowed_tokens_fn(fn) -> None:
    if not callable(fn):
        raise TypeError(
            "allowed_tokens_fn must be a callable (batch_id: int, ids: LongTensor "
            f"(T,)) -> list[int], got {type(fn).__name__}"
        )


_CHECKS = {
    "temperature": _check_temperature,
    "top_k": _check_top_k,
    "top_p": _check_top_p,
    "min_p": _check_min_p,
    "typical_p": _check_typical_p,
    "epsilon_cutoff": _check_epsilon,
    "eta_cutoff": _check_eta,
    "repetition_penalty": _check_repetition_penalty,
    "frequency_penalty": lambda x: _check_openai_penalty("frequency_penalty", x),
    "presence_penalty": lambda x: _check_openai_penalty("presence_penalty", x),
    "no_repeat_ngram_size": _check_ngram,
    "allowed_tokens_fn": _check_allowed_tokens_fn,
}
# Keywords that are not rules but travel with them.
_OTHER = ("batch_ids", "sampler_order", "prompt_length", "attention_mask")


def resolve_order(sampler_order) -> tuple[str, ...]:
    """``None`` -> :data:`RULE_ORDER`; a preset name -> its tuple; a sequence of rule
    names -> that tuple, after checking every name is known and appears once."""
    if sampler_order is None:
        return RULE_ORDER
    if isinstance(sampler_order, str):
        if sampler_order not in SAMPLER_PRESETS:
            raise ValueError(
                f"sampler_order {sampler_order!r} is not a preset; presets: "
                f"{sorted(SAMPLER_PRESETS)} (or pass a tuple of rule names)"
            )
        return SAMPLER_PRESETS[sampler_order]
    if not isinstance(sampler_order, (tuple, list)):
        raise TypeError(
            "sampler_order must be None, a preset name or a tuple of rule names, "
            f"got {type(sampler_order).__name__}"
        )
    order = tuple(sampler_order)
    for rule in order:
        if rule not in RULE_ORDER:
            raise ValueError(
                f"sampler_order holds an unknown rule {rule!r}; known: {RULE_ORDER}"
            )
    if len(set(order)) != len(order):
        raise ValueError(f"sampler_order names a rule twice: {order}")
    return order


def active_rules(**rule) -> tuple[str, ...]:
    """The rules a set of keywords turns on, in :data:`RULE_ORDER` (a rule is off when
    its value is ``None`` or its neutral value: temperature 1, repetition_penalty 1,
    frequency/presence 0, typical_p 1, epsilon/eta 0).

    >>> active_rules(temperature=0.7, top_k=None, repetition_penalty=1.0, top_p=0.9)
    ('temperature', 'top_p')
    """
    on = []
    for name in RULE_ORDER:
        value = rule.get(name)
        if value is None:
            continue
        if name in _NEUTRAL and _is_number(value) and value == _NEUTRAL[name]:
            continue
        on.append(name)
    return tuple(on)


def check_rule_options(**rule) -> None:
    """Validate every decoding keyword at once, with errors naming the argument and its
    allowed range, so that ``generate``/``beam_search`` can refuse bad settings before
    the first forward pass. ``None`` turns a rule off. Also checks ``sampler_order``
    (and that it holds every rule that is on), ``batch_ids`` and ``prompt_length``."""
    for name, value in rule.items():
        if name not in _CHECKS and name not in _OTHER:
            raise TypeError(
                f"unknown decoding keyword {name!r}; known: {RULE_ORDER + _OTHER}"
            )
        if value is not None and name in _CHECKS:
            _CHECKS[name](value)
    order = resolve_order(rule.get("sampler_order"))
    missing = [r for r in active_rules(**rule) if r not in order]
    if missing:
        raise ValueError(
            f"sampler_order {rule.get('sampler_order')!r} has no place for "
            f"{missing}, which are set; that chain is {order}"
        )
    length = rule.get("prompt_length")
    if length is not None:
        msg = "prompt_length must be an int >= 0 or one int >= 0 per row"
        if isinstance(length, torch.Tensor):
            if length.dtype.is_floating_point or length.dtype == torch.bool:
                raise TypeError(f"{msg}, got a {length.dtype} tensor")
            if length.dim() > 1 or (length < 0).any():
                raise ValueError(f"{msg}, got {length.tolist()}")
        elif isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"{msg}, got {length!r}")
