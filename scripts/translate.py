"""Generate the Korean edition (ko/) from the English book plus translation files.

    python scripts/translate.py build         # write ko/notebooks/*.ipynb, ko/_toc.yml
    python scripts/translate.py check         # exit 1 if a translation is stale or
                                              # missing, or ko/ is not what build writes
    python scripts/translate.py check --complete  # ... or a chapter is untranslated
    python scripts/translate.py merge         # mark new/changed English text in the
                                              # translation files (gettext msgmerge)
    python scripts/translate.py todo          # print what to (re)translate, in English
    python scripts/translate.py init NN_slug  # start translating a chapter

A Korean chapter is a build product. Its code cells and outputs are the English
chapter's, copied; each English text cell is replaced by its translation from
``ko/translations/NN_slug.md``, where entries are keyed by the sha256 of the English
cell source, and the Korean cell records that key as ``metadata.translation_of``.
The prose pages ``ko/book/*.md`` are written by hand; their first line records the
sha256 of the English page they translate. The captions of ``ko/_toc.yml`` come from
``ko/translations/_toc.md``. A chapter without a translation file is built with its
English text under a notice (and ``check --complete`` fails on it).
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from translation_file import Entry, parse, sha, unparse  # noqa: E402

import notebooks as nbtool  # noqa: E402  (badges and setup cell: one derivation)

ROOT = Path(__file__).resolve().parent.parent
PAGE_MARK = re.compile(r"^<!-- translation_of: (\S+) sha256=([0-9a-f]{64}) -->$")
UNTRANSLATED = (
    "> **번역 예정** — 이 장은 아직 한국어로 옮기지 않아 본문이 영어입니다. "
    "코드와 출력은 영어판과 같습니다."
)

# --- what there is to translate ------------------------------------------------------


def chapters(root: Path = ROOT) -> list[str]:
    return [p.stem for p in sorted((root / "notebooks").glob("[0-9A][0-9]_*.ipynb"))]


def english_units(nb) -> list[tuple[int, str]]:
    """(index, source) of every English text cell that gets a translation."""
    return [
        (i, c.source)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "markdown"
        and nbtool.BADGE_TAG not in c.metadata.get("tags", [])
    ]


def toc_captions(root: Path = ROOT) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [part["caption"] for part in toc.get("parts", [])]


def book_pages(root: Path = ROOT) -> list[str]:
    """The English prose pages (book/*.md) in the table of contents."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]] + [
        c["file"] for p in toc.get("parts", []) for c in p.get("chapters", [])
    ]
    return [f + ".md" for f in files if not f.startswith("notebooks/")]


def align(entries: list[Entry], units: list[tuple[int, str]]):
    """Pair each English unit with the entry that translates it (or translated an
    earlier version of it). Returns [(unit, entry or None)] and the vanished entries."""
    matcher = difflib.SequenceMatcher(
        None, [e.hash for e in entries], [sha(s) for _, s in units], autojunk=False
    )
    pairs, vanished = [], []
    for _, i1, i2, j1, j2 in matcher.get_opcodes():
        olds, news = entries[i1:i2], units[j1:j2]
        pairs += list(zip(news, olds + [None] * (len(news) - len(olds))))
        vanished += olds[len(news) :]
    return pairs, vanished


def load_entries(root: Path, name: str) -> list[Entry] | None:
    path = root / "ko" / "translations" / f"{name}.md"
    return parse(path) if path.exists() else None


# --- building the Korean edition -----------------------------------------------------


def korean_badges(name: str) -> str:
    source = nbtool.badge_source(name)
    old, new = f"notebooks/{name}", f"ko/notebooks/{name}"
    if source.count(old) != 2:
        raise RuntimeError("notebooks.badge_source changed shape: update korean_badges")
    return (
        source.replace(old, new)
        .replace("[![Open In Colab]", "[![Colab에서 열기]")
        .replace("[![Launch Binder]", "[![Binder에서 실행]")
    )


def korean_setup() -> str:
    source = nbtool.setup_source()
    old = 'sys.path.insert(0, "..")  # a plain checkout, running from notebooks/'
    if old not in source:
        raise RuntimeError("notebooks.setup_source changed shape: update korean_setup")
    return source.replace(
        old,
        'sys.path.insert(0, "../..")  # a plain checkout, running from ko/notebooks/',
    )


def generate(root: Path, name: str):
    """The Korean chapter `name`, built from the English one and its translation."""
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    entries = load_entries(root, name)
    units = english_units(nb)
    pairs, _ = align(entries or [], units)
    for (index, _), entry in pairs:
        cell = nb.cells[index]
        if entry is not None and entry.korean:
            cell.source = entry.korean
            cell.metadata["translation_of"] = entry.translates
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if nbtool.BADGE_TAG in tags:
            cell.source = korean_badges(f"{name}.ipynb")
            if entries is None:
                cell.source += "\n\n" + UNTRANSLATED
        if nbtool.SETUP_TAG in tags:
            cell.source = korean_setup()
    return nb


def korean_toc(root: Path = ROOT) -> str:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    captions = {
        e.hash: e.korean
        for e in parse(root / "ko" / "translations" / "_toc.md")
        if e.korean and not e.status
    }
    ko = root / "ko"
    out = [
        "# Generated by scripts/translate.py from ../_toc.yml: do not edit.",
        "format: jb-book",
        f"root: {toc['root']}",
        "parts:",
    ]
    for part in toc.get("parts", []):
        files = [
            c["file"]
            for c in part["chapters"]
            if any((ko / (c["file"] + s)).exists() for s in (".ipynb", ".md"))
        ]
        if files:
            caption = captions.get(sha(part["caption"]), part["caption"])
            out.append(f"  - caption: {caption}")
            out.append("    chapters:")
            out += [f"      - file: {f}" for f in files]
    return "\n".join(out) + "\n"


def build(root: Path = ROOT, names=None) -> list[str]:
    written = []
    (root / "ko" / "notebooks").mkdir(parents=True, exist_ok=True)
    for name in names or chapters(root):
        path = root / "ko" / "notebooks" / f"{name}.ipynb"
        text = nbformat.writes(generate(root, name)) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(str(path.relative_to(root)))
    toc = root / "ko" / "_toc.yml"
    if not toc.exists() or toc.read_text() != korean_toc(root):
        toc.write_text(korean_toc(root))
        written.append("ko/_toc.yml")
    return written


# --- keeping the translation in step -------------------------------------------------


def _quote(text: str, prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines()) or prefix


def _diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(),
        new.splitlines(),
        "English as translated",
        "English now",
        lineterm="",
        n=1,
    )
    return "\n".join("      " + line for line in lines)


def unit_problems(entries, units, tfile: str, where) -> list[str]:
    """What is wrong between the translation entries and the English units, as text
    blocks for a translator. `where(index)` names the English unit."""
    problems = []
    pairs, vanished = align(entries, units)
    for e in entries:
        if sha(e.english) != e.hash:
            problems.append(
                f"  [edited] {tfile}:{e.line}: the English copy was edited (its sha256 "
                "no longer matches the marker); restore it or run `make translations`"
            )
    for (index, source), e in pairs:
        now = sha(source)
        if e and e.korean and not e.status and e.translates == now:
            continue
        if e and e.korean and e.translates != now:
            old = e.was_english if e.status == "stale" else e.english
            problems.append(
                f"  [changed] {where(index)}, {tfile}:{e.line}\n"
                "    the English changed since it was translated:\n"
                f"{_diff(old, source)}\n    the Korean (translating the old English):\n"
                f"{_quote(e.korean)}"
            )
        else:
            state = "is marked todo" if e and e.korean else "has no translation"
            at = f"{tfile}:{e.line}" if e else f"{tfile}: run `make translations`"
            problems.append(
                f"  [missing] {where(index)} {state} ({at})\n    English:\n"
                f"{_quote(source)}"
            )
    for e in vanished:
        problems.append(
            f"  [vanished] {tfile}:{e.line} translates an English {e.kind} that is "
            "gone (`make translations` removes the entry)\n    English as translated:\n"
            f"{_quote(e.english)}"
        )
    return problems


def english_as_translated(root: Path, page: str, digest: str) -> str | None:
    """The version of an English page with this sha256, from git history."""
    try:
        revs = subprocess.run(
            ["git", "-C", str(root), "log", "--format=%H", "--", page],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        for rev in revs[:200]:
            text = subprocess.run(
                ["git", "-C", str(root), "show", f"{rev}:{page}"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            if sha(text) == digest:
                return text
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def page_problems(root: Path, page: str) -> list[str]:
    english = (root / page).read_text()
    path = root / "ko" / page
    line = f"<!-- translation_of: {page} sha256={sha(english)} -->"
    if not path.exists():
        return [f"  [missing] ko/{page} does not exist: translate {page}"]
    first = path.read_text().split("\n", 1)[0]
    mark = PAGE_MARK.match(first)
    if mark and mark.groups() == (page, sha(english)):
        return []
    old = english_as_translated(root, page, mark.group(2)) if mark else None
    change = (
        f"    the English changed since it was translated:\n{_diff(old, english)}"
        if old is not None
        else f"    English now (the version translated is not in git history):\n"
        f"{_quote(english)}"
    )
    return [
        f"  [changed] ko/{page} does not translate the current {page}\n{change}\n"
        f"    when the Korean is updated, make its first line:\n      {line}"
    ]


def problems(root: Path = ROOT, complete: bool = False) -> tuple[dict, list[str]]:
    """{what: [problem, ...]} for every part of the Korean edition, and the names of
    the chapters not translated yet."""
    found, untranslated = {}, []
    for name in chapters(root):
        entries = load_entries(root, name)
        ko_nb = f"ko/notebooks/{name}.ipynb"
        out = []
        if entries is None:
            untranslated.append(name)
            if complete:
                out.append(
                    f"  [missing] no translation: run `translate.py init {name}`"
                )
        else:
            nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
            out += unit_problems(
                entries,
                english_units(nb),
                f"ko/translations/{name}.md",
                lambda i, ko_nb=ko_nb: f"English cell {i} (= {ko_nb} cell {i})",
            )
        path = root / ko_nb
        if (
            not path.exists()
            or path.read_text() != nbformat.writes(generate(root, name)) + "\n"
        ):
            out.append(f"  [out of date] {ko_nb} is not what `make ko` writes")
        found[name] = out
    captions = list(enumerate(toc_captions(root)))
    found["_toc.yml"] = unit_problems(
        parse(root / "ko" / "translations" / "_toc.md"),
        captions,
        "ko/translations/_toc.md",
        lambda i: f"caption {i} of _toc.yml",
    )
    toc = root / "ko" / "_toc.yml"
    if not toc.exists() or toc.read_text() != korean_toc(root):
        found["_toc.yml"].append("  [out of date] ko/_toc.yml: run `make ko`")
    for page in book_pages(root):
        found[page] = page_problems(root, page)
    return {k: v for k, v in found.items() if v}, untranslated


def report(root: Path, complete: bool) -> int:
    found, untranslated = problems(root, complete)
    for what, items in found.items():
        print(f"{what}: {len(items)} to do")
        print("\n".join(items))
    if untranslated and not complete:
        print(
            f"note: {len(untranslated)} chapters are not translated yet (built with "
            f"their English text): {', '.join(untranslated)}"
        )
    if found:
        print(
            "\nThe Korean edition is not in step with the English: run "
            "`make translations`, translate, then `make ko`."
        )
    return 1 if found else 0


def merge(root: Path = ROOT) -> None:
    """Rewrite the translation files in the English order: new English text becomes a
    "todo" entry, changed English text a "stale" entry keeping the old Korean."""
    jobs = [
        (
            root / "ko" / "translations" / "_toc.md",
            "caption",
            list(enumerate(toc_captions(root))),
            "_toc.yml",
        )
    ]
    for name in chapters(root):
        path = root / "ko" / "translations" / f"{name}.md"
        if path.exists():
            nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
            jobs.append((path, "cell", english_units(nb), f"notebooks/{name}.ipynb"))
    for path, kind, units, source in jobs:
        entries = parse(path) if path.exists() else []
        pairs, vanished = align(entries, units)
        merged = []
        for (index, text), e in pairs:
            now = sha(text)
            if e is None or (not e.korean and e.hash != now):
                merged.append(Entry(kind, index, now, text, "", "todo"))
            elif e.hash == now:
                merged.append(replace(e, index=index))
            else:
                was_english = e.was_english if e.status == "stale" else e.english
                merged.append(
                    Entry(
                        kind,
                        index,
                        now,
                        text,
                        e.korean,
                        "stale",
                        e.translates,
                        was_english,
                    )
                )
                if e.translates == now:  # changed back to what was translated
                    merged[-1] = Entry(kind, index, now, text, e.korean)
        for e in vanished:
            print(f"{path.relative_to(root)}: removed the entry for a vanished English")
            print(f"{kind} (its Korean was:)\n{_quote(e.korean)}")
        text = unparse(merged, source)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"merged {path.relative_to(root)}")


def init(root: Path, name: str) -> None:
    path = root / "ko" / "translations" / f"{name}.md"
    if path.exists():
        raise SystemExit(f"{path} exists: use `make translations`")
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    entries = [Entry("cell", i, sha(s), s, "", "todo") for i, s in english_units(nb)]
    path.write_text(unparse(entries, f"notebooks/{name}.ipynb"))
    print(f"wrote {path.relative_to(root)}: {len(entries)} cells to translate")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "check", "merge", "todo", "init"])
    parser.add_argument("chapters", nargs="*")
    parser.add_argument("--complete", action="store_true")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.command == "build":
        for path in build(root, args.chapters):
            print(f"wrote {path}")
        return 0
    if args.command == "merge":
        merge(root)
        return 0
    if args.command == "init":
        for name in args.chapters:
            init(root, name)
        return 0
    status = report(root, args.complete)
    return status if args.command == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
