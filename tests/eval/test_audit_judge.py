"""The judge audit: reliability and ECE, a judge with a known yes-bias on ground-truth renders, ranking flips on
planted scores, and `t2iscale eval audit-judge` end to end on a tiny real study with a tiny random BLIP, shown
in the study's report."""

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_vqa_blip import save_tiny_blip

from t2iscale.cli import main
from t2iscale.eval.audit import JudgedImage, audit_renders, reliability, summarize
from t2iscale.eval.judges import Judgement, Judges, is_yes_no
from t2iscale.findings.judge_audit import RunTarget, ranking
from t2iscale.study.results import RunRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_study import make_study  # noqa: E402


def test_reliability_bins_and_expected_calibration_error():
    result = reliability([0.05, 0.05, 0.95, 0.95, 1.0], [False, True, True, True, True])
    filled = [b for b in result["bins"] if b["n"]]
    assert [(b["lo"], b["n"]) for b in filled] == [(0.0, 2), (0.9, 3)]  # 1.0 lands in the last, closed bin
    assert filled[0]["frequency"] == 0.5 and filled[1]["mean_probability"] == pytest.approx(
        (0.95 * 2 + 1) / 3
    )
    gaps = [0.45, 1 - (0.95 * 2 + 1) / 3]
    assert result["ece"] == pytest.approx(2 / 5 * gaps[0] + 3 / 5 * gaps[1])
    assert result["max_gap"] == pytest.approx(0.45) and result["n"] == 5
    assert reliability([], [])["ece"] is None
    with pytest.raises(ValueError):
        reliability([1.5], [True])


class YesSayer:
    """A judge that says "yes" to every yes/no question (probability 0.8) and picks the first choice of any other
    question (probability 0.6): a pure yes-bias, blind to the image."""

    def judge_all(self, image, questions):
        judgements = []
        for question in questions:
            choices = question["choices"]
            if is_yes_no(question):
                judgements.append(Judgement("yes", tuple(0.8 if c == "yes" else 0.2 for c in choices)))
            else:
                rest = 0.4 / (len(choices) - 1)
                judgements.append(Judgement(choices[0], tuple([0.6] + [rest] * (len(choices) - 1))))
        return judgements


def test_a_yes_saying_judge_shows_its_bias_and_its_miscalibration():
    records = audit_renders("tiny", Judges(YesSayer(), YesSayer()), per_category=2, seeds=1, resolution=32)
    summary = summarize(records)
    yes_no = summary["yes_no"]
    assert yes_no["judge_yes_rate"]["value"] == 1.0
    assert yes_no["false_yes_rate"]["value"] == 1.0 and yes_no["false_no_rate"]["value"] == 0.0
    oracle_yes = yes_no["oracle_yes_rate"]["value"]
    assert 0.3 < oracle_yes < 0.7  # the prompt set pairs every yes question with a no question
    assert yes_no["yes_bias"]["value"] == pytest.approx(1 - oracle_yes)
    assert yes_no["yes_bias"]["lo"] > 0  # the interval over prompts separates the bias from 0
    # Calibration: the yes/no answers sit in the 0.8 bin, right as often as the oracle says yes there.
    answers = [a for r in records for a in r.answers]
    bin_08 = summary["calibration"]["bins"][8]
    assert bin_08["n"] == sum(a["yes_no"] for a in answers)
    assert bin_08["frequency"] == pytest.approx(
        np.mean([a["oracle"] == "yes" for a in answers if a["yes_no"]])
    )
    assert sum(b["n"] for b in summary["calibration"]["bins"]) == summary["n_answers"] == len(answers)
    # VQAScore: "yes" to own prompts (shown on ground truth) and to foils (mostly not shown).
    vqascore = summary["vqascore"]
    assert vqascore["n_foils"] == len(records) and vqascore["n_questions"] == 2 * len(records)
    assert vqascore["accuracy"]["value"] == pytest.approx(vqascore["oracle_yes_share"], abs=0.1)
    assert set(summary["by_category"]) == {
        "single_object",
        "two_object",
        "counting",
        "colors",
        "position",
        "color_attr",
    }


def _record(prompt_id: str, oracle_right: int, judge_right: int, questions: int = 4) -> JudgedImage:
    """An image whose oracle finds `oracle_right` of its questions answered as keyed, and whose judge says so of
    `judge_right`."""
    answers = [
        {
            "element_type": "object",
            "yes_no": True,
            "key": "yes",
            "oracle": "yes" if i < oracle_right else "no",
            "judge": "yes" if i < judge_right else "no",
            "confidence": 1.0,
            "p_oracle": 1.0,
            "p_key": 1.0 if i < judge_right else 0.0,
        }
        for i in range(questions)
    ]
    prompts = [{"foil": False, "truth": "yes" if oracle_right == questions else "no", "p_yes": 0.5}]
    return JudgedImage(prompt_id, 0, "colors", answers, prompts)


def _target(run_id: str, params: int) -> RunTarget:
    record = RunRecord(
        run_id, f"b{params}", "sdxl", params, 1.0, 64, "mix", 0, None, "done", Path("."), {}, None, None
    )
    return RunTarget(record, "tiny", "v1", 1, [])


