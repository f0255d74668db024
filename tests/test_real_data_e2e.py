"""The real-data path a lab runs, end to end through the CLI (issue 15), with tiny local models only.

Raw webdataset shards in three styles (LAION: .jpg + .txt + .json metadata; recaptioned: .png + .txt + synthetic
captions in .json; COCO: .jpg + captions only in .json) -> `t2iscale data prepare` (tiny random VAE and CLIP text
encoder, a rule-based spaCy noun tagger saved to disk, two worker processes) -> `t2iscale study run --dry-run`,
which catches what would fail after training -> a three-run data-scaling study evaluated with TIFA (tiny BLIP VQA),
CLIP score (tiny CLIP) and FID (a TorchScript network with fewer feature dimensions than images) -> `t2iscale fit
--x data` on the prepared data's image-noun pairs -> `t2iscale report` -> `t2iscale export` of one run, whose
stock diffusers pipeline gives `t2iscale sample`'s images exactly.
"""

import json

import numpy as np
import pytest
import spacy  # installed with the [dev] and [nouns] extras
import torch
import webdataset as wds
from PIL import Image
from torch import nn

from t2iscale.cli import main
from t2iscale.data.prepared_meta import read_prepared_meta
from t2iscale.data.vae import save_tiny_random_vae
from t2iscale.text.tiny import save_tiny_clip_text_encoder
from tiny_blip import save_tiny_blip

RES = 16
PER_STYLE = 8
NOUNS = ["cat", "dog", "circle", "square", "car", "tree", "house", "bird"]
COLORS = ["red", "blue", "green", "yellow"]

# A tiny BLIP's vocabulary (the words of the TIFA questions below) and the TIFA question file.
BLIP_WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[DEC]",
    "is",
    "there",
    "a",
    "what",
    "color",
    "the",
]
BLIP_WORDS += ["?", "yes", "no", *COLORS, *NOUNS]
PROMPTS = {
    "p0": ("a red cat", "cat", "red"),
    "p1": ("a blue dog", "dog", "blue"),
    "p2": ("a green car", "car", "green"),
}
EVAL_SEEDS = [0, 1]  # 3 prompts x 2 seeds = 6 generated images per evaluation
FID_FEATURES = 4  # fewer than the 6 images of each set, as FID's covariance needs


def image(index: int, size: int) -> Image.Image:
    pixels = np.random.default_rng(index).integers(0, 255, (size + 4 * (index % 3), size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def caption(index: int) -> str:
    return f"a {COLORS[index % 4]} {NOUNS[index % 8]} near a {NOUNS[(index + 3) % 8]}"


def write_shards(root):
    """Three shards, one per style, 8 samples each (keys unique across shards, as webdataset requires)."""
    root.mkdir()
    styles = {
        "laion": lambda i: {
            "jpg": image(i, 24),
            "txt": caption(i),
            "json": {"url": f"http://x/{i}", "similarity": 0.3},
        },
        "recaptioned": lambda i: {
            "png": image(i, 24),
            "txt": f"IMG_{i}.jpg",  # web alt-text naming nothing
            "json": {"synthetic_captions": [caption(i), f"a photo of a {NOUNS[(i + 5) % 8]}"]},
        },
        "coco": lambda i: {"jpg": image(i, 24), "json": {"image_id": i, "captions": [caption(i), "a scene"]}},
    }
    urls = []
    for style_index, (style, make) in enumerate(styles.items()):
        path = root / f"{style}-000000.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(PER_STYLE):
                index = style_index * PER_STYLE + i
                sink.write({"__key__": f"{style}-{index:04d}", **make(index)})
        urls.append(str(path))
    return "::".join(urls)


def save_noun_tagger(directory):
    """The simplest real spaCy pipeline offline: a blank English tokenizer + an attribute ruler tagging NOUN."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add([[{"LOWER": {"IN": NOUNS + ["photo", "scene"]}}]], {"POS": "NOUN"})
    nlp.to_disk(directory)
    return directory


def save_blip(directory):
    save_tiny_blip(directory, BLIP_WORDS)
    return directory


def save_tiny_clip(directory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter], vocab[letter + "</w>"] = len(vocab), len(vocab) + 1
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4)
    text = dict(
        small,
        vocab_size=len(vocab),
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    CLIPModel(
        CLIPConfig(
            text_config=text, vision_config=dict(small, image_size=32, patch_size=8), projection_dim=16
        )
    ).save_pretrained(directory)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=CLIPTokenizer(vocab=vocab, merges=[])).save_pretrained(
        directory
    )
    return directory


class ColorMoments(nn.Module):
    """A TorchScript FID feature network with inception-2015-12-05.pt's interface: uint8 (N, 3, H, W) -> (N, 4)."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float() / 255
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(1, 2, 3)).unsqueeze(1)], dim=1)  # (N, 4)


