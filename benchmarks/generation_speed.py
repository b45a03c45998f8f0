"""Tokens per second for greedy generation (with and without the KV cache) and for beam
search, beside Hugging Face transformers' GPT-2 of the same size.

    python benchmarks/generation_speed.py  # the sizes of the performance targets
    python benchmarks/generation_speed.py --new 100 --repeats 3

Size (DESIGN.md): 4 layers, d_model 128, 4 heads, vocabulary 64, context 256, batch 1,
CPU, 2 threads. transformers is optional (the `dev` extra has it); without it those rows
are left out. Every workload runs once per round (``timing.interleaved``), --repeats
rounds after one warm-up each; times are medians, each ratio the median of its per-round
ratios. The lean loop (``lean_decode.py``: the same weights, no modules, no checks) is
the floor of eager PyTorch on this machine, timed beside both libraries.
"""

from __future__ import annotations

import argparse
import platform
from statistics import median

import torch
from lean_decode import lean_greedy
from timing import interleaved, ratio

from toygpt import GPTModel, beam_search, generate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--new", type=int, default=200, help="new tokens per run (default 200)"
    )
    parser.add_argument(
        "--prompt", type=int, default=8, help="prompt length (default 8)"
    )
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = dict(
        vocab_size=64,
        d_model=128,
        num_heads=4,
        num_layers=4,
        dropout=0.0,
        context_length=256,
    )
    model = GPTModel(**size).eval()
    prompt = torch.randint(
        0, 64, (1, args.prompt), generator=torch.Generator().manual_seed(0)
    )
    n = args.new

    beams = f"{args.beams} beams"
    workloads = {
        "cache": lambda: generate(model, prompt, n, use_cache=True),
        "plain": lambda: generate(model, prompt, n, use_cache=False),
        "beam": lambda: beam_search(
            model, prompt, num_beams=args.beams, max_new_tokens=n
        ),
        "lean": lambda: lean_greedy(model, prompt, n),
    }
    if not torch.equal(workloads["lean"](), workloads["cache"]()):
        raise SystemExit("the lean loop does not pick generate's tokens")
    labels = {
        "cache": "toygpt greedy, KV cache",
        "plain": "toygpt greedy, no cache",
        "beam": f"toygpt beam search, {beams}",
        "lean": "lean loop greedy (floor: no modules, no checks)",
    }
    try:
        import transformers
        from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

        transformers.logging.set_verbosity_error()
        version = transformers.__version__
        cfg = GPT2Config(
            vocab_size=64,
            n_positions=256,
            n_embd=128,
            n_layer=4,
            n_head=4,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=None,
            eos_token_id=None,
        )
        hf = GPT2LMHeadModel(cfg).eval()
        greedy_cfg = GenerationConfig(
            max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
        )
        beam_cfg = GenerationConfig(
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            num_beams=args.beams,
            pad_token_id=0,
        )

        def hf_generate(config):
            with torch.no_grad():
                return hf.generate(prompt, generation_config=config)

        workloads["hf"] = lambda: hf_generate(greedy_cfg)
        workloads["hf_beam"] = lambda: hf_generate(beam_cfg)
        labels["hf"] = f"transformers {version} greedy (GPT2LMHeadModel)"
        labels["hf_beam"] = f"transformers {version} beam search, {beams}"
    except ImportError:
        pass
    times = interleaved(workloads, args.repeats)

    print(
        f"torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}; "
        f"prompt {args.prompt}, {n} new tokens, {args.repeats} interleaved rounds"
    )
    for key, name in labels.items():
        seconds = median(times[key])
        print(f"  {name:<52} {n / seconds:8.0f} tokens/s  ({seconds * 1000:7.1f} ms)")
    print(
        "  KV cache speed-up over no cache:            "
        f"{ratio(times['plain'], times['cache']):5.2f}x  (target >= 3)"
    )
    print(
        "  toygpt greedy's time over the lean loop's:  "
        f"{ratio(times['cache'], times['lean']):5.2f}x"
    )
    if "hf" in times:
        print(
            "  toygpt greedy vs transformers greedy:       "
            f"{ratio(times['hf'], times['cache']):5.2f}x  (target >= 2)"
        )
        print(
            "  lean loop vs transformers greedy:           "
            f"{ratio(times['hf'], times['lean']):5.2f}x  (the floor's ratio)"
        )
        print(
            "  toygpt beam vs transformers beam:           "
            f"{ratio(times['hf_beam'], times['beam']):5.2f}x  (target >= 1.5)"
        )


if __name__ == "__main__":
    main()
