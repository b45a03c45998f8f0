"""Train a GPTModel on sentences of the toy language, and measure how close it gets to
the truth.

Every step draws a fresh batch of sentences from the language (the supply never runs
out, so the model cannot memorise a fixed training set), and minimises the cross-entropy
of each next token. The best any model can do is the language's *entropy floor*: the
cross-entropy of the true probabilities. How far above it a model stays is its KL
divergence from the truth.

Each training example is one whole sentence, ``<s> ... </s>``, starting at position 0.
Sentences in a batch have different lengths, so the shorter ones are padded and the
padded positions are left out of the loss (target ``-100``, which ``F.cross_entropy``
ignores).

Reproduce the shipped checkpoints (the default one takes about 2 minutes on 2 CPU
cores, the draft distilled from it some seconds)::

    python -m toygpt.training --output toygpt/checkpoints/toygpt.pt --overwrite
    python -m toygpt.training --distill-from default \\
        --output toygpt/checkpoints/draft.pt --overwrite

A small model comes close to the floor in a few seconds (about 4 s on 2 CPU cores):

>>> from toygpt import GPTModel, ToyLanguage
>>> lang = ToyLanguage()
>>> _ = torch.manual_seed(0)
>>> model = GPTModel(len(lang.vocab), d_model=32, num_heads=4, num_layers=2,
...                  dropout=0.0, context_length=16)
>>> history = train(model, lang, steps=500, batch_size=64, lr=3e-3, seed=0,
...                 progress=False)
>>> # the model's loss, and the truth's own loss on the same sentences
>>> round(history["val_loss"][-1], 2), round(history["val_floor"], 2)
(1.08, 1.06)
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import trange

from toygpt.language import ToyLanguage
from toygpt.model import eval_mode

__all__ = [
    "train",
    "distill",
    "agreement",
    "evaluate",
    "mean_kl",
    "make_batch",
    "check_training_options",
    "DEFAULTS",
    "DRAFT_DEFAULTS",
]

IGNORE_INDEX = -100  # F.cross_entropy skips targets with this value: the padding

# The shipped checkpoint: the lesson's architecture, trained with these settings.
DEFAULTS = dict(
    d_model=128,
    num_heads=4,
    num_layers=4,
    dropout=0.0,  # fresh sentences every step: nothing to overfit, so no dropout needed
    context_length=16,
    steps=3000,
    batch_size=64,
    lr=1e-3,
    seed=0,
)

# The shipped draft model (``load_pretrained("draft")``): one small layer, distilled
# from the default checkpoint.
DRAFT_DEFAULTS = dict(
    d_model=64,
    num_heads=4,
    num_layers=1,
    dropout=0.0,
    context_length=16,
    steps=1000,
    batch_size=64,
    lr=3e-3,
    seed=0,
)


def make_batch(
    sentences: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentences -> ``(inputs, targets)``, each ``(B, longest - 1)``.

    ``targets[b, t]`` is the token that follows ``inputs[b, t]``; padding positions hold
    ``pad_id`` in the inputs (any valid id: no real position attends to them, since they
    come after the sentence) and ``-100`` in the targets.

    >>> make_batch([[5, 1, 2, 6], [5, 3, 6]], pad_id=0)
    (tensor([[5, 1, 2],
            [5, 3, 0]]), tensor([[   1,    2,    6],
            [   3,    6, -100]]))
    """
    _check_sentences(sentences)
    longest = max(len(s) for s in sentences)
    inputs = torch.full((len(sentences), longest - 1), pad_id, dtype=torch.long)
    targets = torch.full((len(sentences), longest - 1), IGNORE_INDEX, dtype=torch.long)
    for b, s in enumerate(sentences):
        inputs[b, : len(s) - 1] = torch.tensor(s[:-1])
        targets[b, : len(s) - 1] = torch.tensor(s[1:])
    return inputs, targets


def _check_sentences(sentences, name: str = "sentences") -> None:
    if not isinstance(sentences, (list, tuple)) or not sentences:
        raise ValueError(
            f"{name} must be a non-empty list of sentences (lists of token ids)"
        )
    for s in sentences:
        if not isinstance(s, (list, tuple)) or len(s) < 2:
            raise ValueError(
                f"{name} must hold lists of at least 2 token ids (<s> and one "
                f"more), got {s!r}"
            )


