"""Scenes of the shapes world: plain, editable, JSON-serializable dataclasses, and how random scenes are drawn.

A scene is resolution-free: positions and sizes are fractions of the image side, so the same scene renders at
16, 32 or 256 px. Editing a scene (e.g. swapping two objects' colors) and rendering it again is how tests check
that a scorer reacts to exactly the attribute that changed.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

from t2iscale.data.shapes.world import WorldConfig

# Rejection sampling of a layout: tries per object, then whole-layout restarts, before an object is dropped.
PLACEMENT_TRIES_PER_OBJECT = 60
PLACEMENT_RESTARTS = 20


@dataclass
class ShapeObject:
    """One object: `x`, `y` are its center as fractions of the image (x to the right, y down)."""

    shape: str
    color: str
    size: str
    x: float
    y: float


@dataclass
class Scene:
    objects: list[ShapeObject] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"objects": [asdict(obj) for obj in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        return cls(objects=[ShapeObject(**obj) for obj in data["objects"]])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Scene:
        return cls.from_dict(json.loads(text))


def relation(ax: float, ay: float, bx: float, by: float) -> str:
    """Where point a is relative to point b, by the dominant axis of the displacement (y grows downward)."""
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def clear_relation(a: ShapeObject, b: ShapeObject, world: WorldConfig) -> str | None:
    """The relation of a to b when it is unambiguous (one axis clearly dominates), else None.

    Captions only state, and prompts only ask about, relations that a viewer would agree on.
    """
    dx, dy = abs(a.x - b.x), abs(a.y - b.y)
    main, other = max(dx, dy), min(dx, dy)
    if main < world.min_relation_offset or other > world.relation_axis_ratio * main:
        return None
    return relation(a.x, a.y, b.x, b.y)


def _boxes_apart(x1, y1, side1, x2, y2, side2, gap) -> bool:
    reach = (side1 + side2) / 2 + gap
    return abs(x1 - x2) >= reach or abs(y1 - y2) >= reach


def place(
    sides: list[float], world: WorldConfig, rng: random.Random, accept=None
) -> list[tuple[float, float]] | None:
    """Random centers for objects with bounding-box sides `sides` (fractions), boxes `object_gap` apart.

    `accept(centers)` may reject a finished layout (e.g. one whose relation is not the prompt's).
    Returns None when no layout was found.
    """
    margin = world.border_margin
    for _ in range(PLACEMENT_RESTARTS):
        centers: list[tuple[float, float]] = []
        for side in sides:
            low, high = margin + side / 2, 1 - margin - side / 2
            if low > high:
                return None
            for _ in range(PLACEMENT_TRIES_PER_OBJECT):
                x, y = rng.uniform(low, high), rng.uniform(low, high)
                if all(
                    _boxes_apart(x, y, side, cx, cy, sides[k], world.object_gap)
                    for k, (cx, cy) in enumerate(centers)
                ):
                    centers.append((x, y))
                    break
            else:
                break
        if len(centers) == len(sides) and (accept is None or accept(centers)):
            return centers
    return None


def sample_scene(world: WorldConfig, rng: random.Random) -> Scene:
    """A random scene: object count, kinds (with repeats, for counting) and a non-overlapping layout."""
    count = rng.randint(world.min_objects, world.max_objects)
    kinds: list[tuple[str, str, str]] = []
    for _ in range(count):
        if kinds and rng.random() < world.repeat_probability:
            shape, color, _ = rng.choice(kinds)
        else:
            shape, color = rng.choice(world.shapes), rng.choice(world.color_names)
        kinds.append((shape, color, rng.choice(world.size_names)))
    # Crowded draws that do not fit lose objects from the end (rare with the presets).
    while kinds:
        centers = place([world.sizes[size] for _, _, size in kinds], world, rng)
        if centers is not None:
            return Scene(
                [
                    ShapeObject(shape, color, size, round(x, 4), round(y, 4))
                    for (shape, color, size), (x, y) in zip(kinds, centers)
                ]
            )
        kinds.pop()
    return Scene([])
