"""AVE (audio-visual event localisation): annotation parser and Dataset.

Annotation rows are ``Category&VideoID&Quality&StartTime&EndTime`` with integer
seconds, one event per row. The official Annotations.txt has no header line.
Copies used by other projects add the header
``Category&VideoID&Quality&StartTime&EndTime`` and sometimes a sixth ``Domain``
column; both are accepted. A video with two events has two rows, and each row
is one sample. Category names contain commas ("Violin, fiddle") but no ``&``.

Expected layout under ``root``::

    AVE/AVE_Dataset/AVE/<video_id>.mp4
    AVE/AVE_Dataset/Annotations.txt
    AVE/AVE_Dataset/{trainSet,valSet,testSet}.txt
    AVE/AVE_Dataset/categories.txt      (optional; AVE_CATEGORIES otherwise)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from phplib.data.common import (
    ClassifiedClipDataset,
    AnnotationError,
    AVClipDecoder,
    annotation_error,
    check_on_error,
    check_split,
    load_clips,
    report_or_raise,
    require_file,
)

logger = logging.getLogger(__name__)

# The 28 AVE categories in the order of categories.txt, which fixes the class indices.
AVE_CATEGORIES: tuple[str, ...] = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
    "Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
    "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
    "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
)

AVE_HEADER = ("Category", "VideoID", "Quality", "StartTime", "EndTime")
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
_FORMAT_FIX = "Each row must read Category&VideoID&Quality&StartTime&EndTime with integer seconds; fix or delete the row."


@dataclass(frozen=True)
class AVEAnnotation:
    """One AVE event: ``category`` is audible and visible from ``start`` to ``end`` seconds."""

    category: str
    video_id: str
    quality: str
    start: int  # first second of the event
    end: int  # second after the last one (start == end marks an empty event)
    line: int  # 1-based line in the source file
    domain: str | None = None  # sixth column of some copies, for example "domestic environments"


def read_ave_categories(path: str | Path) -> list[str]:
    """Read one category name per line, skipping blank lines."""
    path = Path(path)
    names: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = raw.strip()
        if not name:
            continue
        if name in names:
            raise annotation_error(path, number, f"category {name!r} is listed twice", "Delete the repeated line.")
        names.append(name)
    if not names:
        raise AnnotationError(f"{path}: no categories found. Write one category name per line.")
    return names


def _parse_ave_row(path: Path, number: int, text: str, known: set[str] | None) -> AVEAnnotation:
    fields = text.split("&")
    if len(fields) not in (5, 6):
        raise annotation_error(path, number, f"expected 5 '&'-separated fields, found {len(fields)} in {text!r}",
                               _FORMAT_FIX)
    category, video_id, quality, start_text, end_text = (f.strip() for f in fields[:5])
    try:
        start, end = int(start_text), int(end_text)
    except ValueError:
        raise annotation_error(path, number, f"start and end must be integer seconds, got {start_text!r} and {end_text!r}",
                               _FORMAT_FIX) from None
    if start < 0 or end < start:
        raise annotation_error(path, number, f"invalid event interval [{start}, {end})",
                               "Start must be >= 0 and end >= start.")
    if not video_id:
        raise annotation_error(path, number, "empty VideoID", _FORMAT_FIX)
    if known is not None and category not in known:
        raise annotation_error(path, number, f"unknown category {category!r}",
                               "Use a name from categories.txt, or pass the full category list.")
    domain = fields[5].strip() if len(fields) == 6 else None
    return AVEAnnotation(category, video_id, quality, start, end, number, domain)


def parse_ave_annotations(
    path: str | Path,
    categories: Sequence[str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[AVEAnnotation]:
    """Parse an AVE annotation file (Annotations.txt or a split file) into one record per row.

    ``categories``, when given, rejects rows with an unknown category. Raises
    :class:`AnnotationError` naming the file and line of a malformed row, unless
    ``skipped`` is a list: then the row is left out, logged and appended to it.
    """
    path = Path(path)
    known = set(categories) if categories is not None else None
    records: list[AVEAnnotation] = []
    empty = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip("\r\n")
        if not text.strip():
            continue
        if number == 1 and tuple(f.strip() for f in text.split("&")[:5]) == AVE_HEADER:
            continue
        try:
            record = _parse_ave_row(path, number, text, known)
        except AnnotationError as error:
            report_or_raise(error, path, skipped)
            continue
        empty += record.start == record.end
        records.append(record)
    if empty:
        logger.info("%s: %d rows have an empty event (start == end); their samples are all background", path, empty)
    return records


class AVEDataset(ClassifiedClipDataset):
    """AVE clips with per-second labels, decoded once at construction.

    Each item is ``{"video": uint8 [T, 3, H, W], "audio": float32 [T, S],
    "label": int64 [T], "video_id": str}``. A second inside the row's event gets
    the category index, every other second gets ``num_classes`` (background).

    With ``cache_dir`` the decoded clips are stored there (see
    :mod:`phplib.data.cache`), reused by later constructions and read from disk
    per item; ``decode_workers`` processes decode the clips not cached yet.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_segments: int = 10,
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
        self.num_segments = num_segments
        self.skipped: list[tuple[str, str]] = []
        base = self.root / "AVE" / "AVE_Dataset"
        if not base.is_dir():
            raise FileNotFoundError(
                f"AVE folder not found at {base}. Pass as root the folder that contains AVE/AVE_Dataset, "
                "or generate the toy world there."
            )
        if categories is None:
            categories_file = base / "categories.txt"
            categories = read_ave_categories(categories_file) if categories_file.is_file() else AVE_CATEGORIES
        self._class_names = list(categories)
        index = {name: i for i, name in enumerate(self._class_names)}

        split_file = require_file(base / SPLIT_FILES[split], f"AVE {split} split file",
                                  "Copy it from the AVE release next to Annotations.txt.")
        skip_rows = self.skipped if self.on_error == "skip" else None
        rows = parse_ave_annotations(split_file, self._class_names, skipped=skip_rows)

        paths = {row.video_id: base / "AVE" / f"{row.video_id}.mp4" for row in rows}
        decoder = AVClipDecoder(num_segments, image_size, sample_rate)
        self._clips = load_clips(paths, decoder, dataset="ave", root=self.root, cache_dir=cache_dir,
                                 on_error=self.on_error, skipped=self.skipped, progress=progress,
                                 description=f"AVE {split}", workers=decode_workers)
        self.samples: list[tuple[str, torch.Tensor]] = []
        for row in rows:
            if row.video_id not in self._clips:
                continue
            label = torch.full((num_segments,), len(self._class_names), dtype=torch.int64)  # [T]
            label[row.start : min(row.end, num_segments)] = index[row.category]
            self.samples.append((row.video_id, label))
        self.rows = [row for row in rows if row.video_id in self._clips]
        logger.info("AVE %s: %d samples from %d videos, %d skipped", split, len(self.samples),
                    len(self._clips), len(self.skipped))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_id, label = self.samples[index]
        clip = self._clips[video_id]
        return {"video": clip["video"], "audio": clip["audio"], "label": label, "video_id": video_id}


__all__ = ["AVEAnnotation", "AVEDataset", "AVE_CATEGORIES", "parse_ave_annotations", "read_ave_categories"]
