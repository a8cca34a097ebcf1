"""AVSBench single-source segmentation (S4): annotation parsers, clip decoding and Dataset.

``s4_meta_data.csv`` lists one video per row with the columns ``name``,
``start_time``, ``category`` and ``split`` (a header line, comma-separated), as
AVSBench's ``avs_scripts/avs_s4/dataloader.py`` reads it.
The official file is not in the AVSBench repository: its README links a Google
Drive folder for it, and the authors send the processed media on request. Each
video has five frames, one per second, a five-second wav and binary masks of
the sounding object: five per video in val and test, but only the first
frame's mask in train. Folder names follow :mod:`phplib.data.avs_layout`.

Some projects publish derived lists instead, such as
``AVSBench/metadata/avs1_s4_test.csv`` of swimmiing/ACL-SSL: one row
``<name>_<frame>,<category>`` per test frame, no header, CRLF line endings.
:func:`parse_s4_frame_list` reads those.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from phplib.data import avs_layout
from phplib.data.ave import read_ave_categories
from phplib.data.common import (
    ClassifiedClipDataset,
    SPLITS,
    AnnotationError,
    Clip,
    annotation_error,
    check_on_error,
    check_split,
    load_clips,
    report_or_raise,
)
from phplib.data.media import MediaError, _check_file, read_wav, resize_and_crop, split_audio_segments

logger = logging.getLogger(__name__)

# The 23 S4 categories in the order of the reference PHP code's script/categories.txt,
# which fixes the class indices. AVSBench's preprocess_s4.py lists the same names in another order.
AVS_S4_CATEGORIES: tuple[str, ...] = (
    "lions_roaring", "dog_barking", "ambulance_siren", "playing_ukulele", "playing_glockenspiel", "cat_meowing",
    "mynah_bird_singing", "female_singing", "helicopter", "lawn_mowing", "playing_acoustic_guitar",
    "driving_buses", "playing_piano", "typing_on_computer_keyboard", "baby_laughter", "playing_violin",
    "chainsawing_trees", "cap_gun_shooting", "playing_tabla", "horse_clip-clop", "race_car", "coyote_howling",
    "male_speech",
)

MASK_THRESHOLD = 128  # a mask pixel is foreground at grey level >= 128, as PIL's mode "1" conversion in AVSBench
# NOTE: masks are tested as 8-bit grey (0/255) and palette pngs written here. No real S4 mask file
# was available to confirm which of these the release uses.
_META_FIX = "Each row must read name,start_time,category,split as in AVSBench's s4_meta_data.csv; fix or delete the row."


@dataclass(frozen=True)
class S4Record:
    """One row of ``s4_meta_data.csv``."""

    name: str  # video name, used in every file name (a YouTube id in the real data)
    start_time: float  # second of the source video where the five-second clip starts
    category: str
    split: str
    line: int  # 1-based line in the csv


@dataclass(frozen=True)
class S4Frame:
    """One row of a per-frame list such as ACL-SSL's ``avs1_s4_test.csv``."""

    name: str
    index: int  # 1-based frame number
    category: str
    line: int


