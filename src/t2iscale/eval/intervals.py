"""Intervals for metric values and their differences, over evaluation prompts and training seeds. numpy/scipy.

Every per-image metric value (TIFA, a category's TIFA, CLIP score) is a mean over an evaluation's samples, one per
(prompt, eval seed) pair. Its uncertainty has two sources (DESIGN.md, "Findings and statistics"):

- the prompts: another prompt set of the same kind gives another value. The prompt is the unit: a prompt's eval
  seeds share its difficulty, so its samples are averaged first and the P prompt means are what varies;
- the training seed: another run of the same configuration gives another model. Runs that differ only in the
  seed are *replicates*; a configuration's value is their mean.

The model, for configuration g with runs s and prompts p: score = μ_g + a_gs + b_gp + e_gsp. A value, or a
paired difference of two arms, is a linear combination Σ_g mean_s Y_g[s, p] averaged over the prompts, where
Y_g (k_g × P) holds each run's per-prompt scores, already weighted (+1 / −1 for the two arms of a difference,
interpolation weights at a matched compute). Its variance is the sum of a prompt part and a seed part per
configuration (variance components of the crossed seeds × prompts design, ANOVA estimators):

    V = var_p(d_p) / P                               prompts and eval noise, df P − 1; d_p = Σ_g mean_s Y_g[s, p]
      + Σ_g max(0, var_s(m_gs) − MS_res,g / P) / k_g  training seeds, for k_g ≥ 2; m_gs = mean_p Y_g[s, p]

where MS_res,g, the residual mean square of Y_g after seed and prompt means, estimates the eval noise that
var_s(m_gs) also holds and var_p(d_p) already counts. The interval is value ± t_ν · √V with ν from
Welch–Satterthwaite, the seed parts' df from the same formula applied to their difference of mean squares.
Pairing is in d_p: both arms are scored on the same prompts and eval seeds, so a prompt's difficulty cancels
in the difference before anything varies.

Measured by simulation (TIFA-like scores: 3 questions per prompt, 36 prompts × 8 eval seeds; null difference,
400-600 simulated comparisons; tests/scaling/test_scaling_compare.py keeps one such check): with 2, 3 and 5
training seeds per arm, seed effects from 0 to 0.08 and prompt×arm interactions from 0 to 0.1, the 95%
interval covered 0 in 0.945-0.98 of them. The alternatives measured alongside:
- a hierarchical percentile bootstrap (seeds, then prompts): 0.87-0.90 at 3 seeds, since a resample of 3 seeds
  has 10 distinct values and 2/3 of the seed variance;
- var_s(m_gs) / k_g without subtracting the eval noise: 0.94-0.99, but the doubled noise cut power (a planted
  +0.05 detected in 59% of studies at 3 seeds against 62% here);
- the seed parts with k_g − 1 df instead of Satterthwaite's: down to 0.915 at 2 seeds.
With one training seed the interval covers prompts and eval seeds only, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from t2iscale.errors import UserError
from t2iscale.eval.samples import SampleScores

DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A value with its interval, its n and how the interval was made."""

    value: float
    lo: float
    hi: float
    se: float
    df: float  # degrees of freedom of the t quantile (inf when the variance is exactly 0)
    level: float
    n_prompts: int
    n_samples: int  # (prompt, eval seed) pairs per evaluation
    n_seeds: tuple[int, ...]  # training seeds of each configuration that enters the value
    clipped: bool = False  # the interval was cut to the metric's range

    @property
    def seeds_included(self) -> bool:
        """True when the interval covers training-seed variance (every configuration has 2+ seeds)."""
        return min(self.n_seeds) >= 2

    @property
    def covers(self) -> str:
        """What the interval's width accounts for."""
        single = sum(k == 1 for k in self.n_seeds)
        if single == 0:
            return "training seeds and prompts"
        if single == len(self.n_seeds):
            return "prompts and eval seeds only, within one training seed"
        return (
            f"prompts, and training seeds where a configuration has 2+ (the seed variance of {single} "
            "configuration(s) with one seed is not covered)"
        )

    @property
    def method(self) -> str:
        df = "" if math.isinf(self.df) else f", df {self.df:.3g} (Welch–Satterthwaite)"
        clipped = "; clipped to the metric's range" if self.clipped else ""
        return f"t interval over {self.covers}{df}{clipped}"

    def n_text(self) -> str:
        seeds = sorted(set(self.n_seeds))
        seed_text = "/".join(map(str, seeds))
        return (
            f"n = {self.n_prompts} prompts, {self.n_samples} images per evaluation, "
            f"{seed_text} training seed{'s' if seeds != [1] else ''}"
        )

    def text(self, digits: int = 3) -> str:
        """`0.654 [0.612, 0.695]` (the level is the caller's to state once)."""
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "lo": self.lo,
            "hi": self.hi,
            "level": self.level,
            "se": self.se,
            "df": None if math.isinf(self.df) else self.df,
            "n_prompts": self.n_prompts,
            "n_samples": self.n_samples,
            "n_seeds": list(self.n_seeds),
            "method": self.method,
        }


