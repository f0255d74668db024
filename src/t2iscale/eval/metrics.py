"""The metric registry: what each evaluation metric is, what it needs, how it is computed and how it reads.

One entry per metric (paper Sec. 3: alignment and quality measured along training). Adding a metric is adding one
entry to `METRIC_INFO`:
- its direction and range: an interval or a prediction is clipped to the range (a TIFA above 1 means nothing), a
  scaling law's frontier needs "higher is better", and only per-image metrics carry per-sample scores (set
  statistics such as FID carry their N instead). The chance level of TIFA is a reference line, not a bound: a
  model can score below it;
- `requires`: checks that `score_images` runs before any expensive work, each failing with the line a user sees;
- `compute`: its result (written to `eval/<metric>.json`) from the resolved `ScoreInputs`;
- `value_key` / `count_key`: the result keys of its one number (curves, fits, `eval.jsonl`) and of its N;
- `headline_format`: the CLI's line.

Torch-free: `study`, `findings` and `report` read the table, so the heavy imports (torch, the scorers) stay inside
the compute functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from t2iscale.errors import UserError

if TYPE_CHECKING:
    from t2iscale.eval.score_inputs import ScoreInputs

# A requirement: returns when the metric can be computed from the inputs, raises a UserError that says what is
# missing when it cannot.
Requirement = Callable[["ScoreInputs"], None]


def needs(met: Callable[[ScoreInputs], bool], message: str) -> Requirement:
    """A requirement that fails with `message` when `met(inputs)` is false."""

    def check(inputs: ScoreInputs) -> None:
        if not met(inputs):
            raise UserError(message)

    return check


@dataclass(frozen=True)
class MetricInfo:
    name: str
    title: str  # how reports and the CLI print it
    higher_is_better: bool
    lo: float  # the metric's range: every value, interval and prediction lies in [lo, hi]
    hi: float
    per_sample: bool  # one score per image (an average over images), so intervals over prompts exist
    value_key: str = "score"  # the result key of the metric's one number
    count_key: str = "n_images"  # the result key of the N behind it (a set statistic's: the generated images)
    # The CLI's line: `str.format` over the result's keys, plus {bounds}: the 95% interval over prompts, if any.
    headline_format: str = "{score:.4f}{bounds}"
    requires: tuple[Requirement, ...] = ()
    # The result without its "metric" key; `score_images` adds the interval over prompts when it has "samples".
    compute: Callable[[ScoreInputs], dict] | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        return self.lo, self.hi

    def range_text(self) -> str:
        return f"[{self.lo:g}, {'∞' if math.isinf(self.hi) else f'{self.hi:g}'}]"

    def value(self, result: dict) -> float:
        """The one number the metric contributes to curves and fits."""
        return float(result[self.value_key])

    def images_scored(self, result: dict) -> int:
        """The N behind the value: images scored (a set statistic such as FID: the generated images)."""
        return int(result[self.count_key])

    def headline(self, result: dict) -> str:
        """One line for the CLI; a per-image metric with its 95% interval over the prompts."""
        interval = result.get("interval")
        bounds = (
            "" if interval is None else f" [{interval['lo']:.4f}, {interval['hi']:.4f}] (95%, over prompts)"
        )
        return self.headline_format.format_map({**result, "bounds": bounds})


# -- how each metric is computed (heavy imports inside) ------------------------------------------------------


def _tifa(inputs: ScoreInputs) -> dict:
    from t2iscale.eval.tifa import run_tifa
    from t2iscale.eval.vqa import backend_name

    vqa_backend = inputs.vqa_backend
    if vqa_backend is None:
        if inputs.vqa_model is not None:
            from t2iscale.eval.vqa import BlipVQA

            vqa_backend = BlipVQA.from_pretrained(inputs.vqa_model, device=inputs.device)
        else:
            from t2iscale.eval.oracle import OracleVQA

            vqa_backend = OracleVQA(inputs.world)
    images = zip((entry.prompt_id for entry in inputs.entries), inputs.generated_images())
    tifa = run_tifa(
        images, inputs.questions, vqa_backend, total=len(inputs.entries), progress=inputs.progress
    )
    samples = inputs.samples(tifa.pop("image_scores"))
    for kind, scores in tifa.pop("element_image_scores").items():
        tifa["by_element_type"][kind]["samples"] = inputs.samples_where_scored(scores)
    return {
        "vqa_backend": backend_name(vqa_backend),
        "questions": inputs.questions_source,
        **inputs.provenance,
        **tifa,
        "samples": samples,
    }


def _clip(inputs: ScoreInputs) -> dict:
    from t2iscale.eval.clip_score import ClipScorer, mean_cosine_estimate

    clip = ClipScorer(inputs.clip_model, device=inputs.device).score(
        inputs.generated_images(), inputs.captions(), batch_size=inputs.batch_size, progress=inputs.progress
    )
    samples = inputs.samples(clip.pop("image_scores"))
    # The unclamped mean cosine with its interval and n: what the clamp at 0 of the headline value can hide.
    return {
        **inputs.provenance,
        **clip,
        "mean_cosine_interval": mean_cosine_estimate(samples),
        "samples": samples,
    }


def _frechet(inputs: ScoreInputs, feature_net, features: str) -> dict:
    from t2iscale.eval.fid import frechet_distance

    reference, reference_description = inputs.reference()
    fid = frechet_distance(
        reference,
        inputs.generated_images(),
        feature_net,
        batch_size=inputs.batch_size,
        device=inputs.device,
        progress=inputs.progress,
    )
    return {"features": features, "reference": reference_description, **inputs.provenance, **fid}


def _fid(inputs: ScoreInputs) -> dict:
    from t2iscale.eval.fid import TorchScriptFeatures

    network = TorchScriptFeatures(inputs.inception)
    return _frechet(inputs, network, f"TorchScript network {str(inputs.inception)!r}")


def _oracle_fid(inputs: ScoreInputs) -> dict:
    from t2iscale.eval.fid import OracleFeatures
    from t2iscale.eval.oracle import OracleVQA

    features = f"oracle scene features of the shapes world {inputs.world_name!r}"
    return _frechet(inputs, OracleFeatures(OracleVQA(inputs.world)), features)


def _image_reward(inputs: ScoreInputs) -> dict:
    from t2iscale.eval.image_reward import ImageRewardScorer

    scorer = ImageRewardScorer(
        inputs.image_reward_checkpoint, inputs.image_reward_tokenizer, device=inputs.device
    )
    result = scorer.score(
        inputs.generated_images(), inputs.captions(), batch_size=inputs.batch_size, progress=inputs.progress
    )
    samples = inputs.samples(result.pop("image_scores"))
    return {**inputs.provenance, **result, "samples": samples}


def _hpsv2(inputs: ScoreInputs) -> dict:
    from t2iscale.eval.hps import HpsScorer

    scorer = HpsScorer(
        inputs.hpsv2_checkpoint, inputs.hpsv2_tokenizer, arch=inputs.hpsv2_arch, device=inputs.device
    )
    result = scorer.score(
        inputs.generated_images(), inputs.captions(), batch_size=inputs.batch_size, progress=inputs.progress
    )
    samples = inputs.samples(result.pop("image_scores"))
    return {**inputs.provenance, **result, "samples": samples}


def _needs_local(field: str, flag: str, message: str) -> Requirement:
    """A local file or folder the user gave (`ScoreInputs.<field>`) must exist: checked before any work."""
    from pathlib import Path

    def check(inputs: ScoreInputs) -> None:
        path = getattr(inputs, field)
        if path is None:
            raise UserError(message)
        if not Path(path).exists():
            raise UserError(f"{flag} {str(path)!r} does not exist")

    return check


def _judges(inputs: ScoreInputs):
    """The evaluation's judges (`t2iscale.eval.judges`), made once: Soft-TIFA's two means and VQAScore share them
    and the judgements (kept on `inputs` for this one evaluation)."""
    from t2iscale.eval.judges import resolve_judges

    if "_judges" not in inputs.__dict__:
        inputs._judges = resolve_judges(inputs.vqa_model, inputs.world, inputs.vqa_backend, inputs.device)
    return inputs._judges


def _soft_tifa(inputs: ScoreInputs, mean: str) -> dict:
    from t2iscale.eval.judges import judge_name
    from t2iscale.eval.tifa import judge_images, score_judgements

    judges = _judges(inputs)
    if "_judged" not in inputs.__dict__:
        images = zip((entry.prompt_id for entry in inputs.entries), inputs.generated_images())
        inputs._judged = judge_images(
            images, inputs.questions, judges.questions, total=len(inputs.entries), progress=inputs.progress
        )
    soft = score_judgements(inputs.questions, inputs._judged, mean)
    samples = inputs.samples(soft.pop("image_scores"))
    return {
        "judge": judge_name(judges.questions),
        "questions": inputs.questions_source,
        **inputs.provenance,
        **soft,
        "samples": samples,
    }


def _vqascore(inputs: ScoreInputs) -> dict:
    import numpy as np

    from t2iscale.eval.judges import judge_name, prompt_question
    from t2iscale.eval.tifa import questions_by_prompt
    from t2iscale.progress import progress_bar

    judges = _judges(inputs)
    groups = questions_by_prompt(inputs.questions) if inputs.questions is not None else {}
    scores = []
    images = zip(inputs.entries, inputs.captions(), inputs.generated_images())
    for entry, caption, image in progress_bar(
        images, enabled=inputs.progress, total=len(inputs.entries), desc="VQAScore", unit="img"
    ):
        question = prompt_question(entry.prompt_id, caption, groups.get(entry.prompt_id))
        scores.append(judges.prompts.judge_all(image, [question])[0].probability(question, "yes"))
    samples = inputs.samples(scores)
    by_prompt: dict[str, list[float]] = {}
    for value, prompt_id, category in zip(
        samples["value"], samples["prompt_id"], samples.get("category") or [None] * len(scores)
    ):
        by_prompt.setdefault((prompt_id, category), []).append(value)
    prompt_means = {key: float(np.mean(values)) for key, values in by_prompt.items()}
    result = {
        "judge": judge_name(judges.prompts),
        "question_template": "Does this figure show '{prompt}'? Please answer yes or no.",
        **inputs.provenance,
        "score": float(np.mean(list(prompt_means.values()))),
        "n_prompts": len(prompt_means),
        "n_images": len(scores),
    }
    categories = sorted({category for _, category in prompt_means if category is not None})
    if categories:
        result["by_category"] = {
            category: {
                "score": float(np.mean([v for (_, c), v in prompt_means.items() if c == category])),
                "n_prompts": sum(c == category for _, c in prompt_means),
            }
            for category in categories
        }
    result["samples"] = samples
    return result


def _needs_judge(name: str) -> Requirement:
    return needs(
        lambda inputs: (
            inputs.vqa_backend is not None or inputs.vqa_model is not None or inputs.world is not None
        ),
        f"{name} needs a judge: --vqa-model DIR (a local BLIP VQA model) or --world NAME (the shapes world's "
        "oracle)",
    )


def _needs_questions(name: str) -> Requirement:
    return needs(
        lambda inputs: inputs.questions is not None,
        f"{name} needs questions: --questions FILE or --shapes-prompts VERSION --world NAME",
    )


_SOFT_TIFA_HEADLINE = (
    "{bounds}, hard TIFA by the same judge {hard_tifa:.4f}, chance {chance_level:.4f}, over {n_prompts} prompts, "
    "{n_images} images"
)


def _every_image_has_a_caption(inputs: ScoreInputs) -> None:
    inputs.captions()  # raises a UserError that names the first image without one


def _needs_reference(name: str) -> Requirement:
    return needs(
        lambda inputs: inputs.has_reference,
        f"{name} needs reference images: --reference-images DIR (along training: eval.fid_reference), or a "
        "shapes prompt set "
        "(--shapes-prompts VERSION --world NAME) whose ground-truth renders serve as references",
    )


_FID_HEADLINE = "({n_generated} generated vs {n_reference} reference images)"


METRIC_INFO: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        # TIFA (Hu et al. 2023): fraction of a prompt's VQA questions answered right, mean over prompts.
        MetricInfo(
            "tifa",
            "TIFA",
            higher_is_better=True,
            lo=0.0,
            hi=1.0,
            per_sample=True,
            headline_format=(
                "TIFA {score:.4f}{bounds}, chance {chance_level:.4f}, over {n_prompts} prompts, {n_images} images"
            ),
            requires=(
                needs(
                    lambda inputs: inputs.questions is not None,
                    "TIFA needs questions: --questions FILE or --shapes-prompts VERSION --world NAME",
                ),
                needs(
                    lambda inputs: (
                        inputs.vqa_backend is not None
                        or inputs.vqa_model is not None
                        or inputs.world is not None
                    ),
                    "TIFA needs a VQA model: --vqa-model DIR (a local BLIP VQA model) or --world NAME (the "
                    "shapes world's oracle)",
                ),
            ),
            compute=_tifa,
        ),
        # CLIP score, torchmetrics' definition (`t2iscale.eval.clip_score.DEFINITION`): 100·cos(image, caption)
        # per image, its mean over images clamped at 0; the title names it wherever a report or status shows it.
        MetricInfo(
            "clip",
            "CLIP score (torchmetrics: max(0, mean 100·cos), 0–100)",
            higher_is_better=True,
            lo=0.0,
            hi=100.0,
            per_sample=True,
            value_key="clip_score",
            headline_format=(
                "CLIP score {clip_score:.3f}{bounds} over {n_images} images ({definition}); unclamped mean "
                "cos {mean_cosine_interval[value]:.4f} [{mean_cosine_interval[lo]:.4f}, "
                "{mean_cosine_interval[hi]:.4f}] (95%, {mean_cosine_interval[n_prompts]} prompts)"
            ),
            requires=(
                needs(
                    lambda inputs: inputs.clip_model is not None,
                    "the CLIP score needs a local CLIP model: --clip-model DIR",
                ),
                _every_image_has_a_caption,
            ),
            compute=_clip,
        ),
        MetricInfo(
            "fid",
            "FID",
            higher_is_better=False,
            lo=0.0,
            hi=math.inf,
            per_sample=False,
            value_key="fid",
            count_key="n_generated",
            headline_format="FID {fid:.4f} " + _FID_HEADLINE,
            requires=(
                needs(
                    lambda inputs: inputs.inception is not None,
                    "FID needs a feature network file: --inception FILE (e.g. inception-2015-12-05.pt)",
                ),
                _needs_reference("fid"),
            ),
            compute=_fid,
        ),
        # FID in the shapes oracle's scene-feature space: no downloaded network (`t2iscale.eval.fid`).
        MetricInfo(
            "oracle_fid",
            "oracle FID",
            higher_is_better=False,
            lo=0.0,
            hi=math.inf,
            per_sample=False,
            value_key="fid",
            count_key="n_generated",
            headline_format="oracle FID {fid:.4f} " + _FID_HEADLINE,
            requires=(
                needs(
                    lambda inputs: inputs.world is not None,
                    "the oracle FID needs a shapes world: --world NAME",
                ),
                _needs_reference("oracle_fid"),
            ),
            compute=_oracle_fid,
        ),
        # Soft-TIFA (GenEval 2): per image, the mean probability the judge gives the right answers
        # (`t2iscale.eval.judges`); arithmetic and geometric. With the oracle (probability 1) it equals TIFA.
        MetricInfo(
            "soft_tifa",
            "Soft-TIFA",
            higher_is_better=True,
            lo=0.0,
            hi=1.0,
            per_sample=True,
            headline_format="Soft-TIFA (arithmetic) {score:.4f}" + _SOFT_TIFA_HEADLINE,
            requires=(_needs_questions("Soft-TIFA"), _needs_judge("Soft-TIFA")),
            compute=lambda inputs: _soft_tifa(inputs, "arithmetic"),
        ),
        MetricInfo(
            "soft_tifa_gm",
            "Soft-TIFA (geometric)",
            higher_is_better=True,
            lo=0.0,
            hi=1.0,
            per_sample=True,
            headline_format="Soft-TIFA (geometric) {score:.4f}" + _SOFT_TIFA_HEADLINE,
            requires=(_needs_questions("Soft-TIFA"), _needs_judge("Soft-TIFA")),
            compute=lambda inputs: _soft_tifa(inputs, "geometric"),
        ),
        # VQAScore (Lin et al. 2024): per image, P("yes") to "Does this figure show '{prompt}'?"; with the oracle,
        # 1 when the image shows everything the prompt's questions ask for (GenEval's strict accuracy).
        MetricInfo(
            "vqascore",
            "VQAScore",
            higher_is_better=True,
            lo=0.0,
            hi=1.0,
            per_sample=True,
            headline_format="VQAScore {score:.4f}{bounds} over {n_prompts} prompts, {n_images} images",
            requires=(_needs_judge("VQAScore"), _every_image_has_a_caption),
            compute=_vqascore,
        ),
        # ImageReward (Xu et al. 2023): a BLIP-based reward model's standardized score of each (image, caption);
        # unbounded, about N(0, 1) on its training images (`t2iscale.eval.image_reward`).
        MetricInfo(
            "image_reward",
            "ImageReward",
            higher_is_better=True,
            lo=-math.inf,
            hi=math.inf,
            per_sample=True,
            value_key="image_reward",
            headline_format="ImageReward {image_reward:.4f}{bounds} over {n_images} images",
            requires=(
                _needs_local(
                    "image_reward_checkpoint",
                    "--image-reward-checkpoint",
                    "ImageReward needs its released checkpoint: --image-reward-checkpoint FILE (ImageReward.pt; "
                    "config: eval.image_reward_checkpoint)",
                ),
                _needs_local(
                    "image_reward_tokenizer",
                    "--image-reward-tokenizer",
                    "ImageReward needs a local bert-base-uncased tokenizer: --image-reward-tokenizer DIR "
                    "(config: eval.image_reward_tokenizer)",
                ),
                _every_image_has_a_caption,
            ),
            compute=_image_reward,
        ),
        # HPSv2 (Wu et al. 2023): 100 · cos(image, caption) under the preference-tuned OpenCLIP ViT-H/14
        # (`t2iscale.eval.hps`).
        MetricInfo(
            "hpsv2",
            "HPSv2",
            higher_is_better=True,
            lo=-100.0,
            hi=100.0,
            per_sample=True,
            value_key="hpsv2",
            headline_format="HPSv2 {hpsv2:.3f}{bounds} over {n_images} images",
            requires=(
                _needs_local(
                    "hpsv2_checkpoint",
                    "--hpsv2-checkpoint",
                    "HPSv2 needs its released checkpoint: --hpsv2-checkpoint FILE (HPS_v2_compressed.pt or "
                    "HPS_v2.1_compressed.pt; config: eval.hpsv2_checkpoint)",
                ),
                _needs_local(
                    "hpsv2_tokenizer",
                    "--hpsv2-tokenizer",
                    "HPSv2 needs a local CLIP tokenizer: --hpsv2-tokenizer DIR (e.g. the --clip-model folder; "
                    "config: eval.hpsv2_tokenizer)",
                ),
                _every_image_has_a_caption,
            ),
            compute=_hpsv2,
        ),
    )
}


def metric_info(name: str) -> MetricInfo:
    """The table's entry; a metric it does not know (from a points file) is taken as higher-is-better and
    unbounded, so nothing is clipped that should not be."""
    return METRIC_INFO.get(name) or MetricInfo(name, name, True, -math.inf, math.inf, True)
