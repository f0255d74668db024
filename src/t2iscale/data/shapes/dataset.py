"""A shapes-world training set: (world, seed, number of images, caption policy, resolution).

Image `index` is a pure function of (world, seed, index): datasets with the same seed are nested (the first N
images of a larger set are the smaller set), which is what a data-scaling study (paper Sec. 5, S = a * D^b over
image-noun pairs) needs. The caption an image is shown with is drawn from (seed, index, epoch), so a resumed run
sees the same captions.
"""

from __future__ import annotations

import random

import numpy as np

from t2iscale.data.caption_policy import check_policy, choose_caption
from t2iscale.data.shapes.captions import SceneCaptions, noun_pairs, policy_captions, scene_captions
from t2iscale.data.shapes.render import check_resolution, render_scene
from t2iscale.data.shapes.scene import Scene, sample_scene
from t2iscale.data.shapes.world import WorldConfig, resolve_world
from t2iscale.errors import UserError


class ShapesDataset:
    def __init__(
        self,
        world: WorldConfig | str = "tiny",
        seed: int = 0,
        size: int = 10_000,
        policy: str = "mix",
        resolution: int = 32,
    ):
        self.world = resolve_world(world)
        self.seed = int(seed)
        if size < 1:
            raise UserError(f"dataset size must be at least 1 image, got {size}")
        self.size = int(size)
        self.policy = check_policy(policy)
        self.resolution = check_resolution(resolution)

    def __len__(self) -> int:
        return self.size

    def _check(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(f"image index {index} out of range for a dataset of {self.size} images")
        return int(index)

    def key(self, index: int) -> str:
        return f"s{self.seed}-{self._check(index):09d}"

    def scene(self, index: int) -> Scene:
        return sample_scene(self.world, random.Random(f"shapes-scene/{self.seed}/{self._check(index)}"))

    def captions(self, index: int, scene: Scene | None = None) -> SceneCaptions:
        """The image's fixed alt text and five synthetic captions (like a real pair's alt + captioner output)."""
        scene = scene if scene is not None else self.scene(index)
        return scene_captions(scene, self.world, random.Random(f"shapes-captions/{self.seed}/{index}"))

    def caption(self, index: int, epoch: int = 0, captions: SceneCaptions | None = None) -> str:
        captions = captions if captions is not None else self.captions(index)
        rng = random.Random(f"shapes-caption-draw/{self.seed}/{index}/{epoch}")
        return choose_caption(self.policy, captions.alt, captions.synthetic, rng)

    def render(self, scene: Scene) -> np.ndarray:
        return render_scene(scene, self.world, self.resolution)

    def item(self, index: int, epoch: int = 0) -> dict:
        """dict(image=np.uint8 (H, W, 3), caption=str, key=str, noun_pairs=int)."""
        scene = self.scene(index)
        captions = self.captions(index, scene)
        return {
            "image": self.render(scene),
            "caption": self.caption(index, epoch, captions),
            "key": self.key(index),
            "noun_pairs": noun_pairs(captions, self.policy, self.world),
        }

    def batch(self, indices, epoch: int = 0) -> tuple[np.ndarray, list[str]]:
        """Images (B, H, W, 3) uint8 and their captions for one training step."""
        images = np.empty((len(indices), self.resolution, self.resolution, 3), dtype=np.uint8)
        texts = []
        for row, index in enumerate(indices):
            scene = self.scene(index)
            images[row] = self.render(scene)
            texts.append(self.caption(index, epoch, self.captions(index, scene)))
        return images, texts

    def record(self, index: int) -> dict:
        """Everything known about one image, for shard writing: scene, alt text, synthetic captions."""
        scene = self.scene(index)
        captions = self.captions(index, scene)
        return {
            "key": self.key(index),
            "image": self.render(scene),
            "alt": captions.alt,
            "synthetic_captions": list(captions.synthetic),
            "scene": scene.to_dict(),
            "noun_pairs": noun_pairs(captions, self.policy, self.world),
        }

    def noun_pairs(self, index: int) -> int:
        return noun_pairs(self.captions(self._check(index)), self.policy, self.world)

    def noun_pairs_total(self) -> int:
        """Total image-noun pairs: the data axis D of the paper's S = a * D^b fit (no rendering needed)."""
        return sum(self.noun_pairs(index) for index in range(self.size))

    def all_captions(self, index: int) -> list[str]:
        """Every caption of one image that the dataset's policy can show."""
        return policy_captions(self.captions(self._check(index)), self.policy)

    def describe(self) -> dict:
        return {
            "world": self.world.to_dict(),
            "seed": self.seed,
            "size": self.size,
            "policy": self.policy,
            "resolution": self.resolution,
        }
