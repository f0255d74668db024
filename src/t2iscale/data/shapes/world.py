"""The shapes world's vocabulary and scene complexity: a strict, typed, serializable `WorldConfig`.

A world config fixes everything a scene may contain (shapes, named colors, named sizes, how many objects) and how
scenes are laid out. It is small on purpose: the `tiny` preset (4 colors, 3 shapes, 1-2 objects) is what a ladder
of tiny pixel-space UNets can learn on a CPU in minutes, which is what lets a whole scaling study (paper Sec. 4-5,
here in miniature) run on a laptop. Unknown keys are errors; a config round-trips through JSON.
"""

from __future__ import annotations

import itertools
import json
from functools import cached_property
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from t2iscale.errors import UserError
from t2iscale.strict import TOP_LEVEL, Strict, validation_problems

# Shapes the renderer can draw (see `render.py`); a world picks a subset.
SHAPE_LIBRARY = ("circle", "square", "triangle", "diamond", "cross", "star", "hexagon")

# Spatial relations, GenEval's wording (its "position" category uses "left of", "right of", "above", "below").
RELATIONS = ("left of", "right of", "above", "below")

# Colors must be told apart from each other and from the background after anti-aliasing and a little blur.
MIN_COLOR_DISTANCE = 60.0  # Euclidean, 0-255 RGB units

RGB = tuple[int, int, int]


# WorldConfig fields added after the built-in prompt sets were first published (see `WorldConfig.fingerprint`).
FIELDS_SINCE_FIRST_PROMPTS = ("alt_noise",)


