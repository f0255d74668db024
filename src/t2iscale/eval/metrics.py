"""What each evaluation metric is: direction, range, whether it scores single images. Torch-free.

The statistics use this table: an interval or a prediction is clipped to the metric's range (a TIFA above 1
means nothing), a scaling law's frontier needs "higher is better", and only per-image metrics carry per-sample
scores (set statistics such as FID carry their N instead). The chance level of TIFA is a reference line, not a
bound: a model can score below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    title: str  # how reports and the CLI print it
    higher_is_better: bool
    lo: float  # the metric's range: every value, interval and prediction lies in [lo, hi]
    hi: float
    per_sample: bool  # one score per image (an average over images), so intervals over prompts exist

    @property
    def value_range(self) -> tuple[float, float]:
        return self.lo, self.hi

    def range_text(self) -> str:
        return f"[{self.lo:g}, {'∞' if math.isinf(self.hi) else f'{self.hi:g}'}]"


METRIC_INFO: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        # TIFA (Hu et al. 2023): fraction of a prompt's VQA questions answered right, mean over prompts.
        MetricInfo("tifa", "TIFA", True, 0.0, 1.0, True),
        # CLIP score: 100·cos(image, caption) per image, its mean over images clamped at 0 (torchmetrics 1.9).
        MetricInfo("clip", "CLIP score", True, 0.0, 100.0, True),
        MetricInfo("fid", "FID", False, 0.0, math.inf, False),
        MetricInfo("oracle_fid", "oracle FID", False, 0.0, math.inf, False),
    )
}


def metric_info(name: str) -> MetricInfo:
    """The table's entry; a metric it does not know (from a points file) is taken as higher-is-better and
    unbounded, so nothing is clipped that should not be."""
    return METRIC_INFO.get(name) or MetricInfo(name, name, True, -math.inf, math.inf, True)
