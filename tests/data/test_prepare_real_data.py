"""`t2iscale data prepare` end to end with a tiny random AutoencoderKL and CLIP text encoder."""

import json

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import t2iscale.data.prepare as prepare_module
from t2iscale.cli import main
from t2iscale.data.prepare import PrepareConfig, prepare
from t2iscale.data.prepared_meta import read_prepared_meta
from t2iscale.data.vae import LatentVAE, save_tiny_random_vae
from t2iscale.data.webdataset_reader import WebDatasetReader, first_n
from t2iscale.errors import UserError
from t2iscale.text import load_text_encoder
from t2iscale.text.tiny import save_tiny_clip_text_encoder

RES = 32
N_SAMPLES = 20
FP16 = {"atol": 2e-3, "rtol": 2e-3}  # stored in float16


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models: with other test workers on the 2 cores, two intra-op threads oversubscribe them
    (a tiny conv ran ~100x slower under load), so these tests use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def raw_sample(index: int) -> dict:
    pixels = np.random.default_rng(index).integers(0, 255, (RES + 8 * (index % 3), RES, 3), dtype=np.uint8)
    sample = {"__key__": f"{index:06d}", "png": Image.fromarray(pixels), "txt": f"a red cat {index}"}
    if index % 4:  # every 4th sample has alt-text only; the others 1..7 synthetic captions (5 kept)
        sample["json"] = {
            "synthetic_captions": [f"the dog {rank} of {index}" for rank in range(1 + index % 7)]
        }
    return sample


def write_raw_shards(directory, samples, per_shard=10) -> str:
    directory.mkdir(parents=True)
    with wds.ShardWriter(str(directory / "%06d.tar"), maxcount=per_shard, verbose=0) as writer:
        for sample in samples:
            writer.write(sample)
    return str(directory / f"{{000000..{(len(samples) - 1) // per_shard:06d}}}.tar")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    return {
        "vae": save_tiny_random_vae(root / "vae"),
        "text_encoder": save_tiny_clip_text_encoder(root / "clip"),
        "shards": write_raw_shards(root / "raw", [raw_sample(i) for i in range(N_SAMPLES)]),
    }


def config(parts, out, **overrides) -> PrepareConfig:
    settings = dict(parts, out=out, resolution=RES, batch_size=4, shard_size=6, progress=False) | overrides
    return PrepareConfig(**settings)


def shard_tensors(out) -> list[dict]:
    return [load_file(str(out / shard.file)) for shard in read_prepared_meta(out).shards]


