"""Open the built web book in headless Chromium: every page loads without a page error,
every image decodes, and every chapter links to Colab and Binder.

Needs `jupyter-book build .` first (`make test` does it) and Debian's chromium."""

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

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


@pytest.fixture(scope="module")
def server():
    assert (HTML / "index.html").exists(), "build the book first: jupyter-book build ."
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(HTML)
    )
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


@pytest.mark.parametrize("page_name", PAGES)
def test_page_loads_and_images_decode(server, browser, page_name):
    page = browser.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    response = page.goto(f"{server}/{page_name}.html", wait_until="load")
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0])"
    )
    assert images or not page_name.startswith("notebooks/"), "a chapter without images"
    assert [src for src, ok in images if not ok] == []
    assert errors == []
    assert [
        u for u in failed if u.startswith(server)
    ] == []  # nothing of the book's own is missing
    if page_name.startswith("notebooks/"):
        links = page.evaluate("Array.from(document.links).map(a => a.href)")
        assert any("colab.research.google.com" in u for u in links)
        assert any("mybinder.org" in u for u in links)
    page.close()
