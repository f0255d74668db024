"""Score a folder of generated images described by a manifest: TIFA, CLIP score, FID, oracle FID.

The second half of "generate, then score, linked by files" (paper Sec. 3: alignment and quality metrics measured
along training). `score_images` is what both `t2iscale eval score` and the training/study code call; each metric
is written to `<out>/eval/<metric>.json` and returned.

Where the questions and references come from:
- real data: a TIFA question file (`questions=`), a local BLIP VQA model (`vqa_model=`), a local CLIP
  (`clip_model=`), a TorchScript Inception (`inception=`) and a folder of reference images for FID;
- the shapes world (`world=` + `shapes_prompts="v1"`): the world's evaluation prompt set and its exact oracle
  VQA; without `reference_images`, FID references are ground-truth renders of the same prompts and seeds at the
  generated resolution, so FID there measures how far generations are from what the prompts describe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.intervals import replicate_estimate
from t2iscale.eval.manifest import ManifestEntry, load_image, read_manifest
from t2iscale.eval.metrics import metric_info
from t2iscale.eval.samples import SampleScores
from t2iscale.eval.tifa import (
    check_prompts_have_questions,
    load_questions,
    questions_by_prompt,
    run_tifa,
    validate_questions,
)
from t2iscale.eval.vqa import VQABackend, backend_name

METRICS = ("tifa", "clip", "fid", "oracle_fid")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class _Sources:
    """Everything the metrics draw on, resolved once."""

    manifest: Path
    image_dir: Path
    entries: list[ManifestEntry]
    questions: list[dict] | None = None
    questions_source: str | None = None
    world: object | None = None  # WorldConfig
    world_name: str | None = None
    prompts: dict = field(default_factory=dict)  # shapes prompt id -> prompt

    def generated_images(self) -> Iterator[np.ndarray]:
        for entry in self.entries:
            yield load_image(self.image_dir / entry.path)


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [name for name in names if name]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise UserError(f"unknown metric {unknown[0]!r}; valid metrics: {', '.join(METRICS)}")
    if not names:
        raise UserError(f"no metric given; valid metrics: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def _resolve_sources(
    manifest, image_dir, questions, shapes_prompts, world, per_category, allow_partial
) -> _Sources:
    manifest = Path(manifest)
    image_dir = Path(image_dir) if image_dir is not None else manifest.parent
    if not image_dir.is_dir():
        raise UserError(f"image folder {str(image_dir)!r} does not exist")
    sources = _Sources(manifest, image_dir, read_manifest(manifest, image_dir=image_dir))
    if questions is not None and shapes_prompts is not None:
        raise UserError("give either a TIFA question file or a shapes prompt set version, not both")
    if world is not None:
        from t2iscale.data.shapes.world import resolve_world

        sources.world = resolve_world(world)
        sources.world_name = sources.world.name
    if questions is not None:
        sources.questions = load_questions(questions)
        sources.questions_source = str(questions)
    elif shapes_prompts is not None:
        if sources.world is None:
            raise UserError(f"the shapes prompt set {shapes_prompts!r} needs a shapes world (--world NAME)")
        from t2iscale.data.shapes.prompts import eval_prompt_set

        kwargs = {} if per_category is None else {"per_category": per_category}
        prompt_set = eval_prompt_set(sources.world, version=shapes_prompts, **kwargs)
        sources.prompts = {prompt.id: prompt for prompt in prompt_set.prompts}
        sources.questions_source = f"shapes prompt set {shapes_prompts} (world {sources.world_name})"
        sources.questions = validate_questions(prompt_set.questions(), source=sources.questions_source)
    if sources.questions is not None:
        check_prompts_have_questions(
            (entry.prompt_id for entry in sources.entries), sources.questions, sources.questions_source
        )
        with_images = {entry.prompt_id for entry in sources.entries}
        without = [pid for pid in questions_by_prompt(sources.questions) if pid not in with_images]
        if without and not allow_partial:
            raise UserError(
                f"{len(without)} prompt(s) of {sources.questions_source} have no image in {str(manifest)!r} "
                f"(first: {without[0]!r}); generate every prompt, or allow a partial score (--allow-partial)"
            )
    return sources


def _check_requirements(metrics, sources, vqa_backend, vqa_model, clip_model, inception, reference_images):
    """Fail before any expensive work when a metric lacks what it needs."""
    has_reference = reference_images is not None or bool(sources.prompts)
    for metric in metrics:
        if metric == "tifa":
            if sources.questions is None:
                raise UserError(
                    "TIFA needs questions: --questions FILE or --shapes-prompts VERSION --world NAME"
                )
            if vqa_backend is None and vqa_model is None and sources.world is None:
                raise UserError(
                    "TIFA needs a VQA model: --vqa-model DIR (a local BLIP VQA model) or --world NAME (the "
                    "shapes world's oracle)"
                )
        if metric == "clip":
            if clip_model is None:
                raise UserError("the CLIP score needs a local CLIP model: --clip-model DIR")
            _captions(sources)
        if metric == "fid" and inception is None:
            raise UserError(
                "FID needs a feature network file: --inception FILE (e.g. inception-2015-12-05.pt)"
            )
        if metric == "oracle_fid" and sources.world is None:
            raise UserError("the oracle FID needs a shapes world: --world NAME")
        if metric in ("fid", "oracle_fid") and not has_reference:
            raise UserError(
                f"{metric} needs reference images: --reference-images DIR, or a shapes prompt set "
                "(--shapes-prompts VERSION --world NAME) whose ground-truth renders serve as references"
            )


def _reference(sources: _Sources, reference_images) -> tuple[list, str]:
    """(lazy reference image iterable, description for the result file)."""
    if reference_images is not None:
        folder = Path(reference_images)
        if not folder.is_dir():
            raise UserError(f"reference image folder {str(folder)!r} does not exist")
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(paths) < 2:
            raise UserError(
                f"reference image folder {str(folder)!r} holds {len(paths)} image(s); FID needs 2+"
            )
        return _LazyImages(paths), f"{len(paths)} images under {str(folder)!r}"

    from t2iscale.data.shapes.prompts import ground_truth_scene
    from t2iscale.data.shapes.render import render_scene

    resolution = load_image(sources.image_dir / sources.entries[0].path).shape[0]
    world, prompts, entries = sources.world, sources.prompts, sources.entries
    renders = (
        render_scene(ground_truth_scene(prompts[entry.prompt_id], entry.seed), world, resolution)
        for entry in entries
    )
    description = (
        f"ground-truth renders of the shapes world {sources.world_name!r} for the same {len(entries)} "
        f"(prompt, seed) pairs as the generated images, at {resolution} px"
    )
    return renders, description


class _LazyImages:
    def __init__(self, paths):
        self.paths = paths

    def __iter__(self):
        return (load_image(path) for path in self.paths)


def _captions(sources: _Sources) -> list[str]:
    prompt_captions = {}
    if sources.questions is not None:
        prompt_captions = {
            pid: group[0]["caption"] for pid, group in questions_by_prompt(sources.questions).items()
        }
    captions = []
    for entry in sources.entries:
        caption = entry.caption or prompt_captions.get(entry.prompt_id)
        if caption is None:
            raise UserError(
                f"{str(sources.manifest)!r}: prompt {entry.prompt_id!r} (seed {entry.seed}) has no caption; add "
                "'caption' to the manifest or give --questions / --shapes-prompts"
            )
        captions.append(caption)
    return captions


def _samples(sources: _Sources, image_scores: list[float]) -> dict:
    """A per-image metric's scores (manifest order) as a `SampleScores` dict keyed by prompt id and eval seed.

    Each sample carries its prompt's category when the questions have one (GenEval's in the shapes world).
    """
    entries = sources.entries
    category = {q["id"]: q.get("category") for q in sources.questions or []}
    categories = [category.get(entry.prompt_id) for entry in entries]
    return SampleScores(
        tuple(entry.prompt_id for entry in entries),
        tuple(entry.seed for entry in entries),
        image_scores,
        categories if any(categories) else None,
    ).to_dict()


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
    sources = _resolve_sources(
        manifest, image_dir, questions, shapes_prompts, world, per_category, allow_partial
    )
    _check_requirements(metrics, sources, vqa_backend, vqa_model, clip_model, inception, reference_images)
    out_dir = Path(out_dir) if out_dir is not None else sources.manifest.parent
    common = {"manifest": str(sources.manifest), "image_dir": str(sources.image_dir)}
    results: dict[str, dict] = {}
    for metric in metrics:
        if metric == "tifa":
            if vqa_backend is None:
                if vqa_model is not None:
                    from t2iscale.eval.vqa import BlipVQA

                    vqa_backend = BlipVQA.from_pretrained(vqa_model, device=device)
                else:
                    from t2iscale.eval.oracle import OracleVQA

                    vqa_backend = OracleVQA(sources.world)
            images = zip((entry.prompt_id for entry in sources.entries), sources.generated_images())
            tifa = run_tifa(
                images, sources.questions, vqa_backend, total=len(sources.entries), progress=progress
            )
            samples = _samples(sources, tifa.pop("image_scores"))
            result = {
                "metric": "tifa",
                "vqa_backend": backend_name(vqa_backend),
                "questions": sources.questions_source,
                **common,
                **tifa,
                "samples": samples,
            }
        elif metric == "clip":
            from t2iscale.eval.clip_score import ClipScorer

            clip = ClipScorer(clip_model, device=device).score(
                sources.generated_images(), _captions(sources), batch_size=batch_size, progress=progress
            )
            samples = _samples(sources, clip.pop("image_scores"))
            result = {"metric": "clip", **common, **clip, "samples": samples}
        else:
            from t2iscale.eval.fid import OracleFeatures, TorchScriptFeatures, frechet_distance

            if metric == "fid":
                feature_net, features = (
                    TorchScriptFeatures(inception),
                    f"TorchScript network {str(inception)!r}",
                )
            else:
                from t2iscale.eval.oracle import OracleVQA

                feature_net = OracleFeatures(OracleVQA(sources.world))
                features = f"oracle scene features of the shapes world {sources.world_name!r}"
            reference, reference_description = _reference(sources, reference_images)
            fid = frechet_distance(
                reference,
                sources.generated_images(),
                feature_net,
                batch_size=batch_size,
                device=device,
                progress=progress,
            )
            result = {
                "metric": metric,
                "features": features,
                "reference": reference_description,
                **common,
                **fid,
            }
        if "samples" in result:
            result["interval"] = sample_interval(metric, result["samples"]).to_dict()
            _category_intervals(metric, result)
        results[metric] = result
        write_result(out_dir, metric, result)
    return results


def _category_intervals(metric: str, result: dict) -> None:
    """Each prompt category's value (TIFA's `by_category`) gains its interval over that category's prompts."""
    samples = SampleScores.from_dict(result["samples"])
    for name, entry in result.get("by_category", {}).items():
        try:
            entry["interval"] = replicate_estimate(
                [samples.only_category(name)], value_range=metric_info(metric).value_range
            ).to_dict()
        except UserError as error:  # one prompt in the category: no interval over prompts
            entry["interval"] = None
            entry["no_interval"] = str(error)


def sample_interval(metric: str, samples: dict):
    """The 95% interval of a per-image metric's value over the prompts (`t2iscale.eval.intervals`)."""
    return replicate_estimate([SampleScores.from_dict(samples)], value_range=metric_info(metric).value_range)


def write_result(out_dir: str | Path, metric: str, result: dict) -> Path:
    path = Path(out_dir) / "eval" / f"{metric}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def headline(metric: str, result: dict) -> str:
    """One line per metric for the CLI; a per-image metric with its 95% interval over the prompts."""
    interval = result.get("interval")
    bounds = "" if interval is None else f" [{interval['lo']:.4f}, {interval['hi']:.4f}] (95%, over prompts)"
    if metric == "tifa":
        return (
            f"TIFA {result['score']:.4f}{bounds}, chance {result['chance_level']:.4f}, over {result['n_prompts']} "
            f"prompts, {result['n_images']} images"
        )
    if metric == "clip":
        return f"CLIP score {result['clip_score']:.3f}{bounds} over {result['n_images']} images"
    return (
        f"{'FID' if metric == 'fid' else 'oracle FID'} {result['fid']:.4f} "
        f"({result['n_generated']} generated vs {result['n_reference']} reference images)"
    )
