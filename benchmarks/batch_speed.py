"""Tokens per second for greedy generation of a left-padded batch, beside the same
batch in transformers' GPT2LMHeadModel (same weights, same attention mask) and beside
toygpt at batch 1.

    python benchmarks/batch_speed.py               # the sizes of the performance target
    python benchmarks/batch_speed.py --repeats 3

Size (DESIGN.md): 4 layers, d_model 128, 4 heads, vocabulary 64, context 256, CPU,
2 threads; 32 prompts of 4-12 tokens, left-padded, 64 new tokens each. Every workload
runs once per round (``timing.interleaved``), --repeats rounds after one warm-up each;
times are medians, each ratio the median of its per-round ratios. The lean loop
(``lean_decode.py``: the same weights, no modules, no checks) is the floor of eager
PyTorch on this machine, timed beside both libraries.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from statistics import median

import torch
from lean_decode import lean_greedy
from timing import interleaved, ratio

from toygpt import GPTModel, generate


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

    workloads = {
        "batch": lambda: generate(model, ids, n, attention_mask=mask),
        "one": lambda: generate(model, one, n),
        "lean": lambda: lean_greedy(model, ids, n, attention_mask=mask),
        "lean_one": lambda: lean_greedy(model, one, n),
    }
    for lean, ours in (("lean", "batch"), ("lean_one", "one")):
        if not torch.equal(workloads[lean](), workloads[ours]()):
            raise SystemExit(f"the lean loop does not pick generate's tokens ({ours})")
    labels = {
        "batch": f"toygpt greedy, batch {B}, KV cache",
        "one": "toygpt greedy, batch 1, KV cache",
        "lean": f"lean loop greedy, batch {B} (floor)",
        "lean_one": "lean loop greedy, batch 1 (floor)",
    }
    same = None
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

        def hf_generate():
            with torch.no_grad():
                return hf.generate(ids, attention_mask=mask, generation_config=cfg)

        same = torch.equal(hf_generate(), workloads["batch"]())
        workloads["hf"] = hf_generate
        labels["hf"] = f"transformers {transformers.__version__} greedy, batch {B}"
    except ImportError:
        pass
    times = interleaved(workloads, args.repeats)
    tokens = {"batch": B * n, "one": n, "lean": B * n, "lean_one": n, "hf": B * n}

    print(
        f"torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}; {B} prompts of "
        f"{min(lengths)}-{max(lengths)} tokens (left-padded), {n} new tokens, "
        f"{args.repeats} interleaved rounds"
    )
    for key, name in labels.items():
        seconds = median(times[key])
        rate = tokens[key] / seconds
        print(f"  {name:<44} {rate:8.0f} tokens/s  ({seconds * 1000:7.1f} ms)")
    # throughput ratio: B times the tokens in the time batch 1 takes per round
    print(
        f"  batch {B} vs batch 1 throughput:             "
        f"{B * ratio(times['one'], times['batch']):5.2f}x  (target >= 8)"
    )
    print(
        f"  lean loop, batch {B} vs batch 1 throughput:   "
        f"{B * ratio(times['lean_one'], times['lean']):5.2f}x  (the floor's scaling)"
    )
    print(
        f"  toygpt's time over the lean loop's, batch {B}: "
        f"{ratio(times['batch'], times['lean']):5.2f}x"
    )
    if same is not None:
        print(
            f"  toygpt vs transformers, batch {B}:            "
            f"{ratio(times['hf'], times['batch']):5.2f}x  (target >= 2)"
        )
        print(
            f"  lean loop vs transformers, batch {B}:         "
            f"{ratio(times['hf'], times['lean']):5.2f}x  (the floor's ratio)"
        )
        print(f"  same tokens as transformers: {same}")


if __name__ == "__main__":
    main()
