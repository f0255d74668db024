"""`t2iscale eval oracle-check`: the report on ground-truth renders and on noise."""

import json

import pytest

from t2iscale.cli import main
from t2iscale.data.shapes.prompts import CATEGORIES
from t2iscale.eval.oracle_check import format_report, run_oracle_check


def test_report_has_every_category_per_resolution_and_noise_beside_chance():
    report = run_oracle_check("tiny", n=4, resolutions=(32, 48), progress=False)
    assert set(report["resolutions"]) == {"32", "48"}
    for result in report["resolutions"].values():
        truth, noise = result["ground_truth"], result["noise"]
        assert set(truth["per_category"]) == set(CATEGORIES)
        assert truth["accuracy"] >= 0.99 and truth["images"] == 4 * len(CATEGORIES)
        assert noise["images"] == 24 and abs(noise["score"] - noise["chance"]) < 0.1
    text = format_report(report)
    assert "32px ground truth" in text and "chance" in text


def test_cli_json_and_bad_resolutions(capsys):
    assert main(["eval", "oracle-check", "--n", "2", "--resolutions", "32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["world"] == "tiny" and list(report["resolutions"]) == ["32"]
    with pytest.raises(SystemExit) as exit_:  # a usage error: exit 2 with the command's usage
        main(["eval", "oracle-check", "--resolutions", "32,big"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: t2iscale eval oracle-check") and "--resolutions" in err


@pytest.mark.parametrize("resolution", ["8"])
def test_cli_rejects_too_small_images(capsys, resolution):
    assert main(["eval", "oracle-check", "--n", "1", "--resolutions", resolution]) == 1
    assert "at least 16 px" in capsys.readouterr().err
