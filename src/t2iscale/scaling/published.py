"""The scaling laws Li et al. (CVPR 2024, Sec. 6) publish, for comparison with a study's own fits.

    S = 0.47·C^0.02   (alignment S = TIFA vs training compute C, on the Pareto frontier)
    S = 0.64·D^0.03   (alignment vs data D, counted in image-noun pairs)

Units of X (not confirmed from the paper's text, which we could not retrieve; inferred): TIFA lies in
[0, 1], and with C in plain FLOPs the compute law gives S > 1 over the paper's whole compute range
(0.47·(1e20)^0.02 ≈ 1.18), and with D in plain pairs the data law does too (0.64·(1e9)^0.03 ≈ 1.19). Scaled
units give the TIFA range the paper reports (about 0.75-0.83): C in GFLOPs (0.47·(1e11)^0.02 ≈ 0.78) and D in
millions of image-noun pairs (0.64·(1e3)^0.03 ≈ 0.79). `x_scale` holds that assumption: X in the law's unit
= X in base units (FLOPs, pairs) / x_scale. Check it against the paper before relying on absolute numbers;
the exponents do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PublishedLaw:
    axis: str  # an `AXES` key
    a: float
    b: float
    x_unit: str  # the unit X must be in for (a, b) to apply (inferred, see the module note)
    x_scale: float  # base units per law unit: FLOPs per GFLOP, pairs per million pairs

    def __call__(self, x_in_law_units):
        """S = a·X^b with X already in `x_unit`."""
        return self.a * np.power(np.asarray(x_in_law_units, dtype=float), self.b)

    def at_base_units(self, x):
        """S at X given in FLOPs / image-noun pairs."""
        return self(np.asarray(x, dtype=float) / self.x_scale)


PUBLISHED_LAWS: dict[str, PublishedLaw] = {
    "compute": PublishedLaw(axis="compute", a=0.47, b=0.02, x_unit="GFLOPs (inferred)", x_scale=1e9),
    "data": PublishedLaw(
        axis="data", a=0.64, b=0.03, x_unit="million image-noun pairs (inferred)", x_scale=1e6
    ),
}
