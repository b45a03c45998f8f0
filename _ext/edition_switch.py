"""A language switch: a header button on every page linking to the same page of the
other edition (the English book at the root, the Korean one in ko/).

Configured in each book's _config.yml (``sphinx: config: edition_switch:``) with the
other edition's folder relative to this book (``path``) and the button's ``label`` and
``tooltip``. The other edition's pages are read from its ``_toc.yml``; a page it does
not have links to its home page instead. Both books are built side by side, the Korean
one into ``_build/html/ko/`` (see the Makefile), so the other edition's page
``notebooks/01_x`` is at ``<path>/notebooks/01_x.html`` relative to this book's root.
"""

import re
from pathlib import Path, PurePosixPath

import yaml

SPECIAL = {"search", "genindex"}  # pages every Sphinx book has
# the theme's link buttons open in a new tab; the switch replaces the page instead
NEW_TAB = re.compile(
    r'target="_blank"(\s+class="btn btn-sm btn-edition-switch-button")'
)


def other_pages(app) -> tuple[set, str]:
    """The other edition's page names and its home page."""
    toc_path = Path(app.srcdir) / app.config.edition_switch["path"] / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    pages = {toc["root"]} | {
        c["file"] for p in toc.get("parts", []) for c in p.get("chapters", [])
    }
    return pages | SPECIAL, toc["root"]


def _add_button(app, pagename, templatename, context, doctree):
    options = app.config.edition_switch
    if not options or "header_buttons" not in context:
        return
    pages, home = other_pages(app)
    target = pagename if pagename in pages else home
    up = "../" * pagename.count("/")  # from this page to this book's root
    url = str(PurePosixPath(options["path"]) / f"{target}.html")
    context["header_buttons"].append(
        {
            "type": "link",
            "url": up + url,
            "text": options["label"],
            "tooltip": options.get("tooltip", options["label"]),
            "icon": "fas fa-language",
            "label": "edition-switch-button",
        }
    )


def _same_tab(app, exception):
    if exception is None and app.builder.format == "html" and app.config.edition_switch:
        for path in Path(app.outdir).rglob("*.html"):
            text = path.read_text(encoding="utf-8")
            fixed = NEW_TAB.sub(r"\1", text)
            if fixed != text:
                path.write_text(fixed, encoding="utf-8")


def setup(app):
    app.add_config_value("edition_switch", {}, "html")
    # after sphinx-book-theme fills header_buttons (priority 501)
    app.connect("html-page-context", _add_button, priority=600)
    app.connect("build-finished", _same_tab)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
