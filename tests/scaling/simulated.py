"""Simulated studies with per-sample scores, for the interval and comparison tests.

A TIFA-like world: each prompt has 3 yes/no-like questions; an image answers each right with probability
p = base + prompt difficulty + arm effect + training-seed effect + prompt×arm interaction, so a prompt's image
scores 0, 1/3, 2/3 or 1. Prompt difficulties are shared by every run (the arms are scored on the same prompts);
the interaction and the seed effect make arms and runs differ beyond the planted effect.
"""

from __future__ import annotations

import numpy as np

from t2iscale.eval.samples import SampleScores
from t2iscale.scaling.arms import Arm, Configuration
from t2iscale.scaling.points import Curve

QUESTIONS = 3


def prompt_difficulty(rng, prompts: int, spread: float = 0.15) -> np.ndarray:
    return rng.normal(0.0, spread, prompts)


def run_curve(
    run_id: str,
    rng,
    difficulty: np.ndarray,
    probability: list[float],
    seed_effect: float,
    interaction: np.ndarray,
    eval_seeds: int = 8,
    steps: tuple[int, ...] = (900, 1800),
    flops_per_step: float = 1e9,
    params: int = 100_000,
) -> Curve:
    """One run: at each step its samples (prompt i, eval seed e) with mean probability `probability[step]`."""
    prompts = [f"p{i:03d}" for i in range(difficulty.size)]
    samples, values = [], []
    for base in probability:
        p = np.clip(base + difficulty + seed_effect + interaction, 0.02, 0.98)  # (P,)
        scores = rng.binomial(QUESTIONS, np.repeat(p, eval_seeds)) / QUESTIONS  # (P * E,)
        samples.append(
            SampleScores(
                tuple(np.repeat(prompts, eval_seeds)),
                tuple(np.tile(np.arange(eval_seeds), len(prompts))),
                scores,
            )
        )
        values.append(float(scores.mean()))
    return Curve(
        run_id=run_id,
        label=run_id,
        params=params,
        gmacs=params / 1e6,
        dataset_noun_pairs=None,
        steps=steps,
        images_seen=[32 * s for s in steps],
        train_flops=[flops_per_step * s for s in steps],
        values=values,
        samples=samples,
    )


def two_arms(
    rng,
    effect: float,
    seeds: int = 3,
    prompts: int = 36,
    seed_sd: float = 0.01,
    interaction_sd: float = 0.03,
    base: float = 0.6,
    difficulty_sd: float = 0.15,
) -> tuple[Arm, Arm]:
    """Arms A and B of one configuration each, A's probability `effect` above B's, `seeds` runs each."""
    difficulty = prompt_difficulty(rng, prompts, difficulty_sd)
    arms = []
    for name, shift in (("A", effect), ("B", 0.0)):
        interaction = rng.normal(0.0, interaction_sd, prompts)
        runs = tuple(
            run_curve(
                f"{name}{s}",
                rng,
                difficulty,
                [base - 0.1 + shift, base + shift],
                rng.normal(0, seed_sd),
                interaction,
            )
            for s in range(seeds)
        )
        arms.append(Arm(name, (Configuration(name, name, runs),)))
    return arms[0], arms[1]
