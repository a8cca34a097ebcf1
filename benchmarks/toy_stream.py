"""Measure the toy stream on this machine: data generation, the stream, peak memory.

Run: ``.venv/bin/python benchmarks/toy_stream.py`` (or ``make bench``). It generates the toy world
into a fresh temporary folder, then runs ``configs/toy.yaml`` end to end and prints where the time
went. The numbers are for the machine it runs on; benchmarks/README.md records them with the
machine they came from.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def peak_memory_gib() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "toy.yaml"))
    args = parser.parse_args()

    started = time.perf_counter()
    import torch

    from phplib.config import load_config
    from phplib.continual.runner import matrix_frame, run_stream
    from phplib.data.toyworld import ToyWorldConfig, generate_toy_world

    import_seconds = time.perf_counter() - started
    memory_after_import = peak_memory_gib()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "toyworld"
        config = load_config(args.config, {"data.root": str(root)})
        started = time.perf_counter()
        generate_toy_world(root, ToyWorldConfig(**config.data.toy), progress=False)
        generation_seconds = time.perf_counter() - started

        started = time.perf_counter()
        result = run_stream(config, Path(folder) / "run", progress=False)
        total_seconds = time.perf_counter() - started

    timings = result.timings
    stream_seconds = timings["train_and_evaluate"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, config {args.config}")
    print(f"import phplib and torch         {import_seconds:6.1f} s")
    print(f"toy world generation            {generation_seconds:6.1f} s")
    print(f"model build                     {timings['build_model']:6.1f} s")
    print(f"read and decode clips           {timings['read_data']:6.1f} s")
    print(f"prepare tower inputs (cached)   {timings['prepare_inputs']:6.1f} s")
    print(f"train + evaluate the stream     {stream_seconds:6.1f} s   (target: at most 90 s)")
    if "probe_and_warmup" in timings:
        print(f"  of which probes and head warm-up {timings['probe_and_warmup']:5.1f} s")
    if "checkpoints" in timings:
        print(f"  of which 3 checkpoints          {timings['checkpoints']:5.2f} s")
    print(f"whole run_stream call           {total_seconds:6.1f} s")
    print(f"peak memory                     {peak_memory_gib():6.2f} GiB (after imports: {memory_after_import:.2f} GiB)")
    print()
    print(matrix_frame(result.accuracy_matrix, result.task_names).round(3).to_string(na_rep="-"))
    print({key: round(value, 4) for key, value in result.metrics.items()})
    print("probe:", {key: round(value, 4) for key, value in result.probe_scores.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