def _check_model_and_language(model, lang) -> None:
    if not isinstance(model, nn.Module) or not hasattr(model, "context_length"):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}")
    if not isinstance(lang, ToyLanguage):
        raise TypeError(f"lang must be a ToyLanguage, got {type(lang).__name__}")
    if model.vocab_size != len(lang.vocab):
        raise ValueError(
            f"model.vocab_size ({model.vocab_size}) must equal the language's "
            f"{len(lang.vocab)} words"
        )
    if model.context_length < lang.max_sentence_length - 1:
        raise ValueError(
            f"model.context_length ({model.context_length}) must be >= "
            f"{lang.max_sentence_length - 1} "
            "to read the longest sentence"
        )


def _loss(model, inputs, targets) -> torch.Tensor:
    logits = model(inputs)  # (B, T, V)
    return F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX
    )


def _chunks(sentences, size=512):
    for i in range(0, len(sentences), size):
        yield sentences[i : i + size]


@torch.no_grad()
def evaluate(model: nn.Module, lang: ToyLanguage, sentences: list[list[int]]) -> float:
    """Mean cross-entropy (nats) per predicted token over ``sentences``, in eval mode.

    Compare it with ``lang.entropy_floor``: no model can do better on average.
    """
    _check_model_and_language(model, lang)
    _check_sentences(sentences)
    total, count = 0.0, 0
    with eval_mode(model):
        for chunk in _chunks(sentences):
            inputs, targets = make_batch(chunk, lang.eos_id)
            logits = model(inputs)
            total += F.cross_entropy(
                logits.flatten(0, 1),
                targets.flatten(),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            ).item()
            count += int((targets != IGNORE_INDEX).sum())
    return total / count


@torch.no_grad()
def mean_kl(model: nn.Module, lang: ToyLanguage, sentences: list[list[int]]) -> float:
    """Mean KL(truth || model) in nats per position, over every position of
    ``sentences``.

    At each position the truth is ``lang.next_token_probs(prefix)`` and the model's is
    the softmax of its logits; ``KL = sum_v p(v) * (log p(v) - log q(v))`` over words
    with p > 0. It is 0 only if the model's distribution equals the truth there.
    """
    _check_model_and_language(model, lang)
    _check_sentences(sentences)
    oracle = lang.as_model()
    total, count = 0.0, 0
    with eval_mode(model):
        for chunk in _chunks(sentences):
            inputs, targets = make_batch(chunk, lang.eos_id)
            log_q = F.log_softmax(model(inputs).float(), dim=-1)  # (B, T, V)
            log_p = oracle(inputs)  # (B, T, V), -inf where the truth says 0
            p = log_p.exp()
            kl = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(
                -1
            )  # (B, T)
            real = targets != IGNORE_INDEX
            total += kl[real].sum().item()
            count += int(real.sum())
    return total / count


def _truth_loss(lang: ToyLanguage, sentences: list[list[int]]) -> float:
    """The true probabilities' cross-entropy on ``sentences`` (nats per predicted
    token)."""
    return -sum(lang.sequence_log_prob(s) for s in sentences) / sum(
        len(s) - 1 for s in sentences
    )


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of ``lr`` (as in nanoGPT)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _check_int(name, value, minimum, maximum=None) -> None:
    shown = (
        f"an int >= {minimum}"
        if maximum is None
        else f"an int in [{minimum}, {maximum}]"
    )
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {shown}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {shown}, got {value}")


def _check_number(name, value, minimum, *, strict: bool) -> None:
    shown = f"a finite number {'>' if strict else '>='} {minimum}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {shown}, got {value!r}")
    too_small = value <= minimum if strict else value < minimum
    if not math.isfinite(value) or too_small:  # NaN fails isfinite
        raise ValueError(f"{name} must be {shown}, got {value}")


# Seeds: torch.manual_seed takes at most 2**64 - 1; training uses seed + 1 (validation)
# and the command seed + 12345 (test sentences), so seeds stay below 2**63.
MAX_SEED = 2**63 - 1


