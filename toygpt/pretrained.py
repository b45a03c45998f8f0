"""The shipped trained model: ``model, tokenizer = load_pretrained()``.

The checkpoint is two files inside the package, in ``toygpt/checkpoints/``:

* ``toygpt.pt``: the model's weights (a ``state_dict``, saved with ``torch.save``);
* ``config.json``: everything else, written down once: the ``GPTModel`` arguments, the
  vocabulary and its sentence start/end tokens, the training settings and the measured metrics.

The weights are read with ``torch.load(..., weights_only=True)``, which only rebuilds tensors
and plain containers: unlike a full pickle, a checkpoint file cannot run code when loaded.

``python -m toygpt.training --output PATH`` writes a new checkpoint in the same format.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

import torch

from toygpt.model import GPTModel
from toygpt.tokenizer import WordTokenizer

__all__ = ["load_pretrained", "save_pretrained"]

WEIGHTS_NAME, CONFIG_NAME = "toygpt.pt", "config.json"


def save_pretrained(
    model: GPTModel,
    tokenizer: WordTokenizer,
    path,
    *,
    training: dict | None = None,
    metrics: dict | None = None,
) -> None:
    """Write ``model``'s weights to ``path`` (a .pt file) and ``config.json`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "model": dict(model.config),
        "vocab": list(tokenizer.vocab),
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "training": training or {},
        "metrics": metrics or {},
    }
    torch.save(model.state_dict(), path)
    (path.parent / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def load_pretrained(path=None) -> tuple[GPTModel, WordTokenizer]:
    """Load a trained model (in eval mode) and its tokenizer.

    ``path``: None for the checkpoint shipped with toygpt; otherwise a ``.pt`` file (its
    ``config.json`` is read from the same folder) or a folder holding ``toygpt.pt`` and
    ``config.json``.

    Raises ``FileNotFoundError`` if a file is missing, ``ValueError`` if a file is not a valid
    checkpoint.

    >>> model, tokenizer = load_pretrained()
    >>> ids = tokenizer.encode("hello world this is")
    >>> tokenizer.decode([int(model(ids)[0, -1].argmax())])
    'a'
    """
    if path is None:
        # importlib.resources finds the files wherever the package is installed (Colab
        # installs it from git into site-packages), unlike a path relative to a notebook.
        folder = importlib.resources.files("toygpt") / "checkpoints"
        with importlib.resources.as_file(folder / WEIGHTS_NAME) as weights:
            with importlib.resources.as_file(folder / CONFIG_NAME) as config:
                return _load(Path(weights), Path(config))
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a str, a pathlib.Path or None, got {type(path).__name__}"
        )
    path = Path(path)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    return _load(weights, weights.parent / CONFIG_NAME)


def _load(weights: Path, config_path: Path) -> tuple[GPTModel, WordTokenizer]:
    for file in (weights, config_path):
        if not file.is_file():
            raise FileNotFoundError(
                f"checkpoint file {file} not found; write one with "
                "`python -m toygpt.training --output PATH` (config.json goes beside the .pt file)"
            )
    try:
        config = json.loads(config_path.read_text())
        model_config = config["model"]
        tokenizer = WordTokenizer(
            config["vocab"],
            bos_token=config["bos_token"],
            eos_token=config["eos_token"],
        )
        model = GPTModel(**model_config)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{config_path} is not a valid toygpt config: {error!r}"
        ) from error
    try:
        # weights_only=True: only tensors and plain containers are unpickled, never code.
        state_dict = torch.load(weights, weights_only=True, map_location="cpu")
    except Exception as error:  # a truncated or foreign file fails in many ways (EOFError, RuntimeError, ...)
        raise ValueError(
            f"{weights} is not a valid toygpt checkpoint (torch.load failed: {error!r})"
        ) from error
    if not isinstance(state_dict, dict):
        raise ValueError(
            f"{weights} is not a valid toygpt checkpoint: expected a state_dict, got {type(state_dict)}"
        )
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise ValueError(
            f"{weights} does not match the model described in {config_path}: {error}"
        ) from error
    if len(tokenizer) != model.vocab_size:
        raise ValueError(
            f"{config_path}: {len(tokenizer)} words but the model has vocab_size {model.vocab_size}"
        )
    model.eval()  # no dropout: the model predicts deterministically
    return model, tokenizer
