"""The shipped trained models: ``model, tokenizer = load_pretrained()``.

A checkpoint is two files side by side: the weights (``<name>.pt``, a ``state_dict``
saved with ``torch.save``) and its own config (``<name>.json``: the ``GPTModel``
arguments, the vocabulary and its sentence start/end tokens, the training settings, the
measured metrics, the weights file's name and SHA-256). The one exception is the
name the book started with: ``toygpt.pt`` keeps its config in ``config.json``. Each
weights file thus has exactly one config, so two checkpoints saved into one folder never
share one.

Two checkpoints ship inside the package, in ``toygpt/checkpoints/``:

* ``"default"``: ``toygpt.pt`` + ``config.json``, the model of the book's chapters
  (4 layers, d_model 128);
* ``"draft"``: ``draft.pt`` + ``draft.json``, a 1-layer model distilled from the
  default one, the draft model of speculative decoding.

The weights are read with ``torch.load(..., weights_only=True)``, which only rebuilds
tensors and plain containers: unlike a full pickle, a checkpoint cannot run code when
loaded. The config is checked before any tensor is allocated (a config asking for
d_model 10**9 is refused, not an out-of-memory), and a weights file that is truncated,
altered (its SHA-256 differs from the config's) or does not fit the config is an error
naming the file.

``python -m toygpt.training --output PATH`` writes a new checkpoint in this format.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import os
from pathlib import Path

import torch

from toygpt.model import GPTModel
from toygpt.tokenizer import WordTokenizer

__all__ = ["load_pretrained", "save_pretrained", "config_path_for", "SHIPPED"]

WEIGHTS_NAME, CONFIG_NAME = "toygpt.pt", "config.json"
SHIPPED = {"default": WEIGHTS_NAME, "draft": "draft.pt"}  # name -> weights file
MODEL_KEYS = (
    "vocab_size",
    "d_model",
    "num_heads",
    "num_layers",
    "dropout",
    "context_length",
)
MAX_PARAMETERS = 50_000_000  # 200 MB of float32: far beyond any toygpt model
BYTES_PER_PARAMETER = 4  # the weights are saved in float32


def config_path_for(weights) -> Path:
    """The config file that belongs to a weights file: ``<name>.json`` beside
    ``<name>.pt``, except ``config.json`` for ``toygpt.pt`` (the shipped name).

    >>> config_path_for("runs/draft.pt").as_posix(), config_path_for("toygpt.pt").name
    ('runs/draft.json', 'config.json')
    """
    weights = Path(weights)
    if weights.name == WEIGHTS_NAME:
        return weights.parent / CONFIG_NAME
    return weights.with_suffix(".json")


def check_output_path(path, *, overwrite: bool = False) -> Path:
    """Check where a checkpoint will be written, before any training: a ``.pt`` file
    name, not a folder, in a folder that exists or can be made and is writable, and
    (unless ``overwrite``) neither the weights nor their config exists yet."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a str or a pathlib.Path, got {type(path).__name__}"
        )
    if str(path).strip() == "":
        raise ValueError("the output path must not be empty; give a file like run/a.pt")
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"the output path {path} is a folder; give the weights file inside it, "
            f"e.g. {path / 'model.pt'}"
        )
    if path.suffix != ".pt":
        raise ValueError(f"the output path must end in .pt, got {path}")
    config = config_path_for(path)
    if not overwrite:
        for file in (path, config):
            if file.exists():
                raise FileExistsError(
                    f"{file} already exists; choose another output path, or allow "
                    "overwriting it (overwrite=True, or --overwrite on the command "
                    "line)"
                )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing folder: it will hold the new ones
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write the checkpoint {path}: {folder} is not writable"
        )
    return path


