"""Memory plan at paper scale: parameters, activation memory per clip, and the batch that fits a GPU.

Run: ``.venv/bin/python benchmarks/memory_plan.py`` (CPU only, about 1-2 minutes; add ``--scale toy``
for the toy towers).

Method. Activation memory is measured without a GPU with ``torch.autograd.graph.saved_tensors_hooks``.
During one training forward (PHP with an AVE head, loss included) the hook records every tensor
that autograd saves for the backward pass. The script sums the bytes of the distinct storages
behind them and leaves out storages that belong to parameters. That is the memory a GPU must hold
between forward and backward. It is measured for 1 and for 2 clips of 10 one-second segments.
The difference is the cost of one clip. What remains at 1 clip is a per-step constant, mostly
bf16 copies of frozen weights that autocast casts once per step and keeps for the backward.

The batch that fits a card of C GiB is then

    floor((0.9 * C - 1 GiB - fixed) / per_clip)

where ``fixed`` is the sum of the fp32 weights of both towers, the trainable parameters of one task with
their gradients and two Adam moments, and the per-step constant. 0.9 * C and the 1 GiB (CUDA
context and workspace) are an allowance for the caching allocator and the transient buffers of
the backward pass, which this method does not see. The result is an estimate to check with
``benchmarks/gpu_paper_scale.py --batch N`` on the card itself.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from stage_costs import build_scale  # noqa: E402

from phplib.model import count_parameters  # noqa: E402

GIB = 2**30
CARDS_GIB = (24, 40, 80)
CONTEXT_RESERVE = 1 * GIB  # CUDA context and cuBLAS/cuDNN workspaces, an allowance
USABLE_SHARE = 0.9  # allocator fragmentation and backward transients, an allowance


def saved_tensor_bytes(function, exclude: list[torch.Tensor] = ()) -> int:
    """Run ``function`` and return the bytes of distinct storages autograd saves for backward.

    Storages of the ``exclude`` tensors (the model's parameters) are not counted, because they
    are held whether or not a backward follows.
    """
    excluded = {tensor.untyped_storage().data_ptr() for tensor in exclude}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(storages.values())


def training_forward_bytes(scale: str, clips: int, precision: str) -> tuple[int, nn.Module]:
    """Saved-for-backward bytes of one training forward with loss of ``clips`` clips."""
    model, frames, spectrogram, batch = build_scale(scale, clips)
    model.train()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def forward() -> None:
        with autocast:
            model.heads["AVE"].loss(model(frames, spectrogram, "AVE", batch), batch)

    return saved_tensor_bytes(forward, exclude=list(model.parameters())), model


def batch_that_fits(card_gib: float, fixed: int, per_clip: int) -> int:
    """Clips per step that fit a card of ``card_gib`` GiB, with the allowances of the module docstring."""
    usable = USABLE_SHARE * card_gib * GIB - CONTEXT_RESERVE - fixed
    return max(0, math.floor(usable / per_clip))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("paper", "toy"), default="paper")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    args = parser.parse_args(argv)

    started = time.perf_counter()
    measured = {}
    model = None
    for precision in args.precisions:
        one, model = training_forward_bytes(args.scale, 1, precision)
        two, _ = training_forward_bytes(args.scale, 2, precision)
        measured[precision] = (two - one, one - (two - one))

    towers = count_parameters(model.visual) + count_parameters(model.audio)
    tma = count_parameters(model.tma)
    task = sum(count_parameters(module) for module in model.task_owned_modules("AVE"))
    trainable = tma + task
    weights_bytes = 4 * (towers + trainable)
    training_state_bytes = 4 * 3 * trainable  # gradients and Adam's two moments, fp32

    print(f"model: {model.vision.name} + {model.audio_tower.name}, order {model.stage_config.order}, "
          f"clips of 10 one-second segments; measured on the CPU with saved-tensor hooks in "
          f"{time.perf_counter() - started:.0f} s")
    print()
    print("| | parameters | memory (fp32) |")
    print("|---|---|---|")
    print(f"| frozen towers | {towers:,} | {4 * towers / GIB:.2f} GiB |")
    print(f"| TMA (shared) | {tma:,} | {4 * tma / 2**20:.1f} MiB |")
    print(f"| TMDG + TMI + AVE head (one task) | {task:,} | {4 * task / 2**20:.1f} MiB |")
    print(f"| gradients + Adam moments of the trainable parameters | | {training_state_bytes / 2**20:.1f} MiB |")
    print()
    header = "| precision | activations per clip | per-step constant | " + " | ".join(
        f"batch in {card} GB" for card in CARDS_GIB) + " |"
    print(header)
    print("|" + "---|" * (3 + len(CARDS_GIB)))
    for precision, (per_clip, constant) in measured.items():
        fixed = weights_bytes + training_state_bytes + max(constant, 0)
        fits = [batch_that_fits(card, fixed, per_clip) for card in CARDS_GIB]
        print(f"| {precision} | {per_clip / GIB:.2f} GiB | {constant / GIB:.2f} GiB | "
              + " | ".join(str(count) for count in fits) + " |")
    print()
    print(f"batch = floor(({USABLE_SHARE} x card - {CONTEXT_RESERVE / GIB:.0f} GiB - weights - trainable state "
          "- per-step constant) / activations per clip); cards taken as GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
