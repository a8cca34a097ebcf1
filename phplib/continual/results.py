"""Results tables: one row per run, and mean ± std over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from phplib.config import RunConfig
from phplib.metrics.incremental import summarize

METRIC_COLUMNS = ["A_mean", "A_final", "F_mean", "BWT", "Diff"]


def method_name(config: RunConfig) -> str:
    """Name a run's method for tables: PHP, or PHP-shared when TMDG and TMI are shared by all tasks."""
    return "PHP" if config.stages.task_specific else "PHP-shared"


def results_row(
    config: RunConfig, matrix: np.ndarray, single_task_scores: dict[str, float] | None = None
) -> dict[str, object]:
    """Summarise one run: method, order, task order, seed and the metrics of its accuracy matrix.

    ``Diff`` (mean of R[i, i] - S[i]) is filled when the single-task scores S of every task are given.
    """
    references = None
    if single_task_scores is not None:
        references = [single_task_scores[name] for name in config.tasks]
    metrics = summarize(matrix, single_task_scores=references)
    row: dict[str, object] = {
        "method": method_name(config),
        "order": config.stages.order,
        "tasks": " > ".join(config.tasks),
        "seed": config.train.seed,
    }
    for column in METRIC_COLUMNS:
        row[column] = metrics.get(column, math.nan)
    return row


def summarize_over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of every metric per (method, order, tasks), over seeds.

    Returns one row per group with ``<metric> mean``, ``<metric> std`` and ``seeds`` (the count);
    the std uses ddof=1 and is NaN for a single seed.
    """
    groups = table.groupby(["method", "order", "tasks"], sort=False)
    summary = groups[METRIC_COLUMNS].agg(["mean", "std"])
    summary.columns = [f"{metric} {statistic}" for metric, statistic in summary.columns]
    summary["seeds"] = groups.size()
    return summary.reset_index()


def format_mean_std(summary: pd.DataFrame) -> pd.DataFrame:
    """Render ``summarize_over_seeds`` output as 'mean ± std' strings for printing."""
    shown = summary[["method", "order", "tasks", "seeds"]].copy()
    for metric in METRIC_COLUMNS:
        mean, std = summary[f"{metric} mean"], summary[f"{metric} std"]
        shown[metric] = [
            "-" if math.isnan(m) else (f"{m:.3f}" if math.isnan(s) else f"{m:.3f} ± {s:.3f}") for m, s in zip(mean, std)
        ]
    return shown
