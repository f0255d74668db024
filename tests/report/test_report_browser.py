"""The browser check's verdicts and its message when Chromium is missing (no browser needed here; `make
report-check` runs the check itself in headless Chromium)."""

from __future__ import annotations

import pytest

from t2iscale.report import browser
from t2iscale.report.browser import INSTALL_HINT, BrowserMissing, PageCheck, find_browser, judge


def facts(**changes) -> dict:
    """What PAGE_FACTS reads off a good page at 800 px."""
    good = {
        "width": 800,
        "height": 1000,
        "scrollWidth": 800,
        "pageHeight": 9000,
        "images": [{"src": "compute_frontier.svg", "loaded": True, "width": 600}],
        "sticking": [],
        "scripts": 0,
        "firstSection": "headline",
        "firstBlock": "headline",
        "headlineTop": 64,
        "headlineText": "Headline",
    }
    return {**good, **changes}


def test_a_good_page_passes():
    assert judge(800, facts(), ["file:///r/report.html", "file:///r/compute_frontier.svg"]) == []
    check = PageCheck(800, facts(), ["file:///r/report.html"])
    assert check.ok and check.summary().endswith("-- OK")


def test_an_image_that_did_not_load_fails():
    broken = facts(
        images=[{"src": "a.svg", "loaded": True, "width": 1}, {"src": "b.svg", "loaded": False, "width": 0}]
    )
    assert judge(800, broken, []) == ["1 image(s) did not load: b.svg"]


def test_sideways_scrolling_fails_and_names_what_sticks_out():
    wide = facts(scrollWidth=1130, sticking=["table (right edge 1130 px)"])
    (failure,) = judge(800, wide, [])
    assert failure.startswith("the page scrolls sideways: body 1130 px wide in a 800 px window")
    assert "table (right edge 1130 px)" in failure


def test_the_headline_must_come_first_and_near_the_top():
    (failure,) = judge(800, facts(firstSection="runs", firstBlock="runs"), [])
    assert "the headline is not first: the first section is #runs" in failure
    (failure,) = judge(800, facts(headlineTop=1300), [])
    assert "below the first half screen" in failure


def test_network_requests_and_scripts_fail():
    failures = judge(800, facts(scripts=1), ["file:///r/report.html", "https://cdn.example/x.js"])
    assert failures == [
        "the page requested 1 non-local URL(s): https://cdn.example/x.js",
        "the page carries 1 script(s); it must work without JavaScript",
    ]


def test_missing_chromium_names_the_install_command(monkeypatch):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    with pytest.raises(BrowserMissing, match=f"install it with: {INSTALL_HINT}"):
        find_browser()
    monkeypatch.setenv("CHROMIUM", "/no/such/chromium")
    with pytest.raises(BrowserMissing, match=r"\$CHROMIUM='/no/such/chromium' is not an executable"):
        find_browser()
    assert INSTALL_HINT == "apt-get install -y chromium chromium-driver"


def test_browser_command_line_stays_offline():
    for flag in (
        "--headless",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        assert flag in browser.FLAGS
    assert "--remote-debugging-pipe" in browser.FLAGS
