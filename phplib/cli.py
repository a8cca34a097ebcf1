"""phplib's command line: run a task stream, resume it, write the toy world, pretrain the toy towers,
run ablation sweeps."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import yaml

from phplib.continual import distributed

logger = logging.getLogger("phplib.cli")


def missing_inputs(config) -> list[str]:
    """List every local file or folder the config needs and cannot find, with how to obtain it."""
    problems = []
    backbone = config.backbone
    if backbone.vision_weights and not Path(backbone.vision_weights).is_file():
        problems.append(
            f"backbone.vision_weights: {backbone.vision_weights} not found. Export open_clip's "
            f"{backbone.vision_model} weights on a machine with internet access (see README, 'Paper-scale weights'), "
            "or remove the key to keep random weights."
        )
    if backbone.audio_weights and not Path(backbone.audio_weights).is_file():
        problems.append(
            f"backbone.audio_weights: {backbone.audio_weights} not found. Download LAION's CLAP checkpoint "
            "630k-audioset-best.pt on a machine with internet access (see README, 'Paper-scale weights')."
        )
    if config.data.source == "real":
        root = Path(config.data.root)
        expected = {
            "AVE": root / "AVE" / "AVE_Dataset" / "Annotations.txt",
            "LLP": root / "AVVP" / "data" / "AVVP_train.csv",
            "AVQA": root / "AVQA" / "data" / "json" / "avqa-train.json",
            "AVS": root / "AVSBench_data" / "Single-source" / "s4_meta_data.csv",
        }
        for task in config.tasks:
            path = expected.get(task)
            if path is not None and not path.exists():
                problems.append(f"data for {task}: {path} not found (see README, 'Datasets', for the folder layout)")
    return problems


def report_missing_inputs(config, config_path) -> bool:
    """Print every missing input of ``config`` to stderr; return True when any is missing."""
    problems = missing_inputs(config)
    if problems:
        print(f"cannot start {config_path}: {len(problems)} input(s) missing", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    return bool(problems)


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--set expects KEY=VALUE (for example train.epochs=1), got {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def print_run(result, run_dir: Path) -> None:
    """Print R, its metrics, the probe comparison and the timings of one finished run."""
    import pandas as pd

    from phplib.continual.runner import matrix_frame

    print()
    print(f"Accuracy matrix R[t, i] (row: after training on task t; column: task i; {run_dir / 'accuracy_matrix.csv'})")
    print(matrix_frame(result.accuracy_matrix, result.task_names).round(3).to_string(na_rep="-"))
    print()
    for key in ("A_mean", "A_final", "F_mean", "BWT"):
        if key in result.metrics:
            print(f"{key:8s} {result.metrics[key]:.4f}")
    if result.probe_scores:
        print()
        table = pd.DataFrame(
            {
                "PHP (right after the task)": [result.accuracy_matrix[i, i] for i in range(len(result.task_names))],
                "PHP (end of stream)": result.accuracy_matrix[-1],
                "frozen-feature probe": [result.probe_scores.get(name, float("nan")) for name in result.task_names],
            },
            index=result.task_names,
        )
        print(table.round(3).to_string())
    print()
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    print(f"run directory: {run_dir}")


def command_resume(args: argparse.Namespace) -> int:
    from phplib.config import load_config
    from phplib.continual.runner import run_stream

    from phplib.continual.runner import METHOD_FILE

    run_dir = Path(args.resume)
    config_path = run_dir / "config.yaml"
    if (run_dir / METHOD_FILE).is_file() or (run_dir / "comparison.csv").is_file():
        method = (run_dir / METHOD_FILE).read_text().strip() if (run_dir / METHOD_FILE).is_file() else "--method/--methods"
        print(
            f"cannot resume {run_dir}: it is a {method} run, and --resume continues PHP runs only; "
            "start the baseline run again with --method and a new --name",
            file=sys.stderr,
        )
        return 2
    if not config_path.is_file():
        print(f"cannot resume {run_dir}: {config_path} not found; give the directory a run wrote", file=sys.stderr)
        return 2
    if args.config or args.set or args.seeds or args.single_task:
        print("--resume reads the run's own config.yaml; drop --config, --set, --seeds and --single-task", file=sys.stderr)
        return 2
    saved = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    overrides = {}
    if "pretrained" not in (saved.get("backbone") or {}):
        # A run saved before backbone.pretrained existed ran on random towers; keep it on them.
        overrides["backbone.pretrained"] = "none"
        logger.warning("%s has no backbone.pretrained; resuming on random towers as the run started", config_path)
    config = load_config(config_path, overrides)
    result = run_stream(config, run_dir, progress=not args.no_progress, resume=True)
    if distributed.is_main_process():
        print_run(result, run_dir)
    return 0


def command_run(args: argparse.Namespace) -> int:
    if args.methods or (args.method and args.method != "php"):
        from phplib.continual.compare import command_methods

        return command_methods(args)
    if args.resume:
        return command_resume(args)
    if not args.config:
        print("run needs --config FILE (or --resume RUN_DIR)", file=sys.stderr)
        return 2

    from phplib.config import config_from_dict, config_to_dict, load_config

    config = load_config(args.config, _parse_overrides(args.set))
    if report_missing_inputs(config, args.config):
        return 2

    import pandas as pd

    from phplib.continual.results import format_mean_std, results_row, summarize_over_seeds
    from phplib.continual.runner import run_single_task_references, run_stream
    from phplib.continual.store import atomic_write_text

    # Under torchrun every rank checks the folder before any rank writes to it, and all use rank 0's name.
    distributed.init_from_environment(config.train.device)
    name = distributed.broadcast_object(args.name or f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    base_dir = Path(args.output_dir or config.output_dir) / name
    occupied = base_dir.exists() and any(base_dir.iterdir())
    distributed.barrier()
    if occupied:
        hint = f", or continue it with --resume {base_dir}" if (base_dir / "config.yaml").is_file() else ""
        print(f"run directory {base_dir} already exists and is not empty; pass another --name{hint}", file=sys.stderr)
        return 2

    seeds = args.seeds or [config.train.seed]
    rows = []
    for seed in seeds:
        seeded = config_from_dict(config_to_dict(config))
        seeded.train.seed = seed
        run_dir = base_dir if len(seeds) == 1 else base_dir / f"seed_{seed}"
        result = run_stream(seeded, run_dir, progress=not args.no_progress)
        if distributed.is_main_process():
            print_run(result, run_dir)
        references = run_single_task_references(seeded, run_dir, not args.no_progress) if args.single_task else None
        rows.append(results_row(seeded, result.accuracy_matrix, references))

    if not distributed.is_main_process():
        return 0
    table = pd.DataFrame(rows)
    atomic_write_text(table.to_csv(index=False), base_dir / "results.csv")
    summary = summarize_over_seeds(table)
    atomic_write_text(summary.to_csv(index=False), base_dir / "results_summary.csv")
    print()
    print(f"Results ({base_dir / 'results.csv'}):")
    print(table.round(4).to_string(index=False, na_rep="-"))
    if len(seeds) > 1:
        print()
        print(f"Mean ± std over {len(seeds)} seeds ({base_dir / 'results_summary.csv'}):")
        print(format_mean_std(summary).to_string(index=False))
    return 0


def command_toyworld(args: argparse.Namespace) -> int:
    from phplib.data.toyworld import ToyWorldConfig, generate_toy_world

    summary = generate_toy_world(Path(args.root), ToyWorldConfig(seed=args.seed), progress=not args.no_progress)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def command_prepare(args: argparse.Namespace) -> int:
    from phplib.data.prepare import prepare_dataset

    result = prepare_dataset(
        args.dataset,
        args.root,
        cache_dir=args.cache,
        on_error=args.on_error,
        splits=tuple(args.splits),
        num_segments=args.num_segments,
        image_size=args.image_size,
        sample_rate=args.sample_rate,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(result.report.summary())
    print(result.summary())
    return 0


def command_pretrain(args: argparse.Namespace) -> int:
    import torch

    from phplib.backbones.pretrained import TOY_WEIGHTS_DIR
    from phplib.pretrain.train import PretrainSettings, pretrain_toy

    if args.scale != "toy":
        print(f"pretrain supports only --scale toy, not {args.scale!r}", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print(f"--steps must be at least 1, not {args.steps}; leave it out for the shipped weights' count", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else TOY_WEIGHTS_DIR
    if out.exists() and not out.is_dir():
        print(f"--out {out} is a file; give a folder for the checkpoints and SHA256SUMS", file=sys.stderr)
        return 2
    # One thread makes the run repeat bit for bit on one machine; more threads may reorder sums.
    torch.set_num_threads(args.threads)
    defaults = PretrainSettings()
    steps = defaults.steps if args.steps is None else args.steps
    settings = PretrainSettings(steps=steps, seed=defaults.seed if args.seed is None else args.seed)
    summary = pretrain_toy(out, settings, progress=not args.no_progress)
    for key, value in summary.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m phplib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="learn a task stream and write a run directory")
    run.add_argument("--config", help="YAML run config, e.g. configs/toy.yaml")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run after its last finished task")
    run.add_argument("--seeds", type=int, nargs="+", help="run once per seed and report mean ± std (one folder per seed)")
    run.add_argument("--single-task", action="store_true", help="also train each task alone for the transfer metric Diff")
    run.add_argument("--name", help="run directory name under output_dir (default: config name and time)")
    run.add_argument("--output-dir", help="parent folder of run directories (default: the config's output_dir)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=1")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--method", help="method to run: php (default), finetune, finetune-blocks, lwf, ewc, l2p, dualprompt, coda-prompt")
    run.add_argument("--methods", nargs="+", metavar="NAME",
                     help="run these methods (or 'all') on the same stream and write a comparison table and heatmaps")
    run.set_defaults(func=command_run)

    toy = commands.add_parser("toyworld", help="write the toy audio-visual world to disk")
    toy.add_argument("--root", default="data/toyworld", help="output folder (default: data/toyworld)")
    toy.add_argument("--seed", type=int, default=0, help="master seed of the generated world (default: 0)")
    toy.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    toy.set_defaults(func=command_toyworld)

    prepare = commands.add_parser(
        "prepare", help="check a dataset folder against data_manifests/DATASET.yaml and decode its media into a cache"
    )
    prepare.add_argument("dataset", choices=("ave", "llp", "avsbench_s4", "music_avqa", "toyworld"))
    prepare.add_argument("--root", required=True, help="folder that contains the dataset in the manifest's layout")
    prepare.add_argument("--cache", help="cache folder (default: ROOT/phplib_cache)")
    prepare.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                         help="stop at the first missing or unreadable file (raise), or leave it out and list it (skip)")
    prepare.add_argument("--splits", nargs="+", choices=("train", "val", "test"), default=["train", "val", "test"])
    prepare.add_argument("--num-segments", type=int, help="one-second segments per clip (default: the manifest's)")
    prepare.add_argument("--image-size", type=int, help="frame side in pixels (default: the manifest's)")
    prepare.add_argument("--sample-rate", type=int, help="audio rate in Hz (default: the manifest's)")
    prepare.add_argument("--workers", type=int, default=1, help="decoding processes (default: 1)")
    prepare.add_argument("--no-progress", action="store_true", help="hide progress bars")
    prepare.set_defaults(func=command_prepare)

    from phplib.ablation_cli import add_ablate_parser

    add_ablate_parser(commands)

    pretrain = commands.add_parser(
        "pretrain", help="pretrain the tiny CLIP and CLAP towers contrastively on a captioned toy world"
    )
    pretrain.add_argument("--scale", choices=("toy",), required=True, help="model scale; only toy is supported")
    pretrain.add_argument("--out", help="folder for the checkpoints and SHA256SUMS (default: the shipped folder "
                          "phplib/backbones/pretrained/toy, which this overwrites)")
    pretrain.add_argument("--steps", type=int, help="optimisation steps per tower (default: the shipped weights' count)")
    pretrain.add_argument("--seed", type=int, help="seed of the pretraining world and the initialisation (default: 1)")
    pretrain.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, which repeats bit for bit)")
    pretrain.add_argument("--no-progress", action="store_true", help="hide progress bars")
    pretrain.set_defaults(func=command_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
