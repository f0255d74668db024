"""Progress bars, one rule for all of them: on stderr, and only where someone watches.

A bar is drawn when its caller wants one (`enabled`, usually the command's `not --quiet`), when stderr is a terminal
(a log file or a pipe gets no bar), and when progress is not turned off for the whole process: the environment
variable `T2ISCALE_PROGRESS=0` (what `t2iscale --no-progress` sets, and what runner processes inherit) or tqdm's own
`TQDM_DISABLE`. Otherwise the bar object exists but draws nothing, so callers update it unconditionally.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

ENV = "T2ISCALE_PROGRESS"


def progress_enabled(enabled: bool = True) -> bool:
    """Whether a bar would draw: the caller wants it, stderr is a terminal, nobody turned progress off."""
    if not enabled or os.environ.get(ENV, "1") == "0" or os.environ.get("TQDM_DISABLE"):
        return False
    return sys.stderr.isatty()


def progress_bar(iterable=None, *, enabled: bool = True, **options) -> tqdm:
    """`tqdm(iterable, **options)` on stderr, drawn only when `progress_enabled(enabled)`."""
    return tqdm(iterable, file=sys.stderr, disable=not progress_enabled(enabled), **options)


def disable_progress() -> None:
    """Turn every bar off, in this process and the ones it starts (`t2iscale --no-progress`)."""
    os.environ[ENV] = "0"


def quiet_library_bars() -> None:
    """Where t2iscale draws no bar, the libraries it loads draw none either (transformers' "Loading weights",
    the Hugging Face hub's): read at their import, so called before a command imports them."""
    if not progress_enabled():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
