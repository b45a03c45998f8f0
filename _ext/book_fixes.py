"""Small Sphinx extension for the web book (enabled in _config.yml).

* The chapters' "Open in Colab" and "launch binder" badges point at images on Google's and
  Binder's servers, which is right inside Colab, Jupyter and GitHub. On the web book the
  same badges are served from the book itself, so pages load no third-party images.
* jupyter-book 1.0.4 with Sphinx 7.4 puts sphinx-thebe's inline configuration script on
  every page twice; the second copy makes browsers report "Identifier 'THEBE_JS_URL' has
  already been declared". Only the first copy is kept.
"""

from pathlib import Path

BADGES = {
    "https://colab.research.google.com/assets/colab-badge.svg": "badges/colab-badge.svg",
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


def setup(app):
    app.connect("config-inited", _add_static)
    app.connect("html-page-context", _local_badges)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
