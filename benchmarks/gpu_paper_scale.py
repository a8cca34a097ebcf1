"""Throughput and memory of the paper-scale model (ViT-B/32 + HTSAT-tiny) on one GPU, in fp32 and bf16.

Run: ``.venv/bin/python benchmarks/gpu_paper_scale.py`` (about 1-3 minutes on a recent GPU).
It builds the model with random weights, so no weight files are needed. The synthetic clips have
the real shapes: 10 one-second segments per clip, each one 224 px frame and one second of 48 kHz
audio. For each precision it prints:

- clips per second of a training step (forward, loss, backward, Adam step), of an inference
  forward of PHP, and of the frozen towers alone;
- peak GPU memory of the training step and of the inference forward;
- the ratios PHP forward / frozen towers forward and training step / inference forward.

Without a GPU it runs a shortened CPU version (1 clip per step, 1 timed step after 1 warm-up,
no memory numbers) and prints that it did. ``--smoke`` switches to the toy-scale towers with the smallest
settings, so a test can run the whole script in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from stage_costs import build_scale  # noqa: E402

from phplib.config import TrainConfig  # noqa: E402
from phplib.continual.learner import autocast_context  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(function, steps: int, warmup: int, device: torch.device) -> tuple[float, int]:
    """Run ``function`` ``warmup`` times untimed, then ``steps`` times; return (median seconds, peak bytes).

    The peak is the largest GPU allocation during the timed calls (0 on the CPU).
    """
    for _ in range(warmup):
        function()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        function()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return statistics.median(seconds), peak


def measure(model, frames, spectrogram, batch, precision: str, steps: int, warmup: int, device: torch.device) -> dict:
    """Time the frozen towers, PHP inference and a PHP training step at one precision."""
    config = TrainConfig(precision=precision)
    optimizer = torch.optim.Adam(model.trainable_parameters("AVE"), lr=1e-4)
    clips = frames.shape[0]

    def frozen() -> None:
        with torch.no_grad(), autocast_context(config, device):
            model.frozen_features(frames, spectrogram)

    def inference() -> None:
        with torch.no_grad(), autocast_context(config, device):
            model(frames, spectrogram, "AVE", batch)

    def train_step() -> None:
        model.train()
        with autocast_context(config, device):
            loss = model.heads["AVE"].loss(model(frames, spectrogram, "AVE", batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.eval()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{precision} training step gave loss {loss.item()}")

    model.eval()
    results = {}
    for name, function in (("frozen towers", frozen), ("PHP inference", inference), ("PHP train step", train_step)):
        seconds, peak = time_steps(function, steps, warmup, device)
        results[name] = {"clips_per_second": clips / seconds, "seconds": seconds, "peak_bytes": peak}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, help="clips per step (default: 16 on a GPU, 1 on the CPU)")
    parser.add_argument("--steps", type=int, help="timed calls per variant, median reported (default: 10 GPU, 1 CPU)")
    parser.add_argument("--warmup", type=int, help="untimed calls per variant first (default: 3 GPU, 1 CPU)")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy-scale towers, 1 clip of 2 segments, 1 step, no warm-up: checks that the script runs")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device} requested but no CUDA device is available", file=sys.stderr)
        return 2
    on_gpu = device.type == "cuda"
    scale = "toy" if args.smoke else "paper"
    segments = 2 if args.smoke else 10
    batch_size = args.batch or (16 if on_gpu and not args.smoke else 1)
    steps = args.steps or (10 if on_gpu and not args.smoke else 1)
    warmup = args.warmup
    if warmup is None and args.smoke:
        warmup = 0
    elif warmup is None:
        warmup = 3 if on_gpu else 1
    if min(batch_size, steps) < 1 or warmup < 0:
        print("error: --batch and --steps must be at least 1, --warmup at least 0", file=sys.stderr)
        return 2
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows measure true fp32
        torch.backends.cudnn.allow_tf32 = False

    started = time.perf_counter()
    model, frames, spectrogram, batch = build_scale(scale, batch_size, segments, str(device))
    where = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {where}; torch {torch.__version__}")
    if not on_gpu:
        print("no GPU: this is the shortened CPU version (few steps, no GPU memory numbers); "
              "run it on a GPU machine for the real measurement")
    if args.smoke:
        print("--smoke: toy-scale towers and the smallest settings; the numbers only show that the script runs")
    print(f"model: {model.vision.name} + {model.audio_tower.name}, random weights, order {model.stage_config.order}; "
          f"batch of {batch_size} clip(s) x {segments} segments ({model.vision.image_size} px frames, "
          f"{model.audio_tower.sample_rate} Hz audio); median of {steps} timed step(s) after {warmup} warm-up; "
          f"build {time.perf_counter() - started:.1f} s")

    rows = {}
    for precision in args.precisions:
        rows[precision] = measure(model, frames, spectrogram, batch, precision, steps, warmup, device)

    print()
    print(f"{'':34s}" + "".join(f"{precision:>12s}" for precision in rows))
    for name in ("PHP train step", "PHP inference", "frozen towers"):
        print(f"{name + ', clips/s':34s}" + "".join(f"{rows[p][name]['clips_per_second']:12.3g}" for p in rows))
    if on_gpu:
        for name in ("PHP train step", "PHP inference"):
            label = f"{name}, peak GPU memory GiB"
            print(f"{label:34s}" + "".join(f"{rows[p][name]['peak_bytes'] / 2**30:12.2f}" for p in rows))
    ratios = {
        "PHP forward / frozen towers": ("PHP inference", "frozen towers"),
        "train step / inference forward": ("PHP train step", "PHP inference"),
    }
    for label, (top, bottom) in ratios.items():
        print(f"{label:34s}" + "".join(f"{rows[p][top]['seconds'] / rows[p][bottom]['seconds']:11.2f}x" for p in rows))
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
