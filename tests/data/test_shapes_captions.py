"""Captions are true (they come from the scene graph); alt is short and partial; syn5 is diverse."""

import random
import re

import pytest

from t2iscale.data.shapes import ShapesDataset, caption_nouns, scene_captions, world_preset
from t2iscale.data.shapes.phrases import NUMBER_WORDS, plural
from t2iscale.data.shapes.scene import clear_relation, sample_scene


def mentions(caption, world):
    """(count, size, color, shape) of every 'number? size? color shape' phrase of a dense caption."""
    shapes = {w: s for s in world.shapes for w in (s, plural(s), *world.shape_synonyms.get(s, ()))}
    shapes.update({plural(w): s for s in world.shapes for w in world.shape_synonyms.get(s, ())})
    pattern = (
        r"\b(a|an|one|"
        + "|".join(NUMBER_WORDS[2:])
        + r") (?:("
        + "|".join(world.sizes)
        + r") )?("
        + "|".join(world.colors)
        + r") ("
        + "|".join(sorted(shapes, key=len, reverse=True))
        + r")\b"
    )
    found = []
    for number, size, color, shape in re.findall(pattern, caption):
        count = 1 if number in ("a", "an", "one") else NUMBER_WORDS.index(number)
        found.append((count, size or None, color, shapes[shape]))
    return found


def reference(ref, scene):
    """The scene objects a reference like 'small red circle' or 'circle' fits."""
    *adjectives, shape = ref.split(" ")
    return [o for o in scene.objects if o.shape == shape and all(a in (o.color, o.size) for a in adjectives)]


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_syn1_names_every_object_with_its_attributes_and_only_true_relations(name):
    world = world_preset(name)
    rng = random.Random(0)
    relations_seen = 0
    for _ in range(300):
        scene = sample_scene(world, rng)
        syn1 = scene_captions(scene, world, rng).synthetic[0]
        named = mentions(syn1, world)
        assert sum(count for count, *_ in named) == len(scene.objects), syn1
        for count, size, color, shape in named:
            matching = [
                o for o in scene.objects if (o.shape, o.color) == (shape, color) and size in (None, o.size)
            ]
            assert len(matching) == count, (syn1, scene)
        for a, rel, b in re.findall(
            r"the ([a-z ]+?) is (left of|right of|above|below) the ([a-z ]+?)\.", syn1
        ):
            (obj_a,), (obj_b,) = reference(a, scene), reference(b, scene)  # references pick out one object
            assert clear_relation(obj_a, obj_b, world) == rel
            relations_seen += 1
    assert relations_seen > 50


def test_every_caption_names_only_objects_in_the_scene():
    world = world_preset("default")
    dataset = ShapesDataset(world, seed=0, size=300)
    for index in range(300):
        scene = dataset.scene(index)
        captions = dataset.captions(index, scene)
        present = {o.shape for o in scene.objects}
        for caption in [captions.alt, *captions.synthetic]:
            assert caption_nouns(caption, world) <= present, caption
            for _, _, color, shape in mentions(caption, world):
                assert any((o.color, o.shape) == (color, shape) for o in scene.objects), caption
        # Dense captions name every shape.
        assert all(caption_nouns(c, world) == present for c in captions.synthetic)


def test_alt_is_shorter_and_partial():
    world = world_preset("default")
    dataset = ShapesDataset(world, seed=0, size=400)
    alt_words, syn_words, partial, multi = 0, 0, 0, 0
    for index in range(400):
        scene = dataset.scene(index)
        captions = dataset.captions(index, scene)
        alt_words += len(captions.alt.split())
        syn_words += len(captions.synthetic[0].split())
        kinds = {(o.shape, o.color) for o in scene.objects}
        if len(kinds) > 1:
            multi += 1
            partial += len(caption_nouns(captions.alt, world)) < len({o.shape for o in scene.objects}) or len(
                mentions(captions.alt, world)
            ) < len(kinds)
    assert alt_words < 0.7 * syn_words
    assert partial > 0.5 * multi


def test_syn5_captions_are_diverse_and_best_first():
    world = world_preset("default")
    dataset = ShapesDataset(world, seed=0, size=100)
    for index in range(100):
        captions = dataset.captions(index)
        assert len(captions.synthetic) == 5
        assert len(set(captions.synthetic)) >= 4
    words = {w for i in range(100) for c in dataset.captions(i).synthetic[1:] for w in c.split()}
    assert {"disk", "block"} & words  # shape synonyms
    assert {"beneath", "over", "under", "to"} & words  # relation synonyms


def test_nouns_are_the_worlds_shapes_with_plurals_and_synonyms():
    world = world_preset("default")
    assert caption_nouns("two red disks and a large block, hd wallpaper", world) == {"circle", "square"}
    assert caption_nouns("crosses above a diamond", world) == {"cross", "diamond"}
    assert caption_nouns("geometric shapes clipart", world) == set()


def test_alt_noise_empties_that_share_of_alt_texts_and_leaves_scenes_and_synthetic_captions_alone():
    """The `findings` world is `tiny` with alt_noise 0.5: the same scenes and synthetic captions, and about half of
    its alt texts name nothing in the image (filler words only)."""
    from t2iscale.data.shapes.captions import FILLER_WORDS

    tiny, findings = world_preset("tiny"), world_preset("findings")
    assert findings.alt_noise == 0.5 and tiny.alt_noise == 0.0
    rng_tiny, rng_findings = random.Random(3), random.Random(3)
    n, empty = 2000, 0
    for _ in range(n):
        scene = sample_scene(tiny, rng_tiny)
        assert sample_scene(findings, rng_findings) == scene
        state = rng_findings.getstate()
        captions = scene_captions(scene, findings, rng_findings)
        rng_findings.setstate(state)  # keep both streams in step: the tiny world draws fewer numbers for alt
        assert captions.synthetic == scene_captions(scene, tiny, rng_tiny).synthetic
        rng_findings.setstate(rng_tiny.getstate())
        if not caption_nouns(captions.alt, findings):
            assert captions.alt in FILLER_WORDS
            empty += 1
    share, se = empty / n, (0.25 / n) ** 0.5
    assert abs(share - 0.5) < 4 * se, share  # every scene has objects, so only the noise empties an alt text
