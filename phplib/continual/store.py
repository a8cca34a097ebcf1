"""Per-task checkpoints written atomically, and what a resumed run reads back.

After task t the run directory gets ``checkpoints/after_<task>.pt`` with the trainable parameters
(everything but the frozen towers), the accuracy matrix so far, the probe scores and the state of
every random number generator. A killed run resumes from the newest complete checkpoint and,
because the generators are restored, reaches the same final matrix as an uninterrupted run.
Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
FROZEN_PREFIXES = ("visual.", "audio.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used to resume this run."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write with ``torch.save`` to a temporary file, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def atomic_write_text(text: str, path: Path) -> None:
    """Write text to a temporary file, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def rng_state() -> dict[str, Any]:
    """Capture the Python, NumPy and torch generators in a ``weights_only``-loadable form."""
    version, state, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators captured by ``rng_state``."""
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer outside the frozen towers, on the CPU."""
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items() if not name.startswith(FROZEN_PREFIXES)}


def checkpoint_path(run_dir: Path, task: str) -> Path:
    return run_dir / "checkpoints" / f"after_{task}.pt"


def save_task_checkpoint(
    run_dir: Path,
    model: nn.Module,
    task_names: list[str],
    tasks_done: int,
    matrix: np.ndarray,
    probe_scores: dict[str, float],
) -> Path:
    """Write the checkpoint after ``task_names[tasks_done - 1]``; return its path."""
    path = checkpoint_path(run_dir, task_names[tasks_done - 1])
    payload = {
        "format": CHECKPOINT_FORMAT,
        "task_names": list(task_names),
        "tasks_done": tasks_done,
        "parameters": trainable_state(model),
        "accuracy_matrix": torch.from_numpy(matrix.copy()),
        "probe_scores": dict(probe_scores),
        "rng": rng_state(),
    }
    atomic_torch_save(payload, path)
    return path


@dataclass
class ResumePoint:
    """What a finished part of a run left behind."""

    path: Path
    tasks_done: int
    matrix: np.ndarray
    probe_scores: dict[str, float]
    parameters: dict[str, torch.Tensor]
    rng: dict[str, Any]


def latest_checkpoint(run_dir: Path, task_names: list[str]) -> ResumePoint | None:
    """Read the checkpoint of the last finished task, or None when no task finished.

    Temporary files left by a kill during a write are ignored, because only a completed write is
    renamed to its final name.
    """
    for index in range(len(task_names), 0, -1):
        path = checkpoint_path(run_dir, task_names[index - 1])
        if not path.is_file():
            continue
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign file
            raise CheckpointError(f"cannot read checkpoint {path}: {error}. Delete it to resume from the task before.") from error
        if payload.get("format") != CHECKPOINT_FORMAT or payload.get("task_names") != list(task_names):
            raise CheckpointError(
                f"checkpoint {path} belongs to another stream (tasks {payload.get('task_names')}, "
                f"this run: {task_names}); resume with the config.yaml of the run directory"
            )
        return ResumePoint(
            path=path,
            tasks_done=int(payload["tasks_done"]),
            matrix=payload["accuracy_matrix"].numpy().copy(),
            probe_scores=dict(payload["probe_scores"]),
            parameters=payload["parameters"],
            rng=payload["rng"],
        )
    return None


def load_trainable_state(model: nn.Module, parameters: dict[str, torch.Tensor], source: Path) -> None:
    """Load a checkpoint's trainable state; raise ``CheckpointError`` naming the file on any mismatch."""
    expected = {name: value for name, value in model.state_dict().items() if not name.startswith(FROZEN_PREFIXES)}
    missing = sorted(set(expected) - set(parameters))
    unexpected = sorted(set(parameters) - set(expected))
    wrong = [name for name in set(expected) & set(parameters) if expected[name].shape != parameters[name].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {source} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shape {sorted(wrong)[:3]}. Was the config changed after the run started?"
        )
    model.load_state_dict(parameters, strict=False)
