"""The glossary (book/glossary.md) covers every term the chapters set in bold.

Normalisation, so that one entry covers the forms a chapter writes: case is ignored,
inline code marks and surrounding punctuation are dropped, and a plural matches its
singular (``logits`` -> ``logit``, ``hypotheses`` -> ``hypothesis``). An entry's
English cell may list several forms, separated by `` / `` or in parentheses, e.g.
``context length (context window)``; each counts. A leading article is dropped. Bold
that is not a term is skipped (see ``is_term``: lead-in labels, numbers and formulas,
phrases of more than four words); other emphasis is written in italics."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = (ROOT / "book" / "glossary.md").read_text()
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


# Bold the chapters still use for emphasis, not for a term. The chapters turn these into
# italics (*sharper*); each one that goes is removed here.
NOT_TERMS = {
    "hello world this is", "what you will learn", "reporting",
    "thresholds on probability", "sharper", "flatter", "it shifts the logits",
    "divides", "weighted by probability", "true", "number", "ascending", "above",
    "weighted", "peaked", "flat", "guard against the tail", "start", "expand", "rank",
    "finished", "stop", "language itself", "finishes", "truly most probable",
    "favoured", "last", "more probable", "closer to the truth",
    "low temperature is conservative", "no model error",
}  # fmt: skip


def normal(term: str) -> str:
    term = re.sub(r"[`*]", "", term).strip().strip(".,:;!?\"'()").lower()
    term = re.sub(r"^(the|a|an) ", "", re.sub(r"\s+", " ", term))
    return term


def singulars(term: str) -> set[str]:
    forms = {term}
    for plural, singular in (("ies", "y"), ("ses", "sis"), ("es", ""), ("s", "")):
        if term.endswith(plural) and len(term) > len(plural) + 2:
            forms.add(term[: -len(plural)] + singular)
    return forms


def glossary_terms() -> set[str]:
    terms = set()
    for row in re.findall(r"^\| *([^|]+?) *\|", GLOSSARY, re.M)[2:]:
        parts = {row} | set(re.split(r" / |\(|\)", row))
        inside = re.findall(r"\(([^)]*)\)", row)
        outside = re.sub(r"\s*\([^)]*\)", "", row)
        parts |= {outside, *inside}
        # "sentence start / end token" also names "sentence end token"
        for p in list(parts):
            terms |= {t for f in [p] for t in singulars(normal(f)) if t}
    return terms


def is_term(match, text: str) -> bool:
    """Bold marks a term, except: a lead-in label opening a line and ending in a colon
    or full stop (``**Pros.**``, ``**1. By hand**:``), anything with a number or
    formula in it, and a phrase of more than four words (emphasis)."""
    term = match.group(1)
    line_start = text.rfind("\n", 0, match.start()) + 1
    before = text[line_start : match.start()].strip()
    after = text[match.end() : match.end() + 1]
    lead_in = before in ("", "-", "*", ">") and (
        term.rstrip().endswith((".", ":")) or after in (".", ":")
    )
    return not (lead_in or re.search(r"[0-9$]", term) or len(term.split()) > 4)


def bold_terms() -> dict[str, set[str]]:
    found = {}
    for path in CHAPTERS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                for match in re.finditer(r"\*\*([^*]+)\*\*", text):
                    if not is_term(match, text):
                        continue
                    found.setdefault(normal(match.group(1)), set()).add(path.stem)
    return found


def forms(term: str) -> set[str]:
    """The term, its singular, and without/inside a parenthesis: "top-p (nucleus)
    sampling" is found as "top-p sampling" too."""
    plain = normal(re.sub(r"\s*\([^)]*\)", "", term))
    return singulars(term) | singulars(plain)


def test_every_bold_term_has_a_glossary_entry():
    terms = glossary_terms()
    missing = {
        term: sorted(where)
        for term, where in bold_terms().items()
        if term not in NOT_TERMS and not forms(term) & terms
    }
    assert missing == {}, f"add to book/glossary.md: {missing}"


def test_normalisation():
    assert normal("**Logits**,") == "logits"
    assert "logit" in singulars("logits") and "hypothesis" in singulars("hypotheses")
    assert "token" in glossary_terms() and "context window" in glossary_terms()
