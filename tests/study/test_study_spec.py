"""Study files: strict validation that names the key, stable run ids, grid expansion, and every shipped preset."""

import os
import stat

import pytest
from study_fixtures import tiny_spec, write_spec_toml

from t2iscale.errors import UserError
from t2iscale.study.plan import expand_grid, load_spec, run_accounting, select_runs
from t2iscale.study.spec import preset_names, preset_text


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda s: s.update(colour="red"), "colour: unknown key"),
        (lambda s: s["grid"].update(backbone=["sdxl"]), "grid.backbone: unknown key"),
        (lambda s: s["grid"].update(backbones=["sdxl-q9"]), "grid.backbones: unknown zoo name 'sdxl-q9'"),
        (lambda s: s["grid"].update(caption_policies=["alt", "poetry"]), "grid.caption_policies.1"),
        (lambda s: s["grid"].update(dataset_sizes=[0]), "grid.dataset_sizes.0"),
        (lambda s: s["grid"].update(seeds=[1, 1]), "grid.seeds: seeds lists a value twice"),
        (lambda s: s["base"]["recipe"].update(lrr=1.0), "base.recipe.lrr: unknown key"),
        (lambda s: s["base"]["recipe"].update(lr=-1.0), "base.recipe.lr"),
        (lambda s: s["base"].update(run_dir="x"), "base: run_dir is set by the study runner"),
        (lambda s: s["base"].update(optimizer={}), "base: unknown key 'optimizer'"),
        (lambda s: s.update(executor={"kind": "cloud"}), "executor"),
        (
            lambda s: s.update(executor={"kind": "local", "partition": "gpu"}),
            "executor.partition: unknown key",
        ),
        (lambda s: s.update(executor={"kind": "slurm", "gpus": 8}), "executor.gpus: unknown key"),
    ],
)
def test_spec_errors_name_the_key(tmp_path, change, key):
    spec = tiny_spec()
    change(spec)
    with pytest.raises(UserError, match="invalid study spec") as error:
        load_spec(spec)
    assert key in str(error.value)


def test_a_toml_file_expands_to_the_grid_product_with_stable_readable_ids(tmp_path):
    spec = tiny_spec(backbones=["sdxl-c8-td1_1", "sd2-c32"])
    spec["grid"].update(dataset_sizes=[32, 64], caption_policies=["alt", "mix"], seeds=[0, 1])
    loaded = load_spec(write_spec_toml(tmp_path / "study.toml", spec))
    runs = expand_grid(loaded)
    assert len(runs) == 2 * 2 * 2 * 2
    assert runs[0].run_id.startswith("sdxl-c8-td1_1.n32.alt.s0-") and runs[-1].run_id.startswith(
        "sd2-c32.n64.mix.s1-"
    )
    assert [run.position for run in runs] == list(range(16))
    assert [run.run_id for run in runs] == [run.run_id for run in expand_grid(load_spec(spec))]  # stable
    first = runs[0].train_config(tmp_path)
    assert (first.data.size, first.data.caption_policy, first.seed, first.data.seed) == (32, "alt", 0, 0)
    assert first.run_dir == str((tmp_path / "runs" / runs[0].run_id).absolute())
    # The hash covers the recipe: the same grid point under another learning rate is another run.
    other = expand_grid(load_spec(spec, ["base.recipe.lr=0.002"]))
    assert runs[0].run_id.split("-")[:-1] == other[0].run_id.split("-")[:-1]
    assert runs[0].run_id != other[0].run_id


def test_only_selects_by_glob_or_substring():
    runs = expand_grid(load_spec(tiny_spec()))
    assert [run.backbone for run in select_runs(runs, "c16")] == ["sdxl-c16-td1_1"]
    assert len(select_runs(runs, "sdxl-*.s0-*")) == 2
    with pytest.raises(UserError, match="matches none"):
        select_runs(runs, "pixart")


def test_a_name_that_is_neither_a_file_nor_a_preset_is_an_error():
    with pytest.raises(UserError, match="neither a file nor a preset.*unet-ablation-mini"):
        load_spec("no-such-study")


def _fake_srun(tmp_path, monkeypatch):
    """submitit's Slurm executor looks for srun before it validates anything; a stub lets it render sbatch files."""
    folder = tmp_path / "bin"
    folder.mkdir()
    srun = folder / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


EXPECTED_PRESETS = {
    "unet-ablation",
    "unet-ablation-mini",
    "transformer-ablation",
    "transformer-ablation-mini",
    "caption-ablation",
    "caption-ablation-mini",
    "data-scaling",
    "data-scaling-mini",
}


