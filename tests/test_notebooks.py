"""The chapters' hygiene, checked statically (strict nbval executes them separately)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import notebooks as nbtool  # noqa: E402

CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Appendix notebooks (A1_slug.ipynb ...): listed under "About this book", not numbered.
APPENDICES = sorted((ROOT / "notebooks").glob("A[0-9]_*.ipynb"))
TOC = (ROOT / "_toc.yml").read_text()
# The lesson's sections, in its order; each must head a chapter, in this order.
LESSON_HEADINGS = [
    "텍스트 생성 과정",
    "Greedy Decoding",
    "Temperature Scaling",
    "Top-k Sampling",
    "Nucleus Sampling",
    "Beam Search",
    "토큰 임베딩",
    "전에 다뤘던 코드",
    "예측해보기",
    "여러개 예측하기",
]
MACHINE_PATH = re.compile(r"/(work|tmp|root|home|Users|content)/|site-packages|\.venv")


def load(path):
    return json.loads(path.read_text())


def outputs(nb):
    return [
        o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    ]


def title(nb):
    return "".join(nb["cells"][0]["source"]).splitlines()[0]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 1


def test_toc_lists_exactly_the_chapters_in_order():
    listed = re.findall(r"file:\s*notebooks/(\d\d_\S+)", TOC)
    assert listed == [p.stem for p in CHAPTERS]


def test_lesson_sections_head_chapters_in_order():
    titles = [title(load(p)) for p in CHAPTERS]
    found = [
        next((i for i, t in enumerate(titles) if h in t), None) for h in LESSON_HEADINGS
    ]
    present = [i for i in found if i is not None]
    assert present == sorted(present), (
        "the lesson's sections must come in the lesson's order"
    )
    if len(CHAPTERS) >= 10:
        assert None not in found, dict(zip(LESSON_HEADINGS, found))


def test_badges_and_setup_cells_are_in_sync_with_config():
    assert nbtool.out_of_sync() == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_hygiene(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert title(nb).startswith("# ")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), (
        "run top to bottom, fresh kernel"
    )
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    assert not [o for o in outs if o.get("name") == "stderr"], (
        "stderr in outputs (a warning?)"
    )
    text = json.dumps(
        [
            {k: v for k, v in o.items() if k != "data"}
            | {
                "data": {
                    m: v
                    for m, v in o.get("data", {}).items()
                    if not m.startswith("image/")
                }
            }
            for o in outs
        ]
    )
    assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)
    figures = [
        i
        for i, c in enumerate(code)
        if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
    ]
    assert figures, "a chapter needs at least one figure"
    widgets = [
        i
        for i, c in enumerate(code)
        if any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {})
            for o in c.get("outputs", [])
        )
    ]
    if widgets:
        assert figures[0] < widgets[0], "draw the figure statically before the slider"
    setup = code[0]
    assert "remove-cell" in setup["metadata"].get("tags", [])
    prose = "\n".join(
        "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"
    )
    assert len(prose.split()) >= 300
    assert re.search(r"^#+ .*key takeaways", prose, re.M | re.I)
    assert re.search(r"^#+ .*exercises", prose, re.M | re.I)
    assert len(re.findall(r":class: dropdown", prose)) >= 2, (
        "exercise solutions hidden behind a toggle"
    )
    for c in code[1:]:
        # Colab fetches only the notebook: the rest must come from the installed package
        assert not re.search(
            r"\.\./|\bnotebooks/|\bbook/|\bbenchmarks/", "".join(c["source"])
        ), "a repository path"
    for c in code:
        src = "".join(c["source"])
        if "NBVAL_IGNORE_OUTPUT" in src:
            # only for output that legitimately varies: widgets, timings, progress bars
            assert re.search(
                r"interact|widgets|perf_counter|time\(|tqdm|train\(", src
            ), src[:200]


# ---- the hidden setup cell (scripts/notebooks.py derives it from _config.yml) -------


def run_setup_cell(cwd, *, colab: bool, url: str | None = None):
    """Run the setup cell's code in a fresh Python without site-packages (so toygpt is
    not installed), as Colab (a `google.colab` module) or a plain Jupyter would. Returns
    (returncode, the one line Jupyter would show, stdout)."""
    program = (
        "import sys, types\n"
        + ("sys.modules['google.colab'] = types.ModuleType('google.colab')\n" * colab)
        + "try:\n"
        + "    exec(compile(sys.stdin.read(), 'setup-cell', 'exec'), {})\n"
        + "except Exception as error:\n"
        + "    print('\\n'.join(error._render_traceback_()))\n"
        + "    raise SystemExit(3)\n"
        + "import importlib.util\n"
        + "print('found', importlib.util.find_spec('toygpt').origin)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", program],
        input=nbtool.setup_source(url=url),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    return done.returncode, done.stdout.strip()


def test_setup_cell_is_plain_python_at_88_columns():
    source = nbtool.setup_source()
    compile(source, "setup-cell", "exec")  # no IPython magics such as %pip
    assert max(map(len, source.splitlines())) <= 88
    url, branch = nbtool.repository()
    assert f'repo = "{url}"' in source and f".git@{branch}" in source


def test_setup_cell_finds_toygpt_in_a_checkout():
    code, out = run_setup_cell(ROOT / "notebooks", colab=False)
    assert code == 0, out
    assert out.startswith("found ")
    assert Path(out.removeprefix("found ")).resolve() == ROOT / "toygpt" / "__init__.py"


def test_setup_cell_stops_with_one_line_outside_a_checkout(tmp_path):
    (tmp_path / "somewhere").mkdir()
    code, out = run_setup_cell(tmp_path / "somewhere", colab=False)
    assert code == 3
    assert len(out.splitlines()) == 1, out
    assert out.startswith("SetupError: toygpt is not installed here")
    assert "pip install -e ." in out


def test_setup_cell_stops_with_one_line_when_pip_fails(tmp_path):
    # a repository that does not exist: pip's git clone fails at once, offline too
    missing = (tmp_path / "no-such-repository").as_uri()
    code, out = run_setup_cell(tmp_path, colab=True, url=missing)
    assert code == 3
    assert len(out.splitlines()) == 1, out
    assert out.startswith(f"SetupError: pip could not install git+{missing}.git@")
    assert f"clone {missing}, run `pip install -e .`" in out


def test_sync_derives_badges_and_setup_from_the_repository_url(monkeypatch):
    monkeypatch.setattr(
        nbtool, "repository", lambda: ("https://github.com/someone/else", "pages")
    )
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# 1. A chapter\n\nWhat you will learn."),
            nbformat.v4.new_code_cell("print(1)"),
        ]
    )
    nb = nbtool.synced(nb, "01_a.ipynb")
    badges, setup = nb.cells[1].source, nb.cells[2].source
    assert nb.cells[0].source == "# 1. A chapter"
    assert (
        "colab.research.google.com/github/someone/else/blob/pages/notebooks/01_a.ipynb"
        in badges
    )
    assert (
        "mybinder.org/v2/gh/someone/else/pages?urlpath=lab/tree/notebooks/01_a.ipynb"
        in badges
    )
    assert 'repo = "https://github.com/someone/else"' in setup
    assert '.git@pages"' in setup
    assert {"remove-cell", nbtool.SETUP_TAG} <= set(nb.cells[2].metadata["tags"])
    assert [c.source for c in nb.cells[3:]] == ["What you will learn.", "print(1)"]
    # syncing again changes nothing
    assert nbformat.writes(nbtool.synced(nb, "01_a.ipynb")) == nbformat.writes(nb)


# --- Conventions for exercises, appendices and code width ---
SOLUTION_TAG = "solution"
SETUP_TAG = "toygpt-setup"


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", CHAPTERS + APPENDICES, ids=lambda p: p.stem)
def test_exercise_solutions_are_hidden_code_cells(path):
    """A solution runs (a code cell nbval executes), hidden on the web behind a toggle
    (tag hide-cell) and collapsed in Jupyter (source_hidden); it follows the Exercises
    heading."""
    nb = load(path)
    cells = nb["cells"]
    heading = next(
        (
            i
            for i, c in enumerate(cells)
            if c["cell_type"] == "markdown"
            and re.search(r"^#+ .*exercises", "".join(c["source"]), re.M | re.I)
        ),
        None,
    )
    solutions = [i for i, c in enumerate(cells) if SOLUTION_TAG in _tags(c)]
    if path in CHAPTERS:
        assert heading is not None and solutions, "exercises need solutions that run"
    for i in solutions:
        c = cells[i]
        assert c["cell_type"] == "code", f"cell {i}: a solution is a code cell"
        assert "hide-cell" in _tags(c), (
            f"cell {i}: solution without the hide-cell toggle"
        )
        assert c["metadata"].get("jupyter", {}).get("source_hidden") is True, (
            f"cell {i}: solution not collapsed in Jupyter"
        )
        assert heading is not None and i > heading, (
            f"cell {i}: solution before Exercises"
        )
        assert c.get("execution_count") is not None, (
            f"cell {i}: solution never executed"
        )
    for c in cells:
        if c["cell_type"] == "markdown":
            assert not re.search(
                r":::\{admonition\}[^:]*?```python", "".join(c["source"]), re.S
            ), "code inside a dropdown: make it a solution cell so that it runs"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_testing_machinery_stays_in_the_appendix(path):
    """Chi-square tests are computed in the appendix, not in the lesson's chapters; a
    chapter that names the test links to the appendix."""
    nb = load(path)
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "code":
            assert not re.search(r"chi.?square|chi2|gammaincc", src, re.I), src[:120]
        elif re.search(r"chi-square", src, re.I):
            assert "A1_how_this_book_checks_itself" in src, "link to the appendix"


def _code_lines(cell):
    """The lines of a cell that the page shows as code: a code cell's source, or the
    fenced code blocks of a text cell."""
    lines = "".join(cell["source"]).splitlines()
    if cell["cell_type"] == "code":
        return lines
    fenced, inside = [], False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            inside = not inside
        elif inside:
            fenced.append(line)
    return fenced


@pytest.mark.parametrize("path", CHAPTERS + APPENDICES, ids=lambda p: p.stem)
def test_code_fits_the_page(path):
    """Every code line within 88 columns, also code quoted in the text (except the setup
    cell, derived elsewhere)."""
    nb = load(path)
    wide = [
        line
        for c in nb["cells"]
        if SETUP_TAG not in _tags(c)
        for line in _code_lines(c)
        if len(line) > 88
    ]
    assert not wide, wide


def test_appendices_are_listed_under_about_this_book():
    about = TOC[TOC.index("About this book") :]
    listed = re.findall(r"file:\s*notebooks/(A\d_\S+)", about)
    assert listed == [p.stem for p in APPENDICES]


@pytest.mark.parametrize("path", APPENDICES, ids=lambda p: p.stem)
def test_appendix_hygiene(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert title(nb).startswith("# ")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    assert not [o for o in outs if o.get("name") == "stderr"]
    assert any("image/png" in o.get("data", {}) for o in outs), "a figure"


@pytest.mark.parametrize("intro", ["book/intro.md", "ko/book/intro.md"])
def test_the_chapter_map_lists_every_chapter(intro):
    """The intro's chapter map fell six chapters behind once; now it cannot."""
    text = (ROOT / intro).read_text()
    listed = re.findall(r"\{doc\}`\.\./notebooks/(\d\d_\w+)`", text)
    assert listed == [p.stem for p in CHAPTERS]
