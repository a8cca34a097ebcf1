"""The paper-scale GPU benchmark and the memory plan, in their shortest CPU forms."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_smoke_on_cpu():
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run([sys.executable, "benchmarks/gpu_paper_scale.py", "--smoke"], cwd=REPO, env=environment,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout
    assert "shortened CPU version" in output
    assert "--smoke" in output
    for label in ("PHP train step, clips/s", "PHP inference, clips/s", "frozen towers, clips/s",
                  "PHP forward / frozen towers", "train step / inference forward"):
        line = next(line for line in output.splitlines() if line.startswith(label))
        values = [float(value.rstrip("x")) for value in line[len(label):].split()]
        assert len(values) == 2, line  # fp32 and bf16
        assert all(math.isfinite(value) and value > 0 for value in values), line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_gpu_benchmark_rejects_missing_gpu(capsys):
    assert load_benchmark("gpu_paper_scale").main(["--device", "cuda", "--smoke"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err


def test_saved_tensor_bytes_counts_activations_only():
    plan = load_benchmark("memory_plan")
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    inputs = torch.randn(5, 16)
    # Saved for backward: the first Linear's input for its weight gradient (5x16), ReLU's output
    # (5x32), and the second Linear's input, which is that same 5x32 storage. Weights are excluded.
    measured = plan.saved_tensor_bytes(lambda: model(inputs).sum(), exclude=list(model.parameters()))
    assert measured == 4 * (5 * 16 + 5 * 32)
    with torch.no_grad():
        assert plan.saved_tensor_bytes(lambda: model(inputs).sum(), exclude=list(model.parameters())) == 0


def test_batch_that_fits_uses_the_allowances():
    plan = load_benchmark("memory_plan")
    gib = 2**30
    assert plan.batch_that_fits(10, fixed=2 * gib, per_clip=gib // 2) == math.floor((9 - 1 - 2) / 0.5)
    assert plan.batch_that_fits(1, fixed=2 * gib, per_clip=gib) == 0
