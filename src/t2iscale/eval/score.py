"""Score a folder of generated images described by a manifest: TIFA, CLIP score, FID, oracle FID.

The second half of "generate, then score, linked by files" (paper Sec. 3: alignment and quality metrics measured
along training). `score_images` is what both `t2iscale eval score` and the training/study code call; each metric
is written to `<out>/eval/<metric>.json` and returned. What each metric needs and how it is computed is its entry
in the registry (`t2iscale.eval.metrics`); what they all draw on is resolved once (`t2iscale.eval.score_inputs`).

Where the questions and references come from:
- real data: a TIFA question file (`questions=`), a local BLIP VQA model (`vqa_model=`), a local CLIP
  (`clip_model=`), a TorchScript Inception (`inception=`) and a folder of reference images for FID; ImageReward
  and HPSv2 from their released checkpoints and local tokenizers (`image_reward_*=`, `hpsv2_*=`, docs/metrics.md);
- the shapes world (`world=` + `shapes_prompts="v1"`): the world's evaluation prompt set and its exact oracle
  VQA; without `reference_images`, FID references are ground-truth renders of the same prompts and seeds at the
  generated resolution, so FID there measures how far generations are from what the prompts describe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from t2iscale.errors import UserError
from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.metrics import METRIC_INFO, metric_info
from t2iscale.eval.samples import SampleScores
from t2iscale.eval.score_inputs import resolve_inputs
from t2iscale.eval.vqa import VQABackend

METRICS = tuple(METRIC_INFO)


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [name for name in names if name]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise UserError(f"unknown metric {unknown[0]!r}; valid metrics: {', '.join(METRICS)}")
    if not names:
        raise UserError(f"no metric given; valid metrics: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def score_images(
    manifest: str | Path,
    metrics: str | Sequence[str] = ("tifa",),
    *,
    image_dir: str | Path | None = None,
    questions: str | Path | None = None,
    shapes_prompts: str | None = None,
    world=None,
    per_category: int | None = None,
    vqa_model: str | Path | None = None,
    vqa_backend: VQABackend | None = None,
    clip_model: str | Path | None = None,
    inception: str | Path | None = None,
    reference_images: str | Path | None = None,
    image_reward_checkpoint: str | Path | None = None,
    image_reward_tokenizer: str | Path | None = None,
    hpsv2_checkpoint: str | Path | None = None,
    hpsv2_tokenizer: str | Path | None = None,
    hpsv2_arch: str | Path | None = None,
    out_dir: str | Path | None = None,
    allow_partial: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, dict]:
    """Score the manifest's images with each metric; write `<out_dir>/eval/<metric>.json`; return {metric: result}.

    `out_dir` defaults to the manifest's folder, `image_dir` (where manifest paths point) too. `world` is a shapes
    world preset name, JSON path or WorldConfig; with it the oracle answers TIFA questions unless `vqa_model` or
    `vqa_backend` is given.
    """
    metrics = parse_metrics(metrics)
    inputs = resolve_inputs(
        manifest,
        image_dir,
        questions,
        shapes_prompts,
        world,
        per_category,
        allow_partial,
        vqa_backend=vqa_backend,
        vqa_model=vqa_model,
        clip_model=clip_model,
        inception=inception,
        reference_images=reference_images,
        image_reward_checkpoint=image_reward_checkpoint,
        image_reward_tokenizer=image_reward_tokenizer,
        hpsv2_checkpoint=hpsv2_checkpoint,
        hpsv2_tokenizer=hpsv2_tokenizer,
        hpsv2_arch=hpsv2_arch,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    # Fail before any expensive work when a metric lacks what it needs.
    for metric in metrics:
        for requirement in METRIC_INFO[metric].requires:
            requirement(inputs)
    out_dir = Path(out_dir) if out_dir is not None else inputs.manifest.parent
    results: dict[str, dict] = {}
    for metric in metrics:
        result = {"metric": metric, **METRIC_INFO[metric].compute(inputs)}
        if "samples" in result:
            result["interval"] = sample_interval(metric, result["samples"]).to_dict()
            _category_intervals(metric, result)
        results[metric] = result
        write_result(out_dir, metric, result)
    return results


def _category_intervals(metric: str, result: dict) -> None:
    """Each prompt category's value (TIFA's `by_category`) gains its interval over that category's prompts, and
    each element type's accuracy (`by_element_type`, with its own samples) its interval over the prompts that ask
    questions of that type."""
    samples = SampleScores.from_dict(result["samples"])
    value_range = metric_info(metric).value_range
    groups = [
        (entry, lambda name=name: samples.only_category(name))
        for name, entry in result.get("by_category", {}).items()
    ]
    groups += [
        (entry, lambda entry=entry: SampleScores.from_dict(entry["samples"]))
        for entry in result.get("by_element_type", {}).values()
        if "samples" in entry
    ]
    for entry, subset in groups:
        try:
            entry["interval"] = replicate_estimate([subset()], value_range=value_range).to_dict()
        except UserError as error:  # one prompt in the group: no interval over prompts
            entry["interval"] = None
            entry["no_interval"] = str(error)


def sample_interval(metric: str, samples: dict):
    """The 95% interval of a per-image metric's value over the prompts (`t2iscale.eval.intervals`)."""
    return replicate_estimate([SampleScores.from_dict(samples)], value_range=metric_info(metric).value_range)


def result_path(out_dir: str | Path, metric: str) -> Path:
    """Where `write_result` puts a metric's result (along training: `<run>/eval/step_NNNNNN/eval/<metric>.json`)."""
    return Path(out_dir) / "eval" / f"{metric}.json"


def write_result(out_dir: str | Path, metric: str, result: dict) -> Path:
    path = result_path(out_dir, metric)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def headline(metric: str, result: dict) -> str:
    """One line per metric for the CLI; a per-image metric with its 95% interval over the prompts."""
    return metric_info(metric).headline(result)
