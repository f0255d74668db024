"""What the metrics of `score_images` draw on, resolved once: `ScoreInputs`. Torch-free.

The generated images and their manifest; the TIFA questions (a question file, or the shapes world's evaluation
prompt set); and what the user gave for the metrics' models and references (a VQA model, a CLIP, an Inception,
reference images). Each metric of the registry (`t2iscale.eval.metrics`) checks what it needs here and computes
its result from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from t2iscale.errors import UserError
from t2iscale.eval.manifest import ManifestEntry, load_image, read_manifest
from t2iscale.eval.samples import SampleScores
from t2iscale.eval.tifa import (
    check_prompts_have_questions,
    load_questions,
    questions_by_prompt,
    validate_questions,
)
from t2iscale.eval.vqa import VQABackend

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class ScoreInputs:
    """Everything the metrics draw on, resolved once."""

    manifest: Path
    image_dir: Path
    entries: list[ManifestEntry]
    questions: list[dict] | None = None
    questions_source: str | None = None
    world: object | None = None  # WorldConfig
    world_name: str | None = None
    prompts: dict = field(default_factory=dict)  # shapes prompt id -> prompt
    # The metrics' models and references, as the user gave them (`score_images`' keywords).
    vqa_backend: VQABackend | None = None
    vqa_model: str | Path | None = None
    clip_model: str | Path | None = None
    inception: str | Path | None = None
    reference_images: str | Path | None = None
    # ImageReward and HPSv2: released checkpoints and the tokenizers they were trained with, all local.
    image_reward_checkpoint: str | Path | None = None
    image_reward_tokenizer: str | Path | None = None
    hpsv2_checkpoint: str | Path | None = None
    hpsv2_tokenizer: str | Path | None = None
    hpsv2_arch: str | Path | None = None  # an OpenCLIP architecture name or JSON config; unset: ViT-H-14
    batch_size: int = 32
    device: str = "cpu"
    progress: bool = True

    @property
    def provenance(self) -> dict:
        """What every result records about its images."""
        return {"manifest": str(self.manifest), "image_dir": str(self.image_dir)}

    @property
    def has_reference(self) -> bool:
        """FID has reference images: a folder, or ground-truth renders of the shapes prompts."""
        return self.reference_images is not None or bool(self.prompts)

    def generated_images(self) -> Iterable[np.ndarray]:
        """The manifest's images, np.uint8 (H, W, 3), read lazily; sized, so FID checks N before any work."""
        return _LazyImages([self.image_dir / entry.path for entry in self.entries])

    def captions(self) -> list[str]:
        """Each image's caption (manifest order): the manifest's, else its prompt's from the questions."""
        prompt_captions = {}
        if self.questions is not None:
            prompt_captions = {
                pid: group[0]["caption"] for pid, group in questions_by_prompt(self.questions).items()
            }
        captions = []
        for entry in self.entries:
            caption = entry.caption or prompt_captions.get(entry.prompt_id)
            if caption is None:
                raise UserError(
                    f"{str(self.manifest)!r}: prompt {entry.prompt_id!r} (seed {entry.seed}) has no caption; add "
                    "'caption' to the manifest or give --questions / --shapes-prompts"
                )
            captions.append(caption)
        return captions

    def samples(self, image_scores: list[float]) -> dict:
        """A per-image metric's scores (manifest order) as a `SampleScores` dict keyed by prompt id and eval seed.

        Each sample carries its prompt's category when the questions have one (GenEval's in the shapes world).
        """
        return self.samples_where_scored(image_scores)

    def samples_where_scored(self, image_scores: list[float | None]) -> dict:
        """`samples` of the images that have a score (None: the image's prompt asks nothing of that kind)."""
        keep = [i for i, score in enumerate(image_scores) if score is not None]
        category = {q["id"]: q.get("category") for q in self.questions or []}
        entries = [self.entries[i] for i in keep]
        categories = [category.get(entry.prompt_id) for entry in entries]
        return SampleScores(
            tuple(entry.prompt_id for entry in entries),
            tuple(entry.seed for entry in entries),
            [image_scores[i] for i in keep],
            categories if any(categories) else None,
        ).to_dict()

    def reference(self) -> tuple[Iterable[np.ndarray], str]:
        """(lazy reference image iterable, description for the result file)."""
        if self.reference_images is not None:
            folder = Path(self.reference_images)
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

        resolution = load_image(self.image_dir / self.entries[0].path).shape[0]
        world, prompts, entries = self.world, self.prompts, self.entries
        renders = _Sized(
            lambda: (
                render_scene(ground_truth_scene(prompts[entry.prompt_id], entry.seed), world, resolution)
                for entry in entries
            ),
            len(entries),
        )
        description = (
            f"ground-truth renders of the shapes world {self.world_name!r} for the same {len(entries)} "
            f"(prompt, seed) pairs as the generated images, at {resolution} px"
        )
        return renders, description


class _LazyImages:
    """Image files read one at a time as np.uint8 (H, W, 3); `len()` without reading any."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (load_image(path) for path in self.paths)


class _Sized:
    """A lazy iterable (`make()` -> a fresh iterator) whose length is known."""

    def __init__(self, make, length: int):
        self.make, self.length = make, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        return iter(self.make())


def resolve_inputs(
    manifest, image_dir, questions, shapes_prompts, world, per_category, allow_partial, **models
) -> ScoreInputs:
    """Read the manifest and the questions, check that they match; `models`: `ScoreInputs`' model fields."""
    manifest = Path(manifest)
    image_dir = Path(image_dir) if image_dir is not None else manifest.parent
    if not image_dir.is_dir():
        raise UserError(f"image folder {str(image_dir)!r} does not exist")
    inputs = ScoreInputs(manifest, image_dir, read_manifest(manifest, image_dir=image_dir), **models)
    if questions is not None and shapes_prompts is not None:
        raise UserError("give either a TIFA question file or a shapes prompt set version, not both")
    if world is not None:
        from t2iscale.data.shapes.world import resolve_world

        inputs.world = resolve_world(world)
        inputs.world_name = inputs.world.name
    if questions is not None:
        inputs.questions = load_questions(questions)
        inputs.questions_source = str(questions)
    elif shapes_prompts is not None:
        if inputs.world is None:
            raise UserError(f"the shapes prompt set {shapes_prompts!r} needs a shapes world (--world NAME)")
        from t2iscale.data.shapes.prompts import eval_prompt_set

        kwargs = {} if per_category is None else {"per_category": per_category}
        prompt_set = eval_prompt_set(inputs.world, version=shapes_prompts, **kwargs)
        inputs.prompts = {prompt.id: prompt for prompt in prompt_set.prompts}
        inputs.questions_source = f"shapes prompt set {shapes_prompts} (world {inputs.world_name})"
        inputs.questions = validate_questions(prompt_set.questions(), source=inputs.questions_source)
    if inputs.questions is not None:
        check_prompts_have_questions(
            (entry.prompt_id for entry in inputs.entries), inputs.questions, inputs.questions_source
        )
        with_images = {entry.prompt_id for entry in inputs.entries}
        without = [pid for pid in questions_by_prompt(inputs.questions) if pid not in with_images]
        if without and not allow_partial:
            raise UserError(
                f"{len(without)} prompt(s) of {inputs.questions_source} have no image in {str(manifest)!r} "
                f"(first: {without[0]!r}); generate every prompt, or allow a partial score (--allow-partial)"
            )
    return inputs
