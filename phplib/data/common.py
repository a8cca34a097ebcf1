"""Helpers shared by the dataset parsers and Dataset classes: errors, decoding once, collation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import torch
from tqdm.auto import tqdm

from phplib.data.media import MediaError, Sampling, decode_clip

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


class AnnotationError(ValueError):
    """A row of an annotation file is malformed. The message names the file, the line and the fix."""


def annotation_error(path: str | Path, line: int | str, problem: str, fix: str) -> AnnotationError:
    """Build an :class:`AnnotationError` for ``path`` at ``line`` (1-based, or a record description)."""
    where = f"line {line}" if isinstance(line, int) else line
    return AnnotationError(f"{path}, {where}: {problem}. {fix}")


def report_or_raise(error: AnnotationError, path: str | Path, skipped: list[tuple[str, str]] | None) -> None:
    """Raise ``error``, or log it and append it to ``skipped`` when the caller skips bad rows."""
    if skipped is None:
        raise error
    logger.warning("skipping malformed annotation: %s", error)
    skipped.append((str(path), str(error)))


def check_on_error(on_error: str) -> OnError:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    return on_error  # type: ignore[return-value]


def check_split(split: str, splits: Sequence[str] = SPLITS) -> str:
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(splits)}")
    return split


def require_file(path: Path, what: str, fix: str) -> Path:
    """Return ``path`` or raise FileNotFoundError naming ``what`` is missing and how to get it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}. {fix}")
    return path


def decode_clips(
    paths: dict[str, Path],
    *,
    num_segments: int,
    image_size: int,
    sample_rate: int,
    sampling: Sampling = "first",
    on_error: OnError = "raise",
    skipped: list[tuple[str, str]] | None = None,
    progress: bool = True,
    description: str = "decoding clips",
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Decode every video in ``paths`` (video id -> file) once and keep the tensors in memory.

    Returns video id -> (frames uint8 ``[T, 3, H, W]``, audio float32 ``[T, S]``).
    With ``on_error="skip"`` a :class:`MediaError` leaves that video out, logs one
    warning and appends ``(file, reason)`` to ``skipped``.
    """
    clips: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for video_id, path in tqdm(paths.items(), desc=description, unit="clip", disable=not progress):
        try:
            clips[video_id] = decode_clip(
                path, num_segments=num_segments, image_size=image_size, sample_rate=sample_rate, sampling=sampling
            )
        except MediaError as error:
            if on_error == "raise":
                raise
            logger.warning("skipping video %s: %s", video_id, error)
            if skipped is not None:
                skipped.append((str(path), str(error)))
    return clips


def collate_av(batch: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Collate dataset items into a batch for ``torch.utils.data.DataLoader``.

    Tensors are stacked along a new first dimension, numbers and booleans become
    tensors, and strings (and anything else) stay as lists.
    """
    items = list(batch)
    if not items:
        raise ValueError("collate_av received an empty batch")
    keys = items[0].keys()
    collated: dict[str, Any] = {}
    for key in keys:
        values = [item[key] for item in items]
        first = values[0]
        if isinstance(first, torch.Tensor):
            collated[key] = torch.stack(values)  # [B, ...]
        elif isinstance(first, bool):
            collated[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, int):
            collated[key] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(first, float):
            collated[key] = torch.tensor(values, dtype=torch.float32)
        else:
            collated[key] = values
    return collated


__all__ = [
    "AnnotationError",
    "OnError",
    "SPLITS",
    "annotation_error",
    "check_on_error",
    "check_split",
    "collate_av",
    "decode_clips",
    "report_or_raise",
    "require_file",
]
