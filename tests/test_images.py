import numpy as np
from PIL import Image

from t2iscale.images import make_grid, save_png


def test_grid_places_every_image_in_reading_order(tmp_path):
    images = np.stack([np.full((4, 4, 3), value, np.uint8) for value in (10, 20, 30)])
    grid = make_grid(images, columns=2, pad=1, background=0)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    assert grid[1, 1, 0] == 10 and grid[1, 6, 0] == 20 and grid[6, 1, 0] == 30
    assert grid[6, 6, 0] == 0  # the empty fourth cell keeps the background
    path = save_png(tmp_path / "sub" / "grid.png", make_grid(images, columns=3, upscale=2))
    assert Image.open(path).size == (3 * (8 + 2) + 2, 8 + 4)
