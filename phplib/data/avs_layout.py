"""Folder layout of AVSBench's single-source subset (S4), shared by the reader and the toy export.

Public AVSBench code (``avs_scripts/avs_s4`` of OpenNLPLab/AVSBench, and its
copy in haoyi-duan/DG-SCT) reads this layout under ``AVSBench_data/Single-source/``::

    s4_meta_data.csv                                      name,start_time,category,split
    s4_data/visual_frames/<split>/<category>/<name>/<name>_<i>.png    i = 1..5, one frame per second
    s4_data/audio_wav/<split>/<category>/<name>.wav                   5 s, written at 16 kHz by moviepy
    s4_data/gt_masks/<split>/<category>/<name>/<name>_<i>.png         binary masks; train has i = 1 only

The reference PHP code reads the csv from ``s4_data/s4_meta_data.csv`` instead,
so both places are accepted. This module imports no torch, so the toy world's
worker processes can use it.
"""

from __future__ import annotations

from pathlib import Path

S4_DIR = "AVSBench_data/Single-source"  # relative to a dataset root
S4_META_FILE = "s4_meta_data.csv"
S4_DATA_DIR = "s4_data"
FRAMES_DIR = "visual_frames"
AUDIO_DIR = "audio_wav"
MASKS_DIR = "gt_masks"
CATEGORIES_FILE = "categories.txt"  # optional, one category per line; the toy world writes one
S4_META_COLUMNS = ("name", "start_time", "category", "split")
S4_FRAMES = 5  # frames (and one-second segments) per S4 video
S4_MASKS = {"train": 1, "val": 5, "test": 5}  # annotated frames per video in each split


def s4_base(root: str | Path) -> Path:
    """Return the ``Single-source`` folder under a dataset root."""
    return Path(root) / S4_DIR


def meta_candidates(root: str | Path) -> list[Path]:
    """Return the places where ``s4_meta_data.csv`` may sit, in the order they are tried."""
    base = s4_base(root)
    return [base / S4_META_FILE, base / S4_DATA_DIR / S4_META_FILE]


def frame_path(root: str | Path, split: str, category: str, name: str, index: int) -> Path:
    """Return the path of frame ``index`` (1-based) of video ``name``."""
    return s4_base(root) / S4_DATA_DIR / FRAMES_DIR / split / category / name / f"{name}_{index}.png"


def mask_path(root: str | Path, split: str, category: str, name: str, index: int) -> Path:
    """Return the path of the ground-truth mask of frame ``index`` (1-based) of video ``name``."""
    return s4_base(root) / S4_DATA_DIR / MASKS_DIR / split / category / name / f"{name}_{index}.png"


def audio_path(root: str | Path, split: str, category: str, name: str) -> Path:
    """Return the path of the wav file of video ``name``."""
    return s4_base(root) / S4_DATA_DIR / AUDIO_DIR / split / category / f"{name}.wav"


__all__ = [
    "AUDIO_DIR",
    "CATEGORIES_FILE",
    "FRAMES_DIR",
    "MASKS_DIR",
    "S4_DATA_DIR",
    "S4_DIR",
    "S4_FRAMES",
    "S4_MASKS",
    "S4_META_COLUMNS",
    "S4_META_FILE",
    "audio_path",
    "frame_path",
    "mask_path",
    "meta_candidates",
    "s4_base",
]
