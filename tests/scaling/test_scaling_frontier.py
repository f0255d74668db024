import numpy as np

from t2iscale.scaling.frontier import pareto_frontier, pareto_mask
from t2iscale.scaling.points import ScalingPoint, scaling_points


def test_hand_example():
    # (x, S): less x and more S is better.
    points = {
        "a": (0.5, 0.10),  # least compute: on the frontier
        "b": (1.0, 0.50),  # frontier
        "c": (2.0, 0.40),  # dominated by b (less x, more S)
        "d": (2.0, 0.60),  # frontier
        "e": (3.0, 0.60),  # dominated by d (equal S, less x)
        "f": (3.0, 0.55),  # dominated by d and e
        "g": (4.0, 0.70),  # frontier
        "h": (4.0, 0.70),  # an exact duplicate of g: neither dominates the other
        "i": (5.0, 0.65),  # dominated by g
        "j": (6.0, 0.90),  # frontier
    }
    scaling = [ScalingPoint(name, name, 0, x, s) for name, (x, s) in points.items()]
    assert [p.run_id for p in pareto_frontier(scaling)] == ["a", "b", "d", "g", "h", "j"]


def _dominated_by_definition(x, s, i):
    others = np.arange(len(x)) != i
    better_or_equal = (x <= x[i]) & (s >= s[i])
    strictly = (x < x[i]) | (s > s[i])
    return bool(np.any(others & better_or_equal & strictly))


def test_mask_matches_the_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.integers(0, 6, size=25).astype(float)  # many ties in x and in S
        s = rng.integers(0, 6, size=25).astype(float)
        expected = [not _dominated_by_definition(x, s, i) for i in range(len(x))]
        assert pareto_mask(x, s).tolist() == expected


def test_frontier_of_a_study_rises_and_is_sorted(study_curves):
    candidates = scaling_points(study_curves, "compute")
    frontier = pareto_frontier(candidates)
    assert 3 <= len(frontier) < len(candidates)
    xs = [p.x for p in frontier]
    values = [p.value for p in frontier]
    assert xs == sorted(xs)
    assert all(b > a for a, b in zip(values, values[1:]))  # strictly better for more compute
    best = max(candidates, key=lambda p: p.value)
    assert best in frontier


def test_empty_input():
    assert pareto_frontier([]) == []
    assert pareto_mask(np.array([]), np.array([])).shape == (0,)
