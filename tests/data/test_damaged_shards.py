"""Damaged raw shards (issue 14, item 7): samples lost are counted as samples, readable ones after the damage kept.

Tiny real shards written by webdataset's ShardWriter (every member with a pax header, as in real data), then cut
or damaged at exact member offsets found with tarfile, so the samples read and lost are known exactly.
"""

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from t2iscale.data.webdataset_reader import ShardIndex, WebDatasetReader
from t2iscale.errors import UserError

RES = 8
PER_SHARD = 100


def png(index: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(index).integers(0, 255, (RES, RES, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shards(directory, count: int, shards: int) -> list[str]:
    """`shards` shards of `count` samples each ({key}.png + {key}.txt); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(directory / "%06d.tar"), maxcount=count, verbose=0) as writer:
        for index in range(count * shards):
            writer.write({"__key__": f"{index:06d}", "png": png(index), "txt": f"alt {index}"})
    return [str(directory / f"{shard:06d}.tar") for shard in range(shards)]


def members(path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as archive:
        return archive.getmembers()  # (png, txt) per sample, in order


def cut(path, size: int) -> None:
    with open(path, "r+b") as file:
        file.truncate(size)


def read(urls, **options):
    reader = WebDatasetReader(urls, RES, max_bad_fraction=1.0, progress=False, **options)
    return [sample.key for sample in reader.samples()], reader.counters


@pytest.fixture(scope="module")
def three_shards(tmp_path_factory):
    """Three shards of 100 samples (the issue's case), written once; tests copy them."""
    return write_shards(tmp_path_factory.mktemp("raw"), PER_SHARD, shards=3)


def copy_shards(paths, directory) -> list[str]:
    directory.mkdir()
    copies = []
    for path in paths:
        copy = directory / path.rsplit("/", 1)[1]
        copy.write_bytes(Path(path).read_bytes())
        copies.append(str(copy))
    return copies


def test_a_shard_cut_inside_a_sample_counts_every_lost_sample(three_shards, tmp_path):
    # Cut shard 1 inside the data of sample 49's caption: 49 samples are read, sample 49 and the 50 after it
    # are lost. Before: 249 good and one "corrupt_shard", 0.4% bad, so prepare went on (issue 14, item 7).
    urls = copy_shards(three_shards, tmp_path / "raw")
    caption = members(urls[1])[2 * 49 + 1]
    cut(urls[1], caption.offset_data + 2)
    keys, counters = read(urls)
    assert len(keys) == counters.good == 249
    assert counters.bad == {"corrupt_shard": 51} and counters.bad_by_shard == {urls[1]: 51}
    assert counters.seen == 300 and counters.bad_fraction == pytest.approx(0.17)
    damage = counters.damaged[urls[1]]
    assert (damage["read"], damage["expected"], damage["lost"]) == (49, 100, 51)
    summary = counters.summary()
    assert f"shard {urls[1]!r}" in summary and "51 sample(s) lost of 100" in summary
    assert "after sample '000148'" in summary and "median of the 2 intact shard(s)" in summary
    # The bad-data limit sees the lost samples: 17% is above the default 1%.
    with pytest.raises(UserError, match=r"too much bad data.*corrupt_shard=51.*000001\.tar"):
        list(WebDatasetReader(urls, RES, progress=False).samples())


def test_a_shard_cut_between_samples_is_not_a_clean_end(three_shards, tmp_path):
    # Cut exactly at the header of sample 50: tarfile ends there as at a real end of archive, so before the
    # fix the 50 lost samples were not even counted (250 good, 0 bad). Sample 49, the one being read when the
    # shard broke, may have lost members too (its .json, say): it counts as cut.
    urls = copy_shards(three_shards, tmp_path / "raw")
    cut(urls[1], members(urls[1])[2 * 50].offset)
    keys, counters = read(urls)
    assert len(keys) == 249 and counters.bad == {"corrupt_shard": 51}
    assert "without its end-of-archive blocks" in counters.damaged[urls[1]]["problem"]
    # Only the end-of-archive blocks (and the padding) are gone: nothing is lost, nothing is counted.
    last = members(urls[2])[-1]
    end_of_data = last.offset_data + math.ceil(last.size / 512) * 512
    cut(urls[2], end_of_data + 512)  # one of the two zero blocks kept
    keys, counters = read(urls[2:])
    assert len(keys) == 100 and counters.bad_total == 0 and not counters.damaged


def test_a_member_name_stored_twice_loses_only_its_sample(tmp_path):
    # webdataset's grouping stops the whole shard at a duplicate name: 10 of 100 samples were read, and the
    # loss was counted as one bad sample. Right: the 99 other samples are read; the ambiguous one is bad.
    path = tmp_path / "dup.tar"
    with tarfile.open(path, "w") as archive:
        for index in range(PER_SHARD):
            files = [("png", png(index)), ("txt", f"alt {index}".encode())]
            if index == 10:
                files.append(("txt", b"another caption"))
            for extension, data in files:
                info = tarfile.TarInfo(f"{index:06d}.{extension}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    keys, counters = read([str(path)])
    assert len(keys) == 99 and "000010" not in keys and keys[-1] == "000099"
    assert counters.bad == {"duplicate_member": 1} and counters.seen == 100
    assert f"shard {str(path)!r}: duplicate_member=1" in counters.summary()


@pytest.mark.parametrize("member", [0, 2 * 5, 2 * 5 + 1, 2 * PER_SHARD - 1])
def test_samples_after_a_damaged_header_are_read(three_shards, tmp_path, member):
    # Overwrite one member's tar header (after its pax header): tarfile stopped the shard there ("invalid
    # header"). Right: step over it to the next valid header; only the sample that lost a member is bad.
    urls = copy_shards(three_shards[:1], tmp_path / "raw")
    info = members(urls[0])[member]
    data = bytearray(Path(urls[0]).read_bytes())
    data[info.offset_data - 512 : info.offset_data] = b"\x17" * 512
    Path(urls[0]).write_bytes(bytes(data))
    broken_key = info.name.split(".")[0]
    reason = "missing_image" if info.name.endswith(".png") else "missing_caption"
    keys, counters = read(urls)
    assert len(keys) == 99 and broken_key not in keys
    assert counters.bad == {reason: 1} and counters.seen == 100
    assert "damaged tar header(s) stepped over" in counters.summary()
    # The key index (nested subsets) reads past the damage the same way.
    assert ShardIndex.build(urls, progress=False).count == 100


def test_an_img2dataset_stats_file_gives_the_exact_count(three_shards, tmp_path):
    urls = copy_shards(three_shards[1:2], tmp_path / "raw")
    cut(urls[0], members(urls[0])[2 * 30].offset)
    # No intact shard to estimate from: only the sample being read when the shard broke is counted.
    keys, counters = read(urls)
    assert len(keys) == 29 and counters.bad == {"corrupt_shard": 1}
    assert counters.damaged[urls[0]]["expected"] is None
    assert "1 sample(s) counted as lost (the one cut); the true loss is unknown" in counters.summary()
    (tmp_path / "raw" / "000001_stats.json").write_text(json.dumps({"count": 120, "successes": 100}))
    keys, counters = read(urls)
    assert len(keys) == 29 and counters.bad == {"corrupt_shard": 71}
    assert "71 sample(s) lost of 100 (the shard's img2dataset stats file)" in counters.summary()


def test_a_subset_counts_its_share_of_the_lost_samples(three_shards, tmp_path):
    urls = copy_shards(three_shards, tmp_path / "raw")
    caption = members(urls[1])[2 * 49 + 1]
    cut(urls[1], caption.offset_data + 2)
    index = ShardIndex.build(urls, progress=False)
    keys, counters = read(urls, size=150)
    assert counters.bad == {"corrupt_shard": math.ceil(51 * 150 / index.count)}
    assert counters.good == len(keys) and len(keys) <= 150
