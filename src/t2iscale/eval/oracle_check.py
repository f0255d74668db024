"""How right the shapes oracle is: accuracy on ground-truth renders and on pure noise.

The oracle replaces a VQA model in TIFA (paper Sec. 3), so its own error must be negligible where images are
right (>= 99% of questions on ground-truth renders, in every GenEval category) and it must not find alignment
that is not there (pure noise scores about the chance level of the prompt set).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from t2iscale.data.shapes.prompts import CATEGORIES, chance_level, eval_prompt_set, ground_truth_scene
from t2iscale.data.shapes.render import check_resolution, render_scene
from t2iscale.data.shapes.world import WorldConfig, resolve_world
from t2iscale.errors import UserError
from t2iscale.eval.oracle import OracleVQA
from t2iscale.progress import progress_bar


def noise_image(rng: np.random.Generator, resolution: int, kind: str, background) -> np.ndarray:
    """Uniform noise, or Gaussian noise around the background (a diffusion model's starting point)."""
    if kind == "uniform":
        return rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
    values = rng.normal(np.asarray(background, dtype=np.float64), 64.0, (resolution, resolution, 3))
    return np.clip(values, 0, 255).astype(np.uint8)


def run_oracle_check(
    world: WorldConfig | str = "tiny",
    n: int = 50,
    resolutions=(32, 64),
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Oracle accuracy on `n` ground-truth renders per category and on 6 * n noise images, per resolution."""
    world = resolve_world(world)
    if n < 1:
        raise UserError(f"--n must be at least 1 image per category, got {n}")
    resolutions = [check_resolution(r) for r in resolutions]
    prompt_set = eval_prompt_set(world, per_category=n)
    by_category = prompt_set.by_category()
    oracle = OracleVQA(world)
    report = {
        "world": world.name,
        "images_per_category": n,
        "prompt_set_chance": prompt_set.chance_level(),
        "resolutions": {},
    }
    for resolution in resolutions:
        correct: dict[str, list[bool]] = defaultdict(list)
        jobs = [
            (category, prompts[j % len(prompts)], j // len(prompts))
            for category in CATEGORIES
            if (prompts := by_category.get(category))
            for j in range(n)
        ]
        for category, prompt, image_seed in progress_bar(
            jobs, enabled=progress, desc=f"oracle check {resolution}px", unit="img"
        ):
            image = render_scene(ground_truth_scene(prompt, seed + image_seed), world, resolution)
            answers = oracle.answer_all(image, list(prompt.questions))
            correct[category] += [a == q["answer"] for a, q in zip(answers, prompt.questions)]

        # Noise: each image is asked one prompt's questions, cycling through the whole prompt set.
        rng = np.random.default_rng([seed, resolution])
        noise_scores, noise_objects = [], 0
        for k in range(6 * n):
            prompt = prompt_set.prompts[k % len(prompt_set.prompts)]
            image = noise_image(rng, resolution, ("uniform", "gaussian")[k % 2], world.background)
            noise_objects += len(oracle.parse(image).objects)
            answers = oracle.answer_all(image, list(prompt.questions))
            noise_scores.append(float(np.mean([a == q["answer"] for a, q in zip(answers, prompt.questions)])))
        all_correct = [c for values in correct.values() for c in values]
        report["resolutions"][str(resolution)] = {
            "ground_truth": {
                "accuracy": float(np.mean(all_correct)),
                "questions": len(all_correct),
                "images": len(jobs),
                "per_category": {c: float(np.mean(v)) for c, v in correct.items()},
            },
            "noise": {
                "score": float(np.mean(noise_scores)),
                "chance": _chance_per_image(prompt_set, len(noise_scores)),
                "images": len(noise_scores),
                "objects_per_image": noise_objects / len(noise_scores),
            },
        }
    return report


def _chance_per_image(prompt_set, images: int) -> float:
    """The chance level of the questions the noise images were asked (prompts cycled over `images`)."""
    per_prompt = [chance_level(list(p.questions)) for p in prompt_set.prompts]
    return float(np.mean([per_prompt[k % len(per_prompt)] for k in range(images)]))


def format_report(report: dict) -> str:
    lines = [f"oracle check: world={report['world']}, {report['images_per_category']} images per category"]
    for resolution, result in report["resolutions"].items():
        truth, noise = result["ground_truth"], result["noise"]
        categories = ", ".join(f"{c} {v:.2%}" for c, v in truth["per_category"].items())
        lines.append(
            f"  {resolution:>4}px ground truth: {truth['accuracy']:.2%} of {truth['questions']} questions "
            f"({categories})"
        )
        lines.append(
            f"  {resolution:>4}px pure noise:   {noise['score']:.2%} (chance {noise['chance']:.2%}) over "
            f"{noise['images']} images, {noise['objects_per_image']:.2f} objects found per image"
        )
    return "\n".join(lines)
