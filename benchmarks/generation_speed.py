"""Tokens per second for greedy generation (with and without the KV cache) and for beam
search, beside Hugging Face transformers' GPT-2 of the same size.

    python benchmarks/generation_speed.py  # the sizes of the performance targets
    python benchmarks/generation_speed.py --new 100 --repeats 3

Size (DESIGN.md): 4 layers, d_model 128, 4 heads, vocabulary 64, context 256, batch 1,
CPU, 2 threads. transformers is optional (the `dev` extra has it); without it those rows
are left out. Each number is the median of --repeats runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from toygpt import GPTModel, beam_search, generate


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


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

    rows = []
    t_cache = timed(lambda: generate(model, prompt, n, use_cache=True), args.repeats)
    t_plain = timed(lambda: generate(model, prompt, n, use_cache=False), args.repeats)
    t_beam = timed(
        lambda: beam_search(model, prompt, num_beams=args.beams, max_new_tokens=n),
        args.repeats,
    )
    rows += [
        ("toygpt greedy, KV cache", t_cache),
        ("toygpt greedy, no cache", t_plain),
        (f"toygpt beam search, {args.beams} beams", t_beam),
    ]
    try:
        import transformers
        from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

        transformers.logging.set_verbosity_error()
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
        with torch.no_grad():
            t_hf = timed(
                lambda: hf.generate(prompt, generation_config=greedy_cfg), args.repeats
            )
            t_hf_beam = timed(
                lambda: hf.generate(prompt, generation_config=beam_cfg), args.repeats
            )
        rows += [
            (f"transformers {transformers.__version__} greedy (GPT2LMHeadModel)", t_hf),
            (
                f"transformers {transformers.__version__} beam search, "
                f"{args.beams} beams",
                t_hf_beam,
            ),
        ]
    except ImportError:
        t_hf = t_hf_beam = None

    print(
        f"torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}; "
        f"prompt {args.prompt}, {n} new tokens, median of {args.repeats}"
    )
    for name, seconds in rows:
        print(f"  {name:<52} {n / seconds:8.0f} tokens/s  ({seconds * 1000:7.1f} ms)")
    print(
        "  KV cache speed-up over no cache:            "
        f"{t_plain / t_cache:5.2f}x  (target >= 3)"
    )
    if t_hf is not None:
        print(
            "  toygpt greedy vs transformers greedy:       "
            f"{t_hf / t_cache:5.2f}x  (target >= 2)"
        )
        print(
            "  toygpt beam vs transformers beam:           "
            f"{t_hf_beam / t_beam:5.2f}x  (target >= 1.5)"
        )


if __name__ == "__main__":
    main()
