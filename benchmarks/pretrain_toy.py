"""Measure toy pretraining: wall time, zero-shot accuracy of the shipped towers, depth-probe curves.

Run: ``.venv/bin/python benchmarks/pretrain_toy.py``. Steps:

1. ``python -m phplib pretrain --scale toy`` into a temporary folder, timed, with its SHA-256 sums
   compared against the shipped ``SHA256SUMS`` (skip with ``--skip-pretrain``);
2. zero-shot accuracy of the shipped CLIP and CLAP on held-out pretraining-world items;
3. layer-wise probes on every paired block for the shipped and for random towers, written to
   ``notebooks/results/02_depth_probes.csv``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PROBE_CSV = REPO / "notebooks" / "results" / "02_depth_probes.csv"


def time_pretraining() -> None:
    from phplib.backbones.pretrained import TOY_WEIGHTS_DIR

    with tempfile.TemporaryDirectory(prefix="phplib-pretrain-") as folder:
        command = [sys.executable, "-m", "phplib", "pretrain", "--scale", "toy", "--out", folder, "--no-progress"]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""})
        seconds = time.perf_counter() - started
        fresh = (Path(folder) / "SHA256SUMS").read_text()
    shipped = (TOY_WEIGHTS_DIR / "SHA256SUMS").read_text()
    print(f"pretraining wall time: {seconds:.1f} s (1 torch thread)")
    print(f"regenerated files identical to the shipped ones: {fresh == shipped}")


def zero_shot(num_items: int) -> None:
    from phplib.backbones.pretrained import TOY_AUDIO_WEIGHTS, TOY_VISION_WEIGHTS
    from phplib.pretrain.evaluate import clap_zero_shot, clip_zero_shot
    from phplib.pretrain.models import load_toy_clap, load_toy_clip
    from phplib.pretrain.world import build_pretrain_set

    held_out = build_pretrain_set(num_items, num_items, seed=1, image_size=64, sample_rate=16000, offset=10**6)
    print(f"zero-shot CLIP on {num_items} held-out images:")
    print(clip_zero_shot(load_toy_clip(TOY_VISION_WEIGHTS), held_out).round(3).to_string())
    print(f"zero-shot CLAP on {num_items} held-out sounds:")
    print(clap_zero_shot(load_toy_clap(TOY_AUDIO_WEIGHTS), held_out).round(3).to_string())


def probes(num_items: int, num_ave_clips: int) -> None:
    import pandas as pd
    import torch

    from phplib.backbones.clap_audio import build_clap_audio, calibrate_mel_normalization
    from phplib.backbones.clip_vision import build_clip_vision
    from phplib.backbones.pretrained import TOY_AUDIO_WEIGHTS, TOY_VISION_WEIGHTS
    from phplib.pretrain.probes import build_probe_data, depth_probes

    data = build_probe_data(num_items, num_ave_clips)
    torch.manual_seed(0)
    random_visual, random_audio = build_clip_vision("tiny-vit").eval(), build_clap_audio("tiny-htsat").eval()
    # A random bn0 does not normalise log-mel input; calibrate it as a run with random towers does.
    calibrate_mel_normalization(random_audio, torch.cat([data.pitch_sounds, data.event_sounds]))
    towers = {
        "pretrained": (build_clip_vision("tiny-vit", TOY_VISION_WEIGHTS).eval(),
                       build_clap_audio("tiny-htsat", TOY_AUDIO_WEIGHTS).eval()),
        "random": (random_visual, random_audio),
    }
    tables = []
    for name, (visual, audio) in towers.items():
        table = depth_probes(visual, audio, data)
        table.insert(0, "towers", name)
        tables.append(table.reset_index())
    result = pd.concat(tables).round(4)
    PROBE_CSV.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(PROBE_CSV, index=False)
    print(f"depth probes ({len(data.colour_labels)} images and sounds, {len(data.event_labels)} AVE event seconds) "
          f"-> {PROBE_CSV.relative_to(REPO)}")
    print(result.to_string(index=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-pretrain", action="store_true", help="do not time a fresh pretraining run")
    parser.add_argument("--items", type=int, default=1000, help="held-out images and sounds (default: 1000)")
    parser.add_argument("--ave-clips", type=int, default=128, help="AVE clips for the event probes (default: 128)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    if not args.skip_pretrain:
        time_pretraining()
    zero_shot(args.items)
    probes(args.items, args.ave_clips)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
