"""Tokens per second for greedy generation of a left-padded batch, beside the same
batch in transformers' GPT2LMHeadModel (same weights, same attention mask) and beside
toygpt at batch 1.

    python benchmarks/batch_speed.py               # the sizes of the performance target
    python benchmarks/batch_speed.py --repeats 3

Size (DESIGN.md): 4 layers, d_model 128, 4 heads, vocabulary 64, context 256, CPU,
2 threads; 32 prompts of 4-12 tokens, left-padded, 64 new tokens each. Each number is
the median of --repeats runs after one warm-up run; the ratios come from one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from toygpt import GPTModel, generate


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
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new", type=int, default=64, help="new tokens per prompt")
    parser.add_argument("--repeats", type=int, default=5)
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
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, 13, (args.batch,), generator=g).tolist()
    T = max(lengths)
    ids = torch.zeros(args.batch, T, dtype=torch.long)
    mask = torch.zeros(args.batch, T, dtype=torch.long)
    for b, n in enumerate(lengths):  # left padding, pad id 0
        ids[b, T - n :] = torch.randint(1, 64, (n,), generator=g)
        mask[b, T - n :] = 1
    one = ids[:1, T - lengths[0] :]  # batch 1: the first prompt, unpadded
    n, B = args.new, args.batch

    t_batch = timed(lambda: generate(model, ids, n, attention_mask=mask), args.repeats)
    t_one = timed(lambda: generate(model, one, n), args.repeats)
    rows = [
        (f"toygpt greedy, batch {B}, KV cache", B * n / t_batch, t_batch),
        ("toygpt greedy, batch 1, KV cache", n / t_one, t_one),
    ]
    t_hf = None
    try:
        import transformers
        from transformers import GenerationConfig

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import to_hf_gpt2  # the same weights in GPT2LMHeadModel

        transformers.logging.set_verbosity_error()
        hf = to_hf_gpt2(model)
        cfg = GenerationConfig(
            max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
        )
        with torch.no_grad():
            theirs = hf.generate(ids, attention_mask=mask, generation_config=cfg)
            t_hf = timed(
                lambda: hf.generate(ids, attention_mask=mask, generation_config=cfg),
                args.repeats,
            )
        same = torch.equal(theirs, generate(model, ids, n, attention_mask=mask))
        name = f"transformers {transformers.__version__} greedy, batch {B}"
        rows.append((name, B * n / t_hf, t_hf))
    except ImportError:
        pass

    print(
        f"torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}; {B} prompts of "
        f"{min(lengths)}-{max(lengths)} tokens (left-padded), {n} new tokens, "
        f"median of {args.repeats}"
    )
    for name, rate, seconds in rows:
        print(f"  {name:<44} {rate:8.0f} tokens/s  ({seconds * 1000:7.1f} ms)")
    print(
        f"  batch {B} vs batch 1 throughput:             "
        f"{(B * n / t_batch) / (n / t_one):5.2f}x  (target >= 8)"
    )
    if t_hf is not None:
        print(
            f"  toygpt vs transformers, batch {B}:            "
            f"{t_hf / t_batch:5.2f}x  (target >= 2)"
        )
        print(f"  same tokens as transformers: {same}")


if __name__ == "__main__":
    main()
