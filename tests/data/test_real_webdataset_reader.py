import io
import random

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from t2iscale.data.webdataset_reader import (
    ReaderPosition,
    ShardIndex,
    WebDatasetReader,
    expand_shards,
    first_n,
    subset_key,
)
from t2iscale.errors import UserError

RES = 16


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models: with other test workers on the 2 cores, two intra-op threads oversubscribe them
    (a tiny conv ran ~100x slower under load), so these tests use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def three_stripes(width=60, height=20) -> Image.Image:
    """Red | green | blue, each a third of a wide image: a center crop keeps only green."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    pixels[:, :third, 0] = pixels[:, third : 2 * third, 1] = pixels[:, 2 * third :, 2] = 255
    return Image.fromarray(pixels)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def good_sample(index: int, synthetic: int = 3) -> dict:
    sample = {"__key__": f"{index:06d}", "png": png_bytes(three_stripes()), "txt": f"alt text {index}"}
    if synthetic:
        sample["json"] = {"synthetic_captions": [f"synthetic {rank} of {index}" for rank in range(synthetic)]}
    return sample


def write_shards(directory, samples: list[dict], per_shard: int) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(directory / "%06d.tar"), maxcount=per_shard, verbose=0) as writer:
        for sample in samples:
            writer.write(sample)
    count = (len(samples) + per_shard - 1) // per_shard
    return str(directory / f"{{000000..{count - 1:06d}}}.tar")


def keys_of(reader, **kwargs) -> list[str]:
    return [sample.key for sample in reader.samples(**kwargs)]


def test_images_are_center_cropped_resized_and_captions_read(tmp_path):
    pattern = write_shards(tmp_path / "raw", [good_sample(i, synthetic=i) for i in range(4)], per_shard=2)
    samples = list(WebDatasetReader(pattern, RES))
    assert [s.key for s in samples] == ["000000", "000001", "000002", "000003"]
    image = samples[0].image
    assert image.shape == (3, RES, RES) and image.dtype == torch.float32
    torch.testing.assert_close(image[:, 2:-2, 2:-2].mean((1, 2)), torch.tensor([-1.0, 1.0, -1.0]))
    assert samples[1].alt == "alt text 1" and samples[1].synthetic == ["synthetic 0 of 1"]
    assert samples[3].synthetic == [f"synthetic {r} of 3" for r in range(3)] and samples[0].synthetic == []
    assert [(s.shard_index, s.ordinal) for s in samples] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_caption_policies_at_load_time(tmp_path):
    pattern = write_shards(tmp_path / "raw", [good_sample(i, synthetic=6) for i in range(40)], per_shard=20)
    reader = WebDatasetReader(pattern, RES)
    by_policy = {policy: list(reader.captioned(policy, seed=1)) for policy in ("alt", "syn1", "syn5", "mix")}
    assert [caption for _, caption, key in by_policy["alt"]] == [
        f"alt text {int(k)}" for *_, k in by_policy["alt"]
    ]
    assert all(caption == f"synthetic 0 of {int(key)}" for _, caption, key in by_policy["syn1"])
    syn5 = [caption for _, caption, _ in by_policy["syn5"]]
    assert {c.split()[1] for c in syn5} == {"0", "1", "2", "3", "4"}  # top 5 of 6, never the 6th
    assert 10 < sum(c.startswith("alt") for _, c, _ in by_policy["mix"]) < 30
    # the draw depends on (seed, key, epoch) only
    assert syn5 == [caption for _, caption, _ in reader.captioned("syn5", seed=1)]
    assert syn5 != [caption for _, caption, _ in reader.captioned("syn5", seed=1, epoch=1)]


def test_synthetic_policy_counts_samples_without_synthetic_captions(tmp_path):
    samples = [good_sample(i, synthetic=0 if i == 3 else 2) for i in range(10)]
    pattern = write_shards(tmp_path / "raw", samples, per_shard=10)
    reader = WebDatasetReader(pattern, RES, max_bad_fraction=0.2)
    assert len(list(reader.captioned("syn1"))) == 9
    assert reader.counters.bad["missing_synthetic_captions"] == 1 and reader.counters.good == 9
    assert len(list(reader.captioned("alt"))) == 10


def test_nested_subsets(tmp_path):
    pattern = write_shards(tmp_path / "raw", [good_sample(i, synthetic=0) for i in range(30)], per_shard=8)
    all_keys = [f"{i:06d}" for i in range(30)]
    expected = sorted(all_keys, key=lambda key: subset_key(key, 7))
    subsets = {}
    for size in (5, 12, 30):
        reader = WebDatasetReader(pattern, RES, size=size, subset_seed=7, index_path=tmp_path / "index.json")
        subsets[size] = set(keys_of(reader))
        assert subsets[size] == set(expected[:size]) == first_n(all_keys, size, 7)
    assert subsets[5] < subsets[12] < subsets[30]
    # the same subset whatever the shard order
    reversed_urls = list(reversed(expand_shards(pattern)))
    assert set(keys_of(WebDatasetReader(reversed_urls, RES, size=12, subset_seed=7))) == subsets[12]
    assert set(keys_of(WebDatasetReader(pattern, RES, size=12, subset_seed=8))) != subsets[12]
    assert ShardIndex.load_or_build(tmp_path / "index.json", expand_shards(pattern)).count == 30
    with pytest.raises(UserError, match="larger than the 30 samples"):
        WebDatasetReader(pattern, RES, size=31)


def test_resume_after_a_position_continues_the_pass_exactly(tmp_path):
    pattern = write_shards(tmp_path / "raw", [good_sample(i, synthetic=0) for i in range(12)], per_shard=5)
    reader = WebDatasetReader(pattern, RES, size=9, index_path=tmp_path / "index.json")
    full = list(reader.samples())
    cut = full[4]
    counters = reader.counters.__class__(good=5)
    rest = keys_of(reader, start_after=ReaderPosition(cut.shard_index, cut.ordinal), counters=counters)
    assert rest == [s.key for s in full[5:]] and reader.counters.good == 9


def broken_shards(tmp_path) -> str:
    """Shard 0: a .png of garbage bytes and a sample without .txt. Shard 1: truncated mid-way. Shard 2: fine."""
    directory = tmp_path / "broken"
    shard0 = [good_sample(i) for i in range(10)]
    shard0[2]["png"] = b"\x89PNG this is not an image"
    del shard0[5]["txt"]
    shard0[7]["json"] = b"{not json"
    write_shards(directory / "a", shard0, per_shard=10)
    write_shards(directory / "b", [good_sample(i) for i in range(10, 20)], per_shard=10)
    write_shards(directory / "c", [good_sample(i) for i in range(20, 30)], per_shard=10)
    data = (directory / "b" / "000000.tar").read_bytes()
    (directory / "b" / "000000.tar").write_bytes(data[: len(data) // 2 + 300])
    return [str(directory / d / "000000.tar") for d in "abc"]


def test_bad_data_is_skipped_and_counted_by_reason(tmp_path):
    urls = broken_shards(tmp_path)
    reader = WebDatasetReader(urls, RES, max_bad_fraction=0.5)
    keys = keys_of(reader)
    counters = reader.counters
    assert "000002" not in keys and "000005" not in keys and "000007" not in keys
    assert keys[-10:] == [f"{i:06d}" for i in range(20, 30)]
    read_before_cut = len([k for k in keys if 10 <= int(k) < 20])
    assert 3 <= read_before_cut <= 5  # the part before the cut
    # The truncated shard held 10 samples (as the intact ones do): every one not read is lost, and counted.
    lost = 10 - read_before_cut
    assert counters.bad == {"unreadable_image": 1, "missing_caption": 1, "bad_json": 1, "corrupt_shard": lost}
    assert counters.bad_by_shard == {urls[0]: 3, urls[1]: lost}
    assert counters.good == len(keys) and counters.seen == 30
    metrics = counters.as_metrics()
    assert metrics["data/bad_samples"] == 3 + lost and metrics["data/bad_unreadable_image"] == 1


def test_too_much_bad_data_stops_naming_the_shard_and_key(tmp_path):
    urls = broken_shards(tmp_path)
    # The truncated shard b lost 5-7 samples, more than shard a's 3 bad ones.
    with pytest.raises(
        UserError, match=r"most bad samples in shard '.*b/000000\.tar'.*max_bad_fraction 0\.01"
    ):
        list(WebDatasetReader(urls, RES, max_bad_fraction=0.01).samples())
    # checked as it goes once enough samples were seen: names the sample that tipped it
    with pytest.raises(UserError, match=r"shard '.*a/000000\.tar' \(sample '000002', unreadable_image\)"):
        list(WebDatasetReader(urls, RES, max_bad_fraction=0.01, min_samples_for_check=2).samples())


def test_missing_shards_and_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        WebDatasetReader(str(tmp_path / "{000000..000001}.tar"), RES)
    pattern = write_shards(tmp_path / "raw", [good_sample(0)], per_shard=1)
    with pytest.raises(UserError, match="max_bad_fraction"):
        WebDatasetReader(pattern, RES, max_bad_fraction=2.0)


def test_subset_key_is_a_stable_63_bit_hash():
    assert subset_key("000001", 0) == subset_key("000001", 0) != subset_key("000001", 1)
    keys = [f"{random.Random(i).random()}" for i in range(200)]
    assert all(0 <= subset_key(key) < 2**63 for key in keys)
