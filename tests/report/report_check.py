"""`make report-check`: build the report of a tiny real study and check it in headless Chromium.

    python tests/report/report_check.py [--out out/report-check] [--report PAGE.html]

Trains the report tests' tiny study (two UNets, six steps each, about a minute on 2 cores; a second call reuses
it), builds its report, opens it at 800 and 1400 px and checks that every image loads, that the page body does
not scroll sideways, that the headline comes first and that nothing but local files is requested
(`t2iscale.report.browser`). Screenshots of the first screen at each width go to OUT/screenshots. `--report`
checks an existing page instead (e.g. demo-study/report/report.html).

Exit status: 0 when every check passes, 1 when one fails, 2 when no Chromium is installed (the message names the
install command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from t2iscale.report.browser import WIDTHS, BrowserError, BrowserMissing, check_page, find_browser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/report-check", help="study, report and screenshots go here")
    parser.add_argument("--report", help="check this report instead of building one")
    args = parser.parse_args(argv)
    try:
        browser = find_browser()
    except BrowserMissing as error:
        print(f"report-check: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.report:
        page = Path(args.report)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report_study import make_study

        from t2iscale.report.build import build_report

        study = out / "study"
        print(f"report-check: training the tiny study in {study} (finished runs are kept)", flush=True)
        make_study(study)
        page = build_report(study, progress=False, command="python tests/report/report_check.py")
        print(f"report-check: report written to {page}")
    try:
        results = check_page(page, WIDTHS, out / "screenshots", browser=browser)
    except (BrowserError, FileNotFoundError) as error:
        print(f"report-check: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"report-check: {result.summary()}")
    failed = [result.width for result in results if not result.ok]
    if failed:
        print(f"report-check: FAILED at {', '.join(f'{w} px' for w in failed)}", file=sys.stderr)
        return 1
    print(f"report-check: OK in {Path(browser).name} at {', '.join(f'{w} px' for w in WIDTHS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
