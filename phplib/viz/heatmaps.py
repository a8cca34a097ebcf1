"""Heatmaps of the accuracy matrix R and of the forgetting it implies.

Every function takes matrices, never a learner. R follows the layout in
``phplib.metrics.incremental``: ``R[t, i]`` is the score on task i after
training on task t, rows are training steps, and cells above the diagonal are
not evaluated. Rows are drawn top to bottom in stream order and columns left
to right, so the filled cells form the lower triangle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from phplib.metrics.incremental import validate_accuracy_matrix

ROW_LABEL = "after training on task (stream order)"
COLUMN_LABEL = "evaluated on task"
PLOT_KINDS = ("accuracy", "forgetting")


def forgetting_matrix(R: Any) -> np.ndarray:
    """Compute the forgetting of every seen task at every finished step.

    F[t, i] = max_{i<=l<t} R[l, i] - R[t, i]   for i < t and row t finished,
    and NaN elsewhere (the diagonal, above it, and unfinished rows).

    This is the "max" kind of ``phplib.metrics.incremental.forgetting`` taken
    at every step, so the last finished row equals ``forgetting(R, "max")``.
    """
    matrix, n_done = validate_accuracy_matrix(R)
    forgotten = np.full_like(matrix, np.nan)
    for t in range(1, n_done):
        for i in range(t):
            forgotten[t, i] = np.max(matrix[i:t, i]) - matrix[t, i]
    return forgotten


def _check_task_names(task_names: Sequence[str], n_tasks: int) -> list[str]:
    names = [str(name) for name in task_names]
    if len(names) != n_tasks:
        raise ValueError(
            f"task_names has {len(names)} entries but the matrix has {n_tasks} tasks"
        )
    return names


def _compose_title(base: str, method: str | None, order: str | None) -> str:
    details = []
    if method:
        details.append(method)
    if order:
        details.append(f"order {order}")
    if not details:
        return base
    return f"{base} ({', '.join(details)})"


def _symmetric_limit(values: np.ndarray) -> float:
    """Return max |value|, at least 0.01, so a diverging colour map centres on 0."""
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        return 0.01
    return max(float(finite.max()), 0.01)


def _draw_heatmap(
    values: np.ndarray,
    task_names: list[str],
    ax: Axes,
    fmt: str,
    cmap: str,
    vmin: float,
    vmax: float,
    colorbar_label: str | None,
) -> Axes:
    """Draw one annotated heatmap. NaN cells are masked and carry no text."""
    sns.heatmap(
        values,
        mask=np.isnan(values),
        annot=True,
        fmt=fmt,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        square=True,
        linewidths=0.5,
        xticklabels=task_names,
        yticklabels=task_names,
        cbar=colorbar_label is not None,
        cbar_kws={"label": colorbar_label} if colorbar_label is not None else None,
        ax=ax,
    )
    ax.set_xlabel(COLUMN_LABEL)
    ax.set_ylabel(ROW_LABEL)
    ax.tick_params(axis="y", labelrotation=0)
    return ax


def plot_accuracy_matrix(
    R: Any,
    task_names: Sequence[str],
    title: str | None = None,
    ax: Axes | None = None,
    fmt: str = ".2f",
    cmap: str = "viridis",
    method: str | None = None,
    order: str | None = None,
) -> Axes:
    """Draw R as an annotated heatmap of its lower triangle and return the Axes.

    Cells above the diagonal, and the cells of unfinished rows, are masked:
    they have no colour and no text. Colours span scores 0 to 1. The title is
    ``title`` (default "Accuracy matrix") followed by the method name and the
    task order in brackets when they are given. A new figure is created when
    ``ax`` is None.
    """
    matrix, _ = validate_accuracy_matrix(R)
    names = _check_task_names(task_names, matrix.shape[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 1.5))
    _draw_heatmap(matrix, names, ax, fmt, cmap, vmin=0.0, vmax=1.0, colorbar_label="score")
    ax.set_title(_compose_title(title or "Accuracy matrix", method, order))
    return ax


def plot_forgetting_matrix(
    R: Any,
    task_names: Sequence[str],
    title: str | None = None,
    ax: Axes | None = None,
    fmt: str = ".2f",
    cmap: str = "RdBu_r",
    limit: float | None = None,
    method: str | None = None,
    order: str | None = None,
) -> Axes:
    """Draw ``forgetting_matrix(R)`` as an annotated heatmap and return the Axes.

    Only cells below the diagonal of finished rows carry a value. The colour
    scale is symmetric around 0, from -limit to +limit, so drops (positive,
    red with the default map) and gains (negative, blue) read apart. ``limit``
    defaults to the largest absolute value in the matrix.
    """
    forgotten = forgetting_matrix(R)
    names = _check_task_names(task_names, forgotten.shape[0])
    if limit is None:
        limit = _symmetric_limit(forgotten)
    if not limit > 0:
        raise ValueError(f"limit must be a positive number, got {limit!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 1.5))
    _draw_heatmap(
        forgotten, names, ax, fmt, cmap, vmin=-limit, vmax=limit,
        colorbar_label="forgetting (score drop)",
    )
    ax.set_title(_compose_title(title or "Forgetting matrix", method, order))
    return ax


def plot_runs_side_by_side(
    matrices: Mapping[str, Any],
    task_names: Sequence[str],
    kind: str = "accuracy",
    fmt: str = ".2f",
    title: str | None = None,
) -> Figure:
    """Draw one heatmap panel per run, titled with the run name, and return the Figure.

    ``matrices`` maps run names to accuracy matrices of the same size.
    ``kind`` is "accuracy" (R itself, colours 0 to 1) or "forgetting"
    (``forgetting_matrix(R)``, one colour scale shared by all panels). Only
    the last panel has a colour bar, which applies to every panel.
    """
    if kind not in PLOT_KINDS:
        raise ValueError(f"unknown kind {kind!r}, expected one of {', '.join(PLOT_KINDS)}")
    if not matrices:
        raise ValueError("matrices is empty, so pass at least one run name -> accuracy matrix")

    panels = {}
    for run_name, R in matrices.items():
        if kind == "accuracy":
            panels[run_name] = validate_accuracy_matrix(R)[0]
        else:
            panels[run_name] = forgetting_matrix(R)
    n_tasks = len(task_names)
    for run_name, values in panels.items():
        if values.shape[0] != n_tasks:
            raise ValueError(
                f"run {run_name!r} has {values.shape[0]} tasks but task_names has {n_tasks}"
            )
    names = _check_task_names(task_names, n_tasks)

    if kind == "accuracy":
        vmin, vmax, cmap, colorbar_label = 0.0, 1.0, "viridis", "score"
    else:
        limit = max(_symmetric_limit(values) for values in panels.values())
        vmin, vmax, cmap, colorbar_label = -limit, limit, "RdBu_r", "forgetting (score drop)"

    n_panels = len(panels)
    panel_width = 1.2 * n_tasks + 2.0
    fig, axes = plt.subplots(
        1, n_panels, figsize=(panel_width * n_panels + 1.0, 1.0 * n_tasks + 2.0), squeeze=False
    )
    for index, (run_name, values) in enumerate(panels.items()):
        ax = axes[0, index]
        is_last = index == n_panels - 1
        _draw_heatmap(
            values, names, ax, fmt, cmap, vmin, vmax,
            colorbar_label=colorbar_label if is_last else None,
        )
        ax.set_title(run_name)
        if index > 0:
            ax.set_ylabel("")
    default_title = "Accuracy matrices" if kind == "accuracy" else "Forgetting matrices"
    fig.suptitle(title or default_title)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write the figure to ``path``, creating missing parent folders, and return the path.

    The file format follows the suffix (.png, .pdf, .svg, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
