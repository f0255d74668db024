"""The rendered-set cache: what a run trains on is the same to the bit, and a set is rendered once."""

import multiprocessing

import numpy as np
import torch

from t2iscale.data.shapes import ShapesDataset
from t2iscale.data.shapes.cache import rendered_set
from t2iscale.train.config import validate_config
from t2iscale.train.loop import train


def test_the_rendered_set_is_the_dataset(tmp_path):
    dataset = ShapesDataset("tiny", seed=3, size=40, policy="mix", resolution=16)
    rendered = rendered_set(dataset, root=tmp_path)
    for index in range(40):
        image, _ = dataset.batch([index], epoch=0)
        assert np.array_equal(rendered.images[index], image[0])
        assert rendered.captions(index) == dataset.captions(index)
    again = rendered_set(dataset, root=tmp_path)  # read back, not rendered again
    assert np.array_equal(again.images, rendered.images)
    other = rendered_set(ShapesDataset("tiny", seed=4, size=40, resolution=16), root=tmp_path)
    assert not np.array_equal(other.images, rendered.images)
    assert len(list((tmp_path / "shapes").iterdir())) == 2


def _open(root):
    return rendered_set(ShapesDataset("tiny", seed=5, size=300, resolution=16), root=root).images.sum()


def test_two_processes_that_need_one_set_render_it_once(tmp_path):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_open, [tmp_path, tmp_path])
    assert first == second
    folders = list((tmp_path / "shapes").iterdir())
    assert len(folders) == 1 and folders[0].is_dir()  # no lock or partial folder left behind


def _config(run_dir, render_cache: bool) -> dict:
    return {
        "run_dir": str(run_dir),
        "model": {"backbone": "sdxl-c8-td1_1"},
        "data": {"size": 64, "resolution": 16, "world": "tiny", "render_cache": render_cache},
        "text": {"dim": 16, "max_length": 12, "layers": 1, "heads": 2},
        "recipe": {"global_batch": 8, "warmup_steps": 2, "lr": 1e-3},
        "budget": {"total_steps": 3, "log_every_steps": 1, "checkpoint_every_steps": 3},
    }


def test_a_run_trains_the_same_model_with_and_without_the_cache(tmp_path):
    from safetensors.torch import load_file

    for cache in (True, False):
        train(validate_config(_config(tmp_path / str(cache), cache)), progress=False)
    weights = [
        load_file(str(tmp_path / str(cache) / "final" / "backbone" / "diffusion_pytorch_model.safetensors"))
        for cache in (True, False)
    ]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
