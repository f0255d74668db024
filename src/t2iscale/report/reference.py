"""The metric's floor and ceiling, and what the shapes world lets the report show beside the models' samples.

- floor: the chance level the scorer logs (TIFA: a uniform guesser's expected score), overall and per prompt
  category (`t2iscale.data.shapes.prompts.chance_level` over that category's questions);
- ceiling: in the shapes world with the oracle judge, the oracle's accuracy on ground-truth renders of the
  study's own prompts at the study's resolution (`t2iscale.eval.oracle_check.run_oracle_check`, the check behind
  `t2iscale eval oracle-check`). It takes about a second, and is kept in `oracle_check.json` beside the report so
  that rebuilding the report does not redo it;
- ground-truth renders of the sample grid's prompts (a row of the grid).

Outside the shapes world (real data, a VQA model as judge) there is no ground truth to render: the report says
the ceiling is unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2iscale.errors import UserError

CEILING_FILE = "oracle_check.json"
SHAPES_PROMPTS = "shapes-"


@dataclass(frozen=True)
class ShapesEval:
    """How a shapes-world study evaluates: the world, the image size and the prompt set (identical for all runs)."""

    world: str
    resolution: int
    version: str  # the prompt set version ("v1")
    per_category: int
    oracle_judge: bool  # TIFA is answered by the exact oracle (no VQA model configured)

    def prompt_set(self):
        from t2iscale.data.shapes.prompts import eval_prompt_set

        return eval_prompt_set(self.world, version=self.version, per_category=self.per_category)


def shapes_eval(config: dict) -> ShapesEval | None:
    """The shapes evaluation of a run's resolved config; None for any other data or prompt set."""
    data, evaluation = config.get("data") or {}, config.get("eval") or {}
    prompts = str(evaluation.get("prompts") or "")
    world = data.get("world")
    if data.get("kind") != "shapes" or not prompts.startswith(SHAPES_PROMPTS) or not isinstance(world, str):
        return None
    return ShapesEval(
        world=world,
        resolution=int(data.get("resolution") or 0),
        version=prompts.removeprefix(SHAPES_PROMPTS),
        per_category=int(evaluation.get("per_category") or 1),
        oracle_judge=evaluation.get("vqa_model") is None,
    )


def category_chance(setting: ShapesEval | None) -> dict[str, float]:
    """Each prompt category's chance level: a uniform guesser's TIFA on that category's questions."""
    if setting is None:
        return {}
    from t2iscale.data.shapes.prompts import chance_level

    try:
        groups = setting.prompt_set().by_category()
    except UserError:
        return {}
    return {name: chance_level([q for p in prompts for q in p.questions]) for name, prompts in groups.items()}


@dataclass(frozen=True)
class Ceiling:
    """The best score the judge can give: the oracle on ground-truth renders (None when not measurable)."""

    value: float | None
    per_category: dict[str, float]
    how: str  # a sentence: how it was obtained, or why there is none
    noise: float | None = None  # the oracle's score on pure noise images (near chance when it finds nothing)


def oracle_ceiling(setting: ShapesEval | None, metric: str, cache_dir: Path) -> Ceiling:
    """The ceiling of `metric` for this study, measured once and cached in `cache_dir`."""
    if metric != "tifa":
        return Ceiling(None, {}, f"no ceiling is measured for {metric}; only TIFA has an exact judge")
    if setting is None:
        return Ceiling(
            None,
            {},
            "unknown: the study is not in the shapes world, so there are no ground-truth renders to score",
        )
    if not setting.oracle_judge:
        return Ceiling(
            None,
            {},
            "unknown: a VQA model answers the questions; the oracle's ceiling would not be its ceiling",
        )
    key = {"world": setting.world, "n": setting.per_category, "resolution": setting.resolution}
    path = cache_dir / CEILING_FILE
    report = None
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            report = cached["report"]
    except (OSError, ValueError, KeyError, AttributeError):
        report = None
    if report is None:
        from t2iscale.eval.oracle_check import run_oracle_check

        try:
            report = run_oracle_check(
                setting.world, n=setting.per_category, resolutions=(setting.resolution,), progress=False
            )
        except UserError as error:
            return Ceiling(None, {}, f"unknown: the oracle check could not run ({error})")
        path.write_text(json.dumps({"key": key, "report": report}, indent=2) + "\n", encoding="utf-8")
    result = report["resolutions"][str(setting.resolution)]
    truth = result["ground_truth"]
    how = (
        f"the oracle's accuracy on ground-truth renders of the study's prompts at {setting.resolution} px "
        f"({truth['questions']} questions on {truth['images']} images, world {setting.world!r}; "
        f"`t2iscale eval oracle-check --world {setting.world} --n {setting.per_category} "
        f"--resolutions {setting.resolution}`)"
    )
    return Ceiling(
        float(truth["accuracy"]), dict(truth["per_category"]), how, float(result["noise"]["score"])
    )


def ground_truth_images(setting: ShapesEval, prompt_ids: list[str], seed: int) -> list[np.ndarray | None]:
    """A ground-truth render (H, W, 3) uint8 of each prompt at the study's resolution (None for an unknown id)."""
    from t2iscale.data.shapes.prompts import ground_truth_scene
    from t2iscale.data.shapes.render import render_scene

    prompts = {prompt.id: prompt for prompt in setting.prompt_set().prompts}
    images = []
    for prompt_id in prompt_ids:
        prompt = prompts.get(prompt_id)
        try:
            scene = None if prompt is None else ground_truth_scene(prompt, seed)
        except UserError:
            scene = None
        images.append(None if scene is None else render_scene(scene, prompt.world, setting.resolution))
    return images
