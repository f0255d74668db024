"""Paired comparison of two arms at a matched step, training compute or parameter count. numpy/scipy only.

The paper's findings are comparisons read off alignment curves (SDXL's layout against SD2's at equal compute,
Sec. 4.1; transformer depth against channels per parameter, Sec. 4.2; captions, Table 4; data, Sec. 5). Here a
comparison is:

1. a common X: the largest X both arms reach (their final step; the smaller arm's final training FLOPs; the
   smallest ladder's largest N), never beyond either arm's range;
2. each arm read at that X (`Arm.at`: its own evaluation, or an interpolation in log X sample by sample);
3. the paired difference A − B per (prompt, eval seed), averaged per prompt, and its interval over prompts and
   training seeds (`t2iscale.eval.intervals.combine`), the same t giving p;
4. a permutation p where an exact small-n test exists: with replicated single-configuration arms, over the
   assignments of runs to arms (with 3 seeds per arm its smallest attainable p is 0.1, and it is printed so);
   with one run per arm, over sign flips of the per-prompt differences;
5. a verdict from the interval: "A > B", "B > A" or "not separable at this budget".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.intervals import DEFAULT_LEVEL, Estimate, combine, p_value, per_prompt_scores
from t2iscale.scaling.arms import MATCH_AXES, Arm, NotComparable, Reading, describe_readings

NOT_SEPARABLE = "not separable at this budget"
# Exact enumeration up to this many permutations; beyond, a seeded Monte Carlo with as many draws.
MAX_EXACT_PERMUTATIONS = 200_000
MONTE_CARLO_DRAWS = 20_000
AXIS_SYMBOL = {"step": "step", "compute": "C", "params": "N"}


@dataclass(frozen=True)
class Comparison:
    """A − B at one matched X, or why the two arms cannot be read there."""

    arm_a: str
    arm_b: str
    axis: str  # "step", "compute" or "params"
    at: float | None  # the matched X
    a: Estimate | None
    b: Estimate | None
    effect: Estimate | None  # A − B
    p_value: float | None  # two-sided, from the interval's t
    p_permutation: float | None
    permutation_method: str | None  # how p_permutation was computed, or why there is none
    p_permutation_floor: float | None  # the smallest p the permutation test can give with these runs
    verdict: str | None
    read_as: tuple[str, str] | None  # how each arm was read at X
    reason: str | None = None  # set when the arms are not comparable on this axis

    @property
    def comparable(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict:
        return {
            "arm_a": self.arm_a,
            "arm_b": self.arm_b,
            "matched": self.axis,
            "at": self.at,
            "comparable": self.comparable,
            "reason": self.reason,
            "a": None if self.a is None else self.a.to_dict(),
            "b": None if self.b is None else self.b.to_dict(),
            "effect": None if self.effect is None else self.effect.to_dict(),
            "p_value": self.p_value,
            "p_permutation": self.p_permutation,
            "permutation_method": self.permutation_method,
            "p_permutation_floor": self.p_permutation_floor,
            "verdict": self.verdict,
            "read_as": None if self.read_as is None else list(self.read_as),
        }


def verdict(effect: Estimate, arm_a: str, arm_b: str) -> str:
    if effect.lo > 0:
        return f"{arm_a} > {arm_b}"
    if effect.hi < 0:
        return f"{arm_b} > {arm_a}"
    return NOT_SEPARABLE


def matched_x(a: Arm, b: Arm, axis: str) -> float:
    """The largest X inside both arms' ranges; NotComparable when the ranges do not meet."""
    low_a, high_a = a.span(axis)
    low_b, high_b = b.span(axis)
    low, high = max(low_a, low_b), min(high_a, high_b)
    if low > high * (1 + 1e-9):
        raise NotComparable(
            f"no common {axis}: {a.name} spans {low_a:.4g}..{high_a:.4g}, {b.name} spans {low_b:.4g}..{high_b:.4g}"
            " (no extrapolation)"
        )
    return high


