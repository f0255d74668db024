"""Generate, then score, linked by files (edm's generate.py): prompts × seeds -> PNGs + a manifest.

Every (prompt, seed) image depends only on the weights, the caption and the seed, so all backbones of a study see
identical starting noise for identical prompts.
"""

from __future__ import annotations

from pathlib import Path

from t2iscale.eval.manifest import ManifestEntry, write_manifest
from t2iscale.eval.prompt_source import PromptSource
from t2iscale.images import save_png

MANIFEST_NAME = "manifest.jsonl"


def generate_images(
    text_to_image,
    source: PromptSource,
    seeds: list[int],
    out_dir: str | Path,
    steps: int = 50,
    guidance: float = 7.5,
    batch_size: int = 64,
    progress: bool = True,
) -> Path:
    """Write `out_dir/images/<prompt>_s<seed>.png` and `out_dir/manifest.jsonl`; returns the manifest path."""
    out_dir = Path(out_dir)
    pairs = [(prompt_id, caption, seed) for prompt_id, caption in source.prompts for seed in seeds]
    images = text_to_image.generate(
        [caption for _, caption, _ in pairs],
        [seed for _, _, seed in pairs],
        steps=steps,
        guidance=guidance,
        batch_size=batch_size,
        progress=progress,
    )
    entries = []
    for (prompt_id, caption, seed), image in zip(pairs, images):
        relative = f"images/{prompt_id}_s{seed}.png"
        save_png(out_dir / relative, image)
        entries.append(ManifestEntry(prompt_id=prompt_id, seed=seed, path=relative, caption=caption))
    return write_manifest(out_dir / MANIFEST_NAME, entries)
