"""Run several methods on one stream and compare them: a results table and side-by-side heatmaps.

``python -m phplib run --config configs/toy.yaml --methods all --seeds 0 1 2`` ends here. Every
method learns the same tasks from the same prepared data with the same seed, towers, heads and
metrics. Only the learner and the stages it trains differ (``phplib.continual.baselines``).

The table has one row per method and seed:

- ``A_mean``, ``A_final``, ``F_mean``, ``BWT``: the metrics of R (``phplib.metrics.incremental``);
- ``trainable``: parameters the optimiser updates during the last task;
- ``stored_per_task``: parameters kept for one task alone, averaged over the stream's tasks
  (the heads differ in size between tasks);
- ``seconds_per_task``: training time per task (``train_task`` only: no probe, no evaluation),
  averaged over the tasks.

For PHP it also records R with the task identity predicted from the input
(``phplib.continual.task_inference``) and the share of test clips whose task was identified.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phplib.config import RunConfig, config_from_dict, config_to_dict
from phplib.continual.baselines import METHODS, get_method, method_config
from phplib.metrics.incremental import summarize

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ["A_mean", "A_final", "F_mean", "BWT", "trainable", "stored_per_task", "seconds_per_task"]
PREDICTED_LABEL = "PHP, predicted task"


@dataclass
class MethodRun:
    """One method's run on the stream."""

    method: str
    task_names: list[str]
    matrix: np.ndarray  # R[t, i] with the given task identity
    metrics: dict[str, float]
    trainable: int
    stored_per_task: float
    seconds_per_task: float
    predicted_matrix: np.ndarray | None = None  # PHP only: R with the predicted task identity
    task_id_accuracy: np.ndarray | None = None  # PHP only: share of clips routed to their own task, per cell
    learner: object | None = None  # the trained learner, for inspection in notebooks and tests


def parameter_counts(learner, task_names: list[str]) -> tuple[int, float]:
    """(trainable during the last task, mean over tasks of the parameters kept for that task alone)."""
    if hasattr(learner, "stored_per_task"):
        trainable = learner.parameter_count(task_names[-1])
        stored = [learner.stored_per_task(name) for name in task_names]
    else:  # PHP's learner: the model's own accounting
        report = learner.model.parameter_report(task_names[-1])
        trainable = report.trainable
        stored = [learner.model.parameter_report(name).task_trainable for name in task_names]
    return int(trainable), float(np.mean(stored))


def run_method(config: RunConfig, name: str, run_dir: str | Path | None = None, progress: bool = True) -> MethodRun:
    """Run method ``name`` on ``config``'s stream and collect its row of the comparison."""
    from phplib.continual.runner import run_stream

    method = get_method(name)
    configured = method_config(name, config)
    result = run_stream(configured, run_dir, progress=progress, make_learner=method.make_learner, method=method.label)
    learner = result.learner
    trainable, stored = parameter_counts(learner, result.task_names)
    seconds = float(np.mean([learner.task_seconds[task] for task in result.task_names]))
    run = MethodRun(method.label, result.task_names, result.accuracy_matrix, result.metrics, trainable, stored, seconds, learner=learner)
    if hasattr(learner, "predicted_matrix"):
        run.predicted_matrix = learner.predicted_matrix.copy()
        run.task_id_accuracy = learner.task_id_accuracy.copy()
        if run_dir is not None:
            _write_task_inference(run, Path(run_dir))
    return run


def _write_task_inference(run: MethodRun, run_dir: Path) -> None:
    from phplib.continual.runner import matrix_frame
    from phplib.continual.store import atomic_write_text

    atomic_write_text(matrix_frame(run.predicted_matrix, run.task_names).to_csv(), run_dir / "accuracy_matrix_predicted_task.csv")
    atomic_write_text(matrix_frame(run.task_id_accuracy, run.task_names).to_csv(), run_dir / "task_id_accuracy.csv")


def comparison_rows(run: MethodRun, seed: int) -> list[dict[str, object]]:
    """The table rows of one run: the method, and for PHP also PHP with the predicted task identity."""
    row = {"method": run.method, "seed": seed, **{key: run.metrics[key] for key in ("A_mean", "A_final", "F_mean", "BWT")}}
    row.update(trainable=run.trainable, stored_per_task=run.stored_per_task, seconds_per_task=run.seconds_per_task)
    rows = [row]
    if run.predicted_matrix is not None:
        predicted = summarize(run.predicted_matrix)
        extra = dict(row, method=PREDICTED_LABEL, **{key: predicted[key] for key in ("A_mean", "A_final", "F_mean", "BWT")})
        extra["task_id_accuracy"] = float(np.nanmean(run.task_id_accuracy[-1]))
        rows.append(extra)
    return rows


def summarize_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) per method over seeds, methods in table order."""
    columns = [c for c in [*TABLE_COLUMNS, "task_id_accuracy"] if c in table]
    groups = table.groupby("method", sort=False)
    summary = groups[columns].agg(["mean", "std"])
    summary.columns = [f"{metric} {statistic}" for metric, statistic in summary.columns]
    summary["seeds"] = groups.size()
    return summary.reset_index()


def format_comparison(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Render ``summarize_comparison`` as 'mean ± std' strings; counts as integers."""
    table = summary[["method", "seeds"]].copy()
    for metric in [*TABLE_COLUMNS, "task_id_accuracy"]:
        if f"{metric} mean" not in summary:
            continue
        mean, std = summary[f"{metric} mean"], summary[f"{metric} std"]
        if metric in ("trainable", "stored_per_task"):
            table[metric] = [f"{m:,.0f}" for m in mean]
        elif metric == "seconds_per_task":
            table[metric] = [f"{m:.1f}" for m in mean]
        else:
            table[metric] = [_mean_std(m, s, digits) for m, s in zip(mean, std)]
    return table.set_index("method")