def test_cli_prepares_latents_and_every_caption(parts, tmp_path, capsys):
    out = tmp_path / "prepared"
    argv = ["data", "prepare", "--shards", parts["shards"], "--vae", str(parts["vae"])]
    argv += ["--text-encoder", str(parts["text_encoder"]), "--out", str(out), "--resolution", str(RES)]
    assert main(argv + ["--batch-size", "4", "--shard-size", "6", "--no-progress"]) == 0
    assert "prepared 20 samples in 4 shards" in capsys.readouterr().out

    meta = read_prepared_meta(out)
    assert meta.count == N_SAMPLES and [s.count for s in meta.shards] == [6, 6, 6, 2]
    assert meta.latent_shape == (4, RES // 2, RES // 2) and meta.resolution == RES
    assert (meta.text_dim, meta.text_length) == (32, 16) and meta.text_encoder["layer"] == "penultimate"
    assert meta.vae["scaling_factor"] == 0.13025 and meta.vae["posterior"] == "mean"
    assert meta.counters["good"] == N_SAMPLES and not meta.counters["bad"]
    assert not (out / "prepare_state.json").exists()

    text_encoder = load_text_encoder(parts["text_encoder"])
    vae = LatentVAE(parts["vae"])
    raw = list(WebDatasetReader(parts["shards"], RES))
    shard = shard_tensors(out)[0]
    with safe_open(str(out / meta.shards[0].file), framework="pt") as handle:
        keys, captions = (json.loads(handle.metadata()[name]) for name in ("keys", "captions"))
    assert keys == [s.key for s in raw[:6]]
    assert shard["latents"].shape == (6, 4, 16, 16) and shard["latents"].dtype == torch.float16
    torch.testing.assert_close(
        shard["latents"].float(), vae.encode(torch.stack([s.image for s in raw[:6]])), **FP16
    )
    # every candidate caption: alt-text first, then at most 5 synthetic ones, best first
    assert captions[1] == ["a red cat 1", "the dog 0 of 1", "the dog 1 of 1"]
    assert [len(c) for c in captions] == [1 + min(5, 1 + i % 7) if i % 4 else 1 for i in range(6)]
    offsets = shard["caption_offsets"].tolist()
    assert offsets[0] == 0 and np.diff(offsets).tolist() == [len(c) for c in captions]
    flat = [text for group in captions for text in group]
    expected_ctx, expected_mask = text_encoder.encode(flat)
    torch.testing.assert_close(shard["text_ctx"].float(), expected_ctx, **FP16)
    assert torch.equal(shard["text_mask"], expected_mask)
    empty = load_file(str(out / meta.empty_caption_file))
    torch.testing.assert_close(empty["text_ctx"].float(), text_encoder.encode([""])[0][0], **FP16)


def test_rerun_is_a_no_op_and_other_settings_are_refused(parts, tmp_path):
    out = tmp_path / "prepared"
    prepare(config(parts, out))
    stamps = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    assert prepare(config(parts, out, batch_size=3)).count == N_SAMPLES  # batch size does not matter
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == stamps
    with pytest.raises(UserError, match="other settings"):
        prepare(config(parts, out, resolution=16))


def test_interrupted_prepare_resumes_to_the_same_output(parts, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    prepare(config(parts, reference))

    out = tmp_path / "interrupted"
    real_write = prepare_module.write_prepared_shard

    def write_two_then_crash(out_dir, shard_index, samples):
        if shard_index == 2:
            raise KeyboardInterrupt
        return real_write(out_dir, shard_index, samples)

    monkeypatch.setattr(prepare_module, "write_prepared_shard", write_two_then_crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(config(parts, out))
    state = json.loads((out / "prepare_state.json").read_text())
    assert [s["count"] for s in state["shards"]] == [6, 6] and not (out / "prepared.json").exists()
    monkeypatch.setattr(prepare_module, "write_prepared_shard", real_write)

    decoded = []
    real_decode = WebDatasetReader._decode

    def counting_decode(self, raw, *args):
        decoded.append(raw["__key__"])
        return real_decode(self, raw, *args)

    monkeypatch.setattr(WebDatasetReader, "_decode", counting_decode)
    meta = prepare(config(parts, out))
    assert decoded == [f"{i:06d}" for i in range(12, N_SAMPLES)]  # finished shards are not decoded again
    assert meta.count == N_SAMPLES and meta.counters == read_prepared_meta(reference).counters
    for resumed, whole in zip(shard_tensors(out), shard_tensors(reference)):
        assert resumed.keys() == whole.keys()
        for name in whole:
            assert torch.equal(resumed[name], whole[name]), name


def test_size_keeps_the_first_n_of_the_nested_order(parts, tmp_path):
    meta = prepare(config(parts, tmp_path / "small", size=7))
    keys = []
    for shard in meta.shards:
        with safe_open(str(tmp_path / "small" / shard.file), framework="pt") as handle:
            keys += json.loads(handle.metadata()["keys"])
    all_keys = [f"{i:06d}" for i in range(N_SAMPLES)]
    assert meta.count == 7 and set(keys) == first_n(all_keys, 7)
    assert (tmp_path / "small" / "raw_index.json").exists()


def test_bad_samples_are_counted_and_too_many_stop_prepare(parts, tmp_path):
    samples = [raw_sample(i) for i in range(N_SAMPLES)]
    samples[3]["png"] = b"garbage, not a png"
    del samples[14]["txt"]
    shards = write_raw_shards(tmp_path / "raw", samples)
    meta = prepare(config(parts, tmp_path / "ok", shards=shards, max_bad_fraction=0.2))
    assert meta.count == N_SAMPLES - 2
    assert meta.counters["bad"] == {"unreadable_image": 1, "missing_caption": 1}
    with pytest.raises(UserError, match=r"too much bad data.*000001\.tar"):
        prepare(config(parts, tmp_path / "strict", shards=shards, max_bad_fraction=0.01))


def test_learned_text_encoder_is_refused(parts, tmp_path):
    from t2iscale.text import LearnedTextEncoder

    LearnedTextEncoder(["a", "cat"], dim=16, max_length=8, layers=1, heads=2).save(tmp_path / "learned")
    with pytest.raises(UserError, match="frozen pretrained"):
        prepare(config(parts, tmp_path / "out", text_encoder=tmp_path / "learned"))


def test_cli_reports_bad_options_in_one_line(parts, tmp_path, capsys):
    argv = ["data", "prepare", "--shards", parts["shards"], "--vae", str(parts["vae"]), "--text-encoder"]
    argv += [str(parts["text_encoder"]), "--out", str(tmp_path / "out"), "--batch-size", "0"]
    assert main(argv) == 1
    assert "--batch-size" in capsys.readouterr().err


def test_a_truncated_shard_counts_its_lost_samples_and_stops_prepare(parts, tmp_path, capsys):
    # Issue 14, item 7: one of three 100-sample shards cut inside sample 49's caption. Before, `data prepare`
    # reported 249 samples and exit 0, counting one "corrupt_shard" (0.4%); the 51 lost samples are 17%.
    import tarfile

    shards = write_raw_shards(tmp_path / "raw", [raw_sample(i) for i in range(300)], per_shard=100)
    damaged = tmp_path / "raw" / "000001.tar"
    with tarfile.open(damaged) as archive:
        caption = next(m for m in archive.getmembers() if m.name == "000149.txt")
    with open(damaged, "r+b") as file:
        file.truncate(caption.offset_data + 2)
    argv = ["data", "prepare", "--shards", shards, "--vae", str(parts["vae"]), "--text-encoder"]
    argv += [str(parts["text_encoder"]), "--resolution", "8", "--batch-size", "100", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "strict")]) != 0  # default --max-bad-fraction 0.01
    error = capsys.readouterr().err
    assert "too much bad data" in error and "51 bad of 300 samples" in error and "corrupt_shard=51" in error
    assert f"shard {str(damaged)!r}" in error and "51 sample(s) lost of 100" in error

    assert main([*argv, "--out", str(tmp_path / "ok"), "--max-bad-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "prepared 249 samples" in out
    assert "bad data: 51 bad of 300 samples (17.00%): corrupt_shard=51" in out
    assert f"shard {str(damaged)!r}: " in out and "51 sample(s) lost of 100" in out
    meta = read_prepared_meta(tmp_path / "ok")
    assert meta.count == 249 and meta.counters["bad"] == {"corrupt_shard": 51}
    assert meta.counters["damaged"][str(damaged)]["lost"] == 51


@pytest.mark.parametrize("crash_at_shard", [2, 5])  # before the damaged shard, and after it
def test_a_resumed_prepare_counts_a_damaged_shard_once(parts, tmp_path, monkeypatch, crash_at_shard):
    import tarfile

    shards = write_raw_shards(tmp_path / "raw", [raw_sample(i) for i in range(60)], per_shard=20)
    damaged = tmp_path / "raw" / "000001.tar"
    with tarfile.open(damaged) as archive:
        caption = next(m for m in archive.getmembers() if m.name == "000029.txt")
    with open(damaged, "r+b") as file:
        file.truncate(caption.offset_data + 2)
    settings = dict(shards=shards, max_bad_fraction=0.5)
    reference = prepare(config(parts, tmp_path / "reference", **settings))
    assert reference.count == 49 and reference.counters["bad"] == {"corrupt_shard": 11}

    real_write = prepare_module.write_prepared_shard

    def crash(out_dir, shard_index, samples):
        if shard_index == crash_at_shard:
            raise KeyboardInterrupt
        return real_write(out_dir, shard_index, samples)

    monkeypatch.setattr(prepare_module, "write_prepared_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(config(parts, tmp_path / "out", **settings))
    monkeypatch.setattr(prepare_module, "write_prepared_shard", real_write)
    meta = prepare(config(parts, tmp_path / "out", **settings))
    assert meta.count == 49 and meta.counters == reference.counters
