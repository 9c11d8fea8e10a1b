"""Fixtures: a fake training run of ``mnist1d_static`` (see ``_analysis_helpers.py``)."""

from __future__ import annotations

import matplotlib
import pytest
from _analysis_helpers import make_run

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "fake"
    model = make_run(path)
    return path, model