def check_training_options(
    lang, *, steps, batch_size, lr, seed, weight_decay, warmup, val_sentences,
    eval_every, progress,
) -> None:  # fmt: skip
    """Every option of :func:`train` (and :func:`distill`), checked before any step."""
    _check_int("steps", steps, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0, MAX_SEED)
    _check_number("lr", lr, 0, strict=True)
    _check_number("weight_decay", weight_decay, 0, strict=False)
    if warmup is not None:
        _check_int("warmup", warmup, 0, steps)
    if eval_every is not None:
        _check_int("eval_every", eval_every, 1)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if val_sentences is not None:
        _check_sentences(val_sentences, "val_sentences")
        V = len(lang.vocab)
        for s in val_sentences:
            if any(isinstance(i, bool) or not isinstance(i, int) for i in s):
                raise TypeError(f"val_sentences must hold lists of int ids, got {s!r}")
            if not all(0 <= i < V for i in s):
                raise ValueError(f"val_sentences holds an id outside [0, {V - 1}]: {s}")
            if len(s) > lang.max_sentence_length:
                raise ValueError(
                    f"val_sentences holds a sentence of {len(s)} tokens; "
                    f"the language's longest has {lang.max_sentence_length}"
                )


def _options_with_defaults(
    lang, *, steps, seed, warmup, eval_every, val_sentences, **rest
):
    """Check every option, then fill in the defaults :func:`train` and :func:`distill`
    share: (warmup, eval_every, val_sentences)."""
    check_training_options(
        lang, steps=steps, seed=seed, warmup=warmup, eval_every=eval_every,
        val_sentences=val_sentences, **rest,
    )  # fmt: skip
    warmup = min(200, max(1, steps // 10)) if warmup is None else warmup
    eval_every = max(1, steps // 20) if eval_every is None else eval_every
    if val_sentences is None:
        val_sentences = lang.sample(
            1000, generator=torch.Generator().manual_seed(seed + 1)
        )
    return warmup, eval_every, val_sentences


def _optimizer(model, lr, weight_decay):
    # Weight decay on weight matrices and embeddings, not on biases or LayerNorm gains
    # (as nanoGPT).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.98),
    )


def train(
    model: nn.Module,
    lang: ToyLanguage,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.01,
    warmup: int | None = None,
    val_sentences: list[list[int]] | None = None,
    eval_every: int | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model`` in place on fresh sentences of ``lang``; return the loss history.

    Each step draws ``batch_size`` new sentences (from a ``torch.Generator`` seeded with
    ``seed``), and takes one AdamW step on their mean next-token cross-entropy. The
    learning rate warms up linearly over ``warmup`` steps (default: a tenth of the
    steps, at most 200), then decays along a cosine to ``lr / 10``. ``seed`` (an int in
    ``[0, 2**63 - 1]``) also seeds dropout. Every option is checked before the first
    step.

    Every ``eval_every`` steps (default: 20 times in all) the loss on ``val_sentences``
    (default: 1000 sentences drawn with seed ``seed + 1``) is measured. The returned
    history is a dict of equal-length lists, one entry per evaluation, ready for a loss
    curve::

        {"step": [...],
         "train_loss": [...],                  # mean over the steps since last entry
         "val_loss": [...],
         "entropy_floor": lang.entropy_floor,  # the best possible loss on average
         "val_floor": ...,                     # the truth's own loss on val_sentences
         "seconds": ...}                       # training time

    The model is left in eval mode.
    """
    _check_model_and_language(model, lang)
    warmup, eval_every, val_sentences = _options_with_defaults(
        lang, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
        weight_decay=weight_decay, warmup=warmup, val_sentences=val_sentences,
        eval_every=eval_every, progress=progress,
    )  # fmt: skip

    torch.manual_seed(seed)  # dropout
    data = torch.Generator().manual_seed(seed)  # the training sentences
    optimizer = _optimizer(model, lr, weight_decay)
    floor = lang.entropy_floor
    # The floor is an average over all sentences; on a finite validation set the truth's
    # own cross-entropy differs from it a little, and that is the line the val loss
    # approaches.
    val_floor = _truth_loss(lang, val_sentences)
    history = {
        "step": [],
        "train_loss": [],
        "val_loss": [],
        "entropy_floor": floor,
        "val_floor": val_floor,
    }
    recent = []  # train losses since the last evaluation
    start = time.perf_counter()
    bar = trange(steps, disable=not progress, desc="training")
    model.train()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        inputs, targets = make_batch(
            lang.sample(batch_size, generator=data), lang.eos_id
        )
        loss = _loss(model, inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent.append(loss.item())

        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = evaluate(model, lang, val_sentences)
            history["step"].append(step + 1)
            history["train_loss"].append(sum(recent) / len(recent))
            history["val_loss"].append(val)
            recent = []
            # "truth": the true probabilities' loss on the same validation sentences
            bar.set_postfix(
                train=f"{history['train_loss'][-1]:.4f}",
                val=f"{val:.4f}",
                truth=f"{val_floor:.4f}",
            )
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return history


def _distill_loss(student, teacher, inputs, targets, temperature):
    with torch.no_grad():
        log_p = F.log_softmax(teacher(inputs).float() / temperature, dim=-1)
    log_q = F.log_softmax(student(inputs).float() / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)  # (B, T)
    real = targets != IGNORE_INDEX
    return kl[real].mean(), (log_p.argmax(-1) == log_q.argmax(-1))[real]


@torch.no_grad()
def agreement(student, teacher, lang, sentences) -> tuple[float, float]:
    """``(mean KL(teacher || student), greedy agreement)`` over every position of
    ``sentences``: the KL in nats per position, and the share of positions where the two
    models' most probable tokens are the same."""
    _check_model_and_language(student, lang)
    _check_model_and_language(teacher, lang)
    _check_sentences(sentences)
    kl_sum, agree, count = 0.0, 0, 0
    with eval_mode(student), eval_mode(teacher):
        for chunk in _chunks(sentences):
            inputs, targets = make_batch(chunk, lang.eos_id)
            kl, same = _distill_loss(student, teacher, inputs, targets, 1.0)
            kl_sum += float(kl) * len(same)
            agree += int(same.sum())
            count += len(same)
    return kl_sum / count, agree / count


def distill(
    student: nn.Module,
    teacher: nn.Module,
    lang: ToyLanguage,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    temperature: float = 1.0,
    weight_decay: float = 0.0,
    warmup: int | None = None,
    val_sentences: list[list[int]] | None = None,
    eval_every: int | None = None,
    progress: bool = True,
) -> dict:
    """Train ``student`` in place to predict what ``teacher`` predicts (distillation).

    Each step draws ``batch_size`` fresh sentences of ``lang`` and minimises, at every
    position, ``KL(teacher || student)`` between the two models' next-token
    distributions (both divided by ``temperature`` first), instead of the cross-entropy
    of the sampled next token: the student learns the teacher's whole distribution,
    including how it breaks the language's exact ties, which is what a draft model for
    :func:`toygpt.speculative.speculative_generate` needs. The schedule and the options
    are those of :func:`train`.

    Returns ``{"step", "train_kl", "val_kl", "val_agreement", "seconds"}``: KL in nats
    per position, agreement = share of validation positions where both models' most
    probable tokens are the same. The student is left in eval mode.
    """
    _check_model_and_language(student, lang)
    _check_model_and_language(teacher, lang)
    _check_number("temperature", temperature, 0, strict=True)
    warmup, eval_every, val_sentences = _options_with_defaults(
        lang, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
        weight_decay=weight_decay, warmup=warmup, val_sentences=val_sentences,
        eval_every=eval_every, progress=progress,
    )  # fmt: skip
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    optimizer = _optimizer(student, lr, weight_decay)
    history = {"step": [], "train_kl": [], "val_kl": [], "val_agreement": []}
    recent, start = [], time.perf_counter()
    bar = trange(steps, disable=not progress, desc="distilling")
    with eval_mode(teacher):
        student.train()
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, steps, lr, warmup)
            inputs, targets = make_batch(
                lang.sample(batch_size, generator=data), lang.eos_id
            )
            loss, _ = _distill_loss(student, teacher, inputs, targets, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            recent.append(loss.item())
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                kl, agree = agreement(student, teacher, lang, val_sentences)
                history["step"].append(step + 1)
                history["train_kl"].append(sum(recent) / len(recent))
                history["val_kl"].append(kl)
                history["val_agreement"].append(agree)
                recent = []
                bar.set_postfix(kl=f"{kl:.4f}", agree=f"{agree:.3f}")
    history["seconds"] = time.perf_counter() - start
    student.eval()
    return history


def main(argv=None) -> None:
    """``python -m toygpt.training``: see :mod:`toygpt.training_command`."""
    from toygpt.training_command import main as command

    command(argv)


if __name__ == "__main__":
    main()
