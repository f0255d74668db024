"""Check a written report in a real browser: headless Chromium driven through its DevTools protocol.

    python -m t2iscale.report.browser REPORT.html [--width 800 --width 1400] [--screenshots DIR]

For each window width it opens the page from disk and checks that
- every image loaded (`complete` with a natural width), figures and sample cells alike;
- the page body does not scroll sideways (its scroll width fits the window; wide tables scroll in their box);
- the headline comes first: the first section of the page is the headline, and it starts inside the first screen;
- the page asks for nothing but local files (every request is file: or data:) and carries no script.

The protocol runs over a pipe (`--remote-debugging-pipe`: the browser reads commands on fd 3 and writes replies
on fd 4, NUL-separated JSON), so no port is opened and nothing beyond the standard library is needed; Chromium
starts with the flags that keep it off the network (no background networking, component updates or sync).
Chromium is not a Python package: Debian's `chromium` (`apt-get install -y chromium chromium-driver`) or any
Chrome/Chromium named by $CHROMIUM.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "apt-get install -y chromium chromium-driver"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WIDTHS = (800, 1400)
HEIGHT = 1000  # the window's height: the "first screen" the headline must start in
FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 60.0


class BrowserMissing(RuntimeError):
    """No Chromium on this machine; the message names the install command."""


class BrowserError(RuntimeError):
    """The browser died, timed out, or answered a command with an error."""


def find_browser() -> str:
    """$CHROMIUM, else the first Chromium or Chrome on PATH; BrowserMissing names how to install one."""
    named = os.environ.get("CHROMIUM")
    if named:
        found = shutil.which(named)
        if found is None:
            raise BrowserMissing(
                f"$CHROMIUM={named!r} is not an executable; install Chromium with: {INSTALL_HINT}"
            )
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(
        f"no Chromium found (looked for {', '.join(BROWSER_NAMES)} on PATH and $CHROMIUM); "
        f"install it with: {INSTALL_HINT}"
    )


class DevTools:
    """One headless browser and a DevTools session over its pipe. Use as a context manager."""

    def __init__(self, browser: str | None = None, timeout_s: float = TIMEOUT_S):
        self.browser = browser or find_browser()
        self.timeout_s = timeout_s
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def __enter__(self) -> DevTools:
        self._profile = tempfile.TemporaryDirectory(prefix="t2iscale-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():  # in the child: the pipe ends become fds 3 (commands in) and 4 (replies out)
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [self.browser, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            self.version = self.send("Browser.getVersion")["product"]
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout_s=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        self._profile.cleanup()

    def browser_log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from the browser within {self.timeout_s:.0f} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(
                    f"the browser closed its pipe (exit {self.process.poll()}): {self.browser_log()}"
                )
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self, method: str, params: dict | None = None, session: bool = False, timeout_s: float | None = None
    ):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(
                f"the browser is gone (exit {self.process.poll()}): {self.browser_log()}"
            ) from None
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            for i, seen in enumerate(self.events):
                if seen.get("method") == event:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")


# What the check reads off the page, in one script (run by the checker, not by the page: it has none).
PAGE_FACTS = r"""
(() => {
  const width = window.innerWidth;
  const images = Array.from(document.images).map(img => ({
    src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
    width: img.getBoundingClientRect().width }));
  const sticking = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 1 && !el.closest('.scroll') && !el.closest('pre')) {
      sticking.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                    (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '') +
                    ' (right edge ' + Math.round(box.right) + ' px)');
    }
    if (sticking.length >= 5) break;
  }
  const sections = Array.from(document.querySelectorAll('body > section'));
  const headline = document.getElementById('headline');
  const firstBlock = Array.from(document.body.children).find(el => el.tagName !== 'H1');
  return {
    width, height: window.innerHeight,
    scrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    pageHeight: document.documentElement.scrollHeight,
    images, sticking,
    scripts: document.scripts.length,
    firstSection: sections.length ? sections[0].id : null,
    firstBlock: firstBlock ? (firstBlock.id || firstBlock.tagName.toLowerCase()) : null,
    headlineTop: headline ? headline.getBoundingClientRect().top + window.scrollY : null,
    headlineText: headline ? headline.innerText.slice(0, 160) : null,
  };
})()
"""


@dataclass
class PageCheck:
    width: int
    facts: dict
    requests: list[str]
    failures: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        f = self.facts
        loaded = sum(image["loaded"] for image in f["images"])
        text = (
            f"{self.width} px: {loaded}/{len(f['images'])} images loaded; body {f['scrollWidth']} px wide in a "
            f"{f['width']} px window; first section #{f['firstSection']} at {f['headlineTop']:.0f} px; "
            f"page {f['pageHeight']} px tall; {len(self.requests)} requests, all local; {f['scripts']} scripts"
        )
        if self.screenshot:
            text += f"; screenshot {self.screenshot}"
        return text + (" -- OK" if self.ok else " -- FAILED:\n    " + "\n    ".join(self.failures))


def judge(width: int, facts: dict, requests: list[str]) -> list[str]:
    failures = []
    broken = [image["src"] for image in facts["images"] if not image["loaded"]]
    if broken:
        failures.append(f"{len(broken)} image(s) did not load: {', '.join(broken[:8])}")
    if not facts["images"]:
        failures.append("the page shows no image")
    if facts["scrollWidth"] > facts["width"]:
        failures.append(
            f"the page scrolls sideways: body {facts['scrollWidth']} px wide in a {facts['width']} px window"
            + (f" (past the edge: {'; '.join(facts['sticking'])})" if facts["sticking"] else "")
        )
    if facts["firstSection"] != "headline" or facts["firstBlock"] != "headline":
        failures.append(
            f"the headline is not first: the first section is #{facts['firstSection']}, the first block after "
            f"the title is {facts['firstBlock']}"
        )
    elif facts["headlineTop"] is None or facts["headlineTop"] > facts["height"] / 2:
        failures.append(f"the headline starts at {facts['headlineTop']} px, below the first half screen")
    remote = [url for url in requests if not url.startswith(("file:", "data:", "about:"))]
    if remote:
        failures.append(f"the page requested {len(remote)} non-local URL(s): {', '.join(remote[:5])}")
    if facts["scripts"]:
        failures.append(f"the page carries {facts['scripts']} script(s); it must work without JavaScript")
    return failures


def check_page(
    page: str | Path,
    widths: tuple[int, ...] = WIDTHS,
    screenshots: str | Path | None = None,
    height: int = HEIGHT,
    browser: str | None = None,
    full_page: bool = False,
) -> list[PageCheck]:
    """Open `page` at each width and check it; screenshots of the first `height` px (`full_page`: of the whole
    page) go to `screenshots` (`report-<width>.png`) when given."""
    page = Path(page).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"no report at {page}")
    results = []
    with DevTools(browser) as tools:
        tools.send("Page.enable", session=True)
        tools.send("Network.enable", session=True)
        for width in widths:
            tools.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=True,
            )
            tools.events.clear()
            tools.send("Page.navigate", {"url": page.as_uri()}, session=True)
            tools.wait_for("Page.loadEventFired")
            requests = [
                event["params"]["request"]["url"]
                for event in tools.events
                if event.get("method") == "Network.requestWillBeSent"
            ]
            facts = tools.evaluate(PAGE_FACTS)
            check = PageCheck(width, facts, requests, judge(width, facts, requests))
            if screenshots is not None:
                folder = Path(screenshots)
                folder.mkdir(parents=True, exist_ok=True)
                options = {"format": "png"}
                if full_page:
                    clip = {"x": 0, "y": 0, "width": width, "height": facts["pageHeight"], "scale": 1}
                    options.update(captureBeyondViewport=True, clip=clip)
                shot = tools.send("Page.captureScreenshot", options, session=True)
                check.screenshot = folder / f"report-{width}.png"
                check.screenshot.write_bytes(base64.b64decode(shot["data"]))
            results.append(check)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m t2iscale.report.browser",
        description="Open a report in headless Chromium at each width and check images, overflow and the headline.",
    )
    parser.add_argument("page", help="the report's HTML file")
    parser.add_argument(
        "--width", type=int, action="append", help="window width in px (default: 800 and 1400)"
    )
    parser.add_argument("--height", type=int, default=HEIGHT, help="window height in px")
    parser.add_argument("--screenshots", metavar="DIR", help="save a screenshot per width here")
    parser.add_argument(
        "--full-page", action="store_true", help="screenshots of the whole page, not the first screen"
    )
    args = parser.parse_args(argv)
    try:
        results = check_page(
            args.page, tuple(args.width or WIDTHS), args.screenshots, args.height, full_page=args.full_page
        )
    except BrowserMissing as error:
        print(f"browser check: {error}", file=sys.stderr)
        return 2
    except (BrowserError, FileNotFoundError) as error:
        print(f"browser check: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"browser check, {result.summary()}")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
