"""Small Sphinx extension for the web book (enabled in _config.yml).

* The chapters' "Open in Colab" and "launch binder" badges point at images on Google's
  and Binder's servers, which is right inside Colab, Jupyter and GitHub. On the web book
  the same badges are served from the book itself, so pages load no third-party images.
* jupyter-book 1.0.4 with Sphinx 7.4 puts sphinx-thebe's inline configuration script on
  every page twice; the second copy makes browsers report "Identifier 'THEBE_JS_URL' has
  already been declared". Only the first copy is kept.
* A small style sheet (static/book.css) sets code at a size where 88 columns fit the
  column at 1280 px, wraps long output lines, and keeps wide things from widening the
  page on a phone.
* MathJax is served from the book itself (``mathjax_path: mathjax/tex-chtml.js`` in
  _config.yml), so formulas typeset with no network. The files come from the PyPI
  package ``sphinx-mathjax-offline`` (MathJax 3, installed by the ``dev`` extra); only
  what the ``tex-chtml`` component loads is copied into ``_static/mathjax``.
"""

import importlib.util
import re
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

MATHJAX_PACKAGE = "sphinx-mathjax-offline"  # its import name has hyphens, as published
# The component the book loads, its fonts, and what it loads on demand: TeX extensions
# (autoload), the context menu, and the accessibility tools the menu can switch on.
MATHJAX_FILES = [
    "tex-chtml.js",
    "output/chtml/fonts/woff-v2",
    "input/tex/extensions",
    "ui",
    "a11y",
    "sre",
]

BADGES = {
    "https://colab.research.google.com/assets/colab-badge.svg": (
        "badges/colab-badge.svg"
    ),
    "https://mybinder.org/badge_logo.svg": "badges/binder-badge.svg",
}


def _add_static(app, config):
    config.html_static_path.append(str(Path(__file__).parent / "static"))


def _local_badges(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body:
        for url, local in BADGES.items():
            body = body.replace(url, context["pathto"]("_static/" + local, 1))
        context["body"] = body


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the two copies differ only in filename None vs "" (both mean an inline script)
        key = (
            (script.filename or "", script.attributes.get("body", ""))
            if hasattr(script, "filename")
            else script
        )
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def mathjax_source() -> Path:
    """The folder holding MathJax 3's files (``tex-chtml.js`` ...), from the installed
    ``sphinx-mathjax-offline`` package."""
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    folder = (
        Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
        if spec and spec.submodule_search_locations
        else None
    )
    if folder is None or not (folder / "tex-chtml.js").is_file():
        raise ExtensionError(
            f"MathJax is served from the book, but the package {MATHJAX_PACKAGE!r} is "
            "missing: run `make book` (it installs the dev extra) or "
            f"`pip install {MATHJAX_PACKAGE}`"
        )
    return folder


def _check_mathjax(app, config):
    if config.mathjax_path != "mathjax/tex-chtml.js":
        raise ExtensionError(
            "set `mathjax_path: mathjax/tex-chtml.js` under sphinx: config: in "
            f"_config.yml (the local copy), not {config.mathjax_path!r}"
        )
    mathjax_source()  # fail at the start of the build, not at its end


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for name in MATHJAX_FILES:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


# matplotlib's animation player (toygpt.widgets.web_slider) links Font Awesome 4 from
# a CDN for its button icons; the theme ships Font Awesome itself: the link is dropped.
CDN_STYLESHEET = re.compile(
    r'<link rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/[^"]*">\s*'
)


def _drop_cdn_stylesheets(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body:
        context["body"] = CDN_STYLESHEET.sub("", body)


def setup(app):
    app.add_css_file("book.css")
    app.connect("html-page-context", _drop_cdn_stylesheets)
    app.connect("config-inited", _check_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.connect("config-inited", _add_static)
    app.connect("html-page-context", _local_badges)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