def test_the_paper_experiments_ship_as_presets():
    assert set(preset_names()) >= EXPECTED_PRESETS
    unet = load_spec("unet-ablation")
    for name in ["sd2", "sdxl", "if-xl-c512", "sdxl-c128", "sdxl-c192", "sdxl-c384", "sdxl-td2", "sdxl-td4"]:
        assert name in unet.grid.backbones
    for name in ["sdxl-td12", "sdxl-td14", "sdxl-td4_4", "sdxl-td4_8", "sdxl-td4_12", "sdxl-c384-td4_12"]:
        assert name in unet.grid.backbones
    assert load_spec("transformer-ablation").grid.backbones == [
        "pixart-h1152-d28",
        "pixart-h1536-d28",
        "pixart-h1024-d28",
        "pixart-h1024-d56",
    ]
    assert load_spec("caption-ablation-mini").grid.caption_policies == ["alt", "syn1", "syn5", "mix"]
    recipe = unet.base["recipe"]
    assert (recipe["global_batch"], recipe["lr"], recipe["warmup_steps"], recipe["mixed_precision"]) == (
        2048,
        8e-5,
        10_000,
        "bf16",
    )
    assert unet.executor.kind == "slurm" and "PLACEHOLDER" in preset_text("unet-ablation")


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_every_preset_validates_builds_every_config_and_accounts_every_backbone(name, tmp_path, monkeypatch):
    spec = load_spec(name)
    runs = expand_grid(spec)
    assert runs and len({run.run_id for run in runs}) == len(runs)
    for run in runs:
        config = run.train_config(tmp_path)
        assert config.eval.every_steps and config.eval.metrics
        if config.data.kind == "shapes":
            accounting, note = run_accounting(run)
            assert accounting.params > 0 and accounting.gmacs > 0 and not note
            assert config.data.resolution in (32, 64)
    if spec.executor.kind == "slurm":
        from t2iscale.study.executors import submitit_executor

        _fake_srun(tmp_path, monkeypatch)
        executor = submitit_executor(tmp_path, spec.executor)  # submitit validates every #SBATCH option
        script = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
        assert f"#SBATCH --nodes={spec.executor.nodes}" in script
        assert f"#SBATCH --gpus-per-node={spec.executor.gpus_per_node}" in script


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s, tmp: s["grid"].update(backbones=["sdxl-c8-td1_1", "pixart-h40-d2"]),
            r"run pixart-h40-d2\.n64\.mix\.s0: base\.model\.backbone: .*must be a multiple of 16",
        ),
        (
            lambda s, tmp: s["base"]["recipe"].update(objective="foo"),
            r"run sdxl-c8-td1_1\.n64\.mix\.s0: base\.recipe\.objective: Input should be 'ddpm-eps'",
        ),
        (
            lambda s, tmp: s["base"]["eval"].update(metrics=["tifo"]),
            r"run sdxl-c8-td1_1\.n64\.mix\.s0: base\.eval\.metrics\.0: Input should be 'tifa'",
        ),
    ],
    ids=["impossible-size", "objective", "metric"],
)
def test_a_studys_dry_run_catches_what_would_fail_a_run_before_any_folder_exists(
    tmp_path, capsys, change, message
):
    """Issue 14, item 6: the errors `t2iscale train` refuses at its edge, for every run of the grid."""
    import re

    from t2iscale.cli import main

    spec = tiny_spec()
    change(spec, tmp_path)
    spec_file = write_spec_toml(tmp_path / "study.toml", spec)
    assert main(["study", "run", str(spec_file), "--dir", str(tmp_path / "study"), "--dry-run"]) != 0
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "study").exists()


def test_switching_a_presets_executor_kind_drops_the_old_kinds_keys():
    # Issue 15: `--set executor.kind=local` on a Slurm preset failed with "executor.partition: unknown key".
    from t2iscale.study.spec import parse_spec

    assert "partition" in preset_text("unet-ablation")
    local, _ = parse_spec("unet-ablation", ["executor.kind=local", "executor.heartbeat_s=5"])
    assert local.executor.kind == "local" and local.executor.heartbeat_s == 5
    subprocess, _ = parse_spec("unet-ablation", ["executor.kind=subprocess"])
    assert subprocess.executor.kind == "subprocess" and subprocess.executor.launcher == []
    slurm, _ = parse_spec("unet-ablation", ["executor.nodes=2"])  # same kind: the file's keys stay
    assert (slurm.executor.partition, slurm.executor.nodes) == ("gpu", 2)
    with pytest.raises(UserError, match="executor.nodes: unknown key"):  # asked for explicitly: still wrong
        parse_spec("unet-ablation", ["executor.kind=local", "executor.nodes=2"])


@pytest.mark.parametrize(
    ("override", "grid_key"),
    [
        ("base.model.backbone=sdxl-c4-td1_1", "grid.backbones"),
        ('base.model={"backbone": "sdxl-c4-td1_1"}', "grid.backbones"),
        ("base.data.caption_policy=alt", "grid.caption_policies"),
        ("base.data.size=100", "grid.dataset_sizes"),
    ],
)
def test_a_base_override_that_a_grid_axis_replaces_is_an_error_naming_both_keys(override, grid_key):
    from t2iscale.study.spec import parse_spec

    preset = "caption-ablation-mini" if "caption" in override else "data-scaling-mini"
    with pytest.raises(UserError, match=f"--set '{override}' has no effect: {grid_key} sets"):
        parse_spec(preset, [override])
    axis = grid_key.removeprefix("grid.")
    spec, _ = parse_spec(preset, [override, f"{grid_key}=null"])  # the way to use the base value
    assert getattr(spec.grid, axis) is None
    parse_spec(preset, ["base.recipe.lr=1e-4"])  # keys no axis sets are fine
