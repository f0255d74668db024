"""Evaluation along training (paper Sec. 3: alignment measured every N steps with fixed prompts and seeds).

A training hook: at every `eval.every_steps` and at the end, the main process generates the evaluation prompt set
with the live weights and scores it. Results land in the run folder, linked by files like any evaluation:

    eval/step_000500/manifest.jsonl, images/, eval/<metric>.json
    eval/eval.jsonl   one line per (step, metric): step, images_seen, train_flops, metric, value, categories,
                      n_images (images scored; FID: generated ones) and, for per-image metrics (TIFA, CLIP),
                      samples (`t2iscale.eval.samples.SampleScores` JSON: one score per prompt and eval seed)

so alignment-vs-steps and alignment-vs-compute curves exist for every run. A step already in `eval.jsonl` is not
evaluated again (a resumed run repeats nothing).
"""

from __future__ import annotations

from t2iscale.eval.generate import generate_images
from t2iscale.eval.metrics import metric_info
from t2iscale.eval.prompt_source import resolve_prompts
from t2iscale.eval.text_to_image import TextToImage, decoder_for, text_encoder_for_sampling
from t2iscale.train.checkpoint import step_dir_name
from t2iscale.train.compile import eager_regions
from t2iscale.train.config import TrainConfig
from t2iscale.train.device import autocast_dtype, resolve_mixed_precision
from t2iscale.train.jsonl import JsonlWriter, read_jsonl
from t2iscale.train.loop import Hook, HookContext


def category_values(result: dict) -> dict[str, float]:
    return {name: float(entry["score"]) for name, entry in result.get("by_category", {}).items()}


class EvaluateAlongTraining:
    def __init__(self, config: TrainConfig, progress: bool = False):
        self.config = config
        self.progress = progress
        evaluation = config.eval
        world = config.data.world if config.data.kind == "shapes" else None
        # Everything the evaluation will need, before the run trains (`t2iscale.eval.preflight`).
        from t2iscale.eval.preflight import check_evaluation

        check_evaluation(config, where=f"run {config.run_dir}")
        self.source = resolve_prompts(evaluation.prompts, world=world, per_category=evaluation.per_category)

    def done_steps(self, run) -> set[int]:
        return {record["step"] for record in read_jsonl(run.eval_log)}

    def __call__(self, context: HookContext) -> None:
        accelerator = context.accelerator
        if accelerator.is_main_process and context.step not in self.done_steps(context.run):
            self.evaluate(context)
        accelerator.wait_for_everyone()

    def text_to_image(self, context: HookContext) -> TextToImage:
        components = context.components
        device = context.accelerator.device
        encoder = text_encoder_for_sampling(self.config, device, learned=components.text_encoder)
        precision = resolve_mixed_precision(self.config.recipe.mixed_precision, device)
        return TextToImage(
            components.backbone,
            encoder,
            components.objective,
            decoder_for(self.config, device),
            autocast_dtype(precision),
        )

    def evaluate(self, context: HookContext) -> list[dict]:
        if not self.config.eval.use_ema:  # the paper's protocol: the trained (non-EMA) weights
            return self.generate_and_score(context)
        # Swap the EMA weights in for the evaluation only, then put the trained weights back.
        trained = [p for p in context.components.model.parameters() if p.requires_grad]
        context.ema.store(trained)
        context.ema.copy_to(trained)
        try:
            return self.generate_and_score(context)
        finally:
            context.ema.restore(trained)

    def generate_and_score(self, context: HookContext) -> list[dict]:
        from t2iscale.eval.score import score_images

        evaluation = self.config.eval
        out_dir = context.run.eval_dir / step_dir_name(context.step)
        # Sampling runs the blocks eagerly (replayed from CUDA graphs on GPU) rather than compiling each of them
        # again for inference mode (t2iscale.train.compile).
        with eager_regions(context.components.backbone):
            manifest = generate_images(
                self.text_to_image(context),
                self.source,
                evaluation.seeds,
                out_dir,
                steps=evaluation.sampler_steps,
                guidance=evaluation.guidance,
                batch_size=evaluation.batch_size,
                progress=self.progress,
            )
        results = score_images(
            manifest,
            evaluation.metrics,
            vqa_model=evaluation.vqa_model,
            clip_model=evaluation.clip_model,
            inception=evaluation.inception,
            reference_images=evaluation.fid_reference,
            image_reward_checkpoint=evaluation.image_reward_checkpoint,
            image_reward_tokenizer=evaluation.image_reward_tokenizer,
            hpsv2_checkpoint=evaluation.hpsv2_checkpoint,
            hpsv2_tokenizer=evaluation.hpsv2_tokenizer,
            hpsv2_arch=evaluation.hpsv2_arch,
            out_dir=out_dir,
            progress=False,
            **self.source.score_kwargs,
        )
        log = JsonlWriter(context.run.eval_log)
        records = []
        for metric, result in results.items():
            info = metric_info(metric)
            record = {
                "step": context.step,
                "images_seen": context.images_seen,
                "train_flops": context.train_flops,
                "metric": metric,
                "value": info.value(result),
                "categories": category_values(result),
                "n_images": info.images_scored(result),
            }
            if "chance_level" in result:
                record["chance_level"] = result["chance_level"]
            if "samples" in result:
                record["samples"] = result["samples"]
            log.write(record)
            records.append(record)
        return records


def evaluation_hooks(config: TrainConfig, progress: bool = False) -> list[Hook]:
    if config.eval.every_steps is None:
        return []
    return [Hook(every_steps=config.eval.every_steps, callback=EvaluateAlongTraining(config, progress))]
