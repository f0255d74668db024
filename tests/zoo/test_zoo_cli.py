"""`t2iscale zoo` through the real entry point."""

import json

import pytest

from t2iscale.cli import main
from t2iscale.zoo import account, list_names
from t2iscale.zoo.setting import Setting


def run(capsys, *argv):
    code = main(["zoo", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_lists_every_named_entry_in_the_paper_setting(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("setting: 256 px") and "77 x 1024" in lines[0]
    assert lines[1].split() == ["name", "family", "params", "GMACs", "attn", "GMACs", "fwd", "GFLOPs"]
    rows = {line.split()[0].rstrip("*"): line.split() for line in lines[2:] if not line.startswith("*")}
    assert list(rows) == list_names()
    sdxl = account("sdxl")
    assert rows["sdxl"][1:] == ["sdxl", f"{sdxl.params:,}", f"{sdxl.gmacs:.2f}", f"{sdxl.gmacs_attn:.2f}",
                                f"{sdxl.fwd_gflops:.2f}"]  # fmt: skip
    assert "sdxl-release*" in out  # a release with its own context width is marked


def test_a_tiny_backbones_compute_keeps_its_digits(capsys):
    # The demo's smallest UNet at 16 px: 0.002 GMACs, not "0.00".
    code, out, _ = run(capsys, "--filter", "none", "sdxl-c3-td1_1", "--resolution", "16", "--latent-factor", "1",
                       "--in-channels", "3", "--text-dim", "64", "--text-len", "24")  # fmt: skip
    tiny = account("sdxl-c3-td1_1", Setting(16, 1, 3, 64, 24))
    row = next(line.split() for line in out.splitlines() if line.startswith("sdxl-c3-td1_1"))
    assert code == 0 and row[3] == f"{tiny.gmacs:.4g}" and 0.001 < tiny.gmacs < 0.01


def test_json_with_setting_filter_and_extra_names(capsys):
    code, out, _ = run(
        capsys, "--json", "--filter", "sdxl-td4*", "sdxl-c16-td1_2", "--resolution", "32", "--latent-factor", "1",
        "--in-channels", "3", "--text-dim", "64", "--text-len", "16",
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    names = [row["name"] for row in rows]
    assert names == ["sdxl-td4", "sdxl-td4_4", "sdxl-td4_8", "sdxl-td4_12", "sdxl-c16-td1_2"]
    tiny = rows[-1]
    assert tiny["setting"] == {
        "resolution": 32,
        "latent_factor": 1,
        "in_channels": 3,
        "text_dim": 64,
        "text_len": 16,
    }
    assert tiny["train_gflops_per_image"] == pytest.approx(3 * tiny["fwd_gflops"])
    assert tiny["params"] < 3_000_000
    # a substring filter
    _, out, _ = run(capsys, "--json", "--filter", "pixart")
    assert [row["name"] for row in json.loads(out)] == [name for name in list_names() if "pixart" in name]


def test_compare_prints_ratios_and_percent_change(capsys):
    code, out, _ = run(capsys, "compare", "sdxl", "sdxl-td4_4")
    assert code == 0
    params = next(line for line in out.splitlines() if line.startswith("params")).split()
    assert params[3] == f"{account('sdxl-td4_4').params / account('sdxl').params:.3f}"
    assert params[4] == "-44.7%"
    _, out, _ = run(capsys, "compare", "sdxl", "sdxl-td4_4", "--json")
    comparison = json.loads(out)
    assert (comparison["A"], comparison["B"]) == ("sdxl", "sdxl-td4_4")
    assert comparison["metrics"]["GMACs"]["change_percent"] == pytest.approx(-27.9, abs=0.05)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sdxl-td4-4"], "unknown zoo name 'sdxl-td4-4'"),
        (["compare", "sdxl", "sd2x"], "closest known names: sd2"),
        (["--filter", "nothing*"], "no zoo name matches"),
        (["--resolution", "100"], "latent_factor"),
        (["--resolution", "264", "--filter", "pixart", "pixart-h32-d2"], "pixart"),
        (["--resolution", "264", "--filter", "if-xl"], "'if-xl-c512': the IF layout needs an input grid"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1  # a runtime error (issue 14, item 12); usage errors exit 2
    assert out == ""
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--filtr", "sdxl*"], "unrecognized arguments: --filtr"),
        (["compare", "sdxl"], "exactly two names"),
    ],
)
def test_usage_errors_exit_2_with_the_zoo_usage(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["zoo", *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: t2iscale zoo [options] [NAME ...]")  # was t2iscale's usage
    assert f"t2iscale zoo: error: {message}" in err or message in err.splitlines()[-1]


def test_help_shows_both_forms_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["zoo", "--help"])
    out = capsys.readouterr().out
    assert "t2iscale zoo compare A B" in out
    assert "(default: 256)" in out and "(default: 1024)" in out and "(default: 77)" in out
