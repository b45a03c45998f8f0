"""Open the built web book in headless Chromium as a reader would, desktop and phone.

Every page loads without a page error, every image decodes, every chapter links to
Colab and Binder; formulas are typeset by the book's own MathJax (no raw TeX on the
page); the page requests nothing outside the book; code blocks fit the column at 1280 px
and no page scrolls sideways at 390 px.

Needs `jupyter-book build .` first (`make test` does it) and Debian's chromium."""

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text()) + [
    re.search(r"^root:\s*(\S+)", (ROOT / "_toc.yml").read_text(), re.M).group(1)
]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
PHONE_SLACK = 2  # px: sub-pixel rounding of the page width
# TeX a reader must never see as text: inline/display delimiters and common commands.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\frac|\\sum|\\log|\\operatorname")


@pytest.fixture(scope="module")
def server():
    assert (HTML / "index.html").exists(), "build the book first: jupyter-book build ."

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, server, page_name, viewport):
    """A loaded page (MathJax done), and every request and failure it made."""
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(120_000)  # a loaded 2-core CI machine is slow
    log = {"requests": [], "failed": [], "bad_status": [], "errors": []}
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    page.on("request", lambda r: log["requests"].append(r.url))
    page.on("requestfailed", lambda r: log["failed"].append(r.url))
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            # the browser asks for /favicon.ico by itself; no page of the book links it
            and not r.url.endswith("/favicon.ico")
            and log["bad_status"].append((r.status, r.url))
        ),
    )
    response = page.goto(f"{server}/{page_name}.html", wait_until="load")
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    # MathJax typesets after load; wait until it says it is done (pages without math
    # do not load it at all).
    page.evaluate(
        "() => window.MathJax && MathJax.startup"
        " ? MathJax.startup.promise.then(() => true) : true"
    )
    return page, log


def outside(url: str, server: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob", "about"):
        return False
    return not url.startswith(server + "/")


@pytest.mark.parametrize("page_name", PAGES)
def test_page_at_desktop_width(server, browser, page_name):
    page, log = open_page(browser, server, page_name, DESKTOP)
    images = page.evaluate(
        "Array.from(document.images)"
        ".map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0])"
    )
    assert images or not page_name.startswith("notebooks/"), "a chapter without images"
    assert [src for src, ok in images if not ok] == []
    assert log["errors"] == []
    # nothing of the book's own is missing, and nothing comes from outside it
    assert log["failed"] == [] and log["bad_status"] == []
    assert [u for u in log["requests"] if outside(u, server)] == []
    if page_name.startswith("notebooks/"):
        links = page.evaluate("Array.from(document.links).map(a => a.href)")
        assert any("colab.research.google.com" in u for u in links)
        assert any("mybinder.org" in u for u in links)

    # math: every formula the page has is typeset by MathJax; no TeX is left as text
    formulas = page.evaluate("document.querySelectorAll('.math').length")
    typeset = page.evaluate("document.querySelectorAll('mjx-container').length")
    if formulas:
        assert typeset >= formulas, f"{typeset} of {formulas} formulas typeset"
        mathjax = [urlparse(u).path for u in log["requests"]]
        assert "/_static/mathjax/tex-chtml.js" in mathjax, "the book's own MathJax"
    text = page.evaluate(
        "(() => { const b = document.querySelector('main') || document.body;"
        " const c = b.cloneNode(true);"
        " c.querySelectorAll('pre, code, mjx-container, script, style, .math')"
        ".forEach(e => e.remove()); return c.innerText; })()"
    )
    raw = RAW_TEX.search(text)
    assert raw is None, (
        f"raw TeX on the page: ...{text[max(0, raw.start() - 60) :][:120]}"
    )

    # code blocks and outputs fit the column: no sideways scrolling at 1280 px
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('main pre'))"
        ".filter(p => p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1)"
        ".map(p => [p.scrollWidth, p.clientWidth,"
        " p.innerText.split('\\n').reduce((a, l) => l.length > a.length ? l : a, '')])"
    )
    assert wide == [], (
        f"code that scrolls sideways (scroll, client, longest line): {wide}"
    )
    page.close()


@pytest.mark.parametrize("page_name", PAGES)
def test_page_at_phone_width(server, browser, page_name):
    page, log = open_page(browser, server, page_name, PHONE)
    assert log["errors"] == []
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > PHONE["width"] + PHONE_SLACK:
        culprits = page.evaluate(
            "Array.from(document.querySelectorAll('main *'))"
            f".filter(e => e.getBoundingClientRect().right > {PHONE['width'] + 2})"
            ".filter(e => !e.closest('pre, .highlight, .cell_output, mjx-container'))"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className"
            " + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        pytest.fail(f"the page scrolls sideways: {width} px wide; {culprits}")
    page.close()
