"""ShapesDataset: deterministic from (seed, index), nested across sizes, captions reproducible per epoch."""

import numpy as np
import pytest

from t2iscale.data.shapes import ShapesDataset
from t2iscale.errors import UserError


def same_item(a: dict, b: dict) -> bool:
    return np.array_equal(a["image"], b["image"]) and all(
        a[k] == b[k] for k in ("caption", "key", "noun_pairs")
    )


def test_items_are_deterministic_from_seed_and_index():
    first = ShapesDataset("default", seed=7, size=30, policy="mix", resolution=32)
    again = ShapesDataset("default", seed=7, size=30, policy="mix", resolution=32)
    other = ShapesDataset("default", seed=8, size=30, policy="mix", resolution=32)
    for index in range(30):
        item = first.item(index)
        assert item["image"].shape == (32, 32, 3) and item["image"].dtype == np.uint8
        assert isinstance(item["caption"], str) and item["caption"]
        assert same_item(item, again.item(index))
    assert not all(np.array_equal(first.item(i)["image"], other.item(i)["image"]) for i in range(30))
    assert len({first.key(i) for i in range(30)}) == 30


def test_datasets_of_different_sizes_with_one_seed_are_nested():
    small = ShapesDataset("tiny", seed=3, size=40, policy="syn5", resolution=16)
    large = ShapesDataset("tiny", seed=3, size=400, policy="syn5", resolution=16)
    for index in range(40):
        for epoch in (0, 3):
            assert same_item(small.item(index, epoch), large.item(index, epoch))
    assert large.noun_pairs_total() > small.noun_pairs_total() == sum(small.noun_pairs(i) for i in range(40))


def test_caption_draw_is_seeded_by_epoch_so_resumed_runs_see_the_same_captions():
    dataset = ShapesDataset("default", seed=0, size=50, policy="mix")
    epochs = [[dataset.item(i, epoch)["caption"] for i in range(50)] for epoch in range(3)]
    assert epochs[1] == [ShapesDataset("default", 0, 50, "mix").item(i, 1)["caption"] for i in range(50)]
    assert epochs[0] != epochs[1]  # a new epoch draws new captions from the same fixed set
    for index in range(50):
        assert {epochs[e][index] for e in range(3)} <= set(dataset.all_captions(index))


def test_policies_pick_the_right_captions():
    def dataset(policy):
        return ShapesDataset("default", seed=1, size=20, policy=policy)

    for index in range(20):
        captions = dataset("alt").captions(index)
        assert dataset("alt").item(index, 5)["caption"] == captions.alt
        assert dataset("syn1").item(index, 5)["caption"] == captions.synthetic[0]
        assert dataset("syn5").item(index, 5)["caption"] in captions.synthetic
    with pytest.raises(UserError, match="valid policies"):
        ShapesDataset("tiny", policy="synthetic")


def test_synthetic_captions_add_image_noun_pairs():
    totals = {
        p: ShapesDataset("default", seed=0, size=300, policy=p).noun_pairs_total()
        for p in ("alt", "syn1", "mix")
    }
    assert totals["alt"] < totals["syn1"] <= totals["mix"]


def test_batch_path_matches_items():
    dataset = ShapesDataset("default", seed=2, size=64, policy="mix", resolution=32)
    indices = [5, 0, 63, 5]
    images, captions = dataset.batch(indices, epoch=2)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    for row, index in enumerate(indices):
        item = dataset.item(index, epoch=2)
        assert np.array_equal(images[row], item["image"]) and captions[row] == item["caption"]


def test_out_of_range_and_bad_arguments():
    dataset = ShapesDataset("tiny", size=10)
    assert len(dataset) == 10
    with pytest.raises(IndexError):
        dataset.item(10)
    with pytest.raises(UserError, match="resolution"):
        ShapesDataset("tiny", resolution=8)
    with pytest.raises(UserError, match="size"):
        ShapesDataset("tiny", size=0)
