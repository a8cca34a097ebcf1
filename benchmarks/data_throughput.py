"""Measure the data pipeline on this machine: prepare's decoding rate, and an epoch from the cache against decoding.

Run: ``.venv/bin/python benchmarks/data_throughput.py`` (add ``--root DIR`` to reuse a toy world).
It writes the default toy world (128 train, 32 val, 64 test clips per task, AVSBench S4 included)
into a temporary folder unless ``--root`` is given, then:

1. runs ``prepare_dataset("toyworld", ...)`` into an empty cache with ``--workers`` decoding
   processes and reports clips per second;
2. reads one epoch of every train split (AVE, LLP, MUSIC-AVQA, AVSBench S4) item by item, once
   from the cache and once decoding each item's media again, and reports the ratio of the two.

The numbers are for the machine it runs on; benchmarks/README.md records them with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def epoch_seconds(dataset, read_item) -> float:
    started = time.perf_counter()
    for index in range(len(dataset)):
        read_item(dataset, index)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="an existing toy world (default: generate the default one in a temporary folder)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes for prepare (default: 2)")
    args = parser.parse_args()

    import torch

    from phplib.data.ave import AVEDataset
    from phplib.data.avsbench import AVSDataset
    from phplib.data.llp import LLPDataset
    from phplib.data.music_avqa import MusicAVQADataset
    from phplib.data.prepare import prepare_dataset
    from phplib.data.toyworld import ToyWorldConfig, generate_toy_world

    with tempfile.TemporaryDirectory() as folder:
        root = Path(args.root) if args.root else Path(folder) / "toyworld"
        started = time.perf_counter()
        generate_toy_world(root, ToyWorldConfig(), progress=False)
        generation = time.perf_counter() - started
        cache_dir = Path(folder) / "cache"

        result = prepare_dataset("toyworld", root, cache_dir=cache_dir, workers=args.workers, progress=False)
        clips = sum(result.clips.values())
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.workers} decoding processes")
        print(f"toy world generation (skipped when complete)  {generation:7.1f} s")
        print(f"prepare: {clips} clips in {result.seconds:.1f} s = {clips / result.seconds:.1f} clips/s "
              f"(verification included); cache size {sum(p.stat().st_size for p in cache_dir.rglob('*.pt')) / 2**20:.0f} MiB")

        factories = {"AVE": AVEDataset, "LLP": LLPDataset, "MUSIC-AVQA": MusicAVQADataset, "AVSBench S4": AVSDataset}
        total_cached = total_decoded = 0.0
        print(f"{'train split':12s} {'items':>6s} {'from cache':>11s} {'decoding':>10s} {'ratio':>7s}")
        for name, factory in factories.items():
            dataset = factory(root, "train", progress=False, cache_dir=cache_dir)
            cached = epoch_seconds(dataset, lambda d, i: d[i])
            # Decoding every time: the dataset's decoder on the item's source, as a loader without a cache would.
            store = dataset._clips  # a CachedClips, which keeps the decoder and the sources
            decoded = epoch_seconds(dataset, lambda d, i: store.decoder(store.sources[_video_id(d, i)]))
            total_cached += cached
            total_decoded += decoded
            print(f"{name:12s} {len(dataset):6d} {cached:10.2f}s {decoded:9.2f}s {decoded / cached:6.1f}x")
        print(f"{'all four':12s} {'':6s} {total_cached:10.2f}s {total_decoded:9.2f}s {total_decoded / total_cached:6.1f}x"
              "   (target: at least 5x)")
    return 0


def _video_id(dataset, index: int) -> str:
    if hasattr(dataset, "samples"):
        sample = dataset.samples[index]
        return sample["video_id"] if isinstance(sample, dict) else sample[0]
    if hasattr(dataset, "questions"):
        return dataset.questions[index].video_id
    return dataset.records[index].name


if __name__ == "__main__":
    raise SystemExit(main())