def test_a_judge_that_reverses_the_oracles_order_flips_every_pair():
    targets = [_target(f"run{i}", params) for i, params in enumerate((10, 20, 30))]
    # The oracle's TIFA rises with size (1/4, 2/4, 3/4 of the questions), the judge's falls (3/4, 2/4, 1/4);
    # prompts vary a little so the intervals are not of zero width.
    judged = {
        f"run{i}": {
            6: [
                _record(f"p{p}", i + 1 + (p % 2 == 0 and i < 2), 3 - i + (p % 3 == 0 and i > 0))
                for p in range(6)
            ]
        }
        for i in range(3)
    }
    result = ranking(targets, judged)["tifa"]
    assert [c["params"] for c in result["configurations"]] == [10, 20, 30]
    spearman = result["spearman_judge_oracle"]
    assert spearman["coefficient"] == pytest.approx(-1.0) and spearman["p_value"] == pytest.approx(1 / 3)
    assert result["spearman_with_params"]["oracle"]["coefficient"] == pytest.approx(1.0)
    assert result["n_flipped"] == 3 and all(pair["flipped"] for pair in result["pairs"])
    assert result["n_flipped_separable"] == sum(bool(p["oracle_separates"]) for p in result["pairs"]) >= 1
    assert (
        result["pairs"][0]["oracle_difference"]["value"] < 0 < result["pairs"][0]["judge_difference"]["value"]
    )


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The tiny report study (two sizes, three evaluations each) audited with a tiny random BLIP."""
    root = tmp_path_factory.mktemp("audit")
    study = make_study(root / "study")
    save_tiny_blip(root / "blip")
    arguments = [
        "--no-progress",
        "eval",
        "audit-judge",
        "--study",
        str(study),
        "--vqa-model",
        str(root / "blip"),
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*arguments, "--per-category", "2", "--seeds", "1"]) == 0
    return study, root / "blip", printed.getvalue()


def test_audit_judge_runs_end_to_end_on_a_study(audited):
    study, blip, printed = audited
    result = json.loads((study / "audit" / "judge_audit.json").read_text())
    assert str(blip) in result["judge"]["questions"] and "yes" in result["judge"]["prompts"]
    assert result["renders"]["resolution"] == 16 and result["renders"]["summary"]["n_images"] == 12
    runs = result["study"]["runs"]
    assert len(runs) == 2 and [s["step"] for s in runs[0]["steps"]] == [2, 4, 6]
    for step in runs[0]["steps"]:
        for name in ("tifa", "soft_tifa", "vqascore"):
            entry = step[name]
            assert entry["gap"]["value"] == pytest.approx(entry["judge"]["value"] - entry["oracle"]["value"])
            assert entry["gap"]["lo"] <= entry["gap"]["value"] <= entry["gap"]["hi"]
    summary = result["study"]["summary"]
    assert summary["n_images"] == 2 * 3 * 6 and summary["calibration"]["n"] == summary["n_answers"]
    tifa_ranking = result["study"]["ranking"]["tifa"]
    assert (
        len(tifa_ranking["pairs"]) == 1 and "3 configurations" in tifa_ranking["spearman_judge_oracle"]["why"]
    )
    assert "accuracy vs oracle" in printed and str(study / "audit" / "judge_audit.json") in printed


def test_the_report_shows_the_audit_as_its_own_section(audited):
    from t2iscale.report.build import build_report

    study, _, _ = audited
    page = build_report(study, progress=False).read_text()
    assert '<section id="judge-audit"><h2>Judge audit</h2>' in page
    for text in ("Yes-bias on yes/no questions", "Judge minus oracle along training", "flipped", "ECE"):
        assert text in page
    assert (study / "report" / "judge_reliability.svg").is_file()


def test_audit_judge_usage_errors_name_what_is_missing(tmp_path, capsys):
    assert main(["eval", "audit-judge", "--study", str(tmp_path), "--judge", "oracle"]) == 1
    assert "not a study folder" in capsys.readouterr().err
    assert main(["eval", "audit-judge", "--study", str(tmp_path)]) == 1
    assert "--vqa-model" in capsys.readouterr().err
    assert main(["eval", "audit-judge", "--judge", "oracle"]) == 1
    assert "--out FILE" in capsys.readouterr().err


def test_an_audit_that_could_not_be_written_is_refused_before_the_judge_runs(audited, monkeypatch, capsys):
    # As on a colleague's study that is read-only to this user (CI runs as root, where modes do not stop writes).
    study, _, _ = audited
    monkeypatch.setattr("t2iscale.file_modes._can_write", lambda path: False)
    monkeypatch.setattr(
        "t2iscale.findings.judge_audit.audit_judge",
        lambda *args, **kwargs: pytest.fail("the judge ran first"),
    )
    assert main(["eval", "audit-judge", "--study", str(study), "--judge", "oracle"]) == 1
    assert (
        f"cannot write the audit {study / 'audit' / 'judge_audit.json'}: permission denied"
        in capsys.readouterr().err
    )
