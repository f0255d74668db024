"""The shapes world's oracle VQA: a deterministic scene parser that answers TIFA questions from pixels alone.

It stands in for TIFA's VQA model (paper Sec. 3) where the world is known exactly, so alignment is measured
without a learned answerer's own errors. It has to read the blurry, imperfect images small diffusion models make,
so every step is tolerant:

1. Color: each pixel is explained as the background blended with one palette color, pixel = bg + alpha * (c - bg).
   For every palette color the best alpha in [0, 1] and the residual are computed; the pixel takes the color with
   the smallest residual. Anti-aliased edges (partial alpha) keep their object's color instead of looking like a
   third color, and washed-out or slightly off colors still land on the right palette entry. A pixel is
   foreground when its alpha is at least `min_alpha` and its residual small.
2. Objects: 4-connected foreground regions. A region dominated by one color is one object of that color (stray
   pixels of a drifting color are absorbed); a mixed region (touching objects of different colors) is split by
   color.
3. Shape: for each of the world's shapes, a template is fitted to the object's soft mask by moments, which blur
   preserves (box side from the mass, box center from the centroid, a Gaussian blur from the excess variance),
   rendered at that sub-pixel box, and compared (mean absolute difference); the closest shape wins. Its box gives
   the position (box center) and the size (nearest world size).
4. Checks: an object must be about as big as the world's sizes allow, roughly square, and close to its best
   template. Speckle of pure noise fails these checks, so on noise the oracle sees (almost) nothing and answers
   like an image-blind guesser: "no" to yes/no questions and the first choice otherwise, i.e. about the chance
   level of the balanced prompt set.

Questions are answered from their structured `query` by the same evaluator that checks the answer key on true
scenes (`t2iscale.data.shapes.queries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image
from scipy import ndimage

from t2iscale.data.shapes.queries import QueryObject, answer_query
from t2iscale.data.shapes.render import shape_coverage
from t2iscale.data.shapes.world import WorldConfig, resolve_world
from t2iscale.errors import UserError

FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
FEATURE_GRID = 3  # object centers binned on a 3x3 grid for the feature vector
FRAME_PX = 2  # pixels around an object's mask that still hold its soft edge
MIN_BLUR_PX = 0.3  # below this, a fitted blur is anti-aliasing the template already has
MOMENTS_CANVAS_PX = 256
MIN_FILL = 0.3  # the thinnest shape (a star) fills about a third of its box
MIN_BOX_FRACTION = 0.6  # a blurred object's mask box may shrink below its true side


@cache
def shape_moments(shape: str) -> tuple[float, float, float, float]:
    """(fill, centroid x, centroid y, variance) of a shape whose box has side 1 and center (0, 0).

    fill = area / box area; variance = E[dx^2 + dy^2]. Used to fit a shape to a blurry blob by its moments.
    """
    n = MOMENTS_CANVAS_PX
    coverage = shape_coverage(shape, n, n, n / 2, n / 2, n, n).astype(np.float64)
    ys, xs = (np.indices((n, n), dtype=np.float64) + 0.5) / n - 0.5
    mass = coverage.sum()
    mean_x, mean_y = (coverage * xs).sum() / mass, (coverage * ys).sum() / mass
    variance = (coverage * ((xs - mean_x) ** 2 + (ys - mean_y) ** 2)).sum() / mass
    return float(mass / n**2), float(mean_x), float(mean_y), float(variance)


@dataclass
class ParsedObject:
    shape: str
    color: str
    size: str
    x: float  # fitted box center, fraction of the width
    y: float  # fitted box center, fraction of the height
    extent: float  # fitted box side, fraction of the image side
    area_px: int
    shape_distance: float  # mean |mask - template| of the chosen shape, 0 = perfect


@dataclass
class ParsedScene:
    objects: list[ParsedObject] = field(default_factory=list)
    height: int = 0
    width: int = 0

    def query_objects(self) -> list[QueryObject]:
        return [QueryObject(o.shape, o.color, o.x, o.y, o.extent) for o in self.objects]


def as_rgb_array(image) -> np.ndarray:
    """np.uint8 (H, W, 3) from a PIL image or an array."""
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"the oracle reads RGB images (H, W, 3); got an array of shape {array.shape}")
    return array


class OracleVQA:
    def __init__(
        self,
        world: WorldConfig | str,
        min_alpha: float = 0.5,
        max_color_residual: float = 0.3,
        max_shape_distance: float = 0.3,
        extent_tolerance: float = 0.45,
        max_aspect: float = 1.6,
        dominant_color_share: float = 0.6,
    ):
        self.world = resolve_world(world)
        self.min_alpha = min_alpha
        self.max_color_residual = max_color_residual
        self.max_shape_distance = max_shape_distance
        self.extent_tolerance = extent_tolerance
        self.max_aspect = max_aspect
        self.dominant_color_share = dominant_color_share
        self.color_names = self.world.color_names
        background = np.asarray(self.world.background, dtype=np.float32) / 255.0
        palette = np.asarray([self.world.colors[c] for c in self.color_names], dtype=np.float32) / 255.0
        self.background = background
        self.directions = palette - background  # (K, 3): from the background toward each color
        self.direction_norms2 = (self.directions**2).sum(axis=1)  # (K,)
        sizes = [self.world.sizes[s] for s in self.world.size_names]
        self.min_extent = min(sizes) * (1 - extent_tolerance)
        self.max_extent = max(sizes) * (1 + extent_tolerance)

    def describe(self) -> str:
        return f"shapes-oracle(world={self.world.name})"

    # -- parsing -------------------------------------------------------------------------------------------

    def _pixel_colors(self, rgb: np.ndarray):
        """Per pixel: palette index (H, W), its alpha (H, W), foreground (H, W), every color's alpha (H, W, K)."""
        offset = rgb.astype(np.float32) / 255.0 - self.background  # (H, W, 3)
        dots = offset @ self.directions.T  # (H, W, K)
        alphas = np.clip(dots / self.direction_norms2, 0.0, 1.0)  # (H, W, K)
        # |offset - alpha * direction|^2, expanded so that no (H, W, K, 3) array is built.
        residual2 = (offset**2).sum(-1, keepdims=True) - 2 * alphas * dots + alphas**2 * self.direction_norms2
        best = residual2.argmin(-1)  # (H, W)
        best_alpha = np.take_along_axis(alphas, best[..., None], -1)[..., 0]
        best_residual = np.sqrt(np.maximum(np.take_along_axis(residual2, best[..., None], -1)[..., 0], 0.0))
        foreground = (best_alpha >= self.min_alpha) & (best_residual <= self.max_color_residual)
        return best, best_alpha, foreground, alphas

    def parse(self, image) -> ParsedScene:
        rgb = as_rgb_array(image)
        height, width = rgb.shape[:2]
        pixels = self._pixel_colors(rgb)
        best, _, foreground, _ = pixels
        regions, _ = ndimage.label(foreground, structure=FOUR_CONNECTED)
        region_areas = np.bincount(regions.ravel())
        side_px = (height + width) / 2
        objects = []
        for region_id, box in enumerate(ndimage.find_objects(regions), start=1):
            if not self._plausible(region_areas[region_id], None, side_px, single=False):
                continue
            region = regions[box] == region_id
            votes = np.bincount(best[box][region], minlength=len(self.color_names))
            dominant = int(votes.argmax())
            if votes[dominant] >= self.dominant_color_share * region_areas[region_id]:
                pieces = [(dominant, box, region)]
            else:  # touching objects of different colors: one piece per connected single-color part
                pieces = []
                for color in np.flatnonzero(votes):
                    parts, _ = ndimage.label(region & (best[box] == color), structure=FOUR_CONNECTED)
                    for part_id, part_box in enumerate(ndimage.find_objects(parts), start=1):
                        sub_box = tuple(
                            slice(o.start + p.start, o.start + p.stop) for o, p in zip(box, part_box)
                        )
                        pieces.append((int(color), sub_box, parts[part_box] == part_id))
            for color, piece_box, mask in pieces:
                if not self._plausible(int(mask.sum()), mask.shape, side_px, single=True):
                    continue
                parsed = self._object(color, piece_box, mask, pixels, height, width)
                if parsed is not None:
                    objects.append(parsed)
        return ParsedScene(objects, height, width)

    def _plausible(self, area_px: int, box_shape, side_px: float, single: bool) -> bool:
        """Cheap checks that discard speckle before any shape fitting (what keeps noise images fast)."""
        smallest_px = self.min_extent * side_px
        if area_px < MIN_FILL * smallest_px**2:
            return False
        if not single:
            return True
        long_px, short_px = max(box_shape), min(box_shape)
        return (
            long_px <= self.max_extent * side_px + 2 * FRAME_PX
            and long_px >= MIN_BOX_FRACTION * smallest_px
            and long_px <= self.max_aspect * short_px
        )

    def _object(self, color, box, mask, pixels, height, width) -> ParsedObject | None:
        _, best_alpha, foreground, alphas = pixels
        # A frame around the mask holds the object's soft edge (anti-aliasing, blur).
        top, left = max(box[0].start - FRAME_PX, 0), max(box[1].start - FRAME_PX, 0)
        bottom, right = min(box[0].stop + FRAME_PX, height), min(box[1].stop + FRAME_PX, width)
        frame = (slice(top, bottom), slice(left, right))
        own = np.zeros((bottom - top, right - left), dtype=bool)
        own[box[0].start - top : box[0].stop - top, box[1].start - left : box[1].stop - left] = mask
        # The object's soft mask: its own pixels' alpha (whatever color they drifted to), its color's alpha on
        # background-like edge pixels, nothing on other objects' pixels; then scaled so that its interior is 1
        # again when the colors came out washed out (blended toward the background).
        soft = np.where(own, best_alpha[frame], np.where(foreground[frame], 0.0, alphas[frame][..., color]))
        level = float(np.clip(np.percentile(best_alpha[frame][own], 90), self.min_alpha, 1.0))
        soft = np.minimum(soft / level, 1.0)
        fit = self._fit_shape(soft)
        if fit is None:
            return None
        shape, distance, center_x, center_y, side_px = fit
        extent = side_px / ((height + width) / 2)
        if not self.min_extent <= extent <= self.max_extent:
            return None
        size = min(self.world.size_names, key=lambda s: abs(self.world.sizes[s] - extent))
        return ParsedObject(
            shape=shape,
            color=self.color_names[color],
            size=size,
            x=(left + center_x) / width,
            y=(top + center_y) / height,
            extent=extent,
            area_px=int(mask.sum()),
            shape_distance=distance,
        )

    def _fit_shape(self, soft: np.ndarray):
        """The world shape that best explains a soft mask: (shape, distance, center x, center y, side), in px.

        Each shape hypothesis is fitted by moments, which blur preserves: its box side from the mass (mass =
        fill * side^2), its box center from the centroid, and a Gaussian blur from the excess variance. The
        fitted template is rendered at that sub-pixel box, blurred, and compared (mean |difference|).
        """
        mass = float(soft.sum())
        if mass <= 1.0:
            return None
        ys, xs = np.indices(soft.shape, dtype=np.float64) + 0.5
        mean_x, mean_y = float((soft * xs).sum() / mass), float((soft * ys).sum() / mass)
        variance = float((soft * ((xs - mean_x) ** 2 + (ys - mean_y) ** 2)).sum() / mass)
        best = None
        for shape in self.world.shapes:
            fill, offset_x, offset_y, shape_variance = shape_moments(shape)
            side = (mass / fill) ** 0.5
            center_x, center_y = mean_x - offset_x * side, mean_y - offset_y * side
            blur_sigma = max(variance - shape_variance * side**2, 0.0) ** 0.5 / 2**0.5
            template = shape_coverage(shape, *soft.shape, center_x, center_y, side, side)
            if blur_sigma > MIN_BLUR_PX:
                template = ndimage.gaussian_filter(template, blur_sigma, mode="constant")
            distance = float(np.abs(soft - template).mean())
            if best is None or distance < best[1]:
                best = (shape, distance, center_x, center_y, side)
        if best[1] > self.max_shape_distance:
            return None
        return best

    # -- answering -----------------------------------------------------------------------------------------

    def answer(self, image, question: dict) -> str:
        return self.answer_all(image, [question])[0]

    def answer_all(self, image, questions: list[dict]) -> list[str]:
        """One answer per question (each one of its `choices`), from a single parse of the image."""
        objects = self.parse(image).query_objects()
        answers = []
        for question in questions:
            if "query" not in question:
                raise UserError(
                    f"question {question.get('question')!r} (id {question.get('id')!r}) has no structured 'query'; "
                    "the shapes oracle answers only shapes-world prompt sets"
                )
            answers.append(answer_query(question["query"], objects, list(question["choices"])))
        return answers

    # -- features (for an FID in the oracle's feature space) -----------------------------------------------

    def feature_names(self) -> list[str]:
        names = [f"count/{c}/{s}" for c in self.color_names for s in self.world.shapes]
        names += [f"{stat}/{s}" for s in self.world.shapes for stat in ("mean_x", "mean_y", "mean_extent")]
        names.append("objects")
        names += [f"grid/{row}/{col}" for row in range(FEATURE_GRID) for col in range(FEATURE_GRID)]
        return names

    def features(self, image) -> np.ndarray:
        """(F,) float64: counts per color x shape, per-shape mean position and size, object count, 3x3 grid."""
        objects = self.parse(image).objects
        shapes, colors = self.world.shapes, self.color_names
        counts = np.zeros((len(colors), len(shapes)))
        stats = np.zeros((len(shapes), 3))
        grid = np.zeros((FEATURE_GRID, FEATURE_GRID))
        for obj in objects:
            s = shapes.index(obj.shape)
            counts[colors.index(obj.color), s] += 1
            stats[s] += (obj.x, obj.y, obj.extent)
            grid[
                min(int(obj.y * FEATURE_GRID), FEATURE_GRID - 1),
                min(int(obj.x * FEATURE_GRID), FEATURE_GRID - 1),
            ] += 1
        per_shape = counts.sum(axis=0)
        stats[per_shape > 0] /= per_shape[per_shape > 0, None]
        return np.concatenate([counts.ravel(), stats.ravel(), [len(objects)], grid.ravel()]).astype(
            np.float64
        )
