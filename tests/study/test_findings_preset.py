"""The shipped `findings` study, shortened (a few steps, one training seed, a tiny evaluation), end to end through
the commands a user runs: every finding is compared, every law is fitted or says why not, the report shows them.
Its structure is asserted, not its verdicts (those need the full study: README, "Measured")."""

import json
import tomllib

import pytest
from study_fixtures import run_t2iscale as _run

from t2iscale.study.plan import expand_grid, load_spec
from t2iscale.study.runner import run_study
from t2iscale.study.spec import preset_text


def cli(*arguments):
    return _run(*arguments, timeout=300)  # compare/fit/report over a 10-run study on a loaded 2-core box


FACTORS = ["layout", "scaling", "caption_policy", "dataset_size"]
SHORT = {
    "text": {"dim": 16, "max_length": 24, "layers": 1, "heads": 2},
    "recipe": {"global_batch": 4, "warmup_steps": 2},
    "budget": {"total_steps": 4, "log_every_steps": 2, "checkpoint_every_steps": 4},
    "eval": {"every_steps": 2, "per_category": 1, "seeds": [0], "sampler_steps": 2},
}


def shortened_spec() -> dict:
    spec = tomllib.loads(preset_text("findings"))
    for section, values in SHORT.items():
        spec["base"][section].update(values)
    for grid in spec["grids"]:
        grid["seeds"] = [0]  # one training seed: comparisons pair prompts and eval seeds (and flip signs)
    return spec


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    spec = shortened_spec()
    assert len(expand_grid(load_spec(spec))) == 10  # 10 configurations; the reference is shared, trained once
    path = tmp_path_factory.mktemp("findings") / "study"
    report = run_study(spec, path, progress=False)
    assert [o.outcome for o in report.outcomes] == ["finished"] * 10
    return path


def test_the_full_preset_is_30_runs_of_three_seeds_with_its_four_factors():
    spec = load_spec("findings")
    runs = expand_grid(spec)
    assert len(runs) == 30 and spec.factors == FACTORS
    assert {run.seed for run in runs} == {0, 1, 2}
    assert {run.config["data"]["world"] for run in runs} == {"findings"}


def test_every_finding_is_a_paired_comparison_with_the_papers_direction(study):
    expected_pairs = {"layout": 1, "scaling": 1, "caption_policy": 3, "dataset_size": 3}
    for factor in FACTORS:
        code, out, err = cli("compare", "--study", str(study), "--by", factor, "--json")
        assert code == 0, (factor, err)
        result = json.loads(out)
        assert result["factor"] == factor and len(result["pairs"]) == expected_pairs[factor], factor
        for pair in result["pairs"]:
            for comparison in pair["comparisons"]:
                if comparison["comparable"]:
                    effect = comparison["effect"]
                    assert effect["lo"] <= effect["value"] <= effect["hi"]
                    assert effect["n_prompts"] == 6
                    assert comparison["verdict"]
        paper = [pair["paper"] for pair in result["pairs"] if pair["paper"]]
        assert paper, factor  # each factor has a direction the paper states
        assert all(p["check"] for p in paper)
    layout = json.loads(cli("compare", "--study", str(study), "--by", "layout", "--json")[1])["pairs"][0]
    assert {layout["arm_a"]["name"], layout["arm_b"]["name"]} == {"sdxl", "sd2"}
    assert layout["paper"]["matched"] == "compute"
    scaling = json.loads(cli("compare", "--study", str(study), "--by", "scaling", "--json")[1])["pairs"][0]
    assert {scaling["arm_a"]["name"], scaling["arm_b"]["name"]} == {"TD", "C"}
    assert scaling["paper"]["matched"] == "params"


SCOPES = {
    "params": "dataset_size = 60000, caption_policy = mix",
    "compute": "dataset_size = 60000, caption_policy = mix",
    "data": "backbone = sdxl-c8-td1_1, caption_policy = mix",
}
LEFT_OUT = {"params": 4, "compute": 4, "data": 7}  # of the 10 configurations


@pytest.mark.parametrize("axis", ["params", "compute", "data"])
def test_every_law_is_fitted_with_intervals_or_says_why_not(study, axis):
    code, out, err = cli("fit", "--study", str(study), "--x", axis, "--json")
    if code == 0:
        law = json.loads(out)
        assert law["points"] and law["ci_level"] == 0.95 and law["n_points"] == len(law["points"])
        # each law within the grid that varies its own axis, the others' arms left out
        assert law["scope"] == SCOPES[axis] and len(law["scope_left_out"]) == LEFT_OUT[axis]
        for point in law["points"]:
            interval = point["interval"]
            assert interval["lo"] <= point["value"] <= interval["hi"] and interval["n_prompts"] == 6
    else:
        assert code == 1 and err.startswith("t2iscale: error:") and err.count("\n") == 1, err


def test_the_report_shows_a_panel_per_finding(study):
    code, _, err = cli("report", "--study", str(study))
    assert code == 0, err
    html = (study / "report" / "report.html").read_text()
    for factor in FACTORS:
        assert f'id="finding-{factor}"' in html, factor
    assert "Fitted where dataset_size = 60000, caption_policy = mix" in html


def test_the_powered_caption_study_is_the_findings_setting_on_fresh_seeds():
    findings, captions = load_spec("findings"), load_spec("findings-captions")
    runs = expand_grid(captions)
    assert len(runs) == 24 and captions.factors == ["caption_policy"]
    assert {run.caption_policy for run in runs} == {"alt", "syn5", "mix"}
    seeds = {run.seed for run in runs}
    assert seeds == set(range(3, 11))
    pilot_and_tuning = {run.seed for run in expand_grid(findings)} | {100, 101}
    assert seeds.isdisjoint(pilot_and_tuning)
    assert captions.base == findings.base  # nothing but the arms and the seeds differs


def test_the_long_layout_study_pairs_the_findings_layouts_at_matched_compute_on_untuned_seeds():
    findings, layout = load_spec("findings"), load_spec("findings-layout")
    runs = expand_grid(layout)
    assert len(runs) == 6 and layout.factors == ["layout"]
    assert {run.backbone for run in runs} == {"sd2-c6", "sdxl-c8-td1_1"}
    assert {run.seed for run in runs} == {0, 1, 2}  # tuning used 100
    # The same world, data, text encoder and evaluation as the findings study; five times its images.
    assert layout.base["data"] == findings.base["data"] and layout.base["text"] == findings.base["text"]
    drop_every = lambda section: {k: v for k, v in section.items() if k != "every_steps"}  # noqa: E731
    assert drop_every(layout.base["eval"]) == drop_every(findings.base["eval"])
    budget, recipe = layout.base["budget"], layout.base["recipe"]
    reference = findings.base["budget"]["total_steps"] * findings.base["recipe"]["global_batch"]
    assert budget["total_steps"] * recipe["global_batch"] == 5 * reference
