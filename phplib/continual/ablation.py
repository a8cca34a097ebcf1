"""Ablation sweeps: many short task streams that differ in one setting, one results row per stream.

``run_sweep`` runs one stream per combination of stage ordering, task order, seed and override
values, with ``phplib.continual.runner.run_stream``. ``run_prompt_sweep`` varies one prompt or
depth setting at a time (TMI length, TMDG prompt length, the depth-group boundaries). ``summarize``
takes the mean and standard deviation per group. The rows are plain numbers, so a sweep written to
CSV can be read back and compared with a fresh run of any subset.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from phplib.config import RunConfig, config_from_dict, config_to_dict

logger = logging.getLogger(__name__)

# The six permutations of S, M and D over the three depth groups, then the three variants that
# drop one stage and leave its group without a module.
ORDERINGS: list[str] = ["SMD", "SDM", "MSD", "MDS", "DSM", "DMS", "-MD", "S-D", "SM-"]
METRICS: list[str] = ["A_mean", "A_final", "F_mean", "BWT"]
PROMPT_KEYS: list[str] = ["stages.tmi_length", "stages.tmdg_length", "stages.groups"]
MATRIX_COLUMN = "R"  # JSON of the accuracy matrix, present when a sweep keeps matrices
# Paired blocks of both shipped tower pairs (tiny-vit + tiny-htsat and ViT-B/32 + HTSAT-tiny).
PAIRED_BLOCKS = 12


def task_order_label(tasks: list[str]) -> str:
    """Name a task order the way sweep tables do: ``["AVE", "LLP"]`` -> ``"AVE>LLP"``."""
    return ">".join(tasks)


def parse_task_order(text: str) -> list[str]:
    """Read a task order written as ``AVE,LLP,AVQA`` or ``AVE>LLP>AVQA``."""
    separator = ">" if ">" in text else ","
    tasks = [name.strip() for name in text.split(separator) if name.strip()]
    if not tasks:
        raise ValueError(f"task order {text!r} is empty; write it as AVE,LLP,AVQA")
    return tasks


def encode_value(value: Any) -> Any:
    """Return a table cell for an override value: lists become JSON text, scalars stay as they are."""
    if isinstance(value, (list, tuple)):
        return json.dumps([list(item) if isinstance(item, tuple) else item for item in value])
    return value


def groups_from_boundaries(shallow_end: int, deep_start: int, num_blocks: int = PAIRED_BLOCKS) -> list[list[int]]:
    """Split blocks 0..num_blocks-1 into three contiguous depth groups.

    The shallow group is ``[0, shallow_end)``, the middle group ``[shallow_end, deep_start)`` and
    the deep group ``[deep_start, num_blocks)``; each must contain at least one block.
    """
    if not 1 <= shallow_end < deep_start < num_blocks:
        raise ValueError(
            f"group boundaries ({shallow_end}, {deep_start}) must satisfy 1 <= shallow_end < deep_start < {num_blocks}, "
            "so that each of the three groups has at least one block"
        )
    return [list(range(0, shallow_end)), list(range(shallow_end, deep_start)), list(range(deep_start, num_blocks))]


def configure(
    config: RunConfig, order: str, tasks: list[str], seed: int, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Return a validated copy of ``config`` with the ordering, task order, seed and dotted overrides set."""
    values = config_to_dict(config)
    values["stages"]["order"] = order
    values["tasks"] = list(tasks)
    values["train"]["seed"] = seed
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise ValueError(f"unknown override key {dotted!r}: {key!r} is not a config section")
            node = node[key]
        if leaf not in node:
            raise ValueError(f"unknown override key {dotted!r}; use a dotted config key such as stages.tmi_length")
        node[leaf] = value
    return config_from_dict(values)


def _check_orders(orders: list[str], config: RunConfig) -> None:
    if not orders:
        raise ValueError("orders is empty; pass at least one ordering such as 'SMD' (all of them: ORDERINGS)")
    for order in orders:
        # Validation of the letters and their count against the groups happens in RunConfig.validate.
        configure(config, order, config.tasks, config.train.seed)