def _same_readings(a: list[Reading], b: list[Reading]) -> bool:
    def key(readings):
        return sorted((r.configuration.key, r.step, round(r.weight, 12)) for r in readings)

    return key(a) == key(b)


def _group_tables(readings: list[tuple[float, Reading]], tables: dict) -> dict[str, np.ndarray]:
    """Σ sign·weight·(per-prompt scores) per configuration: one (k, P) table per configuration key."""
    groups: dict[str, np.ndarray] = {}
    for sign, reading in readings:
        table = sign * reading.weight * tables[(reading.configuration.key, reading.step)]
        key = reading.configuration.key
        groups[key] = groups[key] + table if key in groups else table
    return groups


def _permutation_p(
    a_readings: list[Reading],
    b_readings: list[Reading],
    groups_a: dict,
    groups_b: dict,
    difference: np.ndarray,
) -> tuple[float | None, str, float | None]:
    """(p, how, the smallest p the test can give): an exact (or seeded Monte Carlo) permutation p where the
    design has one; (None, why not, None) otherwise."""
    configs_a = {r.configuration.key for r in a_readings}
    configs_b = {r.configuration.key for r in b_readings}
    if len(configs_a) != 1 or len(configs_b) != 1 or configs_a & configs_b:
        return (
            None,
            "none: an arm spans several backbones (or shares runs), so runs are not exchangeable",
            None,
        )
    (table_a,) = groups_a.values()  # (k_a, P)
    (table_b,) = groups_b.values()
    k_a, k_b = table_a.shape[0], table_b.shape[0]
    if k_a == 1 and k_b == 1:
        return _sign_flip_p(difference)
    run_values = np.concatenate([table_a.mean(axis=1), table_b.mean(axis=1)])  # (k_a + k_b,)
    return _label_permutation_p(run_values, k_a)


def _label_permutation_p(values: np.ndarray, k_a: int) -> tuple[float, str, float]:
    """Two-sided p of mean(first k_a) − mean(rest) over every assignment of the runs to the two arms."""
    n = len(values)
    observed = abs(values[:k_a].mean() - values[k_a:].mean()) * (1 - 1e-12)
    n_perm = math.comb(n, k_a)
    if n_perm <= MAX_EXACT_PERMUTATIONS:
        members = np.zeros((n_perm, n))  # (assignments, runs): 1 where the run goes to arm A
        for row, chosen in enumerate(itertools.combinations(range(n), k_a)):
            members[row, list(chosen)] = 1.0
        exact = True
    else:
        rng = np.random.default_rng(0)
        members = np.zeros((MONTE_CARLO_DRAWS, n))
        for row in range(MONTE_CARLO_DRAWS):
            members[row, rng.choice(n, size=k_a, replace=False)] = 1.0
        exact = False
    in_a = members @ values
    statistics = np.abs(in_a / k_a - (values.sum() - in_a) / (n - k_a))
    count = int((statistics >= observed).sum())
    if exact:
        # with equal arms an assignment and its mirror give the same |difference|
        smallest = min(1.0, (2 if 2 * k_a == n else 1) / n_perm)
        return (
            count / n_perm,
            f"exact, over the {n_perm} assignments of {n} runs to the two arms (smallest attainable p "
            f"{smallest:.3g})",
            smallest,
        )
    return (
        (count + 1) / (MONTE_CARLO_DRAWS + 1),
        f"Monte Carlo, {MONTE_CARLO_DRAWS} random assignments of {n} runs to the two arms (seed 0)",
        1 / (MONTE_CARLO_DRAWS + 1),
    )


