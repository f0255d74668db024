"""`t2iscale export` -> a stock diffusers StableDiffusionPipeline gives `t2iscale sample`'s images, bit for bit.

Tiny random parts built with the real classes (CLIPTextModel + CLIPTokenizer, AutoencoderKL) are saved to a temp
dir, data is prepared and a UNet trained through the CLI, so every loader is the one a user runs. float32 on CPU
(recipe.mixed_precision auto -> no autocast), so the tolerance is exact equality of the uint8 images.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from t2iscale.cli import main
from t2iscale.data.vae import save_tiny_random_vae
from t2iscale.errors import UserError
from t2iscale.eval.export import check_exportable_config
from t2iscale.text.tiny import save_tiny_clip_text_encoder
from t2iscale.train.config import validate_config

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from test_real_data_path import write_raw_shards  # noqa: E402

# The second prompt is cut at the tokenizer's 16 tokens in both paths (the export sets model_max_length).
PROMPTS = ["a red circle", "two blue squares left of a green triangle"]
pytestmark = pytest.mark.filterwarnings("ignore:1 of 2 prompts lose words")
SEEDS = [0, 3]


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    shards = write_raw_shards(tmp / "raw", count=16, per_shard=8)
    vae = save_tiny_random_vae(tmp / "vae")
    clip = save_tiny_clip_text_encoder(tmp / "clip")  # layers=2: the default penultimate layer is block 1
    prepared = tmp / "prepared"
    assert main(
        ["data", "prepare", "--shards", shards, "--vae", str(vae), "--text-encoder", str(clip), "--out",
         str(prepared), "--resolution", "32", "--shard-size", "8", "--no-progress"]
    ) == 0  # fmt: skip
    run = tmp / "run"
    # A high learning rate so that 4 steps move the weights far from the random start (images depend on the text).
    assert main(
        ["train", "--quiet", f"--set=run_dir={run}", "--set=data.kind=prepared", f"--set=data.path={prepared}",
         "--set=model.backbone=sdxl-c8-td1_1", "--set=recipe.global_batch=8", "--set=recipe.warmup_steps=1",
         "--set=recipe.lr=3e-2", "--set=budget.total_steps=4", "--set=budget.checkpoint_every_steps=2"]
    ) == 0  # fmt: skip
    return run


def t2iscale_images(run: Path, out: Path, steps: int, guidance: float, weights: str = "final") -> np.ndarray:
    arguments = ["sample", "--run", str(run), "--steps", str(steps), "--guidance", str(guidance)]
    arguments += [f"--prompt={prompt}" for prompt in PROMPTS] + [f"--seed={seed}" for seed in SEEDS]
    assert main([*arguments, "--weights", weights, "--out", str(out)]) == 0
    return np.stack(
        [np.asarray(Image.open(out / f"{i:03d}_s{seed}.png")) for i, (_, seed) in enumerate(pairs())]
    )


def pairs() -> list[tuple[str, int]]:
    return [(prompt, seed) for prompt in PROMPTS for seed in SEEDS]  # `sample`'s order: rows = prompts


def stock_images(folder: Path, steps: int, guidance: float) -> np.ndarray:
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    assert isinstance(pipe, StableDiffusionPipeline)
    pipe.set_progress_bar_config(disable=True)
    generator = [torch.Generator("cpu").manual_seed(seed) for _, seed in pairs()]
    output = pipe([prompt for prompt, _ in pairs()], num_inference_steps=steps, guidance_scale=guidance,
                  generator=generator)  # fmt: skip
    return np.stack([np.asarray(image) for image in output.images])


def test_stock_pipeline_from_the_export_gives_the_sample_commands_images(latent_run, tmp_path):
    folder = tmp_path / "pipeline"
    assert main(["export", str(latent_run), "--out", str(folder)]) == 0
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (folder / part).is_dir(), part
    record = json.loads((folder / "t2iscale_export.json").read_text())
    assert record["call"]["height"] == 32 and record["weights"] == "final"
    # The penultimate CLIP layer is exported as the model without its last block (SD2's convention).
    assert json.loads((folder / "text_encoder" / "config.json").read_text())["num_hidden_layers"] == 1
    weights, config = folder / "unet" / "diffusion_pytorch_model.safetensors", folder / "unet" / "config.json"
    assert weights.stat().st_mode == config.stat().st_mode  # not safetensors' 0600 (t2iscale.file_modes)
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDIMScheduler" and scheduler["steps_offset"] == 1

    ours = t2iscale_images(latent_run, tmp_path / "ours", steps=4, guidance=7.5)
    stock = stock_images(folder, steps=4, guidance=7.5)
    assert ours.shape == stock.shape == (4, 32, 32, 3)
    assert ours.std() > 5  # real pictures, not a constant
    assert not np.array_equal(ours[0], ours[2])  # the prompt changes the image (same seed)
    np.testing.assert_array_equal(stock, ours)  # max abs difference 0 (it was 75/255 with the text mask)


def test_a_checkpoint_exports_too(latent_run, tmp_path):
    folder = tmp_path / "step2"
    assert main(["export", str(latent_run), "--out", str(folder), "--step", "2"]) == 0
    assert json.loads((folder / "t2iscale_export.json").read_text())["weights"] == "step_2"
    ours = t2iscale_images(latent_run, tmp_path / "ours", steps=2, guidance=3.0, weights="step_2")
    np.testing.assert_array_equal(stock_images(folder, steps=2, guidance=3.0), ours)


def test_export_refuses_before_writing(latent_run, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("x")
    assert main(["export", str(latent_run), "--out", str(taken)]) == 1
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    assert main(["export", str(latent_run), "--out", str(tmp_path / "new"), "--step", "3"]) == 1
    err = capsys.readouterr().err
    assert (
        "--step 3: no checkpoint of that step" in err
        and "omit --step" in err
        and not (tmp_path / "new").exists()
    )
    assert main(["export", str(latent_run), "--out", str(tmp_path / "new"), "--step", "2", "--ema"]) == 1
    assert "drop --step" in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "config, says",
    [({"data": {"size": 8}}, "shapes-world run cannot be exported"),
     ({"data": {"kind": "prepared", "path": "p"}, "recipe": {"objective": "flow"}}, "recipe.objective is 'flow'")],
)  # fmt: skip
def test_runs_without_a_stock_pipeline_are_named(config, says):
    with pytest.raises(UserError, match=says):
        check_exportable_config(validate_config({"run_dir": "r", "budget": {"total_steps": 1}, **config}))


def test_eval_generate_on_a_real_data_run_names_its_own_flag_for_prompts(latent_run, tmp_path, capsys):
    # Issue 15: it suggested `--world`, a flag `eval generate` does not have. (Here for the trained real-data run.)
    assert main(["eval", "generate", "--run", str(latent_run), "--out", str(tmp_path / "g")]) == 1
    error = capsys.readouterr().err
    assert "the run's eval.prompts ('shapes-v1') names a shapes-world prompt set" in error
    assert "--prompts FILE" in error and "--world" not in error and not (tmp_path / "g").exists()
    assert main(["eval", "generate", "--run", str(latent_run), "--prompts", "shapes-v1"]) == 1
    assert "--prompts names a shapes-world prompt set" in capsys.readouterr().err
