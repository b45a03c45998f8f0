"""Open the Korean edition (_build/html/ko/) in headless Chromium: every page loads
without a page error, its images decode, its chapters launch ko/notebooks/ in Colab and
Binder, and each edition's language switch leads to the same page of the other.

Needs both books built (`make build` or `make book`) and Debian's chromium. No CJK font
is needed: the checks read the page, not its pixels."""

import re
from pathlib import Path

import pytest
from test_book_in_chromium import browser, server  # noqa: F401  (shared fixtures)

ROOT = Path(__file__).resolve().parents[2]
TOC = (ROOT / "ko" / "_toc.yml").read_text()
PAGES = [re.search(r"^root:\s*(\S+)", TOC, re.M).group(1)] + re.findall(
    r"file:\s*(\S+)", TOC
)
SWITCH = "a.btn-edition-switch-button"


def open_page(browser, server, url, idle=True):  # noqa: F811  (the fixtures)
    page = browser.new_page()
    # Nothing outside the book is fetched (a CDN that never answers offline would keep
    # the network busy); the pages must work without it.
    page.route(lambda u: not u.startswith(server), lambda route: route.abort())
    errors, failed = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    response = page.goto(url, wait_until="load")
    if idle:  # every image and script of the book's own has arrived (or failed)
        page.wait_for_load_state("networkidle")
    return page, response, errors, failed


@pytest.mark.parametrize("page_name", PAGES)
def test_korean_page_loads_and_switches_to_english(server, browser, page_name):  # noqa: F811
    page, response, errors, failed = open_page(
        browser, server, f"{server}/ko/{page_name}.html"
    )
    assert response.status == 200
    assert page.evaluate("document.documentElement.lang") == "ko"
    images = page.evaluate(
        "Array.from(document.images)"
        ".map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0])"
    )
    assert images or not page_name.startswith("notebooks/"), "a chapter without images"
    assert [src for src, ok in images if not ok] == []
    assert errors == []
    assert [u for u in failed if u.startswith(server)] == []
    assert re.search(r"[\uac00-\ud7a3]", page.inner_text("main")), "no Korean text"
    if page_name.startswith("notebooks/"):
        links = page.evaluate("Array.from(document.links).map(a => a.href)")
        name = page_name.split("/")[-1]
        for host in ["colab.research.google.com", "mybinder.org"]:
            launch = [u for u in links if host in u]
            assert launch and all(f"ko/notebooks/{name}.ipynb" in u for u in launch)
    switch = page.locator(SWITCH)
    assert switch.count() == 1 and switch.inner_text().strip() == "English"
    with page.expect_navigation(wait_until="load"):
        switch.click()
    assert page.url == f"{server}/{page_name}.html"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.close()


@pytest.mark.parametrize("page_name", PAGES)
def test_english_page_switches_to_korean(server, browser, page_name):  # noqa: F811
    page, response, errors, _ = open_page(
        browser, server, f"{server}/{page_name}.html", idle=False
    )
    assert response.status == 200 and errors == []
    switch = page.locator(SWITCH)
    assert switch.count() == 1 and switch.inner_text().strip() == "한국어"
    with page.expect_navigation(wait_until="load"):
        switch.click()
    assert page.url == f"{server}/ko/{page_name}.html"
    assert page.evaluate("document.documentElement.lang") == "ko"
    page.close()
