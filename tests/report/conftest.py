"""Fixtures of the report tests: one tiny real study per test module."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_study import make_study


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Path:
    """Two runs of two sizes trained and evaluated by the study runner."""
    return make_study(tmp_path_factory.mktemp("study") / "study")
