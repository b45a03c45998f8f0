"""The Korean edition (ko/): its chapters are the English ones with translated prose.

Strict nbval runs the English chapters; these tests prove that every Korean chapter's
code cells and outputs are byte-equal to the English chapter's, so nbval over
ko/notebooks/ would prove nothing more. They also prove that the staleness check
(`scripts/translate.py check`) passes on the repository and fails, naming the cell,
when English text changes, vanishes or appears.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import translate  # noqa: E402

CHAPTERS = translate.chapters(ROOT)
TRANSLATED = [n for n in CHAPTERS if (ROOT / "ko/translations" / f"{n}.md").exists()]
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def load(path):
    return json.loads(path.read_text())


def tags(cell):
    return cell["metadata"].get("tags", [])


def test_the_check_passes_on_the_repository():
    found, _ = translate.problems(ROOT)
    assert found == {}, "\n".join(sum(found.values(), []))


def test_chapter_one_is_translated():
    assert "01_text_generation_process" in TRANSLATED


@pytest.mark.parametrize("name", CHAPTERS)
def test_code_and_outputs_equal_the_english(name):
    en = load(ROOT / "notebooks" / f"{name}.ipynb")
    ko = load(ROOT / "ko" / "notebooks" / f"{name}.ipynb")
    assert ko["metadata"] == en["metadata"]
    assert [c["cell_type"] for c in ko["cells"]] == [
        c["cell_type"] for c in en["cells"]
    ]
    for i, (e, k) in enumerate(zip(en["cells"], ko["cells"])):
        if e["cell_type"] == "code" and "toygpt-setup" in tags(e):
            # the one derived code cell: the path of a plain checkout differs
            assert "".join(k["source"]) == translate.korean_setup()
            assert {**k, "source": e["source"]} == e, f"cell {i}"
        elif e["cell_type"] == "code":
            assert json.dumps(k, sort_keys=True) == json.dumps(e, sort_keys=True), (
                f"cell {i}: code or outputs differ from the English chapter"
            )
        elif "launch-badges" in tags(e):
            source = "".join(k["source"])
            assert source.startswith(translate.korean_badges(f"{name}.ipynb"))
            assert f"ko/notebooks/{name}.ipynb" in source


@pytest.mark.parametrize("name", TRANSLATED)
def test_every_english_text_cell_has_its_korean_translation(name):
    en = load(ROOT / "notebooks" / f"{name}.ipynb")
    ko = load(ROOT / "ko" / "notebooks" / f"{name}.ipynb")
    for i, (e, k) in enumerate(zip(en["cells"], ko["cells"])):
        if e["cell_type"] != "markdown" or "launch-badges" in tags(e):
            continue
        english = "".join(e["source"])
        korean = "".join(k["source"])
        assert k["metadata"].get("translation_of") == translate.sha(english), i
        assert HANGUL.search(korean) and korean != english, f"cell {i} is not Korean"
        # MyST structure survives translation: headings, math, admonitions, code
        for pattern in [r"^#+ ", r"\$\$", r"^:::", r"^```"]:
            assert len(re.findall(pattern, korean, re.M)) == len(
                re.findall(pattern, english, re.M)
            ), f"cell {i}: {pattern!r} count differs"
    title = "".join(ko["cells"][0]["source"]).splitlines()[0]
    assert title.startswith("# ") and HANGUL.search(title.split("(")[0]), title


def test_korean_toc_has_the_english_pages():
    english = re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())
    korean = re.findall(r"file:\s*(\S+)", (ROOT / "ko" / "_toc.yml").read_text())
    assert korean == english
    assert (ROOT / "ko" / "_toc.yml").read_text() == translate.korean_toc(ROOT)
    for page in translate.book_pages(ROOT):
        assert HANGUL.search((ROOT / "ko" / page).read_text()), page


def test_korean_book_renders_like_the_english_one():
    """The Korean book's Sphinx settings match the English book's, except those that
    name the edition (a Korean book without the local MathJax fails its build)."""
    import yaml

    english, korean = (
        yaml.safe_load((ROOT / path).read_text())
        for path in ["_config.yml", "ko/_config.yml"]
    )
    own = {"language", "edition_switch"}
    shared = {k: v for k, v in english["sphinx"]["config"].items() if k not in own}
    assert {k: korean["sphinx"]["config"].get(k) for k in shared} == shared
    assert korean["sphinx"]["config"]["language"] == "ko"
    assert set(korean["sphinx"]["local_extensions"]) == set(
        english["sphinx"]["local_extensions"]
    )
    for key in ["parse", "launch_buttons", "execute"]:
        assert korean.get(key) == english.get(key), key


def test_translation_files_round_trip():
    for path in (ROOT / "ko" / "translations").glob("*.md"):
        source = "_toc.yml" if path.stem == "_toc" else f"notebooks/{path.stem}.ipynb"
        assert translate.unparse(translate.parse(path), source) == path.read_text()


# --- the check on a temporary copy of the repository ---------------------------------


@pytest.fixture
def repo(tmp_path):
    for part in ["notebooks", "ko", "book"]:
        shutil.copytree(ROOT / part, tmp_path / part)
    for name in ["_toc.yml", "_config.yml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


NAME = "01_text_generation_process"


def edit_english(root, edit):
    path = root / "notebooks" / f"{NAME}.ipynb"
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    nbformat.write(nb, path)


def cell_with(nb, text: str, kind: str = "markdown") -> int:
    """The index of the first ``kind`` cell of ``nb`` whose source holds ``text`` (the
    tests find their cells by content, so edits to chapter 1 do not break them)."""
    return next(
        i for i, c in enumerate(nb.cells) if c.cell_type == kind and text in c.source
    )


def english_chapter(root):
    return nbformat.read(root / "notebooks" / f"{NAME}.ipynb", as_version=4)


def check(root, capsys):
    status = translate.main(["check", "--root", str(root)])
    return status, capsys.readouterr().out


def test_check_passes_on_a_copy(repo, capsys):
    assert check(repo, capsys)[0] == 0


def test_check_fails_when_an_english_cell_changes(repo, capsys):
    i = cell_with(english_chapter(repo), "0.342")

    def edit(nb):
        nb.cells[i].source = nb.cells[i].source.replace("0.342", "0.351")

    edit_english(repo, edit)
    status, out = check(repo, capsys)
    assert status == 1
    assert f"[changed] English cell {i} (= ko/notebooks/{NAME}.ipynb cell {i})" in out
    assert re.search(r"^\s+-.*0\.342", out, re.M) and re.search(
        r"^\s+\+.*0\.351", out, re.M
    )
    # The Korean chapter is still what build writes: the Korean cell keeps its
    # translation of the old English, and its metadata says so.
    assert "[out of date]" not in out
    assert translate.build(repo) == []
    ko = nbformat.read(repo / "ko/notebooks" / f"{NAME}.ipynb", as_version=4)
    en = nbformat.read(repo / "notebooks" / f"{NAME}.ipynb", as_version=4)
    assert ko.cells[i].metadata["translation_of"] != translate.sha(en.cells[i].source)
    status, out = check(repo, capsys)
    assert status == 1 and f"[changed] English cell {i}" in out
    assert "[out of date]" not in out
    # The translator's round: merge marks it stale, the Korean is updated, all green.
    translate.merge(repo)
    path = repo / "ko/translations" / f"{NAME}.md"
    text = path.read_text()
    assert text.count(" stale was=") == 1
    assert check(repo, capsys)[0] == 1
    text = re.sub(r" stale was=[0-9a-f]{64}", "", text).replace("0.342를", "0.351을")
    text = re.sub(r"<!-- English as translated\n.*?\n-->\n", "", text, flags=re.S)
    path.write_text(text)
    translate.build(repo)
    status, out = check(repo, capsys)
    assert status == 0, out
    ko = nbformat.read(repo / "ko/notebooks" / f"{NAME}.ipynb", as_version=4)
    assert "0.351을" in ko.cells[i].source


def test_check_fails_when_an_english_cell_vanishes_or_appears(repo, capsys):
    gone = cell_with(english_chapter(repo), "Greedy decoding gives the same sentence")
    assert gone > 5

    def edit(nb):
        del nb.cells[gone]  # a text cell
        nb.cells.insert(5, nbformat.v4.new_markdown_cell("A brand-new paragraph."))

    edit_english(repo, edit)
    status, out = check(repo, capsys)
    assert status == 1
    assert "cell 5) has no translation" in out
    assert "      | A brand-new paragraph." in out
    assert "[vanished]" in out and "Greedy decoding gives the same sentence" in out
    translate.merge(repo)
    assert (
        "todo -->\n<!-- English\nA brand-new paragraph."
        in (repo / "ko/translations" / f"{NAME}.md").read_text()
    )
    translate.build(repo)
    status, out = check(repo, capsys)
    assert status == 1 and "cell 5) is marked todo" not in out
    assert "cell 5) has no translation" in out


def test_english_code_changes_reach_the_korean_chapter(repo, capsys):
    i = cell_with(english_chapter(repo), "ids = tokenizer.encode(prompt", "code")

    def edit(nb):
        nb.cells[i].outputs[0]["text"] = nb.cells[i].outputs[0]["text"].upper()

    edit_english(repo, edit)
    status, out = check(repo, capsys)
    assert status == 1 and f"[out of date] ko/notebooks/{NAME}.ipynb" in out
    translate.build(repo)
    assert check(repo, capsys)[0] == 0
    ko = nbformat.read(repo / "ko/notebooks" / f"{NAME}.ipynb", as_version=4)
    assert ko.cells[i].outputs[0]["text"].startswith("IDS:")


def test_check_fails_when_a_page_or_caption_changes(repo, capsys):
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    page = repo / "book" / "running.md"
    page.write_text(page.read_text().replace("a few seconds", "a minute"))
    toc = repo / "_toc.yml"
    toc.write_text(toc.read_text().replace("About this book", "About the book"))
    status, out = check(repo, capsys)
    assert status == 1
    assert "[changed] ko/book/running.md does not translate the current" in out
    assert re.search(r"^\s+\+.*a minute", out, re.M)  # diffed against git history
    new = translate.sha(page.read_text())
    assert f"<!-- translation_of: book/running.md sha256={new} -->" in out
    assert "[changed] caption 2 of _toc.yml" in out
    assert "[out of date] ko/_toc.yml" in out
