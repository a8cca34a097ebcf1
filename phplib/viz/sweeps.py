"""Plots of ablation sweep summaries (the output of ``phplib.continual.ablation.summarize``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

SUMMARY_METRICS = ("A_mean", "F_mean")


def plot_ordering_summary(
    summary: pd.DataFrame, metrics: tuple[str, ...] = SUMMARY_METRICS, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Draw one group of bars per ordering, one bar per metric, with ±1 std error bars; return the Axes.

    ``summary`` needs an ``order`` column and ``<metric> mean`` / ``<metric> std`` columns. A NaN
    std (a single stream) draws no error bar.
    """
    for column in ["order", *(f"{m} mean" for m in metrics), *(f"{m} std" for m in metrics)]:
        if column not in summary.columns:
            raise ValueError(f"summary has no column {column!r}; pass the output of ablation.summarize(frame, by=['order'])")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * len(summary) + 3.0, 4.0))
    positions = np.arange(len(summary))
    width = 0.8 / len(metrics)
    for index, metric in enumerate(metrics):
        stds = summary[f"{metric} std"].fillna(0.0).to_numpy()
        ax.bar(positions + (index - (len(metrics) - 1) / 2) * width, summary[f"{metric} mean"], width,
               yerr=stds, capsize=3, label=metric)
    ax.set_xticks(positions, summary["order"])
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("ordering (stage letter per depth group, shallow to deep; '-' drops a group)")
    ax.set_ylabel("score (mean ± std over streams)")
    streams = summary["n"].min() if "n" in summary.columns else None
    default = "Stage-ordering ablation" + (f" ({streams} or more streams per ordering)" if streams else "")
    ax.set_title(title or default)
    ax.legend()
    return ax