def save_pretrained(
    model: GPTModel,
    tokenizer: WordTokenizer,
    path,
    *,
    training: dict | None = None,
    metrics: dict | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``model``'s weights to ``path`` (a ``.pt`` file) and its config beside
    it (:func:`config_path_for`). Refuses to replace existing files unless
    ``overwrite``."""
    if not isinstance(model, GPTModel):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}")
    if not isinstance(tokenizer, WordTokenizer):
        raise TypeError(
            f"tokenizer must be a WordTokenizer, got {type(tokenizer).__name__}"
        )
    if len(tokenizer) != model.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} words but the model's vocab_size is "
            f"{model.vocab_size}"
        )
    path = check_output_path(path, overwrite=overwrite)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    config = {
        "model": dict(model.config),
        "vocab": list(tokenizer.vocab),
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "training": training or {},
        "metrics": metrics or {},
        "weights_file": path.name,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
    }
    config["config_sha256"] = _config_hash(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    config_path_for(path).write_text(json.dumps(config, indent=2) + "\n")


def load_pretrained(path=None) -> tuple[GPTModel, WordTokenizer]:
    """Load a trained model (in eval mode) and its tokenizer.

    ``path``: None or ``"default"`` for the book's shipped model, ``"draft"`` for the
    shipped draft model; otherwise a ``.pt`` file (its config is read from beside it,
    see :func:`config_path_for`) or a folder holding ``toygpt.pt`` and ``config.json``.
    (A folder called ``draft`` in the working directory is ``"./draft"``.)

    Raises ``FileNotFoundError`` if a file is missing, ``ValueError`` naming the file if
    it is not a valid checkpoint.

    >>> model, tokenizer = load_pretrained()
    >>> ids = tokenizer.encode("hello world this is")
    >>> tokenizer.decode([int(model(ids)[0, -1].argmax())])
    'a'
    """
    if path is None or (isinstance(path, str) and path in SHIPPED):
        # importlib.resources finds the files wherever the package is installed
        # (Colab installs it from git into site-packages), unlike a path relative to a
        # notebook.
        name = SHIPPED["default" if path is None else path]
        folder = importlib.resources.files("toygpt") / "checkpoints"
        config_name = config_path_for(name).name
        with importlib.resources.as_file(folder / name) as weights:
            with importlib.resources.as_file(folder / config_name) as config:
                return _load(Path(weights), Path(config))
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be None, a shipped name {tuple(SHIPPED)}, a str or a "
            f"pathlib.Path, got {type(path).__name__}"
        )
    path = Path(path)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    return _load(weights, config_path_for(weights))


LEGACY_KEYS = {"model", "vocab", "bos_token", "eos_token", "training", "metrics"}
HASH_KEYS = {"weights_file", "weights_sha256", "config_sha256"}


def _config_hash(config: dict) -> str:
    """SHA-256 of the config's content (every entry but ``config_sha256`` itself)."""
    content = {k: v for k, v in config.items() if k != "config_sha256"}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parameter_count(c: dict) -> int:
    """Parameters of ``GPTModel(**c)``, from its sizes alone (nothing allocated)."""
    V, d, L, T = c["vocab_size"], c["d_model"], c["num_layers"], c["context_length"]
    block = (
        4 * d
        + (3 * d * d + 3 * d)
        + (d * d + d)
        + (4 * d * d + 4 * d)
        + (4 * d * d + d)
    )
    return V * d + T * d + L * block + 2 * d + d * V + V


def _check_config(config, config_path: Path) -> dict:
    def bad(message):
        return ValueError(f"{config_path} is not a valid toygpt config: {message}")

    if not isinstance(config, dict):
        raise bad(f"expected a JSON object, got {type(config).__name__}")
    for key in ("model", "vocab", "bos_token", "eos_token"):
        if key not in config:
            raise bad(f"it has no {key!r} entry")
    unknown = set(config) - LEGACY_KEYS - HASH_KEYS
    if unknown:
        raise bad(f"unknown entries {sorted(unknown)}")
    # Checkpoints written since the hashes came carry all three; the shipped default
    # (kept byte for byte) predates them and carries none.
    if HASH_KEYS & set(config):
        missing = HASH_KEYS - set(config)
        if missing:
            raise bad(f"it has no {sorted(missing)} entry")
        if config["config_sha256"] != _config_hash(config):
            raise bad("its content differs from its SHA-256: it was altered")
    model = config["model"]
    if not isinstance(model, dict) or set(model) != set(MODEL_KEYS):
        raise bad(f"'model' must hold exactly {MODEL_KEYS}, got {model!r}")
    for key in MODEL_KEYS:
        value = model[key]
        if key == "dropout":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(f"dropout must be a number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(f"{key} must be an int >= 1, got {value!r}")
    vocab = config["vocab"]
    if not isinstance(vocab, list) or len(vocab) != model["vocab_size"]:
        raise bad(f"'vocab' must be a list of vocab_size ({model['vocab_size']}) words")
    count = _parameter_count(model)
    if count > MAX_PARAMETERS:
        raise bad(
            f"its sizes ask for {count:,} parameters; a toygpt checkpoint holds at "
            f"most {MAX_PARAMETERS:,}"
        )
    return model


def _load(weights: Path, config_path: Path) -> tuple[GPTModel, WordTokenizer]:
    for file in (weights, config_path):
        if not file.is_file():
            raise FileNotFoundError(
                f"checkpoint file {file} not found; write one with "
                "`python -m toygpt.training --output PATH` (the config goes beside it)"
            )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{config_path} is not a valid toygpt config: {error}"
        ) from None
    model_config = _check_config(config, config_path)
    needed = _parameter_count(model_config) * BYTES_PER_PARAMETER
    if weights.stat().st_size < needed:
        raise ValueError(
            f"{weights} is not a valid toygpt checkpoint: it has "
            f"{weights.stat().st_size:,} bytes, fewer than the {needed:,} bytes of "
            f"weights its config {config_path.name} describes (truncated?)"
        )
    data = weights.read_bytes()
    named = config.get("weights_file")
    if named is not None and named != weights.name:
        raise ValueError(
            f"{config_path} is the config of {named}, not of {weights.name}; each "
            "checkpoint needs its own config"
        )
    sha = config.get("weights_sha256")
    if sha is not None and hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(
            f"{weights} is not the file its config {config_path.name} describes (its "
            "SHA-256 differs): it was altered or truncated"
        )
    try:
        tokenizer = WordTokenizer(
            config["vocab"],
            bos_token=config["bos_token"],
            eos_token=config["eos_token"],
        )
        model = GPTModel(**model_config)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{config_path} is not a valid toygpt config: {error}"
        ) from None
    try:
        # weights_only=True: only tensors and plain containers are unpickled, never
        # code.
        state_dict = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as error:  # a truncated or foreign file fails in many ways
        raise ValueError(
            f"{weights} is not a valid toygpt checkpoint (torch.load failed: {error!r})"
        ) from None
    if not isinstance(state_dict, dict) or not all(
        isinstance(t, torch.Tensor) for t in state_dict.values()
    ):
        raise ValueError(
            f"{weights} is not a valid toygpt checkpoint: expected a state_dict of "
            f"tensors, got {type(state_dict).__name__}"
        )
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise ValueError(
            f"{weights} does not match the model described in {config_path}: {error}"
        ) from None
    if not all(torch.isfinite(t).all() for t in state_dict.values()):
        raise ValueError(f"{weights} holds weights that are NaN or infinite")
    model.eval()  # no dropout: the model predicts deterministically
    return model, tokenizer