def _sign_flip_p(difference: np.ndarray) -> tuple[float, str, float]:
    """Two-sided p of mean(difference) = 0 over sign flips of the per-prompt differences (P,)."""
    n = difference.size
    observed = abs(difference.mean()) - 1e-12 * max(1.0, abs(difference.mean()))
    if 2**n <= MAX_EXACT_PERMUTATIONS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # (2^n, n)
        count = int((np.abs(signs @ difference) / n >= observed).sum())
        method = f"exact, over the {len(signs)} sign flips of {n} per-prompt differences"
        return count / len(signs), method, 2 / len(signs)
    rng = np.random.default_rng(0)
    signs = rng.choice((1.0, -1.0), size=(MONTE_CARLO_DRAWS, n))
    count = int((np.abs(signs @ difference) / n >= observed).sum())
    return (
        (count + 1) / (MONTE_CARLO_DRAWS + 1),
        f"Monte Carlo, {MONTE_CARLO_DRAWS} random sign flips of {n} per-prompt differences (seed 0)",
        1 / (MONTE_CARLO_DRAWS + 1),
    )


def compare_arms(
    a: Arm,
    b: Arm,
    axis: str,
    level: float = DEFAULT_LEVEL,
    value_range: tuple[float, float] = (-math.inf, math.inf),
) -> Comparison:
    """A − B at the largest X of `axis` both arms reach ("step", "compute" or "params"), paired by prompt and
    eval seed. Arms that cannot be read at a common X give a Comparison with `reason` set; a run without
    per-sample scores, or arms that share no prompt, is a UserError."""
    if axis not in MATCH_AXES:
        raise UserError(f"unknown axis {axis!r}; valid axes: {', '.join(MATCH_AXES)}")
    try:
        x = matched_x(a, b, axis)
        readings_a, readings_b = a.at(axis, x), b.at(axis, x)
        if _same_readings(readings_a, readings_b):
            # two ladders through one reference backbone that meet only there
            shared = describe_readings(readings_a, AXIS_SYMBOL[axis])
            raise NotComparable(f"the arms meet only where they share runs ({shared}): nothing to compare")
    except NotComparable as error:
        return Comparison(
            a.name, b.name, axis, None, None, None, None, None, None, None, None, None, None, str(error)
        )

    evaluations = {}  # (configuration key, step) -> per-run per-sample scores
    for reading in readings_a + readings_b:
        evaluations[(reading.configuration.key, reading.step)] = (reading.configuration, reading.step)
    flat, owners = [], []
    for key, (configuration, step) in evaluations.items():
        for samples in configuration.samples(step):
            flat.append(samples)
            owners.append(key)
    try:
        _, n_samples, scores = per_prompt_scores(flat)  # (runs, P)
    except UserError:
        raise UserError(
            f"arms {a.name!r} and {b.name!r} share no (prompt, eval seed) pair: nothing to pair"
        ) from None
    tables = {key: scores[[i for i, owner in enumerate(owners) if owner == key]] for key in evaluations}

    groups_a = _group_tables([(1.0, r) for r in readings_a], tables)
    groups_b = _group_tables([(1.0, r) for r in readings_b], tables)
    difference_groups = _group_tables(
        [(1.0, r) for r in readings_a] + [(-1.0, r) for r in readings_b], tables
    )
    estimate_a = combine(list(groups_a.values()), n_samples, level, value_range)
    estimate_b = combine(list(groups_b.values()), n_samples, level, value_range)
    span = value_range[1] - value_range[0]
    effect = combine(list(difference_groups.values()), n_samples, level, (-span, span))
    per_prompt_difference = sum(group.mean(axis=0) for group in difference_groups.values())
    p_perm, method, floor = _permutation_p(readings_a, readings_b, groups_a, groups_b, per_prompt_difference)
    return Comparison(
        arm_a=a.name,
        arm_b=b.name,
        axis=axis,
        at=x,
        a=estimate_a,
        b=estimate_b,
        effect=effect,
        p_value=p_value(effect),
        p_permutation=p_perm,
        permutation_method=method,
        p_permutation_floor=floor,
        verdict=verdict(effect, a.name, b.name),
        read_as=(
            describe_readings(readings_a, AXIS_SYMBOL[axis]),
            describe_readings(readings_b, AXIS_SYMBOL[axis]),
        ),
    )
