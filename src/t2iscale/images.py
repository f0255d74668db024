"""Small image helpers shared by sampling, evaluation and the report: the one image form, PNG writing, grids.

Every metric reads images as np.uint8 (H, W, 3) RGB, values 0..255: the form of a PNG on disk, and what the
feature networks (Inception's TorchScript takes uint8 0..255) and the CLIP processor (rescales by 1/255) expect.
`as_uint8_image` turns what a caller may hold into that form where the meaning is unambiguous, and refuses the
rest with a one-line `UserError`: a plain `np.asarray(image, dtype=np.uint8)` would turn a float image in [0, 1]
into a black one, and every metric would then be silently wrong (issue 14, item 8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from t2iscale.errors import UserError

# A float value rounds to a uint8 step when it lies within half a step of [0, 1].
_HALF_STEP = 0.5 / 255


def as_uint8_image(image, what: str = "image") -> np.ndarray:
    """One image as np.uint8 (H, W, 3) RGB; `what` names it in the error ("FID reference image 3").

    Converted: uint8 (H, W, 3) as is; other integer dtypes with values in 0..255; floating point with values in
    [0, 1] (within half a step) to round(255 x), so the images u / 255 give back u exactly; grayscale (H, W) or
    (H, W, 1) repeated to 3 channels; a PIL image (converted to RGB); a torch tensor (H, W, C) on any device.
    Refused: floats outside [0, 1] (model space [-1, 1], or 0..255 held as floats: say which), NaN or infinity,
    booleans, integers outside 0..255, channel-first (3, H, W) arrays, 2 or 4 channels, empty images.
    """
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"), dtype=np.uint8)
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor (bfloat16 has no numpy form)
        image = image.detach().cpu()
        image = image.float().numpy() if image.is_floating_point() else image.numpy()
    array = np.asarray(image)
    shape = tuple(array.shape)
    if array.ndim == 3 and array.shape[2] not in (1, 3) and array.shape[0] in (1, 3):
        raise UserError(
            f"{what} has shape {shape}, channels first; metrics read (H, W, 3) images: transpose it (1, 2, 0)"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise UserError(
            f"{what} has shape {shape}; metrics read RGB images of shape (H, W, 3) (or (H, W) gray)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"{what} is empty: shape {shape}")
    array = as_uint8_values(array, what)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def as_uint8_values(array: np.ndarray, what: str) -> np.ndarray:
    """Values -> uint8 0..255 by the rules of `as_uint8_image` (any shape)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise UserError(f"{what} has dtype {array.dtype}; expected uint8 0..255 or floats in [0, 1]")
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise UserError(f"{what} has {array.dtype} values in [{low}, {high}]; expected 0..255")
        return array.astype(np.uint8)
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise UserError(f"{what} holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < -_HALF_STEP or high > 1 + _HALF_STEP:
        hint = (
            "map [-1, 1] images with (x + 1) / 2"
            if low < 0
            else "values above 1 look like 0..255: pass them as uint8"
        )
        raise UserError(
            f"{what} has float values in [{low:.4g}, {high:.4g}]; float images must lie in [0, 1] ({hint})"
        )
    return np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an image (`as_uint8_image`: uint8 (H, W, 3), or floats in [0, 1]) as PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(as_uint8_image(image, f"image for {str(path)!r}")).save(path)
    return path


def make_grid(
    images: np.ndarray, columns: int, pad: int = 2, upscale: int = 1, background: int = 255
) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one (rows·(H+pad)+pad, columns·(W+pad)+pad, 3) image.

    `upscale` enlarges each image by pixel repetition first, so 32 px samples stay readable in a report.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
    images = as_uint8_values(images, "grid images")
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
    count, height, width, _ = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), background, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = pad + row * (height + pad), pad + column * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid
