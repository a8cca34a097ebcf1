"""The cached sweeps in notebooks/results/ match a fresh run of a subset of their streams.

Each fresh stream runs ``configs/ablation_toy.yaml`` on a toy world generated into a temporary
folder, so the test also checks that the world is regenerated identically. Metrics must match to
1e-9: the runs are deterministic (seeded generators, one torch thread), and only the accuracy
matrix is stored rounded (to 10 decimals). A cache written on a machine whose floating-point
kernels differ (another CPU family, another torch build) can fail here. Regenerate it there with
``make sweeps``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phplib.config import load_config
from phplib.continual.ablation import METRICS, matrix_from_json, run_sweep
from phplib.continual.stream import ensure_toy_world

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "notebooks" / "results"
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation_world")
    config = load_config(REPO / "configs" / "ablation_toy.yaml", {"data.root": str(root)})
    ensure_toy_world(root, config.data.toy, progress=False)
    return config


def assert_rows_match(fresh: pd.Series, cached: pd.Series) -> None:
    for metric in METRICS:
        assert abs(fresh[metric] - cached[metric]) <= TOLERANCE, (metric, fresh[metric], cached[metric])
    fresh_matrix, cached_matrix = matrix_from_json(fresh["R"]), matrix_from_json(cached["R"])
    assert np.allclose(fresh_matrix, cached_matrix, rtol=0, atol=TOLERANCE, equal_nan=True), (fresh_matrix, cached_matrix)


def test_ordering_sweep_row_reproduces(config):
    cached = pd.read_csv(RESULTS / "ordering_sweep.csv")
    assert len(cached) == 54  # 9 orderings x 2 task orders x 3 seeds
    fresh = run_sweep(config, orders=["DMS"], seeds=[1], task_orders=[["AVQA", "LLP", "AVE"]],
                      progress=False, keep_matrix=True)
    assert list(fresh.columns) == ["order", "task_order", "seed", *METRICS, "seconds", "R"]
    match = cached[(cached["order"] == "DMS") & (cached["task_order"] == "AVQA>LLP>AVE") & (cached["seed"] == 1)]
    assert len(match) == 1
    assert_rows_match(fresh.iloc[0], match.iloc[0])


def test_prompt_sweep_row_reproduces(config):
    cached = pd.read_csv(RESULTS / "prompt_sweep.csv")
    assert set(cached["swept"]) == {"base", "stages.tmi_length", "stages.tmdg_length", "stages.groups"}
    fresh = run_sweep(config, orders=["SMD"], seeds=[2], overrides={"stages.tmi_length": [20]},
                      progress=False, keep_matrix=True)
    assert list(fresh.columns) == ["order", "task_order", "seed", "stages.tmi_length", *METRICS, "seconds", "R"]
    match = cached[(cached["swept"] == "stages.tmi_length") & (cached["stages.tmi_length"] == 20) & (cached["seed"] == 2)]
    assert len(match) == 1
    assert json.loads(match.iloc[0]["stages.groups"]) == config.stages.groups
    assert_rows_match(fresh.iloc[0], match.iloc[0])
