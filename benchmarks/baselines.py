"""Run every method on one small toy stream for several seeds; write the comparison the notebook shows.

Run: ``.venv/bin/python benchmarks/baselines.py`` (defaults: seeds 0 1 2, the stream AVE -> LLP ->
AVQA on a toy world of 32 training and 16 test clips per task, 4 one-second segments per clip,
2 epochs per task, one torch thread). It prints, per method, the metrics of R, the trainable
parameters, the parameters stored per task and the training seconds per task, and writes:

- ``--csv`` (default ``notebooks/results/baselines.csv``): one row per method and seed;
- the same name with ``_matrices`` added: every cell of every R, in long form, for the heatmaps.

Notebook 10 reads both files. The numbers are for the machine the script runs on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The toy world and training settings of the cached comparison that notebook 10 reads.
TOY_WORLD = {"num_segments": 4, "ave_clips": [32, 0, 16], "llp_clips": [32, 0, 16], "avqa_clips": [32, 0, 16]}
SETTINGS = {"data.num_segments": 4, "train.epochs": 2, "train.probe": False, "train.num_threads": 1}


def comparison_config(root: Path, config_path: Path = REPO / "configs" / "toy.yaml"):
    """Return the run config of the cached comparison, with its toy world under ``root``."""
    from phplib.config import load_config

    return load_config(config_path, {"data.root": str(root), "data.toy": dict(TOY_WORLD), **SETTINGS})


def matrices_frame(runs, seeds_per_run):
    """Collect every cell of every run's R (and PHP's predicted-identity R) in long form."""
    import numpy as np
    import pandas as pd

    from phplib.continual.compare import PREDICTED_LABEL

    rows = []
    for run, seed in zip(runs, seeds_per_run):
        panels = [(run.method, run.matrix)]
        if run.predicted_matrix is not None:
            panels.append((PREDICTED_LABEL, run.predicted_matrix))
        for label, matrix in panels:
            for t, i in zip(*np.tril_indices(len(run.task_names))):
                rows.append({"method": label, "seed": seed, "after": run.task_names[t], "task": run.task_names[i],
                             "score": float(matrix[t, i])})
    return pd.DataFrame(rows)


def markdown_table(frame) -> str:
    """Render a pandas frame as a Markdown table, index first (for benchmarks/README.md)."""
    header = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index), *map(str, row)]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["all"])
    parser.add_argument("--csv", default=str(REPO / "notebooks" / "results" / "baselines.csv"))
    args = parser.parse_args()

    import pandas as pd
    import torch

    from phplib.continual.compare import format_comparison, resolve_methods, run_method, comparison_rows, summarize_comparison

    torch.set_num_threads(1)
    methods = resolve_methods(args.methods)
    started = time.perf_counter()
    runs, seeds_per_run, rows = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        config = comparison_config(Path(folder) / "toyworld")
        for seed in args.seeds:
            for name in methods:
                config.train.seed = seed
                run = run_method(config, name, None, progress=False)
                print(f"seed {seed} {name:16s} A_final {run.metrics['A_final']:.3f}  {run.seconds_per_task:.1f} s per task", flush=True)
                runs.append(run)
                seeds_per_run.append(seed)
                rows.extend(comparison_rows(run, seed))
    table = pd.DataFrame(rows)
    csv = Path(args.csv)
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.round(6).to_csv(csv, index=False)
    matrices_frame(runs, seeds_per_run).round(6).to_csv(csv.with_name(csv.stem + "_matrices.csv"), index=False)

    print()
    print(f"torch {torch.__version__}, 1 thread, {time.perf_counter() - started:.0f} s in all; tasks {' > '.join(config.tasks)}")
    print(markdown_table(format_comparison(summarize_comparison(table))))
    print(f"written: {csv} and {csv.with_name(csv.stem + '_matrices.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