def per_prompt_scores(evaluations: Sequence[SampleScores]) -> tuple[tuple[str, ...], int, np.ndarray]:
    """Align evaluations on the (prompt, eval seed) pairs that all of them scored.

    Returns the prompt ids (P,), the number of shared pairs, and an array (len(evaluations), P): each
    evaluation's mean over a prompt's shared eval seeds. Raises UserError when they share no pair.
    """
    if not evaluations:
        raise UserError("no evaluations to align")
    common = set(evaluations[0].keys)
    for evaluation in evaluations[1:]:
        common &= set(evaluation.keys)
    if not common:
        raise UserError(
            "the evaluations share no (prompt, eval seed) pair: they were scored on different prompts"
        )
    prompts = tuple(dict.fromkeys(p for p, s in evaluations[0].keys if (p, s) in common))
    index = {prompt: i for i, prompt in enumerate(prompts)}
    table = np.zeros((len(evaluations), len(prompts)))
    counts = np.zeros(len(prompts))
    for prompt, _ in common:
        counts[index[prompt]] += 1
    for row, evaluation in enumerate(evaluations):
        for prompt, seed, value in zip(evaluation.prompt_ids, evaluation.seeds, evaluation.values):
            if (prompt, seed) in common:
                table[row, index[prompt]] += value
    return prompts, len(common), table / counts


def combine(
    groups: Sequence[np.ndarray],
    n_samples: int,
    level: float = DEFAULT_LEVEL,
    value_range: tuple[float, float] = (-math.inf, math.inf),
) -> Estimate:
    """Σ_g mean over runs and prompts of `groups[g]` (k_g, P), with its t interval (see the module note).

    Each group holds one configuration's replicate runs, per-prompt scores already multiplied by the group's
    weight. The interval is clipped to `value_range`. Raises UserError with fewer than 2 prompts.
    """
    if not 0 < level < 1:
        raise UserError(f"the interval level must lie strictly between 0 and 1, got {level}")
    if not groups:
        raise UserError("nothing to estimate: no runs")
    n_prompts = groups[0].shape[1]
    if any(group.ndim != 2 or group.shape[1] != n_prompts or group.shape[0] < 1 for group in groups):
        raise ValueError(f"groups must be (k, P) arrays with one P, got {[g.shape for g in groups]}")
    if n_prompts < 2:
        raise UserError(f"an interval over prompts needs at least 2 prompts, got {n_prompts}")
    per_prompt = sum(group.mean(axis=0) for group in groups)  # (P,) d_p
    value = float(per_prompt.mean())
    parts = [(float(per_prompt.var(ddof=1)) / n_prompts, n_prompts - 1.0)]  # (variance, df)
    for group in groups:
        part = _seed_part(group)
        if part is not None:
            parts.append(part)
    variance = sum(v for v, _ in parts)
    if variance > 0:
        df = variance**2 / sum(v * v / dof for v, dof in parts if v > 0)
        half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(variance)
    else:
        df, half = math.inf, 0.0
    low, high = value_range
    lo, hi = value - half, value + half
    # Cut to the range, keeping lo <= value <= hi: a mean of per-image scores may leave the range when the
    # metric clamps its mean (CLIP score's is clamped at 0), and then the value is clamped like the metric's.
    clipped_lo, clipped_hi = min(max(lo, low), high), max(min(hi, high), low)
    return Estimate(
        value=min(max(value, low), high),
        lo=clipped_lo,
        hi=clipped_hi,
        se=math.sqrt(variance),
        df=df,
        level=level,
        n_prompts=n_prompts,
        n_samples=n_samples,
        n_seeds=tuple(group.shape[0] for group in groups),
        clipped=(clipped_lo, clipped_hi) != (lo, hi),
    )


def _seed_part(group: np.ndarray) -> tuple[float, float] | None:
    """(variance, df) of the training-seed component of one configuration's (k, P) table; None for k = 1 or
    when the seed spread is no larger than the eval noise explains."""
    k, n_prompts = group.shape
    if k < 2:
        return None
    run_means = group.mean(axis=1)  # (k,) m_s
    residual = group - run_means[:, None] - group.mean(axis=0)[None, :] + group.mean()
    noise = float((residual**2).sum()) / ((k - 1) * (n_prompts - 1)) / n_prompts  # MS_res / P
    spread = float(run_means.var(ddof=1))
    variance = (spread - noise) / k
    if variance <= 0:
        return None
    # Satterthwaite's df for a difference of two mean squares (df k − 1 and (k − 1)(P − 1))
    df = variance**2 / ((spread / k) ** 2 / (k - 1) + (noise / k) ** 2 / ((k - 1) * (n_prompts - 1)))
    return variance, df


def p_value(estimate: Estimate) -> float:
    """Two-sided p of `value = 0` from the same t as the interval (so p < 1 − level iff the interval excludes 0)."""
    if estimate.se == 0:
        return 1.0 if estimate.value == 0 else 0.0
    return float(2 * stats.t.sf(abs(estimate.value) / estimate.se, estimate.df))


def replicate_estimate(
    evaluations: Sequence[SampleScores],
    level: float = DEFAULT_LEVEL,
    value_range: tuple[float, float] = (-math.inf, math.inf),
) -> Estimate:
    """The mean of one configuration's replicate runs (one evaluation each, e.g. the same step), with its
    interval; one evaluation gives the interval over prompts within its training seed."""
    _, n_samples, table = per_prompt_scores(evaluations)
    return combine([table], n_samples, level, value_range)
