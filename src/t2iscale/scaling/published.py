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


@dataclass(frozen=True)
class PaperFinding:
    """A direction the paper states for one compared factor: `winners` beat `losers` on alignment (TIFA)."""

    id: str  # F1..F4, as DESIGN.md lists them
    factor: str  # the `t2iscale compare --by` factor it is about
    winners: tuple[str, ...]  # arm names; for the data factor, "larger" (more data beats less)
    losers: tuple[str, ...]
    matched: str  # where the paper reads it: "compute", "params" or "step"
    statement: str
    source: str  # section or table of Li et al., CVPR 2024

    def expects(self, arm_a: str, arm_b: str) -> int | None:
        """+1 when the paper expects A > B, −1 when it expects B > A, None when it says nothing of the pair."""
        if self.winners == ("larger",):
            try:
                return 1 if float(arm_a) > float(arm_b) else -1
            except ValueError:
                return None
        if arm_a in self.winners and arm_b in self.losers:
            return 1
        if arm_b in self.winners and arm_a in self.losers:
            return -1
        return None


PAPER_FINDINGS: dict[str, PaperFinding] = {
    finding.factor: finding
    for finding in (
        PaperFinding(
            "F1",
            "layout",
            ("sdxl",),
            ("sd2",),
            "compute",
            "SDXL's UNet layout beats SD2's at equal training compute",
            "Sec. 4.1",
        ),
        PaperFinding(
            "F2",
            "scaling",
            ("TD",),
            ("C",),
            "params",
            "scaling transformer depth beats scaling channels at equal parameters",
            "Sec. 4.2",
        ),
        PaperFinding(
            "F3",
            "caption_policy",
            ("mix", "syn1", "syn5"),
            ("alt",),
            "step",
            "synthetic or mixed captions beat alt-text (TIFA 0.835 mix, 0.833 synthetic, 0.810 alt)",
            "Sec. 5.3, Table 4",
        ),
        PaperFinding(
            "F4",
            "dataset_size",
            ("larger",),
            (),
            "step",
            "alignment rises with training data, S = a·D^b with D in image-noun pairs",
            "Sec. 5-6",
        ),
    )
}
