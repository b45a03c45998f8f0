"""toygpt: a small GPT you can read end to end, and the decoding strategies that turn
its next-word distribution into text. Every chapter of the book imports it."""

from toygpt.beam import BeamSearchResult, beam_search
from toygpt.evaluation import DecodingReport, evaluate_decoding
from toygpt.exact import SentenceTree, exact_mode, sentence_distribution
from toygpt.exact_metrics import SentenceDistribution
from toygpt.generation import generate
from toygpt.language import ToyLanguage
from toygpt.model import GPTModel, KVCache, TransformerBlock
from toygpt.pretrained import load_pretrained
from toygpt.sampling import (
    PROCESSOR_RULES,
    RULE_ORDER,
    SAMPLER_PRESETS,
    SAMPLING_RULES,
    active_rules,
    apply_temperature,
    check_rule_options,
    epsilon_filter,
    eta_filter,
    greedy,
    min_p_filter,
    next_token_distribution,
    process_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
    typical_filter,
)
from toygpt.tokenizer import WordTokenizer

__version__ = "0.1.0"

_PLOTS = ("plot_heatmap",)


def __getattr__(name):
    # Plotting pulls in matplotlib and seaborn: import it only when a figure is asked
    # for.
    if name in _PLOTS:
        from toygpt import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'toygpt' has no attribute {name!r}")


__all__ = [
    "PROCESSOR_RULES",
    "RULE_ORDER",
    "SAMPLER_PRESETS",
    "SAMPLING_RULES",
    "BeamSearchResult",
    "DecodingReport",
    "GPTModel",
    "KVCache",
    "SentenceDistribution",
    "SentenceTree",
    "ToyLanguage",
    "TransformerBlock",
    "WordTokenizer",
    "active_rules",
    "apply_temperature",
    "check_rule_options",
    "epsilon_filter",
    "eta_filter",
    "evaluate_decoding",
    "exact_mode",
    "beam_search",
    "generate",
    "greedy",
    "load_pretrained",
    "min_p_filter",
    "next_token_distribution",
    "process_logits",
    "plot_heatmap",
    "sample_next",
    "sentence_distribution",
    "top_k_filter",
    "top_p_filter",
    "typical_filter",
]