def _mean_std(mean: float, std: float, digits: int) -> str:
    if np.isnan(mean):
        return "-"
    if np.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def plot_comparison(matrices: dict[str, np.ndarray], task_names: list[str], title: str, columns: int = 3):
    """One accuracy heatmap per method in a grid, all on the 0-1 colour scale; return the Figure."""
    import matplotlib.pyplot as plt

    from phplib.viz.heatmaps import plot_accuracy_matrix

    rows = -(-len(matrices) // columns)
    size = 1.1 * len(task_names) + 2.6
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, (size - 0.6) * rows), squeeze=False)
    for ax, (label, matrix) in zip(axes.flat, matrices.items()):
        plot_accuracy_matrix(matrix, task_names, title=label, ax=ax)
    for ax in list(axes.flat)[len(matrices):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mean_matrices(runs: list[MethodRun]) -> dict[str, np.ndarray]:
    """Per method, R averaged over seeds; PHP's predicted-identity matrix as its own entry."""
    grouped: dict[str, list[np.ndarray]] = {}
    for run in runs:
        grouped.setdefault(run.method, []).append(run.matrix)
        if run.predicted_matrix is not None:
            grouped.setdefault(PREDICTED_LABEL, []).append(run.predicted_matrix)
    return {label: np.mean(matrices, axis=0) for label, matrices in grouped.items()}


def resolve_methods(names: list[str]) -> list[str]:
    """Expand ``all`` and check every name; raise ``ValueError`` listing the known ones."""
    if names == ["all"]:
        return list(METHODS)
    for name in names:
        get_method(name)
    if len(set(names)) != len(names):
        raise ValueError(f"--methods lists a method twice: {names}")
    return names


def run_comparison(
    config: RunConfig, methods: list[str], seeds: list[int], base_dir: str | Path | None = None, progress: bool = True
) -> tuple[pd.DataFrame, list[MethodRun]]:
    """Run every method for every seed; with ``base_dir`` write each run and the comparison files there.

    Files: ``<method>/seed_<n>/`` run directories, ``comparison.csv`` (one row per method and
    seed), ``comparison_summary.csv`` (mean and std over seeds) and ``comparison_heatmaps.png``
    (R per method, averaged over seeds).
    """
    methods = resolve_methods(methods)
    runs, rows = [], []
    for seed in seeds:
        for name in methods:
            seeded = config_from_dict(config_to_dict(config))
            seeded.train.seed = seed
            run_dir = None if base_dir is None else Path(base_dir) / name / f"seed_{seed}"
            logger.info("method %s, seed %d", name, seed)
            run = run_method(seeded, name, run_dir, progress)
            runs.append(run)
            rows.extend(comparison_rows(run, seed))
    table = pd.DataFrame(rows)
    if base_dir is not None:
        write_comparison(table, runs, Path(base_dir))
    return table, runs


def write_comparison(table: pd.DataFrame, runs: list[MethodRun], base_dir: Path) -> None:
    import matplotlib.pyplot as plt

    from phplib.continual.store import atomic_write_text
    from phplib.viz.heatmaps import save_figure

    atomic_write_text(table.to_csv(index=False), base_dir / "comparison.csv")
    atomic_write_text(summarize_comparison(table).to_csv(index=False), base_dir / "comparison_summary.csv")
    seeds = sorted(set(table["seed"]))
    figure = plot_comparison(
        mean_matrices(runs), runs[0].task_names, f"Accuracy matrices, mean over seeds {', '.join(map(str, seeds))}"
    )
    save_figure(figure, base_dir / "comparison_heatmaps.png")
    plt.close(figure)


def command_methods(args: argparse.Namespace) -> int:
    """``python -m phplib run --method NAME`` (NAME other than php) and ``--methods all|NAME ...``."""
    from phplib.cli import _parse_overrides, report_missing_inputs
    from phplib.config import load_config

    if args.resume:
        print("--resume continues PHP runs only; start a baseline run again instead", file=sys.stderr)
        return 2
    if not args.config:
        print("run needs --config FILE", file=sys.stderr)
        return 2
    if args.method and args.methods:
        print("give either --method NAME or --methods NAME ..., not both", file=sys.stderr)
        return 2
    if args.single_task:
        print("--single-task is available for PHP runs only (drop --method/--methods)", file=sys.stderr)
        return 2
    methods = resolve_methods(args.methods or [args.method])
    config = load_config(args.config, _parse_overrides(args.set))
    if report_missing_inputs(config, args.config):
        return 2
    name = args.name or f"{config.name}-{'-'.join(methods) if len(methods) < 3 else 'methods'}-{time.strftime('%Y%m%d-%H%M%S')}"
    base_dir = Path(args.output_dir or config.output_dir) / name
    if base_dir.exists() and any(base_dir.iterdir()):
        print(f"run directory {base_dir} already exists and is not empty; pass another --name", file=sys.stderr)
        return 2
    seeds = args.seeds or [config.train.seed]
    table, runs = run_comparison(config, methods, seeds, base_dir, progress=not args.no_progress)
    print()
    print(f"Comparison on {' > '.join(config.tasks)} ({base_dir / 'comparison.csv'}); mean ± std over seeds {seeds}:")
    print(format_comparison(summarize_comparison(table)).to_string())
    print()
    print(f"heatmaps: {base_dir / 'comparison_heatmaps.png'}")
    return 0
