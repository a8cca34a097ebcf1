"""The functions behind notebooks 08 and 09's widgets: look a setting up or run it, then redraw.

A *setting* is an ordering, a task order, a seed and the prompt and depth values of
``phplib.continual.ablation.PROMPT_KEYS``. ``result_for_setting`` reads it from a cached sweep
table when a row there matches and runs one short stream otherwise. ``draw_setting`` redraws the
accuracy heatmap beside the run's metrics, and ``plot_tradeoff`` places each setting of a sweep by
its forgetting and by how well it learns each new task. ``build_explorer`` wires these to
ipywidgets; everything else here works without a notebook.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from phplib.config import RunConfig
from phplib.continual.ablation import (
    MATRIX_COLUMN,
    METRICS,
    ORDERINGS,
    PAIRED_BLOCKS,
    PROMPT_KEYS,
    read_dotted,
    configure,
    encode_value,
    groups_from_boundaries,
    matrix_from_json,
    parse_task_order,
    task_order_label,
)
from phplib.metrics.incremental import summarize as matrix_metrics
from phplib.viz.heatmaps import plot_accuracy_matrix

SWEEP_COLUMNS = ["order", "task_order", "seed", *METRICS, MATRIX_COLUMN]


@dataclass
class SettingResult:
    """The accuracy matrix and metrics of one setting, and where they came from."""

    matrix: np.ndarray  # R[t, i], NaN above the diagonal
    task_names: list[str]
    metrics: dict[str, float]
    source: str  # "cached sweep" or "fresh run"
    seconds: float  # stream time: measured now for a fresh run, as recorded for a cached row
    setting: dict[str, Any] = field(default_factory=dict)


def load_sweep(path: str | Path) -> pd.DataFrame:
    """Read a sweep CSV written by ``python -m phplib ablate``; raise an error naming the file when it is missing or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"sweep file not found: {path}. Write it with `python -m phplib ablate orderings ...` or `make sweeps`"
        )
    frame = pd.read_csv(path)
    missing = [column for column in SWEEP_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(missing)}; regenerate it with `python -m phplib ablate` "
            "(the R column holds each stream's accuracy matrix)"
        )
    return frame


def find_cached(
    frame: pd.DataFrame | None, *, order: str, task_order: str, seed: int, settings: dict[str, Any] | None = None
) -> pd.Series | None:
    """Return the sweep row of this setting, or None when the sweep did not run it.

    ``settings`` maps dotted keys to values. A key the table has no column for must be absent from
    the sweep's setting, so the lookup fails (returns None) rather than match a row that ran with
    another value. List values compare as their JSON text, as the table stores them.
    """
    if frame is None or frame.empty:
        return None
    mask = (frame["order"] == order) & (frame["task_order"] == task_order) & (frame["seed"] == seed)
    for key, value in (settings or {}).items():
        if key not in frame.columns:
            return None
        cell = encode_value(value)
        if isinstance(cell, str):
            mask &= frame[key].astype(str) == cell
        else:
            mask &= pd.to_numeric(frame[key], errors="coerce") == cell
    matches = frame[mask]
    if matches.empty:
        return None
    return matches.iloc[0]


def result_for_setting(
    config: RunConfig,
    *,
    order: str,
    seed: int = 0,
    tasks: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    cache: pd.DataFrame | None = None,
) -> SettingResult:
    """Read the setting from ``cache`` when a row matches, else run one stream of ``config`` with it.

    ``cache`` must be a sweep of ``config``. A setting key the table has no column for then ran
    with the config's value, so such a key matches when it has that value. A fresh run uses
    ``config`` with the ordering, task order, seed and ``settings`` (dotted key -> value) applied.
    """
    tasks = list(tasks or config.tasks)
    settings = dict(settings or {})
    label = task_order_label(tasks)
    described = {"order": order, "task_order": label, "seed": seed, **settings}
    lookup = settings
    if cache is not None:
        lookup = {
            key: value for key, value in settings.items()
            if key in cache.columns or encode_value(value) != encode_value(read_dotted(config, key))
        }
    row = find_cached(cache, order=order, task_order=label, seed=seed, settings=lookup)
    if row is not None:
        metrics = {metric: float(row[metric]) for metric in METRICS}
        return SettingResult(matrix_from_json(row[MATRIX_COLUMN]), parse_task_order(label), metrics,
                             "cached sweep", float(row["seconds"]), described)

    from phplib.continual.runner import run_stream

    stream_config = configure(config, order, tasks, seed, settings)
    started = time.perf_counter()
    result = run_stream(stream_config, run_dir=None, progress=False)
    seconds = time.perf_counter() - started
    metrics = {metric: float(result.metrics[metric]) for metric in METRICS}
    return SettingResult(result.accuracy_matrix, result.task_names, metrics, "fresh run", seconds, described)


