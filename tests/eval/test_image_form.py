"""The one image form every metric reads (`t2iscale.images.as_uint8_image`), and image files written from arrays."""

import numpy as np
import pytest
import torch
from PIL import Image

from t2iscale.errors import UserError
from t2iscale.eval.manifest import load_image, save_image
from t2iscale.images import as_uint8_image, make_grid


def test_unambiguous_forms_convert_to_the_same_uint8_image():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for form in (
        image,
        image / 255.0,
        (image / 255.0).astype(np.float16),
        image.astype(np.int64),
        torch.from_numpy(image).float() / 255,
        (torch.from_numpy(image).float() / 255).to(torch.bfloat16),
        Image.fromarray(image),
    ):
        converted = as_uint8_image(form)
        if isinstance(form, torch.Tensor) and form.dtype == torch.bfloat16:
            assert np.abs(converted.astype(int) - image).max() <= 1  # bfloat16 holds 8 bits of mantissa
        else:
            assert converted.dtype == np.uint8 and np.array_equal(converted, image), type(form)
    gray = image[:, :, 0]
    assert np.array_equal(as_uint8_image(gray), np.repeat(gray[:, :, None], 3, axis=2))
    assert np.array_equal(as_uint8_image(gray[:, :, None] / 255), as_uint8_image(gray))
    # Within half a uint8 step of [0, 1] is still [0, 1].
    assert as_uint8_image(np.full((1, 1, 3), 1.001)).max() == 255


def test_saved_float_images_are_not_black(tmp_path):
    # Before: np.asarray(image, dtype=np.uint8) made floats in [0, 1] a black PNG without a word.
    image = np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    save_image(tmp_path / "float.png", image / 255.0)
    assert np.array_equal(load_image(save_image(tmp_path / "uint8.png", image)), image)
    assert np.array_equal(load_image(tmp_path / "float.png"), image)
    with pytest.raises(UserError, match=r"model_space.png' has float values in \[-1, 1\].*\(x \+ 1\) / 2"):
        save_image(tmp_path / "model_space.png", np.linspace(-1, 1, 6 * 6 * 3).reshape(6, 6, 3))
    grid = make_grid(np.stack([image, image]) / 255.0, columns=2, pad=0)
    assert np.array_equal(grid[:, :6], image) and grid.dtype == np.uint8