def _parse_start_time(path: Path, number: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise annotation_error(path, number, f"start_time must be a number of seconds, got {text!r}",
                               _META_FIX) from None
    if not math.isfinite(value) or value < 0:
        raise annotation_error(path, number, f"start_time must be a finite number >= 0, got {text!r}", _META_FIX)
    return value


def _meta_columns(path: Path, header: list[str]) -> dict[str, int]:
    names = [field.strip() for field in header]
    missing = [column for column in avs_layout.S4_META_COLUMNS if column not in names]
    if missing:
        raise annotation_error(path, 1, f"the header {header!r} lacks the columns {missing}",
                               "The first line must name the columns name,start_time,category,split.")
    return {column: names.index(column) for column in avs_layout.S4_META_COLUMNS}


def _parse_meta_row(path: Path, number: int, fields: list[str], columns: dict[str, int], width: int,
                    known: set[str] | None) -> S4Record:
    if len(fields) != width:
        raise annotation_error(path, number, f"expected {width} comma-separated fields, found {len(fields)}",
                               _META_FIX)
    name, category, split = (fields[columns[key]].strip() for key in ("name", "category", "split"))
    if not name:
        raise annotation_error(path, number, "empty name", _META_FIX)
    start_time = _parse_start_time(path, number, fields[columns["start_time"]].strip())
    if split not in SPLITS:
        raise annotation_error(path, number, f"unknown split {split!r}", f"Use one of {', '.join(SPLITS)}.")
    if known is not None and category not in known:
        raise annotation_error(path, number, f"unknown category {category!r}",
                               "Use one of the 23 S4 categories, or pass the category list.")
    return S4Record(name, start_time, category, split, number)


def parse_s4_meta(
    path: str | Path,
    categories: Sequence[str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[S4Record]:
    """Parse ``s4_meta_data.csv`` into one record per video, in file order.

    Columns are found by their header names, so extra columns (a pandas index,
    for example) are allowed. ``categories``, when given, rejects rows with an
    unknown category. A malformed row, or a name listed twice, raises
    :class:`AnnotationError` naming the file and line, unless ``skipped`` is a
    list: then the row is left out, logged and appended to it.
    """
    path = Path(path)
    known = set(categories) if categories is not None else None
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    if not rows:
        raise annotation_error(path, 1, "the file is empty", "Copy s4_meta_data.csv from the AVSBench release.")
    columns = _meta_columns(path, rows[0])
    width = len(rows[0])
    records: list[S4Record] = []
    first_line: dict[str, int] = {}
    for number, fields in enumerate(rows[1:], start=2):
        if not any(field.strip() for field in fields):
            continue
        try:
            record = _parse_meta_row(path, number, fields, columns, width, known)
            if record.name in first_line:
                raise annotation_error(path, number, f"video {record.name!r} is listed twice "
                                       f"(first on line {first_line[record.name]})", "Delete one of the rows.")
        except AnnotationError as error:
            report_or_raise(error, path, skipped)
            continue
        first_line[record.name] = number
        records.append(record)
    return records


def parse_s4_frame_list(
    path: str | Path,
    categories: Sequence[str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[S4Frame]:
    """Parse a per-frame list with rows ``<name>_<frame>,<category>`` and no header.

    The frame number follows the last underscore, so names containing
    underscores are kept whole. Errors are handled as in :func:`parse_s4_meta`.
    """
    path = Path(path)
    known = set(categories) if categories is not None else None
    fix = "Each row must read <name>_<frame>,<category> with a frame number from 1 to 5."
    frames: list[S4Frame] = []
    for number, fields in enumerate(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()), start=1):
        if not any(field.strip() for field in fields):
            continue
        try:
            if len(fields) != 2:
                raise annotation_error(path, number, f"expected 2 comma-separated fields, found {len(fields)}", fix)
            frame_name, category = fields[0].strip(), fields[1].strip()
            name, _, index_text = frame_name.rpartition("_")
            if not name or not index_text.isdigit() or not 1 <= int(index_text) <= avs_layout.S4_FRAMES:
                raise annotation_error(path, number, f"{frame_name!r} does not end in _1 to _5", fix)
            if known is not None and category not in known:
                raise annotation_error(path, number, f"unknown category {category!r}",
                                       "Use one of the 23 S4 categories, or pass the category list.")
        except AnnotationError as error:
            report_or_raise(error, path, skipped)
            continue
        frames.append(S4Frame(name, int(index_text), category, number))
    return frames


def frame_list_videos(frames: Sequence[S4Frame]) -> dict[str, str]:
    """Group per-frame rows by video: name -> category, in first-seen order.

    Raises ValueError when a video lacks one of its five frames, repeats a
    frame, or has frames of two categories.
    """
    seen: dict[str, tuple[str, list[int]]] = {}
    for frame in frames:
        category, indices = seen.setdefault(frame.name, (frame.category, []))
        if frame.category != category:
            raise ValueError(f"video {frame.name!r} has frames of two categories, {category!r} and "
                             f"{frame.category!r} (line {frame.line})")
        indices.append(frame.index)
    expected = list(range(1, avs_layout.S4_FRAMES + 1))
    for name, (_, indices) in seen.items():
        if sorted(indices) != expected:
            raise ValueError(f"video {name!r} has frames {sorted(indices)}, expected {expected}")
    return {name: category for name, (category, _) in seen.items()}


# ---------------------------------------------------------------------------
# Decoding one clip


@dataclass(frozen=True)
class S4ClipFiles:
    """The files of one S4 video."""

    frames: tuple[Path, ...]  # one png per second
    audio: Path  # the wav file
    masks: tuple[Path, ...]  # one png path per frame, whether or not the file exists
    required_masks: int  # masks that must exist: 1 in train, 5 in val and test

    @classmethod
    def of(cls, root: str | Path, record: S4Record, num_segments: int = avs_layout.S4_FRAMES) -> "S4ClipFiles":
        """Return the files of ``record`` under a dataset root."""
        args = (record.split, record.category, record.name)
        indices = range(1, num_segments + 1)
        return cls(
            frames=tuple(avs_layout.frame_path(root, *args, index) for index in indices),
            audio=avs_layout.audio_path(root, *args),
            masks=tuple(avs_layout.mask_path(root, *args, index) for index in indices),
            required_masks=min(avs_layout.S4_MASKS[record.split], num_segments),
        )

    def existing_files(self) -> list[Path]:
        """Return the frames, the wav, the required masks and whichever optional masks exist."""
        optional = [mask for mask in self.masks[self.required_masks :] if mask.exists()]
        return [*self.frames, self.audio, *self.masks[: self.required_masks], *optional]


def _open_png(path: Path, kind: str, mode: str) -> Image.Image:
    _check_file(path, kind)
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MediaError(f"{path}: not a readable {kind} image ({error}). The file is corrupt or truncated: "
                         "copy it again, or use on_error='skip' to leave the video out.") from error


def decode_s4_clip(
    files: S4ClipFiles, num_segments: int = avs_layout.S4_FRAMES, image_size: int = 64, sample_rate: int = 16000
) -> Clip:
    """Read one S4 video into tensors.

    Returns ``video`` uint8 ``[T, 3, H, W]`` (each frame's short side resized to
    ``image_size`` with bilinear filtering, then centre-cropped), ``audio``
    float32 ``[T, sample_rate]`` (mono, resampled, one second per frame; a
    shorter wav repeats its last second, a longer one is cut after ``T``
    seconds), ``mask`` float32 ``[T, H, W]`` in {0, 1} (resized like the frames
    but with nearest-neighbour filtering) and ``mask_valid`` bool ``[T]``,
    False for a frame without a mask file beyond ``files.required_masks``.

    Raises :class:`MediaError` naming the file for a missing, empty or
    unreadable frame, required mask or wav, for a mask whose size differs from
    its frame, and for audio with NaN or Inf samples.
    """
    if not 1 <= num_segments <= avs_layout.S4_FRAMES:
        raise ValueError(f"S4 videos have {avs_layout.S4_FRAMES} frames; num_segments must be 1 to 5, got {num_segments}")
    if len(files.frames) < num_segments or len(files.masks) < num_segments:
        raise ValueError(f"need {num_segments} frame and mask paths, got {len(files.frames)} and {len(files.masks)}")
    frames, masks, valid = [], [], []
    for index in range(num_segments):
        frame = _open_png(files.frames[index], "frame", "RGB")
        frames.append(resize_and_crop(frame, image_size))  # [H, W, 3]
        mask_file = files.masks[index]
        if index >= files.required_masks and not mask_file.exists():
            masks.append(np.zeros((image_size, image_size), np.float32))
            valid.append(False)
            continue
        mask = _open_png(mask_file, "mask", "L")
        if mask.size != frame.size:
            raise MediaError(f"{mask_file}: mask is {mask.size[0]}x{mask.size[1]} but its frame "
                             f"{files.frames[index].name} is {frame.size[0]}x{frame.size[1]}; the two must match.")
        resized = resize_and_crop(mask, image_size, resample=Image.Resampling.NEAREST)  # [H, W]
        masks.append((resized >= MASK_THRESHOLD).astype(np.float32))
        valid.append(True)

    waveform = read_wav(files.audio, sample_rate)  # [n]
    audio = split_audio_segments(waveform, num_segments=num_segments, sample_rate=sample_rate)  # [T, S]
    video = torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))  # [T, 3, H, W]
    return {
        "video": video,
        "audio": audio,
        "mask": torch.from_numpy(np.stack(masks)),  # [T, H, W]
        "mask_valid": torch.tensor(valid, dtype=torch.bool),  # [T]
    }


@dataclass(frozen=True)
class S4ClipDecoder:
    """:func:`decode_s4_clip` with fixed settings; picklable for worker processes."""

    num_segments: int
    image_size: int
    sample_rate: int
    sampling: str = "first"

    def __call__(self, source: S4ClipFiles) -> Clip:
        return decode_s4_clip(source, self.num_segments, self.image_size, self.sample_rate)

    def files(self, source: S4ClipFiles) -> list[Path]:
        return source.existing_files()


# ---------------------------------------------------------------------------
# Dataset


def find_s4_meta(root: str | Path) -> Path:
    """Return the ``s4_meta_data.csv`` under a dataset root, or raise FileNotFoundError naming both places."""
    candidates = avs_layout.meta_candidates(root)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"AVSBench S4 annotation file not found at {candidates[0]} or {candidates[1]}. The AVSBench authors "
        "publish s4_meta_data.csv outside their repository (see data_manifests/avsbench_s4.yaml for where)."
    )


class AVSDataset(ClassifiedClipDataset):
    """AVSBench S4 videos with per-frame masks of the sounding object.

    Each item is ``{"video": uint8 [T, 3, H, W], "audio": float32 [T, S],
    "mask": float32 [T, H, W] in {0, 1}, "mask_valid": bool [T],
    "video_id": str, "category": str}`` with ``T = num_segments`` (5 by
    default, at most 5). In the train split only the first frame has a mask,
    so ``mask_valid`` is ``[True, False, False, False, False]`` there. A loss or
    a metric must leave out the frames it marks False. Class indices follow
    ``categories.txt`` under ``AVSBench_data/Single-source`` when present,
    else :data:`AVS_S4_CATEGORIES`.

    ``start_time`` is read but not used: the released frames and wav files are
    already cut to the five seconds. ``cache_dir`` and ``decode_workers`` work
    as in :class:`phplib.data.ave.AVEDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_segments: int = avs_layout.S4_FRAMES,
        image_size: int = 64,
        sample_rate: int = 16000,
        on_error: str = "raise",
        progress: bool = True,
        categories: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
        decode_workers: int = 1,
    ) -> None:
        self.root = Path(root)
        self.split = check_split(split)
        self.on_error = check_on_error(on_error)
        if not 1 <= num_segments <= avs_layout.S4_FRAMES:
            raise ValueError(f"S4 videos have 5 frames; num_segments must be 1 to 5, got {num_segments}")
        self.num_segments = num_segments
        self.skipped: list[tuple[str, str]] = []
        base = avs_layout.s4_base(self.root)
        if not base.is_dir():
            raise FileNotFoundError(
                f"AVSBench folder not found at {base}. Pass as root the folder that contains "
                f"{avs_layout.S4_DIR}, or generate the toy world there."
            )
        if categories is None:
            categories_file = base / avs_layout.CATEGORIES_FILE
            categories = read_ave_categories(categories_file) if categories_file.is_file() else AVS_S4_CATEGORIES
        self._class_names = list(categories)

        skip_rows = self.skipped if self.on_error == "skip" else None
        records = [r for r in parse_s4_meta(find_s4_meta(self.root), self._class_names, skipped=skip_rows)
                   if r.split == split]
        sources = {r.name: S4ClipFiles.of(self.root, r, num_segments) for r in records}
        decoder = S4ClipDecoder(num_segments, image_size, sample_rate)
        self._clips = load_clips(sources, decoder, dataset="avsbench_s4", root=self.root, cache_dir=cache_dir,
                                 on_error=self.on_error, skipped=self.skipped, progress=progress,
                                 description=f"AVSBench S4 {split}", workers=decode_workers)
        self.records = [r for r in records if r.name in self._clips]
        logger.info("AVSBench S4 %s: %d videos, %d skipped", split, len(self.records), len(self.skipped))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        clip = self._clips[record.name]
        return {
            "video": clip["video"],
            "audio": clip["audio"],
            "mask": clip["mask"],
            "mask_valid": clip["mask_valid"],
            "video_id": record.name,
            "category": record.category,
        }


__all__ = [
    "AVSDataset",
    "AVS_S4_CATEGORIES",
    "MASK_THRESHOLD",
    "S4ClipDecoder",
    "S4ClipFiles",
    "S4Frame",
    "S4Record",
    "decode_s4_clip",
    "find_s4_meta",
    "frame_list_videos",
    "parse_s4_frame_list",
    "parse_s4_meta",
]
