"""Fixtures of the report tests: the results API and one tiny real study per test module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from report_study import BACKBONES, standin_results, train_run


@pytest.fixture(scope="module", autouse=True)
def study_results():
    """The real results API when it exists, else the stand-in (installed for this module's tests)."""
    try:
        import t2iscale.study.results as real
    except ImportError:
        real = None
    if real is not None:
        yield real
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "t2iscale.study.results", standin_results())
        yield sys.modules["t2iscale.study.results"]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Path:
    """Two runs of two sizes, six steps each, evaluated every two steps (images + TIFA from the oracle)."""
    study_dir = tmp_path_factory.mktemp("study")
    for run_id, backbone in BACKBONES.items():
        train_run(study_dir, run_id, backbone)
    return study_dir
