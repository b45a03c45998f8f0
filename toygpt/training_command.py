"""``python -m toygpt.training``: train (or distil) a checkpoint and save it.

Every setting is checked before the first step (the output path, the sizes, the counts,
the seed), so a mistake is reported in a second, not after minutes of training::

    python -m toygpt.training --output toygpt/checkpoints/toygpt.pt --overwrite
    python -m toygpt.training --distill-from default \\
        --output toygpt/checkpoints/draft.pt --overwrite

``--distill-from`` (a shipped name, ``default`` or ``draft``, or a checkpoint path)
trains the new model to match that model's next-token distributions
(:func:`toygpt.training.distill`) instead of the sampled sentences; its defaults are
then those of the shipped draft (``DRAFT_DEFAULTS``).
"""

from __future__ import annotations

import argparse

import torch

from toygpt.language import ToyLanguage
from toygpt.model import GPTModel
from toygpt.pretrained import check_output_path, load_pretrained, save_pretrained
from toygpt.training import (
    DEFAULTS,
    DRAFT_DEFAULTS,
    MAX_SEED,
    _truth_loss,
    agreement,
    check_training_options,
    distill,
    evaluate,
    mean_kl,
    train,
)

__all__ = ["main"]

INT_OPTIONS = (
    "d_model",
    "num_heads",
    "num_layers",
    "context_length",
    "steps",
    "batch_size",
    "seed",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toygpt.training",
        description="Train a toygpt checkpoint on the toy language (the defaults "
        "reproduce the shipped one; with --distill-from, the shipped draft).",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="the .pt file to write (its config goes beside it)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing checkpoint"
    )
    parser.add_argument(
        "--distill-from",
        default=None,
        help="a teacher checkpoint (default, draft or a path) to distil",
    )
    for key in INT_OPTIONS:
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--test-sentences",
        type=int,
        default=10000,
        help="fresh sentences to measure the final model on",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    return parser


def main(argv=None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    defaults = DEFAULTS if args.distill_from is None else DRAFT_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    # Everything is checked here, before the first step.
    try:
        output = check_output_path(args.output, overwrite=args.overwrite)
    except (ValueError, TypeError, OSError) as error:
        parser.error(f"--output: {error}")
    if args.test_sentences < 1:
        parser.error(f"--test-sentences must be >= 1, got {args.test_sentences}")
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(
            f"--seed must be in [0, {MAX_SEED}] (torch's range), got {args.seed}"
        )
    lang = ToyLanguage()
    settings = dict(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    try:
        check_training_options(
            lang, **settings, weight_decay=0.0, warmup=None, val_sentences=None,
            eval_every=None, progress=True,
        )  # fmt: skip
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    teacher = None
    if args.distill_from is not None:
        try:
            teacher, _ = load_pretrained(args.distill_from)
        except (ValueError, OSError) as error:
            parser.error(f"--distill-from: {error}")
    model_config = dict(
        vocab_size=len(lang.vocab),
        d_model=args.d_model,
        num_heads=args.num_heads,
        num_layers=args.num_layers,
        dropout=args.dropout,
        context_length=args.context_length,
    )
    torch.manual_seed(args.seed)  # the initial weights
    try:
        model = GPTModel(**model_config)
        if model.context_length < lang.max_sentence_length - 1:
            raise ValueError(
                f"context_length must be >= {lang.max_sentence_length - 1}, "
                f"got {model.context_length}"
            )
    except (ValueError, TypeError) as error:
        parser.error(f"model size: {error}")

    progress = not args.no_progress
    if teacher is None:
        history = train(model, lang, **settings, progress=progress)
    else:
        history = distill(model, teacher, lang, **settings, progress=progress)
        settings["distill_from"] = args.distill_from

    # Measure on sentences neither training nor validation saw.
    test = lang.sample(
        args.test_sentences, generator=torch.Generator().manual_seed(args.seed + 12345)
    )
    loss, kl = evaluate(model, lang, test), mean_kl(model, lang, test)
    truth, floor = _truth_loss(lang, test), lang.entropy_floor
    metrics = dict(
        test_loss=round(loss, 5),
        test_loss_of_truth=round(
            truth, 5
        ),  # the truth's own loss on the same sentences
        entropy_floor=round(floor, 5),
        loss_over_floor=round(loss / floor, 5),
        mean_kl=round(kl, 5),
        train_seconds=round(history["seconds"], 1),
        torch_version=torch.__version__,
    )
    if teacher is not None:
        teacher_kl, agree = agreement(model, teacher, lang, test)
        metrics.update(
            kl_to_teacher=round(teacher_kl, 5), greedy_agreement=round(agree, 5)
        )
    save_pretrained(
        model,
        lang.tokenizer(),
        output,
        training=settings,
        metrics=metrics,
        overwrite=args.overwrite,
    )
    print(f"wrote {output} in {history['seconds']:.0f} s of training")
    print(
        f"test loss {loss:.4f} nats/token (the truth scores {truth:.4f} on the same "
        "sentences)"
    )
    print(
        f"entropy floor {floor:.4f}, ratio {loss / floor:.4f}, "
        f"mean KL(truth || model) {kl:.4f} nats/position"
    )
    if teacher is not None:
        print(
            f"KL(teacher || model) {metrics['kl_to_teacher']:.4f} nats/position, "
            f"greedy agreement {metrics['greedy_agreement']:.4f}"
        )


if __name__ == "__main__":
    main()