def describe_setting(setting: dict[str, Any]) -> str:
    """Write a setting on one line, for titles: ``SMD, AVE>LLP>AVQA, seed 0, TMI 10, ...``."""
    parts = [str(setting.get("order", "?")), str(setting.get("task_order", "")), f"seed {setting.get('seed', '?')}"]
    names = {"stages.tmi_length": "TMI length", "stages.tmdg_length": "TMDG length", "stages.groups": "groups"}
    for key, name in names.items():
        if key in setting:
            value = setting[key]
            if key == "stages.groups":
                value = " | ".join(block_range(group) for group in _groups(value))
            parts.append(f"{name} {value}")
    return ", ".join(part for part in parts if part)


def block_range(group: list[int]) -> str:
    """Write a depth group as ``"2-4"``, or ``"0"`` for a group of one block."""
    return str(group[0]) if len(group) == 1 else f"{group[0]}-{group[-1]}"


def _groups(value: Any) -> list[list[int]]:
    return json.loads(value) if isinstance(value, str) else value


def draw_setting(result: SettingResult, figure: Figure | None = None) -> Figure:
    """Draw the accuracy heatmap of ``result`` beside a bar chart of its metrics; return the Figure.

    Passing the previous ``figure`` clears and reuses it, so a widget redraws in place.
    """
    if figure is None:
        figure = plt.figure(figsize=(10.5, 4.0))
    figure.clear()
    heatmap_ax, metrics_ax = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1.0]})
    plot_accuracy_matrix(result.matrix, result.task_names, title="Accuracy matrix R", ax=heatmap_ax)
    names = list(result.metrics)
    values = [result.metrics[name] for name in names]
    bars = metrics_ax.bar(names, values, color=["tab:blue", "tab:blue", "tab:red", "tab:green"][: len(names)])
    metrics_ax.bar_label(bars, labels=[f"{value:.3f}" for value in values])
    metrics_ax.axhline(0.0, color="black", linewidth=0.8)
    metrics_ax.set_ylim(min(-0.1, min(values) - 0.1), 1.05)
    metrics_ax.set_xlabel("metric of R")
    metrics_ax.set_ylabel("value (scores in [0, 1])")
    metrics_ax.set_title(f"{result.source}, stream {result.seconds:.1f} s")
    figure.suptitle(describe_setting(result.setting), fontsize=10)
    figure.tight_layout()
    return figure


def learning_accuracy(matrix: np.ndarray) -> float:
    """Mean of the diagonal of R: each task's score right after it was learned."""
    return float(np.nanmean(np.diag(np.asarray(matrix, dtype=float))))


def tradeoff_table(frame: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Mean and std over streams of F_mean and learning accuracy (mean of R's diagonal) per setting.

    ``by`` defaults to ``swept`` plus the prompt keys when the table has them, else ``order``.
    Each group also gets a short ``label`` for plots.
    """
    if MATRIX_COLUMN not in frame.columns:
        raise ValueError("the sweep table has no R column; run the sweep with keep_matrix=True")
    if by is None:
        by = ["swept", *PROMPT_KEYS] if all(key in frame.columns for key in PROMPT_KEYS) else ["order"]
    data = frame.assign(learning_accuracy=[learning_accuracy(matrix_from_json(text)) for text in frame[MATRIX_COLUMN]])
    groups = data.groupby(by, sort=False)
    table = groups[["F_mean", "learning_accuracy"]].agg(["mean", "std"])
    table.columns = [f"{metric} {statistic}" for metric, statistic in table.columns]
    table["n"] = groups.size()
    table = table.reset_index()
    table["label"] = [_short_label(row, by) for _, row in table.iterrows()]
    return table


def _short_label(row: pd.Series, by: list[str]) -> str:
    if "swept" not in by:
        return " ".join(str(row[key]) for key in by)
    swept = row["swept"]
    if swept == "base":
        return "base"
    value = row[swept]
    if swept == "stages.groups":
        return "groups " + "|".join(block_range(group) for group in _groups(value))
    return f"{swept.removeprefix('stages.')} {value}"


def plot_tradeoff(frame: pd.DataFrame, by: list[str] | None = None, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Place each setting by forgetting (x, F_mean) and learning accuracy (y, mean R[i, i]); return the Axes.

    Points are means over streams with ±1 std bars. Right is more forgetting and up is better
    learning of each new task, so the best settings sit top left.
    """
    # NOTE: the y axis is learning accuracy, measured inside the stream. The transfer metric Diff
    # (R[i, i] minus a single-task score) would need one single-task run per task and setting, which
    # the sweeps do not run.
    table = tradeoff_table(frame, by)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5))
    # One marker per setting, named in the legend, because settings often land on the same spot.
    markers = "osD^v<>ph*"
    for index, row in table.iterrows():
        ax.errorbar(
            row["F_mean mean"], row["learning_accuracy mean"],
            xerr=0.0 if np.isnan(row["F_mean std"]) else row["F_mean std"],
            yerr=0.0 if np.isnan(row["learning_accuracy std"]) else row["learning_accuracy std"],
            fmt=markers[index % len(markers)], capsize=3, alpha=0.8, label=row["label"],
        )
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("forgetting F_mean (score drop, mean over streams)")
    ax.set_ylabel("learning accuracy, mean R[i, i] (score in [0, 1])")
    ax.set_title(title or "Forgetting against learning of new tasks")
    return ax


