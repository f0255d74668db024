"""World configs are strict and serializable; scenes are editable dataclasses that render at any resolution."""

import json
import random

import numpy as np
import pytest

from t2iscale.data.shapes import (
    WORLD_PRESETS,
    Scene,
    ShapeObject,
    WorldConfig,
    render_scene,
    resolve_world,
    sample_scene,
    world_preset,
)
from t2iscale.errors import UserError


@pytest.mark.parametrize("name", sorted(WORLD_PRESETS))
def test_presets_round_trip_through_json(name, tmp_path):
    world = world_preset(name)
    assert WorldConfig.from_dict(json.loads(json.dumps(world.to_dict()))) == world
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world.to_dict()))
    assert resolve_world(str(path)) == world
    assert resolve_world(name) == world


def test_tiny_preset_is_small_enough_for_the_cpu_demo():
    tiny = world_preset("tiny")
    assert len(tiny.colors) == 4 and len(tiny.shapes) == 3 and tiny.max_objects == 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": {}}, "'colour'"),
        ({"shapes": ["circle", "blob"]}, "'blob'"),
        ({"colors": {"red": [220, 40, 40], "crimson": [225, 45, 40]}}, "too close"),
        ({"sizes": {"huge": 0.9}}, "'huge'"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"colors": {"gray": [130, 130, 130]}}, "background"),
    ],
)
def test_bad_world_configs_are_user_errors_naming_the_problem(change, message):
    with pytest.raises(UserError, match=message):
        WorldConfig.from_dict({**WORLD_PRESETS["tiny"], **change})


def test_unknown_world_names_and_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"preset \(tiny, default, findings\)"):
        resolve_world("huge")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="bad.json"):
        resolve_world(str(bad))


def test_scene_edits_survive_json_and_change_the_render():
    world = world_preset("tiny")
    scene = Scene(
        [ShapeObject("circle", "red", "large", 0.3, 0.5), ShapeObject("square", "blue", "large", 0.7, 0.5)]
    )
    assert Scene.from_json(scene.to_json()) == scene
    before = render_scene(scene, world, 32)
    scene.objects[0].color, scene.objects[1].color = "blue", "red"
    after = render_scene(scene, world, 32)
    assert not np.array_equal(before, after)
    # Left half turned from red to blue.
    left = after[10:22, 6:14].reshape(-1, 3).mean(axis=0)
    assert left[2] > 150 and left[0] < 100


@pytest.mark.parametrize("resolution", [16, 32, 64, 100])
def test_render_any_resolution_with_soft_edges(resolution):
    world = world_preset("default")
    scene = Scene([ShapeObject("circle", "white", "large", 0.5, 0.5)])
    image = render_scene(scene, world, resolution)
    assert image.shape == (resolution, resolution, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == world.background
    assert tuple(image[resolution // 2, resolution // 2]) == world.colors["white"]
    # Anti-aliasing: some edge pixels lie strictly between background and object.
    gray = image[..., 0].astype(int)
    assert ((gray > 128 + 10) & (gray < 250 - 10)).any()


def test_rendering_is_deterministic():
    world = world_preset("default")
    scene = sample_scene(world, random.Random(5))
    assert np.array_equal(render_scene(scene, world, 32), render_scene(scene, world, 32))


@pytest.mark.parametrize("name", sorted(WORLD_PRESETS))
def test_sampled_scenes_respect_the_world(name):
    world = world_preset(name)
    rng = random.Random(0)
    counts, kinds = set(), set()
    for _ in range(400):
        scene = sample_scene(world, rng)
        counts.add(len(scene.objects))
        for k, a in enumerate(scene.objects):
            kinds.add((a.shape, a.color))
            half = world.sizes[a.size] / 2
            assert half <= a.x <= 1 - half and half <= a.y <= 1 - half
            for b in scene.objects[k + 1 :]:
                reach = (world.sizes[a.size] + world.sizes[b.size]) / 2 + world.object_gap - 1e-3
                assert abs(a.x - b.x) >= reach or abs(a.y - b.y) >= reach  # boxes never touch
    assert counts == set(range(world.min_objects, world.max_objects + 1))
    assert len(kinds) == len(world.shapes) * len(world.colors)
