"""Maintain the chapters: derive their launch badges and setup cell, and execute them.

    python scripts/notebooks.py sync             # badges + setup cell into each chapter
    python scripts/notebooks.py check            # exit 1 if a chapter is out of sync
    python scripts/notebooks.py execute [NB ..]  # run in a fresh kernel, in place

"Chapters" are the numbered chapters (``NN_slug.ipynb``) and the appendices
(``A1_slug.ipynb`` ...).

The repository's address lives in one place, ``_config.yml`` (``repository.url`` and
``branch``); the badges and the Colab install line are derived from it here.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BADGE_TAG = "launch-badges"
SETUP_TAG = "toygpt-setup"


def repository() -> tuple[str, str]:
    """(url, branch) from _config.yml (read with a regex: no YAML parser needed)."""
    text = (ROOT / "_config.yml").read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n)+)", text, re.M)
    if not block:
        raise SystemExit("_config.yml has no repository: block")
    url = re.search(r"^\s+url:\s*(\S+)", block.group(1), re.M).group(1).rstrip("/")
    branch = re.search(r"^\s+branch:\s*(\S+)", block.group(1), re.M).group(1)
    return url, branch


def badge_source(name: str) -> str:
    url, branch = repository()
    owner_repo = url.removeprefix("https://github.com/")
    colab = (
        "https://colab.research.google.com/github/"
        f"{owner_repo}/blob/{branch}/notebooks/{name}"
    )
    binder = (
        f"https://mybinder.org/v2/gh/{owner_repo}/{branch}"
        f"?urlpath=lab/tree/notebooks/{name}"
    )
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab})\n"
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})"
    )


SETUP_TEMPLATE = """\
# Setup: make `toygpt` importable. Colab installs it from GitHub; Binder and a local
# checkout (`make lab`, or `pip install -e .`) already have it.
import importlib
import importlib.util
import subprocess
import sys


class SetupError(RuntimeError):
    def _render_traceback_(self):  # Jupyter shows this one line, not a traceback
        return [f"SetupError: {{self}}"]


if importlib.util.find_spec("toygpt") is None:
    repo = "{url}"
    source = f"git+{{repo}}.git@{branch}"
    instead = (
        f"instead, clone {{repo}}, run `pip install -e .` in it and open this "
        "chapter from its notebooks/ folder (or upload its toygpt/ folder beside it)"
    )
    if "google.colab" in sys.modules:
        pip = [sys.executable, "-m", "pip", "install", "-q", source]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no message"])[-1][:160]
            raise SetupError(f"pip could not install {{source}} ({{why}}); {{instead}}")
    else:
        sys.path.insert(0, "..")  # a plain checkout, running from notebooks/
    importlib.invalidate_caches()
    if importlib.util.find_spec("toygpt") is None:
        raise SetupError(f"toygpt is not installed here; {{instead}}")"""


def setup_source(url: str | None = None, branch: str | None = None) -> str:
    """The hidden first code cell. If toygpt cannot be made importable, it stops with
    one line saying what to do instead (pip's return code is checked: no ``%pip``, which
    "succeeds" whatever happens). ``url``/``branch`` default to _config.yml's."""
    config_url, config_branch = repository()
    return SETUP_TEMPLATE.format(url=url or config_url, branch=branch or config_branch)


def _find(nb, tag):
    return next(
        (
            i
            for i, c in enumerate(nb.cells)
            if tag in c.get("metadata", {}).get("tags", [])
        ),
        None,
    )


def synced(nb, name: str):
    """The notebook with its badge cell (after the title) and setup cell (after the
    badges)."""
    badges = _unchanged_or(
        nb,
        nbformat.v4.new_markdown_cell(
            badge_source(name), metadata={"tags": [BADGE_TAG]}
        ),
    )
    setup = _unchanged_or(
        nb,
        nbformat.v4.new_code_cell(
            setup_source(), metadata={"tags": ["remove-cell", SETUP_TAG]}
        ),
    )
    cells = [c for c in nb.cells if not _find_tags(c) & {BADGE_TAG, SETUP_TAG}]
    title, rest = _split_title(cells[0])
    nb.cells = [title, badges, setup] + rest + cells[1:]
    return nb


def _unchanged_or(nb, fresh):
    """The notebook's cell with ``fresh``'s tag if its source is the same (so it keeps
    its execution count and outputs), otherwise ``fresh``."""
    i = _find(nb, fresh.metadata["tags"][-1])
    return (
        nb.cells[i] if i is not None and nb.cells[i].source == fresh.source else fresh
    )


def _split_title(cell):
    """The first cell's heading line alone (the badges go right under it), and the
    rest."""
    lines = cell.source.splitlines()
    if cell.cell_type != "markdown" or len(lines) <= 1:
        return cell, []
    title = nbformat.v4.new_markdown_cell(lines[0], metadata=cell.metadata)
    body = "\n".join(lines[1:]).strip("\n")
    return title, [nbformat.v4.new_markdown_cell(body)] if body else []


def _find_tags(cell) -> set:
    return set(cell.get("metadata", {}).get("tags", []))


def chapters(names=None) -> list[Path]:
    """The notebooks named, or every chapter then every appendix (01_..., A1_...)."""
    if names:
        return [Path(n) if Path(n).exists() else NOTEBOOKS / n for n in names]
    return sorted(NOTEBOOKS.glob("[0-9A][0-9]_*.ipynb"))


def out_of_sync() -> list[str]:
    bad = []
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        b, s = _find(nb, BADGE_TAG), _find(nb, SETUP_TAG)
        if (
            (b, s) != (1, 2)
            or nb.cells[b].source != badge_source(path.name)
            or nb.cells[s].source != setup_source()
        ):
            bad.append(path.name)
    return bad


def sync() -> None:
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        nb = synced(nb, path.name)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            print(f"synced {path.name}")


WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(names) -> int:
    from nbclient import NotebookClient

    failures = 0
    for path in chapters(names):
        nb = synced(nbformat.read(path, as_version=4), path.name)
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        start = time.perf_counter()
        client = NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        # nbclient imitates a browser's Output widgets (a live slider's figure goes
        # into the widget, not the cell); with ipykernel 7 that imitation can lose
        # track of a capture and wait forever for the cell to finish. The saved widget
        # state is dropped anyway, so drive the kernel as nbval does: no imitation,
        # and the slider's captured figure is removed from the cell below.
        client.comm_open_handlers = {}
        try:
            client.execute()
        except Exception as error:  # report and go on with the other chapters
            failures += 1
            last = str(error).splitlines()[-1] if str(error) else repr(error)
            print(f"FAILED {path.name}: {last}")
            continue
        # Saved widget state would make the web book draw sliders that cannot move (no
        # kernel); the static figure before each slider is what the web shows.
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            if cell.cell_type == "code" and any(
                WIDGET in out.get("data", {}) for out in cell.outputs
            ):
                cell.outputs = [o for o in cell.outputs if WIDGET in o.get("data", {})]
        nbformat.write(nb, path)
        print(f"executed {path.name} in {time.perf_counter() - start:.1f} s")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["sync", "check", "execute"])
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "sync":
        sync()
        return 0
    if args.command == "check":
        bad = out_of_sync()
        for name in bad:
            print(f"out of sync: {name} (run: python scripts/notebooks.py sync)")
        return 1 if bad else 0
    return 1 if execute(args.notebooks) else 0


if __name__ == "__main__":
    sys.exit(main())
