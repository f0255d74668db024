"""The real-data path end to end with tiny random pretrained parts: raw shards -> prepare -> train -> sample.

The VAE and the text encoder are random diffusers/transformers models built from configs and saved to a temp dir,
so the loading code is the real code (DESIGN.md: nothing is downloaded).
"""

import json

import numpy as np
import webdataset as wds
from PIL import Image

from t2iscale.cli import main
from t2iscale.data.shapes import ShapesDataset
from t2iscale.data.vae import save_tiny_random_vae
from t2iscale.eval.manifest import read_manifest
from t2iscale.text.tiny import save_tiny_clip_text_encoder
from t2iscale.train.jsonl import read_jsonl


def write_raw_shards(folder, count=24, per_shard=12):
    """Web-style shards: {key}.png, {key}.txt alt-text, {key}.json with synthetic captions (the shapes world's)."""
    folder.mkdir()
    dataset = ShapesDataset("tiny", seed=3, size=count, policy="mix", resolution=32)
    with wds.ShardWriter(str(folder / "raw-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for index in range(count):
            record = dataset.record(index)
            sink.write(
                {
                    "__key__": record["key"],
                    "png": Image.fromarray(record["image"]),
                    "txt": record["alt"],
                    "json": {"synthetic_captions": record["synthetic_captions"]},
                }
            )
    return str(folder / "raw-{000000..000001}.tar")


def test_prepare_train_sample_and_generate_on_prepared_latents(tmp_path, capsys):
    shards = write_raw_shards(tmp_path / "raw")
    vae = save_tiny_random_vae(tmp_path / "vae")  # 2x downsampling, 4 latent channels
    text_encoder = save_tiny_clip_text_encoder(tmp_path / "clip")
    prepared = tmp_path / "prepared"
    code = main(
        ["data", "prepare", "--shards", shards, "--vae", str(vae), "--text-encoder", str(text_encoder),
         "--out", str(prepared), "--resolution", "32", "--shard-size", "10", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    assert json.loads((prepared / "prepared.json").read_text())["count"] == 24

    run = tmp_path / "run"
    code = main(
        ["train", "--quiet", f"--set=run_dir={run}", "--set=data.kind=prepared", f"--set=data.path={prepared}",
         "--set=data.caption_policy=syn5", "--set=model.backbone=sdxl-c8-td1_1", "--set=recipe.global_batch=8",
         "--set=recipe.warmup_steps=1", "--set=budget.total_steps=4", "--set=budget.checkpoint_every_steps=2"]
    )  # fmt: skip
    assert code == 0
    records = read_jsonl(run / "metrics.jsonl")
    assert records[-1]["step"] == 4 and np.isfinite(records[-1]["loss"])
    saved = json.loads((run / "final" / "backbone" / "t2iscale.json").read_text())
    assert saved["setting"]["in_channels"] == 4 and saved["setting"]["latent_factor"] == 2  # latent space

    # Sampling encodes the prompt with the frozen encoder and decodes latents with the VAE, back to 32 px.
    code = main(
        ["sample", "--run", str(run), "--prompt", "a red circle", "--prompt", "two blue squares", "--seed", "0",
         "--seed", "1", "--steps", "3", "--out", str(tmp_path / "samples")]
    )  # fmt: skip
    assert code == 0
    assert Image.open(tmp_path / "samples" / "000_s0.png").size == (32, 32)
    # 2 prompts (rows) x 2 seeds (columns), each upscaled 4x to 128 px with 2 px padding.
    assert Image.open(tmp_path / "samples" / "grid.png").size == (2 * 130 + 2, 2 * 130 + 2)

    # The evaluation's generate step writes images and a manifest for a TIFA-format prompt file.
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps([{"id": "p1", "caption": "a red circle"}, {"id": "p2", "caption": "a square"}])
    )
    out = tmp_path / "generated"
    code = main(
        ["eval", "generate", "--run", str(run), "--prompts", str(prompts), "--seeds", "0,1", "--steps", "2",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    entries = read_manifest(out / "manifest.jsonl")
    assert sorted((entry.prompt_id, entry.seed) for entry in entries) == [
        ("p1", 0),
        ("p1", 1),
        ("p2", 0),
        ("p2", 1),
    ]
    assert "score them with" in capsys.readouterr().out
