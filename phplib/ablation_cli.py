"""``python -m phplib ablate orderings|prompts``: run a sweep, write its CSV, print mean ± std, save a plot."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

DEFAULT_SEEDS = [0, 1, 2]


def _boundaries(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"group boundaries must be SHALLOW_END,DEEP_START such as 2,5, got {text!r}")
    return int(parts[0]), int(parts[1])


def _load(args: argparse.Namespace):
    from phplib.cli import _parse_overrides, missing_inputs
    from phplib.config import load_config

    # Each stream logs dozens of INFO lines (parameter tables, every evaluation). The progress bar
    # and the final table carry what a sweep needs, so only warnings are shown.
    logging.getLogger("phplib").setLevel(logging.WARNING)

    config = load_config(args.config, _parse_overrides(args.set))
    problems = missing_inputs(config)
    if problems:
        raise FileNotFoundError(f"cannot start {args.config}: " + "; ".join(problems))
    return config


def _writer(out: Path):
    """Return an ``on_row`` callback that rewrites the CSV after every stream, so a stopped sweep keeps its rows."""
    import pandas as pd

    from phplib.continual.store import atomic_write_text

    rows: list[dict] = []

    def write(row: dict) -> None:
        rows.append(row)
        atomic_write_text(pd.DataFrame(rows).to_csv(index=False), out)

    return write


def _finish(frame, out: Path, plot: Path, by: list[str], figure) -> None:
    import matplotlib.pyplot as plt

    from phplib.continual.ablation import format_summary, summarize
    from phplib.continual.store import atomic_write_text
    from phplib.viz.heatmaps import save_figure

    atomic_write_text(frame.to_csv(index=False), out)
    summary = summarize(frame, by=by)
    print()
    print(f"{len(frame)} streams in {frame['seconds'].sum():.0f} s of stream time; rows in {out}")
    print("Mean ± std per group (n: streams per group):")
    print(format_summary(summary).to_string(index=False))
    save_figure(figure(frame, summary), plot)
    plt.close("all")
    print(f"plot: {plot}")


def command_orderings(args: argparse.Namespace) -> int:
    from phplib.continual.ablation import ORDERINGS, parse_task_order, run_sweep
    from phplib.viz.sweeps import plot_ordering_summary

    config = _load(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    task_orders = [parse_task_order(text) for text in args.task_orders] if args.task_orders else None
    frame = run_sweep(
        config,
        orders=args.orders or ORDERINGS,
        seeds=args.seeds,
        task_orders=task_orders,
        progress=not args.no_progress,
        keep_matrix=True,
        on_row=_writer(out),
    )
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    _finish(frame, out, plot, ["order"], lambda frame, summary: plot_ordering_summary(summary).figure)
    return 0


def command_prompts(args: argparse.Namespace) -> int:
    from phplib.continual.ablation import PROMPT_KEYS, parse_task_order, run_prompt_sweep
    from phplib.viz.widgets import plot_tradeoff

    config = _load(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    task_orders = [parse_task_order(text) for text in args.task_orders] if args.task_orders else None
    frame = run_prompt_sweep(
        config,
        seeds=args.seeds,
        tmi_lengths=args.tmi_lengths,
        tmdg_lengths=args.tmdg_lengths,
        boundaries=args.boundaries,
        task_orders=task_orders,
        progress=not args.no_progress,
        on_row=_writer(out),
    )
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    _finish(frame, out, plot, ["swept", *PROMPT_KEYS], lambda frame, summary: plot_tradeoff(frame).figure)
    return 0


def add_ablate_parser(commands) -> None:
    """Add ``ablate orderings`` and ``ablate prompts`` to the ``python -m phplib`` subcommands."""
    ablate = commands.add_parser("ablate", help="run an ablation sweep of short streams and write one CSV row per stream")
    kinds = ablate.add_subparsers(dest="sweep", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True, help="YAML run config, e.g. configs/ablation_toy.yaml")
        parser.add_argument("--seeds", type=int, nargs="+", default=DEFAULT_SEEDS, help="seeds (default: 0 1 2)")
        parser.add_argument("--task-orders", nargs="+", metavar="A,B,C",
                            help="task orders such as AVE,LLP,AVQA AVQA,LLP,AVE (default: the config's tasks)")
        parser.add_argument("--out", required=True, help="CSV file for the rows, rewritten after every stream")
        parser.add_argument("--plot", help="figure file (default: --out with .png)")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config value for every stream, e.g. train.epochs=1")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    orderings = kinds.add_parser("orderings", help="every ordering of S, M, D over the depth groups, and drop-one variants")
    common(orderings)
    orderings.add_argument("--orders", nargs="+", help="orderings to run (default: the six permutations and -MD S-D SM-)")
    orderings.set_defaults(func=command_orderings)

    prompts = kinds.add_parser("prompts", help="TMI length, TMDG prompt length and depth-group boundaries, one at a time")
    common(prompts)
    prompts.add_argument("--tmi-lengths", type=int, nargs="+", default=[2, 10, 20],
                         help="TMI prompt lengths per block and modality (default: 2 10 20)")
    prompts.add_argument("--tmdg-lengths", type=int, nargs="+", default=[1, 4, 8],
                         help="TMDG prompt tokens generated per block (default: 1 4 8)")
    prompts.add_argument("--boundaries", type=_boundaries, nargs="+", default=[(1, 6), (2, 5), (4, 8)],
                         metavar="SHALLOW_END,DEEP_START",
                         help="depth-group boundaries: shallow group 0..SHALLOW_END-1, deep group DEEP_START..11 "
                              "(default: 1,6 2,5 4,8)")
    prompts.set_defaults(func=command_prompts)