class WorldConfig(Strict):
    """What scenes of one shapes world may contain and how they are laid out.

    Sizes are the side of an object's bounding box as a fraction of the image side, so a scene renders at any
    resolution. Positions are object centers, also in fractions (x to the right, y down).
    """

    model_config = ConfigDict(frozen=True)

    name: str = "custom"
    shapes: tuple[str, ...]
    colors: dict[str, RGB]
    sizes: dict[str, float]
    background: RGB = (128, 128, 128)
    min_objects: int = Field(1, ge=1)
    max_objects: int = Field(2, ge=1, le=8)
    # Gap between objects' bounding boxes (fraction of the image side): objects never touch, so they stay
    # separable after anti-aliasing and so counts are unambiguous.
    object_gap: float = Field(0.07, ge=0.0, le=0.3)
    # Margin between any object and the image border (fraction of the image side).
    border_margin: float = Field(0.04, ge=0.0, le=0.2)
    # Probability that a new object repeats the shape and color of one already in the scene, so that scenes
    # with counts > 1 ("two red circles") are common enough to learn counting from.
    repeat_probability: float = Field(0.3, ge=0.0, le=1.0)
    # A relation is only stated (in captions) or asked (in prompts) when the displacement between two objects
    # is dominated by one axis: |d_other| <= relation_axis_ratio * |d_main| and |d_main| >= min_relation_offset.
    relation_axis_ratio: float = Field(0.6, gt=0.0, le=1.0)
    min_relation_offset: float = Field(0.2, gt=0.0, lt=1.0)
    # Extra words the diverse synthetic captions (syn5) may use for a shape; eval prompts never use them.
    shape_synonyms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Probability that an image's alt text names nothing in it (filler words only: "clipart", "hd wallpaper"),
    # as much web alt-text does; the synthetic captions are unaffected. This is what the paper's recaptioning
    # fixes (Sec. 5.3, Table 4). 0 in `tiny` (whose alt text always names something).
    alt_noise: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("shapes")
    @classmethod
    def _known_shapes(cls, shapes):
        if not shapes:
            raise ValueError("a world needs at least one shape")
        for shape in shapes:
            if shape not in SHAPE_LIBRARY:
                raise ValueError(f"unknown shape {shape!r}; the renderer draws {', '.join(SHAPE_LIBRARY)}")
        if len(set(shapes)) != len(shapes):
            raise ValueError("shapes must be unique")
        return shapes

    @field_validator("colors")
    @classmethod
    def _valid_colors(cls, colors):
        if not colors:
            raise ValueError("a world needs at least one color")
        for name, rgb in colors.items():
            if not name.isalpha() or not name.islower():
                raise ValueError(f"color name {name!r} must be one lowercase word")
            if any(not 0 <= channel <= 255 for channel in rgb):
                raise ValueError(f"color {name!r}: RGB channels must be in 0..255, got {rgb}")
        for (name_a, rgb_a), (name_b, rgb_b) in itertools.combinations(colors.items(), 2):
            if _distance(rgb_a, rgb_b) < MIN_COLOR_DISTANCE:
                raise ValueError(f"colors {name_a!r} and {name_b!r} are too close to tell apart")
        return colors

    @field_validator("sizes")
    @classmethod
    def _valid_sizes(cls, sizes):
        if not sizes:
            raise ValueError("a world needs at least one size")
        for name, side in sizes.items():
            if not name.isalpha() or not name.islower():
                raise ValueError(f"size name {name!r} must be one lowercase word")
            if not 0.08 <= side <= 0.6:
                raise ValueError(f"size {name!r}: side {side} must be a fraction of the image in [0.08, 0.6]")
        return sizes

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_objects > self.max_objects:
            raise ValueError(f"min_objects ({self.min_objects}) exceeds max_objects ({self.max_objects})")
        for name, rgb in self.colors.items():
            if _distance(rgb, self.background) < MIN_COLOR_DISTANCE:
                raise ValueError(f"color {name!r} is too close to the background {self.background}")
        vocabulary = set(self.shapes) | set(self.colors) | set(self.sizes)
        if len(vocabulary) != len(self.shapes) + len(self.colors) + len(self.sizes):
            raise ValueError("shape, color and size names must all differ")
        for shape, synonyms in self.shape_synonyms.items():
            if shape not in self.shapes:
                raise ValueError(f"shape_synonyms names {shape!r}, which is not one of the world's shapes")
            for synonym in synonyms:
                if synonym in vocabulary:
                    raise ValueError(f"synonym {synonym!r} of {shape!r} is already a word of the world")
        return self

    # -- derived vocabulary ------------------------------------------------------------------------------

    @property
    def color_names(self) -> tuple[str, ...]:
        return tuple(self.colors)

    @property
    def size_names(self) -> tuple[str, ...]:
        """Sizes from smallest to largest."""
        return tuple(sorted(self.sizes, key=self.sizes.get))

    @property
    def mentions_size(self) -> bool:
        """With a single size, size words carry no information, so captions leave them out."""
        return len(self.sizes) > 1

    @property
    def max_count(self) -> int:
        """The largest number of objects of one kind a scene can hold (counting prompts go up to it)."""
        return self.max_objects

    @cached_property
    def fingerprint(self) -> str:
        """A canonical JSON string: equal worlds have equal fingerprints (used as a cache key, and to seed the order
        of the evaluation prompts). Fields added after the first prompt sets enter it only when set away from
        their defaults, so an existing world keeps its prompts."""
        data = self.to_dict()
        for name in FIELDS_SINCE_FIRST_PROMPTS:
            if data.get(name) == type(self).model_fields[name].default:
                data.pop(name)
        return json.dumps(data, sort_keys=True)

    def to_dict(self) -> dict:
        return json.loads(self.model_dump_json())

    @classmethod
    def from_dict(cls, data: dict, source: str = "world config") -> WorldConfig:
        """Validate a dict; any problem raises a UserError that names the offending key."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"key {problem.key or TOP_LEVEL!r}: {problem.message}"
                for problem in validation_problems(error)
            )
            raise UserError(f"{source}: {problems}") from error


def _distance(rgb_a, rgb_b) -> float:
    return sum((a - b) ** 2 for a, b in zip(rgb_a, rgb_b)) ** 0.5


# Named presets. `tiny` is what the CPU demo trains on: few words, one size, at most two objects, so a
# ~100k-parameter UNet at 32 px can learn it in minutes. `default` is richer and still parses at 32 px.
WORLD_PRESETS: dict[str, dict] = {
    "tiny": {
        "name": "tiny",
        "shapes": ("circle", "square", "triangle"),
        "colors": {
            "red": (220, 40, 40),
            "green": (40, 170, 60),
            "blue": (40, 80, 220),
            "yellow": (240, 220, 40),
        },
        "sizes": {"large": 0.34},
        "min_objects": 1,
        "max_objects": 2,
    },
    "default": {
        "name": "default",
        "shapes": ("circle", "square", "triangle", "diamond", "cross"),
        "colors": {
            "red": (220, 40, 40),
            "orange": (245, 145, 30),
            "yellow": (240, 220, 40),
            "green": (40, 170, 60),
            "blue": (40, 80, 220),
            "purple": (150, 60, 200),
            "white": (250, 250, 250),
            "black": (20, 20, 20),
        },
        "sizes": {"small": 0.22, "large": 0.3},
        "min_objects": 1,
        "max_objects": 4,
        "shape_synonyms": {"circle": ("disk",), "square": ("block",)},
    },
}


# The findings study's world (`t2iscale study presets --show findings`): `tiny`'s scenes, with web-like alt text that
# says nothing about the image half of the time, so the caption policies differ in what they teach.
WORLD_PRESETS["findings"] = {**WORLD_PRESETS["tiny"], "name": "findings", "alt_noise": 0.5}


def world_preset(name: str) -> WorldConfig:
    if name not in WORLD_PRESETS:
        raise UserError(f"unknown shapes world {name!r}; presets: {', '.join(WORLD_PRESETS)}")
    return WorldConfig.from_dict(WORLD_PRESETS[name], source=f"world preset {name!r}")


def resolve_world(world: WorldConfig | str | Path | dict) -> WorldConfig:
    """A WorldConfig from itself, a preset name, a dict, or a path to a JSON file."""
    if isinstance(world, WorldConfig):
        return world
    if isinstance(world, dict):
        return WorldConfig.from_dict(world)
    if isinstance(world, str) and world in WORLD_PRESETS:
        return world_preset(world)
    path = Path(world)
    if path.suffix == ".json":
        if not path.is_file():
            raise UserError(f"world config file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise UserError(f"world config file {str(path)!r} is not valid JSON: {error}") from error
        return WorldConfig.from_dict(data, source=f"world config file {str(path)!r}")
    raise UserError(
        f"unknown shapes world {str(world)!r}; give a preset ({', '.join(WORLD_PRESETS)}) or a .json file"
    )