@dataclass
class Explorer:
    """The widget of notebooks 08 and 09 and handles to its parts."""

    widget: Any  # ipywidgets.VBox to display
    controls: dict[str, Any]  # "order", "task_order", "tmi_length", "tmdg_length", "boundaries"
    status: Any  # ipywidgets.HTML line naming the setting and where its result came from
    output: Any  # ipywidgets.Output containing the figure as one PNG
    update: Callable[[], SettingResult | None]  # redraw for the current values


def build_explorer(
    config: RunConfig,
    cache: pd.DataFrame | None = None,
    *,
    seed: int = 0,
    task_orders: list[list[str]] | None = None,
    orderings: list[str] | None = None,
) -> Explorer:
    """Build the widget: dropdowns for ordering and task order, sliders for TMI and TMDG length and group boundaries.

    Each change looks the setting up in ``cache`` (a sweep of ``config``) or runs it, then
    redraws ``draw_setting`` in the widget's output area. Nothing is drawn until the first change
    or the first call of ``update()``.
    """
    import ipywidgets as widgets
    from IPython.display import Image

    task_orders = [list(tasks) for tasks in (task_orders or [config.tasks])]
    groups = config.stages.groups
    shallow_end = len(groups[0])
    deep_start = groups[-1][0]
    style = {"description_width": "140px"}
    layout = widgets.Layout(width="460px")
    controls = {
        "order": widgets.Dropdown(options=orderings or ORDERINGS, value=config.stages.order, description="ordering",
                                  style=style, layout=layout),
        "task_order": widgets.Dropdown(options=[task_order_label(tasks) for tasks in task_orders],
                                       description="task order", style=style, layout=layout),
        "tmi_length": widgets.IntSlider(value=config.stages.tmi_length, min=1, max=20, description="TMI length",
                                        continuous_update=False, style=style, layout=layout),
        "tmdg_length": widgets.IntSlider(value=config.stages.tmdg_length, min=1, max=8, description="TMDG length",
                                         continuous_update=False, style=style, layout=layout),
        "boundaries": widgets.IntRangeSlider(value=(shallow_end, deep_start), min=1, max=PAIRED_BLOCKS - 1,
                                             description="group boundaries", continuous_update=False,
                                             style=style, layout=layout),
    }
    status = widgets.HTML()
    output = widgets.Output()
    figure_state: dict[str, Figure] = {}

    def update(*_) -> SettingResult | None:
        low, high = controls["boundaries"].value
        if low == high:
            status.value = "<b>group boundaries must differ</b>: each depth group needs at least one block"
            return None
        settings = {
            "stages.tmi_length": controls["tmi_length"].value,
            "stages.tmdg_length": controls["tmdg_length"].value,
            "stages.groups": groups_from_boundaries(low, high),
        }
        status.value = "running a fresh stream ..."
        result = result_for_setting(config, order=controls["order"].value, seed=seed,
                                    tasks=parse_task_order(controls["task_order"].value), settings=settings,
                                    cache=cache)
        figure = draw_setting(result, figure_state.get("figure"))
        figure_state["figure"] = figure
        # The PNG goes into the Output widget's list directly rather than through `with output:`,
        # which captures only inside a running kernel. Tests can then read the image a user gets.
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        plt.close(figure)
        output.outputs = ()
        output.append_display_data(Image(data=buffer.getvalue(), format="png"))
        status.value = f"{result.source}: {describe_setting(result.setting)}"
        return result

    for control in controls.values():
        control.observe(update, names="value")
    widget = widgets.VBox([*controls.values(), status, output])
    return Explorer(widget, controls, status, output, update)
