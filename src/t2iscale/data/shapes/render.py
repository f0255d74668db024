"""Rendering scenes to RGB images at any resolution, anti-aliased by supersampling (PIL draws, then box-reduces).

Flat colors on a plain mid-gray background: the background is 0 in a diffusion model's [-1, 1] pixel space, and
clean flat regions with soft (anti-aliased) edges are what small pixel-space models reproduce best and what the
oracle parses most reliably.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from t2iscale.data.shapes.scene import Scene
from t2iscale.data.shapes.world import WorldConfig
from t2iscale.errors import UserError

MIN_RESOLUTION = 16
SUPERSAMPLE = 4  # 4x4 subpixels per pixel: 17 coverage levels on edges, and still thousands of images/s


def _star(points: int, inner: float) -> list[tuple[float, float]]:
    vertices = []
    for k in range(2 * points):
        radius = 1.0 if k % 2 == 0 else inner
        angle = math.pi * k / points - math.pi / 2  # first point straight up
        vertices.append((radius * math.cos(angle), radius * math.sin(angle)))
    return vertices


def _fit_box(vertices: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Scale and shift a polygon so its bounding box is exactly [-1, 1]^2 (an object's size is its box side)."""
    xs, ys = [v[0] for v in vertices], [v[1] for v in vertices]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    sx, sy = (max(xs) - min(xs)) / 2, (max(ys) - min(ys)) / 2
    return tuple(((x - cx) / sx, (y - cy) / sy) for x, y in vertices)


_ARM = 1 / 3  # the cross's arm half-width, in box units (arms one third of the box side wide)

# Polygons in box units ([-1, 1]^2, y down); the circle is drawn as an ellipse instead.
SHAPE_POLYGONS: dict[str, tuple[tuple[float, float], ...]] = {
    "square": ((-1, -1), (1, -1), (1, 1), (-1, 1)),
    "triangle": ((0, -1), (1, 1), (-1, 1)),  # pointing up
    "diamond": ((0, -1), (1, 0), (0, 1), (-1, 0)),
    "cross": (
        (-_ARM, -1),
        (_ARM, -1),
        (_ARM, -_ARM),
        (1, -_ARM),
        (1, _ARM),
        (_ARM, _ARM),
        (_ARM, 1),
        (-_ARM, 1),
        (-_ARM, _ARM),
        (-1, _ARM),
        (-1, -_ARM),
        (-_ARM, -_ARM),
    ),  # fmt: skip
    "star": _fit_box(_star(5, 0.45)),
    "hexagon": _fit_box([(math.cos(math.pi * k / 3), math.sin(math.pi * k / 3)) for k in range(6)]),
}


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    half: float,
    fill,
    half_y: float | None = None,
) -> None:
    """Draw one shape whose bounding box is centered at (cx, cy) with half-side `half`, in canvas pixels.

    `half_y` gives the box a different half-height (the oracle fits stretched templates to imperfect objects).
    """
    half_x, half_y = half, half if half_y is None else half_y
    if shape == "circle":
        # PIL's ellipse box is inclusive of its last pixel, hence the -1.
        draw.ellipse((cx - half_x, cy - half_y, cx + half_x - 1, cy + half_y - 1), fill=fill)
        return
    draw.polygon([(cx + half_x * u, cy + half_y * v) for u, v in SHAPE_POLYGONS[shape]], fill=fill)


def check_resolution(resolution: int) -> int:
    if int(resolution) != resolution or resolution < MIN_RESOLUTION:
        raise UserError(f"resolution {resolution!r} must be an integer of at least {MIN_RESOLUTION} px")
    return int(resolution)


def render_scene(
    scene: Scene, world: WorldConfig, resolution: int, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """The scene as np.uint8 (resolution, resolution, 3) RGB."""
    canvas_px = resolution * supersample
    canvas = Image.new("RGB", (canvas_px, canvas_px), tuple(world.background))
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        half = world.sizes[obj.size] * canvas_px / 2
        draw_shape(
            draw, obj.shape, obj.x * canvas_px, obj.y * canvas_px, half, tuple(world.colors[obj.color])
        )
    # reduce() averages each supersample x supersample block: a box filter, i.e. exact area coverage.
    return np.asarray(canvas.reduce(supersample) if supersample > 1 else canvas)


def shape_coverage(
    shape: str,
    height: int,
    width: int,
    cx: float,
    cy: float,
    box_w: float,
    box_h: float,
    supersample: int = 4,
) -> np.ndarray:
    """Coverage in [0, 1], float32 (height, width), of one shape with a (box_w, box_h) box centered at (cx, cy).

    Pixel units, sub-pixel exact up to the supersampling: the oracle compares parsed objects to these.
    """
    canvas = Image.new("L", (width * supersample, height * supersample), 0)
    draw_shape(
        ImageDraw.Draw(canvas),
        shape,
        cx * supersample,
        cy * supersample,
        box_w * supersample / 2,
        255,
        half_y=box_h * supersample / 2,
    )
    return np.asarray(canvas.reduce(supersample), dtype=np.float32) / 255.0
