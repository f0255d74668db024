"""The shapes world: a procedural compositional image-caption world with an exact alignment oracle.

It lets a whole scaling study (train a ladder of tiny models, evaluate, fit) run on a CPU in minutes.
See DESIGN.md, "Shapes world".
"""

from t2iscale.data.shapes.captions import SceneCaptions, noun_pairs, scene_captions
from t2iscale.data.shapes.dataset import ShapesDataset
from t2iscale.data.shapes.phrases import caption_nouns, normalize_caption
from t2iscale.data.shapes.prompts import (
    CATEGORIES,
    EvalPrompt,
    PromptSet,
    chance_level,
    eval_prompt_set,
    ground_truth_scene,
    heldout_captions,
)
from t2iscale.data.shapes.render import render_scene
from t2iscale.data.shapes.scene import Scene, ShapeObject, sample_scene
from t2iscale.data.shapes.world import WORLD_PRESETS, WorldConfig, resolve_world, world_preset

__all__ = [
    "CATEGORIES",
    "WORLD_PRESETS",
    "EvalPrompt",
    "PromptSet",
    "Scene",
    "SceneCaptions",
    "ShapeObject",
    "ShapesDataset",
    "WorldConfig",
    "caption_nouns",
    "chance_level",
    "eval_prompt_set",
    "ground_truth_scene",
    "heldout_captions",
    "noun_pairs",
    "normalize_caption",
    "render_scene",
    "resolve_world",
    "sample_scene",
    "scene_captions",
    "world_preset",
]
