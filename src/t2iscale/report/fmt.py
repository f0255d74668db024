"""Numbers as the report prints them; a missing value is an em dash."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from t2iscale.eval.intervals import Estimate

MISSING = "—"


def count(value: float | int | None) -> str:
    """1234567 -> '1.23M' (parameters, image-noun pairs)."""
    if value is None:
        return MISSING
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:g}"


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}g}"


METRIC_DIGITS = 3  # as `Estimate.text` prints a value with its interval, so a column reads alike


def metric_value(value: float | None) -> str:
    return MISSING if value is None else f"{value:.{METRIC_DIGITS}f}"


def estimate(value: Estimate) -> str:
    """'0.654 [0.612, 0.695]' (the level is stated once beside the table)."""
    return value.text(METRIC_DIGITS)


def duration(seconds: float | None) -> str:
    """Elapsed wall-clock time: '42.0 s', '12 min 05 s', '3 h 07 min'."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def interval(bounds: tuple[float, float], level: float) -> str:
    """A law parameter's interval: '95% CI [0.0123, 0.0456]'."""
    return f"{level:.0%} CI [{bounds[0]:.4g}, {bounds[1]:.4g}]"


def seeds(n_seeds: Sequence[int]) -> str:
    """Training seeds behind each point: '1' when every point has one, else the counts with how often:
    '3 (×4), 2 (×1)'."""
    counts = Counter(n_seeds)
    if len(counts) == 1:
        return str(next(iter(counts)))
    return ", ".join(f"{n} (×{times})" for n, times in sorted(counts.items(), reverse=True))
