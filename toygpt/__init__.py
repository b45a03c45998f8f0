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
from toygpt.speculative import SpeculativeStats, speculative_generate
from toygpt.tokenizer import WordTokenizer

__version__ = "0.1.0"

# Figures pull in matplotlib and seaborn: import them only when one is asked for.
_PLOTS = {
    "plot_heatmap": "plots",
    "plot_grammar": "grammar_diagram",
    "plot_architecture": "diagrams",
}


def __getattr__(name):
    if name in _PLOTS:
        import importlib

        return getattr(importlib.import_module(f"toygpt.{_PLOTS[name]}"), name)
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
    "SpeculativeStats",
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
    "plot_architecture",
    "plot_grammar",
    "plot_heatmap",
    "sample_next",
    "sentence_distribution",
    "speculative_generate",
    "top_k_filter",
    "top_p_filter",
    "typical_filter",
]
