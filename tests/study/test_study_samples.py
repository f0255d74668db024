"""A real tiny study keeps per-image scores from scoring to `load_curves`: n = prompts × eval seeds per step."""

from study_fixtures import tiny_spec

from t2iscale.findings.curves import load_curves
from t2iscale.study.registry import StudyRegistry
from t2iscale.study.runner import run_study

SEEDS = [0, 2, 4, 6, 8, 10]  # 36 images: oracle FID needs more than its 31 feature dimensions
PROMPTS = 6  # one per GenEval category (per_category 1)


def test_curves_of_a_study_carry_samples_that_average_to_their_values(tmp_path):
    spec = tiny_spec(backbones=["sdxl-c8-td1_1"], eval={"seeds": SEEDS, "metrics": ["tifa", "oracle_fid"]})
    report = run_study(spec, tmp_path / "study", progress=False)
    assert [outcome.outcome for outcome in report.outcomes] == ["finished"]

    (curve,) = load_curves(tmp_path / "study", "tifa")
    assert curve.steps == (2, 4) and len(curve.samples) == 2
    for index, samples in enumerate(curve.samples):
        assert len(samples) == PROMPTS * len(SEEDS)
        assert sorted(set(samples.seeds)) == SEEDS and len(set(samples.prompt_ids)) == PROMPTS
        # Every prompt has every seed, so the mean over images is TIFA's mean over prompts.
        assert abs(samples.mean - curve.values[index]) < 1e-9
        for category, values in curve.category.items():
            assert abs(samples.only_category(category).mean - values[index]) < 1e-9

    (fid,) = load_curves(tmp_path / "study", "oracle_fid")
    assert fid.steps == (2, 4) and fid.samples is None  # a set statistic
    with StudyRegistry(tmp_path / "study") as registry:
        sizes = {(row["metric"], row["step"]): row["n_images"] for row in registry.evaluations()}
    assert sizes == {
        (metric, step): PROMPTS * len(SEEDS) for metric in ("tifa", "oracle_fid") for step in (2, 4)
    }
