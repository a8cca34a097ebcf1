"""Cost of the PHP stages at toy and paper scale on the CPU, as ratios measured side by side.

Run: ``.venv/bin/python benchmarks/stage_costs.py`` (add ``--skip-paper`` for the toy scale only).
For each scale it builds the model with random weights, feeds synthetic clips of the real shapes
and prints:

- forward time of the full PHP model (all three stages) against the frozen towers alone
  (target at most 1.25x at paper scale);
- a training step against an inference forward of the PHP model (target at most 2.2x: the
  towers are frozen, but the backward pass still runs through them for input gradients);
- trainable parameters per task (TMA, TMDG, TMI, head) and their share of the frozen towers.

Timings alternate the variants in each repeat and report medians, so load changes on the
machine affect every variant alike. Beside wall time it reports the process's CPU time, which
other programs on a busy machine disturb much less: with ``--threads 1`` it is the work done.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phplib.config import BackboneConfig, StageConfig  # noqa: E402
from phplib.heads.ave import AVEHead  # noqa: E402
from phplib.model import PHPModel, count_parameters  # noqa: E402

SCALES = {
    "toy": dict(backbone=BackboneConfig(), stages=StageConfig(tma_tokens=8), clips=8),
    "paper": dict(
        backbone=BackboneConfig(vision_model="ViT-B-32", audio_model="HTSAT-tiny"),
        stages=StageConfig(tma_tokens=32),
        clips=1,
    ),
}


def build_scale(scale: str, clips: int, segments: int = 10, device: str = "cpu"):
    """Build the model of ``scale`` with random weights and an AVE task; return it with synthetic inputs.

    Returns ``model, frames, spectrogram, batch``: ``clips`` clips of ``segments`` one-second
    segments each, frames at the vision tower's size and audio at the audio tower's rate, already
    through ``prepare_inputs``, on ``device``.
    """
    settings = SCALES[scale]
    torch.manual_seed(0)
    model = PHPModel(settings["backbone"], settings["stages"])
    model.add_task("AVE", AVEHead(model.video_dim, model.audio_dim, 28))
    model.to(device)
    size, rate = model.vision.image_size, model.audio_tower.sample_rate
    video = torch.randint(0, 256, (clips, segments, 3, size, size), dtype=torch.uint8, device=device)
    frames, spectrogram = model.prepare_inputs(video, torch.randn(clips, segments, rate, device=device) * 0.1)
    batch = {"label": torch.randint(0, 29, (clips, segments), device=device)}
    return model, frames, spectrogram, batch


def measure(scale: str, repeats: int) -> None:
    clips, segments = SCALES[scale]["clips"], 10
    model, frames, spectrogram, batch = build_scale(scale, clips, segments)
    optimizer = torch.optim.Adam(model.trainable_parameters("AVE"), lr=1e-4)

    def frozen() -> None:
        with torch.no_grad():
            model.frozen_features(frames, spectrogram)

    def php_forward() -> None:
        with torch.no_grad():
            model(frames, spectrogram, "AVE", batch)

    def train_step() -> None:
        model.train()
        loss = model.heads["AVE"].loss(model(frames, spectrogram, "AVE", batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()

    model.eval()
    variants = {"frozen towers": frozen, "PHP forward": php_forward, "PHP train step": train_step}
    for function in variants.values():
        function()  # warm-up
    seconds = {name: [] for name in variants}
    cpu_seconds = {name: [] for name in variants}
    for _ in range(repeats):
        for name, function in variants.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            function()
            seconds[name].append(time.perf_counter() - started)
            cpu_seconds[name].append(time.process_time() - cpu_started)
    median = {name: statistics.median(values) / clips for name, values in seconds.items()}
    cpu = {name: statistics.median(values) / clips for name, values in cpu_seconds.items()}

    towers = count_parameters(model.visual) + count_parameters(model.audio)
    tmdg = count_parameters(model.tmdg["AVE"]) if "AVE" in model.tmdg else 0
    tmi = count_parameters(model.tmi["AVE"]) if "AVE" in model.tmi else 0
    tma = count_parameters(model.tma)
    head = count_parameters(model.heads["AVE"])
    print(f"== {scale} scale: {model.vision.name} + {model.audio_tower.name}, {clips} clip(s) of {segments} segments, "
          f"{torch.get_num_threads()} threads, median of {repeats}")
    print(f"  {'':16s} {'wall':>9s}    {'CPU':>9s}")
    for name in variants:
        print(f"  {name:16s} {median[name] * 1000:9.1f}    {cpu[name] * 1000:9.1f} ms per clip")
    print(f"  PHP forward / frozen towers     {median['PHP forward'] / median['frozen towers']:.2f}x wall, "
          f"{cpu['PHP forward'] / cpu['frozen towers']:.2f}x CPU" + ("   (target at most 1.25x)" if scale == "paper" else ""))
    print(f"  train step / PHP forward        {median['PHP train step'] / median['PHP forward']:.2f}x wall, "
          f"{cpu['PHP train step'] / cpu['PHP forward']:.2f}x CPU   (target at most 2.2x)")
    print(f"  frozen towers                   {towers:,} parameters")
    per_block = tmdg // max(1, len(model.placement.blocks("M")))
    print(f"  TMA (shared by all tasks)       {tma:,} ({tma / towers:.2%} of the towers)")
    print(f"  TMDG per task                   {tmdg:,} ({per_block:,} per middle block on average)")
    print(f"  TMI per task                    {tmi:,}")
    print(f"  AVE head                        {head:,}")
    print(f"  stored per task (TMDG+TMI+head) {tmdg + tmi + head:,} ({(tmdg + tmi + head) / towers:.2%} of the towers)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-paper", action="store_true", help="measure the toy scale only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"load average before the run: {os.getloadavg()[0]:.2f}")
    measure("toy", args.repeats)
    if not args.skip_paper:
        measure("paper", args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
