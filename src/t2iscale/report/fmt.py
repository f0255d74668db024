"""Numbers as the report prints them; a missing value is an em dash."""

from __future__ import annotations

import math

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


def metric_value(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4f}"


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


def interval(bounds: tuple[float, float] | None, level: float) -> str:
    if bounds is None:
        return "no bootstrap interval"
    return f"{level:.0%} CI [{bounds[0]:.4g}, {bounds[1]:.4g}]"