def run_settings(
    config: RunConfig,
    settings: list[dict[str, Any]],
    override_keys: list[str],
    *,
    progress: bool = True,
    keep_matrix: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run one stream per setting and return one row per stream.

    Each setting is a dict with ``order``, ``tasks``, ``seed`` and ``overrides`` (dotted key ->
    value). Every config is built and validated before the first stream starts, so a bad value
    fails at once instead of after minutes of training. ``on_row(row)`` is called after each
    stream, for example to append it to a file.
    """
    from phplib.continual.runner import run_stream

    configs = [configure(config, s["order"], s["tasks"], s["seed"], s.get("overrides")) for s in settings]
    rows = []
    bar = tqdm(list(zip(settings, configs)), desc="streams", unit="stream", disable=not progress)
    for setting, stream_config in bar:
        label = f"{setting['order']} {task_order_label(setting['tasks'])} seed {setting['seed']}"
        bar.set_postfix_str(label)
        started = time.perf_counter()
        result = run_stream(stream_config, run_dir=None, progress=False)
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "order": setting["order"],
            "task_order": task_order_label(setting["tasks"]),
            "seed": setting["seed"],
        }
        for key in override_keys:
            row[key] = encode_value(read_dotted(stream_config, key))
        for metric in METRICS:
            row[metric] = float(result.metrics[metric])
        row["seconds"] = round(seconds, 2)
        if keep_matrix:
            row[MATRIX_COLUMN] = matrix_to_json(result.accuracy_matrix)
        logger.info("sweep stream %s: A_mean %.4f F_mean %.4f in %.1f s", label, row["A_mean"], row["F_mean"], seconds)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return pd.DataFrame(rows)


def read_dotted(config: RunConfig, dotted: str) -> Any:
    """Return the config value at a dotted key such as ``stages.tmi_length``."""
    node: Any = config
    for key in dotted.split("."):
        node = getattr(node, key)
    return node


def matrix_to_json(matrix: np.ndarray) -> str:
    """Write an accuracy matrix as JSON, NaN cells as null, scores rounded to 10 decimals."""
    return json.dumps([[None if math.isnan(v) else round(float(v), 10) for v in row] for row in np.asarray(matrix)])


def matrix_from_json(text: str) -> np.ndarray:
    """Read back ``matrix_to_json``'s output as a float array with NaN above the diagonal."""
    return np.array([[math.nan if v is None else v for v in row] for row in json.loads(text)], dtype=float)


def run_sweep(
    config: RunConfig,
    *,
    orders: list[str],
    seeds: list[int],
    task_orders: list[list[str]] | None = None,
    overrides: dict[str, list] | None = None,
    progress: bool = True,
    keep_matrix: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run one stream per combination of order x task order x seed x override values.

    Returns one row per stream. The columns are ``order``, ``task_order`` (for example
    ``"AVE>LLP>AVQA"``) and ``seed``, then one column per override key (dotted config keys such as
    ``"stages.tmi_length"``, with list values as JSON text). ``A_mean``, ``A_final``, ``F_mean``,
    ``BWT`` and ``seconds`` (wall time of the stream) follow. With ``keep_matrix`` a last column ``R``
    holds each stream's accuracy matrix as JSON (read it with ``matrix_from_json``).
    ``task_orders`` defaults to the config's own task list.
    """
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, for example [0]")
    task_orders = [list(tasks) for tasks in (task_orders or [config.tasks])]
    _check_orders(orders, config)
    overrides = dict(overrides or {})
    for key, values in overrides.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"overrides[{key!r}] must be a non-empty list of values, got {values!r}")
    keys = list(overrides)
    settings = [
        {"order": order, "tasks": tasks, "seed": seed, "overrides": dict(zip(keys, combination))}
        for order, tasks, seed, combination in itertools.product(
            orders, task_orders, seeds, itertools.product(*overrides.values())
        )
    ]
    return run_settings(config, settings, keys, progress=progress, keep_matrix=keep_matrix, on_row=on_row)


def prompt_settings(
    config: RunConfig,
    *,
    seeds: list[int],
    tmi_lengths: list[int],
    tmdg_lengths: list[int],
    boundaries: list[tuple[int, int]],
    task_orders: list[list[str]] | None = None,
) -> list[dict[str, Any]]:
    """List the streams of a one-factor-at-a-time prompt sweep around the config's own values.

    Each factor (TMI length, TMDG prompt length, depth-group boundaries) takes each of its values
    while the other two keep the config's values. A setting equal to the config's own appears once,
    with ``swept`` = ``"base"``.
    """
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, for example [0]")
    task_orders = [list(tasks) for tasks in (task_orders or [config.tasks])]
    base = {
        "stages.tmi_length": config.stages.tmi_length,
        "stages.tmdg_length": config.stages.tmdg_length,
        "stages.groups": config.stages.groups,
    }
    variants: list[tuple[str, dict[str, Any]]] = [("base", dict(base))]
    for value in tmi_lengths:
        variants.append(("stages.tmi_length", {**base, "stages.tmi_length": value}))
    for value in tmdg_lengths:
        variants.append(("stages.tmdg_length", {**base, "stages.tmdg_length": value}))
    for shallow_end, deep_start in boundaries:
        groups = groups_from_boundaries(shallow_end, deep_start)
        variants.append(("stages.groups", {**base, "stages.groups": groups}))
    unique: list[tuple[str, dict[str, Any]]] = []
    for swept, values in variants:
        if all(values != kept for _, kept in unique):
            unique.append((swept, values))
    return [
        {"order": config.stages.order, "tasks": tasks, "seed": seed, "overrides": values, "swept": swept}
        for swept, values in unique
        for tasks in task_orders
        for seed in seeds
    ]


def run_prompt_sweep(
    config: RunConfig,
    *,
    seeds: list[int],
    tmi_lengths: list[int],
    tmdg_lengths: list[int],
    boundaries: list[tuple[int, int]],
    task_orders: list[list[str]] | None = None,
    progress: bool = True,
    keep_matrix: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run ``prompt_settings`` and return its rows with the columns of ``run_sweep`` plus ``swept``.

    Every row carries all three keys of ``PROMPT_KEYS``, so any row names its whole setting.
    """
    settings = prompt_settings(
        config, seeds=seeds, tmi_lengths=tmi_lengths, tmdg_lengths=tmdg_lengths, boundaries=boundaries,
        task_orders=task_orders,
    )
    frame = run_settings(config, settings, PROMPT_KEYS, progress=progress, keep_matrix=keep_matrix, on_row=on_row)
    frame.insert(3, "swept", [setting["swept"] for setting in settings])
    return frame


def summarize(frame: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Mean and standard deviation of each metric per group, and ``n`` (streams per group).

    ``by`` defaults to ``["order"]``. Columns: the ``by`` columns, then ``<metric> mean`` and
    ``<metric> std`` for A_mean, A_final, F_mean and BWT, then ``n``. The std uses ddof=1, so it
    is NaN for a group of one stream. Groups keep the order of their first row.
    """
    by = list(by or ["order"])
    missing = [column for column in [*by, *METRICS] if column not in frame.columns]
    if missing:
        raise ValueError(f"sweep table has no column(s) {', '.join(missing)}; columns are {', '.join(frame.columns)}")
    if frame.empty:
        raise ValueError("sweep table is empty; run a sweep first")
    groups = frame.groupby(by, sort=False)
    summary = groups[METRICS].agg(["mean", "std"])
    summary.columns = [f"{metric} {statistic}" for metric, statistic in summary.columns]
    summary["n"] = groups.size()
    return summary.reset_index()


def format_summary(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Render ``summarize`` output as ``mean ± std`` text per metric, for printing."""
    keys = [column for column in summary.columns if not column.endswith((" mean", " std")) and column != "n"]
    shown = summary[keys].copy()
    for metric in METRICS:
        means, stds = summary[f"{metric} mean"], summary[f"{metric} std"]
        shown[metric] = [
            f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(means, stds)
        ]
    shown["n"] = summary["n"]
    return shown