def write_questions(path):
    entries = []
    for pid, (text, noun, color) in PROMPTS.items():
        entries.append(
            {
                "id": pid,
                "caption": text,
                "question": f"is there a {noun}?",
                "choices": ["yes", "no"],
                "answer": "yes",
                "element_type": "object",
                "element": noun,
            }  # fmt: skip
        )
        entries.append(
            {
                "id": pid,
                "caption": text,
                "question": f"what color is the {noun}?",
                "choices": COLORS[:3],
                "answer": color,
                "element_type": "color",
                "element": color,
            }  # fmt: skip
        )
    path.write_text(json.dumps(entries))
    return path


def toml(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def write_study(path, base: dict, grid: dict) -> str:
    lines = ['name = "real-data"']
    for section, values in base.items():
        lines.append(f"[base.{section}]")
        lines += [f"{key} = {toml(value)}" for key, value in values.items()]
    lines.append("[grid]")
    lines += [f"{key} = {toml(value)}" for key, value in grid.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-data")
    references = root / "fid-reference"
    references.mkdir()
    for index in range(8):
        image(100 + index, RES).resize((RES, RES)).save(references / f"{index:03d}.png")
    torch.manual_seed(0)
    return {
        "root": root,
        "shards": write_shards(root / "raw"),
        "vae": save_tiny_random_vae(root / "vae"),  # 2x downsampling, 4 latent channels
        "text_encoder": save_tiny_clip_text_encoder(root / "text-encoder"),
        "tagger": save_noun_tagger(root / "tagger"),
        "blip": save_blip(root / "blip"),
        "clip": save_tiny_clip(root / "clip"),
        "inception": torch.jit.save(torch.jit.script(ColorMoments()), str(root / "features.pt"))
        or root / "features.pt",
        "questions": write_questions(root / "questions.json"),
        "references": references,
    }


def test_shards_to_prepared_data_to_study_to_law_to_report(parts, tmp_path, capsys):
    root = parts["root"]
    prepared = tmp_path / "prepared"

    # 1. Prepare: the alt-text from .txt, else the first COCO caption in .json; nouns counted with spaCy.
    argv = ["data", "prepare", "--shards", parts["shards"], "--vae", str(parts["vae"]), "--text-encoder"]
    argv += [
        str(parts["text_encoder"]),
        "--out",
        str(prepared),
        "--resolution",
        str(RES),
        "--shard-size",
        "10",
    ]
    argv += ["--caption", "txt", "--caption", "json:captions.0", "--noun-tagger", str(parts["tagger"])]
    argv += ["--workers", "2", "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prepared 24 samples in 3 shards" in out and "8 of 24 samples have synthetic captions" in out
    meta = read_prepared_meta(prepared)
    assert meta.count == 24 and meta.with_synthetic == 8 and not meta.counters["bad"]  # no COCO sample lost
    assert meta.captions == {"caption": ["txt", "json:captions.0"], "synthetic": "json:synthetic_captions"}
    assert meta.noun_tagger["pipeline"] == ["attribute_ruler"] and meta.has_noun_pairs
    # alt: LAION and COCO captions name 2 nouns each ("a red cat near a square"), recaptioned alt-text none.
    assert sum(shard.noun_pairs["alt"] for shard in meta.shards) == 2 * 16

    questions, refs = str(parts["questions"]), str(parts["references"])
    base = {
        "model": {"backbone": "sdxl-c8-td1_1"},
        "data": {
            "kind": "prepared",
            "path": str(prepared),
            "caption_policy": "mix",
            "expect_resolution": RES,
        },
        "recipe": {"global_batch": 4, "warmup_steps": 1, "lr": 1e-3, "ema_decay": 0.99},
        "budget": {"total_steps": 2, "log_every_steps": 1, "checkpoint_every_steps": 2},
        "eval": {
            "every_steps": 2,
            "prompts": questions,
            "seeds": EVAL_SEEDS,
            "sampler_steps": 2,
            "batch_size": 8,
            "metrics": ["tifa", "clip", "fid"],
            "vqa_model": str(parts["blip"]),
            "clip_model": str(parts["clip"]),
            "inception": str(parts["inception"]),
            "fid_reference": refs,
        },  # fmt: skip
    }
    study = tmp_path / "study"

    # 2. The dry-run catches, before anything trains: the default `mix` policy on data where 2/3 of the samples
    # have no synthetic captions (naming the fix), a dataset size above what was prepared.
    spec = write_study(tmp_path / "bad.toml", base, {"dataset_sizes": [100]})
    assert main(["study", "run", spec, "--dir", str(study), "--dry-run"]) == 1
    error = capsys.readouterr().err
    assert "data.caption_policy=alt" in error and "prepared.json" in error
    assert "base.data.size: 100 is larger than the 24 samples prepared" in error

    # ... FID with too few reference images for its 4-d features, and a recipe for 256 px data.
    few = root / "few-references"
    few.mkdir(exist_ok=True)
    for index in range(3):
        image(200 + index, RES).resize((RES, RES)).save(few / f"{index}.png")
    base["data"]["caption_policy"] = "alt"
    base["eval"]["fid_reference"] = str(few)
    spec = write_study(tmp_path / "few.toml", base, {"dataset_sizes": [8]})
    assert main(["study", "run", spec, "--dir", str(study), "--dry-run"]) == 1
    captured = capsys.readouterr()
    assert (
        "eval.fid_reference" in captured.out and "4-d features" in captured.out and "holds 3" in captured.out
    )
    assert main(["study", "run", spec, "--dir", str(study)]) == 1  # refused the same way, nothing trained
    assert "nothing was trained" in capsys.readouterr().err and not (study / "runs").exists()
    spec = write_study(
        tmp_path / "256.toml", {**base, "data": {**base["data"], "expect_resolution": 256}}, {}
    )
    assert main(["study", "run", spec, "--dir", str(study), "--dry-run"]) == 1
    assert "data.expect_resolution: the recipe expects 256 px images" in capsys.readouterr().err

    # 3. The fixed study: three nested sizes, evaluated with TIFA (BLIP), CLIP score and FID along training.
    base["eval"]["fid_reference"] = refs
    spec = write_study(tmp_path / "study.toml", base, {"dataset_sizes": [6, 12, 24]})
    assert main(["study", "run", spec, "--dir", str(study), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "3 runs" in dry and "problem" not in dry
    assert main(["study", "run", spec, "--dir", str(study), "--quiet"]) == 0
    assert "3 finished" in capsys.readouterr().out
    for run in sorted((study / "runs").iterdir()):
        assert {"tifa", "clip", "fid"} <= {
            path.stem for path in (run / "eval" / "step_000002" / "eval").iterdir()
        }
        fid = json.loads((run / "eval" / "step_000002" / "eval" / "fid.json").read_text())
        assert fid["n_generated"] == 6 and fid["n_reference"] == 8 and fid["n_features"] == FID_FEATURES

    # 4. The data law on the prepared data's image-noun pairs (D recorded per shard by prepare).
    assert main(["fit", "--study", str(study), "--x", "data", "--json"]) == 0
    law = json.loads(capsys.readouterr().out)
    assert law["x_description"].startswith("training-set image-noun pairs")
    assert len(law["points"]) == 3 and len({point["x"] for point in law["points"]}) == 3
    assert main(["fit", "--study", str(study), "--x", "data", "--data-measure", "images"]) == 0
    assert "D = training-set images (the dataset size)" in capsys.readouterr().out

    # 5. The report.
    assert main(["report", "--study", str(study), "--quiet"]) == 0
    capsys.readouterr()
    assert "TIFA by element type" in (study / "report" / "report.html").read_text()

    # 6. Export a run of this study to a stock diffusers pipeline, which gives `t2iscale sample`'s images exactly.
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    run = sorted((study / "runs").iterdir())[-1]
    pipeline = tmp_path / "pipeline"
    assert main(["export", str(run), "--out", str(pipeline)]) == 0
    prompts, seeds = ["a red cat", "two blue squares"], [0, 5]
    samples = tmp_path / "samples"
    arguments = ["sample", "--run", str(run), "--steps", "3", "--guidance", "5", "--out", str(samples)]
    assert main([*arguments, *(f"--prompt={p}" for p in prompts), *(f"--seed={s}" for s in seeds)]) == 0
    pairs = [(prompt, seed) for prompt in prompts for seed in seeds]  # sample's order: rows = prompts
    ours = np.stack(
        [np.asarray(Image.open(samples / f"{i:03d}_s{seed}.png")) for i, (_, seed) in enumerate(pairs)]
    )
    pipe = DiffusionPipeline.from_pretrained(pipeline, local_files_only=True)
    assert isinstance(pipe, StableDiffusionPipeline)
    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator("cpu").manual_seed(seed) for _, seed in pairs]
    stock = pipe(
        [prompt for prompt, _ in pairs], num_inference_steps=3, guidance_scale=5.0, generator=generators
    )
    stock = np.stack([np.asarray(image) for image in stock.images])
    assert ours.shape == stock.shape == (4, RES, RES, 3)
    np.testing.assert_array_equal(stock, ours)
