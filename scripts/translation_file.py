"""The translation file format of the Korean edition (ko/translations/*.md).

One entry per English text cell (or _toc.yml caption), in the English order::

    <!-- cell 3 sha256=<sha256 of the English source> -->
    <!-- English
    the English source, verbatim
    -->
    the Korean translation

A marker may end in ``todo`` (new English, no Korean yet) or ``stale was=<sha256>``
(the English changed; the Korean still translates the English with that sha256, which
follows in an ``<!-- English as translated`` block). ``parse`` and ``unparse`` are
inverses; ``scripts/translate.py`` writes and checks these files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(
    r"^<!-- (cell|caption) (\d+) sha256=([0-9a-f]{64})"
    r"(?: (todo|stale was=([0-9a-f]{64})))? -->$"
)
KINDS = {"cell": "text cell", "caption": "caption"}
HEADER = """<!-- toygpt translation of {source}
One entry per English {kind}, in order: a marker line (never edit it), the
English source in a comment, then the Korean. Edit only the Korean, then run
`make ko`. `make translations` marks new English text "todo" and changed English
text "stale" (with the English as translated, for a diff); write the Korean and
delete the "todo" / "stale was=..." part of the marker. -->
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Entry:
    kind: str  # "cell" or "caption"
    index: int  # the English cell's index when the entry was last merged
    hash: str  # sha256 of `english`
    english: str
    korean: str
    status: str = ""  # "", "todo" or "stale"
    was: str = ""  # stale: sha256 of the English the Korean translates ...
    was_english: str = ""  # ... and that English
    line: int = 0  # where the marker is in the file

    @property
    def translates(self) -> str:
        """sha256 of the English text that `korean` is a translation of."""
        return self.was if self.status == "stale" else self.hash


def _comment(title: str, text: str) -> str:
    if "-->" in text:
        raise ValueError(f"English text with '-->' cannot be stored: {text[:60]!r}")
    return f"<!-- {title}\n{text}\n-->\n"


def parse(path: Path) -> list[Entry]:
    lines = path.read_text().split("\n")
    starts = [i for i, line in enumerate(lines) if MARKER.match(line)]
    entries = []
    for n, start in enumerate(starts):
        kind, index, digest, status, was = MARKER.match(lines[start]).groups()
        body = lines[start + 1 : starts[n + 1] if n + 1 < len(starts) else len(lines)]
        blocks = {}
        for title in ("English", "English as translated"):
            if body and body[0] == f"<!-- {title}":
                end = body.index("-->")
                blocks[title], body = "\n".join(body[1:end]), body[end + 1 :]
        if "English" not in blocks:
            raise ValueError(
                f"{path}:{start + 1}: no <!-- English block after the marker"
            )
        entries.append(
            Entry(
                kind,
                int(index),
                digest,
                blocks["English"],
                "\n".join(body).strip("\n"),
                (status or "").split(" ")[0],
                was or "",
                blocks.get("English as translated", ""),
                start + 1,
            )
        )
    return entries


def unparse(entries: list[Entry], source: str) -> str:
    kind = entries[0].kind if entries else "cell"
    out = [HEADER.format(source=source, kind=KINDS[kind])]
    for e in entries:
        status = {"": "", "todo": " todo", "stale": f" stale was={e.was}"}[e.status]
        out.append(f"\n<!-- {e.kind} {e.index} sha256={e.hash}{status} -->\n")
        out.append(_comment("English", e.english))
        if e.status == "stale":
            out.append(_comment("English as translated", e.was_english))
        out.append(e.korean + "\n" if e.korean else "")
    return "".join(out)
