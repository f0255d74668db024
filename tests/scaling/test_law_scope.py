"""A law is fitted on the configurations that differ only along its own axis (`law_scope`, `study_law`).

The study below has three grids, as the `findings` preset does: four backbones on one dataset with mix captions
(S = 0.2·N^0.1 planted), caption policies on one backbone (alt far below the law), dataset sizes on that backbone
(S rising with D). Pooled, the caption and data arms would sit at one N with other values and pull the N law off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from t2iscale.errors import UserError
from t2iscale.findings.arms import LawScope, StudyConfigurations, law_scope, parse_where
from t2iscale.findings.laws import frontier_law, study_law
from t2iscale.scaling.arms import Configuration
from t2iscale.scaling.points import Curve
from t2iscale.study.results import RunRecord

PARAMS = {"b1": 100_000, "b2": 200_000, "b3": 400_000, "b4": 800_000}
STEPS = (500, 1000)


def planted(params: int, size: int, policy: str) -> float:
    value = 0.2 * params**0.1
    if policy == "alt":
        value -= 0.25
    return value + 0.02 * (size / 60_000 - 1.0)  # larger sets score higher


def make_study(grids: list[tuple[str, int, str]]) -> StudyConfigurations:
    configurations, records = [], {}
    for backbone, size, policy in grids:
        key = f"{backbone}|{size}|{policy}"
        params = PARAMS[backbone]
        final = planted(params, size, policy)
        images = tuple(32 * step for step in STEPS)
        curves = []
        for seed in (0, 1):
            run_id = f"{backbone}.n{size}.{policy}.s{seed}"
            curves.append(
                Curve(
                    run_id=run_id,
                    label=run_id,
                    params=params,
                    gmacs=params / 1e6,
                    dataset_noun_pairs=size,
                    steps=STEPS,
                    images_seen=images,
                    train_flops=tuple(6.0 * params * n for n in images),
                    values=(final - 0.05 + 0.001 * seed, final + 0.001 * seed),
                )
            )
            records.setdefault(key, []).append(
                RunRecord(
                    run_id, backbone, "sdxl", params, params / 1e6, size, policy, seed, size, "finished",
                    Path(run_id), {}, None, None,
                )
            )  # fmt: skip
        configurations.append(Configuration(key, f"{backbone} · n={size} · {policy}", tuple(curves)))
    return StudyConfigurations(Path("study"), "tifa", configurations, records, {}, [], None)


FINDINGS_LIKE = [
    *[(b, 60_000, "mix") for b in PARAMS],
    ("b2", 60_000, "alt"),
    ("b2", 60_000, "syn5"),
    ("b2", 500, "mix"),
    ("b2", 4_000, "mix"),
]


def test_the_params_law_keeps_the_backbone_grid_and_finds_the_planted_exponent():
    study = make_study(FINDINGS_LIKE)
    scope = law_scope(study, "params")
    assert [c.key.split("|")[0] for c in scope.configurations] == list(PARAMS)
    assert scope.fixed == {"dataset_size": 60_000, "caption_policy": "mix"}
    assert scope.text() == "dataset_size = 60000, caption_policy = mix"
    assert len(scope.left_out) == 4
    law = study_law(study, "params", "tifa")
    assert law.fit.params["b"] == pytest.approx(0.1, abs=0.005)
    assert law.scope == scope.text() and len(law.scope_left_out) == 4
    assert "fitted where dataset_size = 60000, caption_policy = mix" in "\n".join(law.text_lines())
    assert law.to_dict()["scope"] == scope.text()
    # pooled, the alt arm at b2's N drags the law away from the planted exponent
    pooled = frontier_law(study.configurations, "params", "tifa")
    assert abs(pooled.fit.params["b"] - 0.1) > 0.02


def test_the_data_law_keeps_the_reference_backbone_and_captions():
    study = make_study(FINDINGS_LIKE)
    scope = law_scope(study, "data")
    assert sorted(c.key for c in scope.configurations) == ["b2|4000|mix", "b2|500|mix", "b2|60000|mix"]
    assert scope.fixed == {"backbone": "b2", "caption_policy": "mix"}
    law = study_law(study, "data", "tifa")
    assert law.fit.params["b"] > 0


def test_where_picks_another_group_and_bad_where_is_named():
    study = make_study([*[(b, 60_000, "mix") for b in PARAMS], *[(b, 60_000, "alt") for b in PARAMS]])
    assert law_scope(study, "params").fixed == {"caption_policy": "mix"}  # a tie: the first in grid order
    alt = law_scope(study, "params", {"caption_policy": "alt"})
    assert {c.key.split("|")[2] for c in alt.configurations} == {"alt"}
    with pytest.raises(UserError, match=r"no evaluated configurations where caption_policy = syn1"):
        law_scope(study, "params", {"caption_policy": "syn1"})
    with pytest.raises(UserError, match=r"backbone is what the params law varies"):
        law_scope(study, "params", {"backbone": "b1"})
    with pytest.raises(UserError, match=r"unknown axis 'lr'"):
        parse_where(["lr=1e-3"])
    with pytest.raises(UserError, match=r"expected AXIS=VALUE"):
        parse_where(["caption_policy"])


def test_a_single_grid_study_keeps_every_configuration():
    study = make_study([(b, 60_000, "mix") for b in PARAMS])
    scope = law_scope(study, "compute")
    assert isinstance(scope, LawScope)
    assert len(scope.configurations) == 4 and scope.fixed == {} and scope.text() is None
    assert study_law(study, "compute", "tifa").scope is None
    with pytest.raises(UserError, match=r"where caption_policy = alt: caption_policy is mix in every run"):
        law_scope(study, "compute", {"caption_policy": "alt"})  # not "the study's groups: none"


def test_a_law_over_an_axis_the_study_does_not_vary_is_not_scoped():
    # Backbones and captions vary, the dataset size does not: the data law has no arms to keep apart (and no
    # law), so it is not grouped by backbone; the compute law still keeps one caption policy.
    study = make_study([*[(b, 60_000, "mix") for b in PARAMS], ("b2", 60_000, "alt")])
    data = law_scope(study, "data")
    assert data.fixed == {} and len(data.configurations) == 5 and data.text() is None
    assert law_scope(study, "compute").fixed == {"caption_policy": "mix"}
