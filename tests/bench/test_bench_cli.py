"""`t2iscale bench` through the real entry point, on the CPU with tiny models (no timing assertions)."""

import dataclasses
import json

import pytest
import torch

from t2iscale.cli import main
from t2iscale.zoo import account
from t2iscale.zoo.setting import Setting

MODELS = ["sdxl-c8-td1_1", "pixart-h64-d2"]
# 32 px -> 4 x 4 x 4 latents, 8 tokens x 32 text context: a whole run takes seconds.
TINY = ["--resolutions", "32", "--text-dim", "32", "--text-len", "8", "--device", "cpu", "--no-progress"]
FEW = ["--steps", "2", "--warmup", "1"]
SETTING = Setting(resolution=32, text_dim=32, text_len=8)

ROW_KEYS = {
    "measure", "impl", "name", "family", "resolution", "batch_size", "params", "gflops_per_image",
    "images_per_s", "achieved_tflops", "mfu", "peak_memory_gib", "time_ratio_to_first", "speedup_over_stock",
    "memory_ratio_to_stock", "error", "timing", "achieved_gflops", "speedup_over_eager", "loop_over_step",
}  # fmt: skip


def bench(capsys, *argv):
    code = main(["bench", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_row(row, steps: int = 2):
    assert set(row) == ROW_KEYS
    assert row["error"] is None
    assert row["images_per_s"] > 0 and row["achieved_tflops"] > 0
    assert 0 < row["mfu"] <= 1
    assert row["peak_memory_gib"] > 0
    timing = row["timing"]
    assert len(timing["samples_s"]) == steps and all(sample > 0 for sample in timing["samples_s"])
    assert timing["p25_s"] <= timing["median_s"] <= timing["p75_s"]
    assert timing["min_s"] <= timing["p25_s"] and timing["p75_s"] <= timing["max_s"]
    assert timing["first_s"] > 0
    assert row["images_per_s"] == pytest.approx(row["batch_size"] / timing["median_s"])


def test_forward_and_train_against_stock_json(capsys, tmp_path):
    out_file = tmp_path / "results" / "bench.json"
    code, out, _ = bench(
        capsys, *MODELS, "--baseline", "stock", "--batch-sizes", "1,2", *TINY, *FEW, "--json", "--out", str(out_file)
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert json.loads(out_file.read_text()) == report
    assert report["device"]["type"] == "cpu" and report["device"]["peak_tflops"] > 0
    assert report["options"]["names"] == MODELS and report["options"]["precision"] == "bf16"
    rows = report["results"]
    # forward and train x 2 models x {toolkit, stock} x 2 batch sizes, ordered measure, batch, model, loop.
    assert len(rows) == 16
    assert [(r["measure"], r["batch_size"], r["name"], r["impl"]) for r in rows[:4]] == [
        ("forward", 1, MODELS[0], "toolkit"),
        ("forward", 1, MODELS[0], "stock"),
        ("forward", 1, MODELS[1], "toolkit"),
        ("forward", 1, MODELS[1], "stock"),
    ]
    for row in rows:
        check_row(row)
        accounting = account(row["name"], SETTING)
        assert row["params"] == accounting.params
        expected = accounting.fwd_gflops if row["measure"] == "forward" else accounting.train_gflops_per_image
        assert row["gflops_per_image"] == pytest.approx(expected)
        if row["name"] == MODELS[0]:
            assert row["time_ratio_to_first"] == 1.0
        else:
            assert row["time_ratio_to_first"] > 0
        if row["impl"] == "toolkit":
            assert row["speedup_over_stock"] > 0 and row["memory_ratio_to_stock"] > 0
        else:
            assert row["speedup_over_stock"] is None
    # The ratios are what they claim to be.
    first = next(r for r in rows if (r["measure"], r["impl"], r["name"], r["batch_size"]) == ("train", "toolkit", MODELS[0], 2))  # fmt: skip
    second = next(r for r in rows if (r["measure"], r["impl"], r["name"], r["batch_size"]) == ("train", "toolkit", MODELS[1], 2))  # fmt: skip
    stock = next(r for r in rows if (r["measure"], r["impl"], r["name"], r["batch_size"]) == ("train", "stock", MODELS[1], 2))  # fmt: skip
    assert second["time_ratio_to_first"] == pytest.approx(
        second["timing"]["median_s"] / first["timing"]["median_s"]
    )
    assert second["speedup_over_stock"] == pytest.approx(second["images_per_s"] / stock["images_per_s"])


def test_table_with_fp32_channels_last_and_recipe_override(capsys):
    code, out, _ = bench(
        capsys, *MODELS, "--measure", "forward,train", "--batch-sizes", "2", "--precision", "fp32",
        "--channels-last", "--set", "ema_decay=null", "--set", "micro_batch=1", *TINY, *FEW,
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("device: cpu") and "TFLOP/s" in lines[0]
    assert "precision: fp32" in out and "channels-last on" in out and "CUDA graphs on" in out
    header_index = next(i for i, line in enumerate(lines) if line.startswith("measure"))
    header = lines[header_index]
    for column in ("median ms", "img/s", "MFU", "peak GiB", "first s", "time/first", "speed/stock"):
        assert column in header
    rows = [line.split() for line in lines[header_index + 1 :]]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("forward", "toolkit", MODELS[0]),
        ("forward", "toolkit", MODELS[1]),
        ("train", "toolkit", MODELS[0]),
        ("train", "toolkit", MODELS[1]),
    ]
    column = {name.strip(): index for index, name in enumerate(n for n in header.split("  ") if n.strip())}
    for row in rows:
        assert float(row[column["img/s"]]) > 0
        assert float(row[column["GFLOP/s"]]) > 0
        assert 0 < float(row[column["MFU"]].rstrip("%")) <= 100
        # no stock or eager baseline asked for, no loop rows
        assert row[column["speed/stock"]] == row[column["speed/eager"]] == row[column["loop/step"]] == "-"
    first = column["time/first"]
    assert rows[0][first] == "1.000" and rows[2][first] == "1.000"  # the first model's time ratio
    assert float(rows[1][first]) > 0


def test_sampling_runs_the_generate_path_next_to_stock(capsys, monkeypatch):
    from t2iscale.eval.text_to_image import TextToImage

    calls = []
    generate = TextToImage.generate

    def counting_generate(self, captions, seeds, **kwargs):
        calls.append((len(captions), kwargs["steps"], kwargs["guidance"]))
        return generate(self, captions, seeds, **kwargs)

    monkeypatch.setattr(TextToImage, "generate", counting_generate)
    code, out, _ = bench(
        capsys, "--sampling", *MODELS, "--batch-sizes", "1,3", "--sampling-steps", "3", *TINY, *FEW, "--json"
    )
    assert code == 0
    rows = json.loads(out)["results"]
    assert {(r["impl"], r["batch_size"]) for r in rows} == {
        (i, b) for i in ("toolkit", "stock") for b in (1, 3)
    }
    assert len(rows) == 8
    for row in rows:
        check_row(row)
        # 3 DDIM steps, each a guided (2-row) forward pass.
        assert row["gflops_per_image"] == pytest.approx(3 * 2 * account(row["name"], SETTING).fwd_gflops)
        assert row["measure"] == "sampling"
    # first call + 1 warm-up + 2 timed, per model and batch size: the toolkit rows time TextToImage.generate.
    assert sorted(calls) == sorted([(batch, 3, 7.5) for _ in MODELS for batch in (1, 3) for _ in range(4)])


def test_toolkit_training_rows_time_the_loops_train_step(capsys, monkeypatch):
    from t2iscale.train import loop

    batches = []
    step = loop.train_step

    def counting_step(optimization, inputs, accelerator):
        batches.append(
            (
                inputs.batch.x0.shape[0],
                inputs.noise.shape[0],
                optimization.ema is not None,
                optimization.recipe.global_batch,
            )
        )
        return step(optimization, inputs, accelerator)

    monkeypatch.setattr(loop, "train_step", counting_step)
    code, out, _ = bench(capsys, MODELS[0], "--measure", "train", "--batch-sizes", "2", *TINY, *FEW, "--json")
    assert code == 0
    assert batches == [(2, 2, True, 2)] * 4  # first + warm-up + 2 timed, with the recipe's EMA
    # The accelerate state is left clean: training in fp32 in this process still works after a bf16 bench.
    from accelerate import Accelerator

    assert Accelerator(cpu=True, mixed_precision="no").mixed_precision == "no"
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


PIXEL = [
    "--pixel",
    "--resolutions",
    "16",
    "--text-dim",
    "16",
    "--text-len",
    "12",
    "--device",
    "cpu",
    "--no-progress",
]


def test_loop_rows_time_the_whole_training_loop_against_its_bare_step(capsys, monkeypatch):
    """--measure loop trains the real loop (shapes world, learned text encoder) and times it from its own log; its
    loop/step ratio is over the train row of the same model and batch, measured in the same run."""
    from t2iscale.train import loop

    trained = []
    train = loop.train

    def counting_train(config, hooks=(), progress=True):
        trained.append((config.model.backbone, config.recipe.global_batch, config.budget.total_steps))
        return train(config, hooks, progress)

    monkeypatch.setattr(loop, "train", counting_train)
    argv = [MODELS[0], "--measure", "train,loop", "--batch-sizes", "4", "--precision", "fp32", *PIXEL, *FEW]
    code, out, _ = bench(capsys, *argv, "--json")
    assert code == 0
    rows = json.loads(out)["results"]
    assert [(row["measure"], row["impl"]) for row in rows] == [("train", "toolkit"), ("loop", "toolkit")]
    step_row, loop_row = rows
    check_row(step_row)
    check_row(loop_row)
    # 1 first + 1 warm-up + 2 timed windows of 5 steps, one training of the real loop
    assert trained == [("sdxl-c8-td1_1", 4, 20)]
    assert loop_row["gflops_per_image"] == step_row["gflops_per_image"]
    assert loop_row["loop_over_step"] == pytest.approx(loop_row["images_per_s"] / step_row["images_per_s"])
    assert step_row["loop_over_step"] is None
    assert loop_row["achieved_gflops"] == pytest.approx(1e3 * loop_row["achieved_tflops"])
    code, out, _ = bench(capsys, *argv)
    assert code == 0 and "loop/step" in out and "GFLOP/s" in out


def test_loop_needs_the_pixel_setting(capsys):
    code, _, err = bench(capsys, MODELS[0], "--measure", "loop", *TINY)
    assert code == 1 and "--measure loop trains in the shapes world" in err and "--pixel" in err


def test_eager_baseline_rows_give_what_compiling_buys(capsys, monkeypatch):
    """--baseline eager: next to each toolkit row, the same path with compile off, and speed/eager between them."""
    from t2iscale.bench import toolkit

    compiled = []
    build = toolkit.build_backbone

    def recording_build(name, setting, options, device):
        compiled.append(options.compile)
        return build(
            name, setting, dataclasses.replace(options, compile="off"), device
        )  # no real compile here

    monkeypatch.setattr(toolkit, "build_backbone", recording_build)
    argv = [
        MODELS[0],
        "--measure",
        "forward",
        "--batch-sizes",
        "2",
        "--compile",
        "full",
        "--baseline",
        "eager",
    ]
    code, out, _ = bench(capsys, *argv, *TINY, *FEW, "--json")
    assert code == 0
    rows = json.loads(out)["results"]
    assert [row["impl"] for row in rows] == ["toolkit", "eager"]
    assert compiled == ["full", "off"]
    assert rows[0]["speedup_over_eager"] == pytest.approx(rows[0]["images_per_s"] / rows[1]["images_per_s"])
    assert rows[1]["speedup_over_eager"] is None


def test_out_of_memory_is_a_row_not_a_crash(capsys, monkeypatch):
    from t2iscale.bench import runner

    time_calls = runner.time_calls

    def fail_large_batches(call, device, warmup, repeats):
        if fail_large_batches.batch_size > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return time_calls(call, device, warmup, repeats)

    original_workload = runner._workload

    def workload(setting, batch, options, offset=0):
        fail_large_batches.batch_size = batch
        return original_workload(setting, batch, options, offset)

    monkeypatch.setattr(runner, "time_calls", fail_large_batches)
    monkeypatch.setattr(runner, "_workload", workload)
    code, out, _ = bench(capsys, MODELS[0], "--measure", "forward", "--batch-sizes", "1,4", *TINY, *FEW)
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith("forward")]
    assert float(rows[0][7]) > 0
    assert rows[1][:7] == ["forward", "toolkit", MODELS[0], "32", "4", "out", "of"]


def test_help_documents_the_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for text in ("--baseline", "--sampling", "--batch-sizes", "--compile", "--channels-last", "MFU", "stock"):
        assert text in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sdxl-td4-4"], "unknown zoo name 'sdxl-td4-4'"),
        (["sdxl-release"], "add-embedding"),
        (["sdxl", "--batch-sizes", "1,x"], "--batch-sizes must be comma-separated positive integers"),
        (["sdxl", "--batch-sizes", "0"], "--batch-sizes"),
        (["sdxl", "--resolutions", "100"], "--resolutions 100"),
        (["pixart-h64-d2", "--resolutions", "24"], "even input grid"),
        (["sdxl", "--measure", "forward,backward"], "--measure takes"),
        (["sdxl", "--sampling", "--measure", "train"], "either --sampling or --measure"),
        (["sdxl-c8-td1_1", "--baseline", "eager", "--compile", "off", *TINY], "compiles nothing"),
        (["sdxl-c8-td1_1", "--baseline", "eager", *TINY], "compiles nothing on the CPU"),
        (["sdxl", "--steps", "0"], "--steps must be at least 1"),
        (["sdxl", "--text-len", "0"], "--text-len"),
        (["sdxl", "--device", "cuda:7"] if not torch.cuda.is_available() else ["sdxl", "--device", "tpu"], "--device"),
        (["sdxl-c8-td1_1", "--measure", "train", "--set", "warmup=3", *TINY], "warmup: unknown recipe key"),
        (["sdxl-c8-td1_1", "--measure", "train", "--set", "global_batch=4", *TINY], "--batch-sizes"),
        (["sdxl-c8-td1_1", "--measure", "train", "--batch-sizes", "3", "--set", "micro_batch=2", *TINY],
         "micro_batch 2 does not divide"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(capsys, argv, message):
    code, out, err = bench(capsys, *argv)
    assert code == 1  # a runtime error; argparse's usage errors exit 2
    assert out == ""
    assert err.startswith("t2iscale: error:") and message in err and err.count("\n") == 1
