"""Speculative greedy decoding against plain greedy ``generate``, same target, one run.

    python benchmarks/speculative_speed.py                 # shipped target and draft
    python benchmarks/speculative_speed.py --k 1 2 3 4 5 6 --repeats 5

The prompts are every prefix of --sentences sentences of the toy language (seed 0),
``<s>`` alone included; each is continued greedily up to the end of its sentence (EOS)
or the context window. Batch 1, CPU, --threads threads. Plain greedy and speculative
greedy (one timing per num_draft_tokens in --k) run in turn, --repeats times, and each
ratio is the median over the repeats of (plain time / speculative time) in the same
repeat. The outputs are checked to be identical.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
from timing import interleaved, ratios

from toygpt import ToyLanguage, generate, load_pretrained
from toygpt.speculative import speculative_generate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=40)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--draft", default="draft", help="draft checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lang = ToyLanguage()
    target, _ = load_pretrained()
    draft, _ = load_pretrained(args.draft)
    sentences = lang.sample(args.sentences, generator=torch.Generator().manual_seed(0))
    prompts = [torch.tensor([s[:n]]) for s in sentences for n in range(1, len(s))]
    window = target.context_length
    eos = lang.eos_id

    def plain():
        return [
            generate(target, p, window - p.shape[1], eos_token_id=eos) for p in prompts
        ]

    def speculative(k, stats=None):
        outs = []
        for p in prompts:
            out, s = speculative_generate(
                target, draft, p, window - p.shape[1], num_draft_tokens=k,
                eos_token_id=eos, return_stats=True,
            )  # fmt: skip
            outs.append(out)
            if stats is not None:
                stats.append(s)
        return outs

    reference = plain()  # also the warm-up
    new_tokens = sum(o.shape[1] - p.shape[1] for o, p in zip(reference, prompts))
    acceptance = {}
    for k in args.k:
        stats = []
        assert all(map(torch.equal, speculative(k, stats), reference)), k
        proposed = sum(s.proposed for s in stats)
        acceptance[k] = (
            sum(s.accepted for s in stats) / proposed,
            new_tokens / sum(s.target_calls for s in stats),
        )

    # warmed up above: plain() made the reference, every k ran once for its stats
    workloads = {"plain": plain}
    for k in args.k:
        workloads[k] = lambda k=k: speculative(k)
    times = interleaved(workloads, args.repeats, warm_up=False)
    plain_times = times["plain"]
    speed_ups = {k: ratios(plain_times, times[k]) for k in args.k}

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads; {len(prompts)} prompts, {new_tokens} new tokens; "
        f"draft {args.draft!r} ({sum(p.numel() for p in draft.parameters()):,} "
        f"parameters), target {sum(p.numel() for p in target.parameters()):,}"
    )
    print(
        f"plain greedy: {statistics.median(plain_times):.2f} s, "
        f"{new_tokens / statistics.median(plain_times):.0f} tokens/s"
    )
    print("num_draft_tokens  acceptance  tokens/target pass  speed-up (median, range)")
    for k in args.k:
        rate, per_call = acceptance[k]
        r = speed_ups[k]
        print(
            f"{k:>16}  {rate:>10.3f}  {per_call:>18.2f}  {statistics.median(r):.2f}x "
            f"({min(r):.2f}-{max(r):.2f})"
        )
    best = max(args.k, key=lambda k: statistics.median(speed_ups[k]))
    print(f"best num_draft_tokens: {best} ({statistics.median(speed_ups[best]):.2f}x)")


if __name__ == "__main__":
    main()
