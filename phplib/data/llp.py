"""LLP (Look, Listen and Parse, used for the AVVP task): annotation parsers and Dataset.

Label files are tab-separated with the header ``filename\\tevent_labels`` and
comma-joined labels per video. The eval files give per-modality events with
the header ``filename\\tonset\\toffset\\tevent_labels`` in integer seconds. The
public eval files (data/ in the YapengTian/AVVP-ECCV20 repository) contain rows
of zero length, one row with onset after offset, and filenames that match no
val or test video. The parser keeps all of them, and the Dataset ignores empty
and reversed rows and logs the counts.

Expected layout under ``root``::

    AVVP/LLP_dataset/video/<filename>.mp4
    AVVP/data/AVVP_train.csv, AVVP_val_pd.csv, AVVP_test_pd.csv
    AVVP/data/AVVP_eval_audio.csv, AVVP_eval_visual.csv
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Sequence

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

# The 25 LLP classes, sorted: the sorted set of labels in the public AVVP_train.csv.
LLP_CLASSES: tuple[str, ...] = (
    "Accordion", "Acoustic_guitar", "Baby_cry_infant_cry", "Baby_laughter", "Banjo", "Basketball_bounce",
    "Blender", "Car", "Cat", "Cello", "Chainsaw", "Cheering", "Chicken_rooster", "Clapping", "Dog",
    "Fire_alarm", "Frying_(food)", "Helicopter", "Lawn_mower", "Motorcycle", "Singing", "Speech",
    "Telephone_bell_ringing", "Vacuum_cleaner", "Violin_fiddle",
)

# The class order of the reference PHP code and of the LLP benchmark's main_avvp.py. It fixes
# which class the arg-max of a multi-hot label picks in metrics.tasks.avvp_video_top1_accuracy.
PHP_REFERENCE_LLP_ORDER: tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm", "Chainsaw",
    "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner", "Baby_laughter",
    "Accordion", "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar", "Telephone_bell_ringing",
    "Baby_cry_infant_cry", "Blender", "Clapping",
)

LABEL_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
EVAL_FILES = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}
LABEL_HEADER = ("filename", "event_labels")
EVAL_HEADER = ("filename", "onset", "offset", "event_labels")


@dataclass(frozen=True)
class LLPVideoLabels:
    """Video-level (weak) labels of one LLP video."""

    filename: str  # video name without extension, for example "BjCEufrlXm4_20_30"
    labels: tuple[str, ...]
    line: int  # 1-based line in the source file


@dataclass(frozen=True)
class LLPEvalEvent:
    """One per-modality event from an eval file, in whole seconds [onset, offset)."""

    filename: str
    onset: int
    offset: int
    label: str
    line: int  # 1-based line in the source file

    @property
    def is_empty(self) -> bool:
        """True for zero-length rows (onset == offset)."""
        return self.onset == self.offset

    @property
    def is_reversed(self) -> bool:
        """True for rows whose onset comes after the offset."""
        return self.onset > self.offset


def _read_tsv(path: Path, header: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Return (1-based line, fields) for every non-blank row after ``header``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(f.strip() for f in lines[0].split("\t")) != header:
        found = lines[0] if lines else "an empty file"
        raise annotation_error(path, 1, f"expected the header {'<TAB>'.join(header)!r}, found {found!r}",
                               "Use the tab-separated file from the LLP release, or add the header line.")
    return [(number, raw.rstrip("\r").split("\t")) for number, raw in enumerate(lines[1:], start=2) if raw.strip()]


def parse_llp_labels(
    path: str | Path,
    class_names: Collection[str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[LLPVideoLabels]:
    """Parse a video-level label csv (AVVP_train.csv, AVVP_val_pd.csv, ...).

    ``class_names``, when given, rejects unknown labels. Raises
    :class:`AnnotationError` naming the file and line of a malformed row, unless
    ``skipped`` is a list: then the row is left out, logged and appended to it.
    """
    path = Path(path)
    known = set(class_names) if class_names is not None else None
    records: list[LLPVideoLabels] = []
    for number, fields in _read_tsv(path, LABEL_HEADER):
        try:
            if len(fields) != 2:
                raise annotation_error(path, number, f"expected 2 tab-separated fields, found {len(fields)}",
                                       "Each row must read filename<TAB>label,label,...")
            filename = fields[0].strip()
            labels = tuple(label.strip() for label in fields[1].split(",") if label.strip())
            if not filename or not labels:
                raise annotation_error(path, number, "empty filename or empty label list",
                                       "Give the video name and at least one label.")
            unknown = [label for label in labels if known is not None and label not in known]
            if unknown:
                raise annotation_error(path, number, f"unknown labels {unknown}",
                                       "Use the class names of the training csv, or pass class_names.")
        except AnnotationError as error:
            report_or_raise(error, path, skipped)
            continue
        records.append(LLPVideoLabels(filename, labels, number))
    return records


def parse_llp_eval(
    path: str | Path,
    known_filenames: Collection[str] | None = None,
    class_names: Collection[str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[LLPEvalEvent]:
    """Parse a per-modality eval file (AVVP_eval_audio.csv or AVVP_eval_visual.csv).

    Zero-length and reversed rows are kept and counted in an info log. When
    ``known_filenames`` is given, rows whose filename matches no known video
    are counted and reported with a warning, and are kept.
    """
    path = Path(path)
    known_labels = set(class_names) if class_names is not None else None
    records: list[LLPEvalEvent] = []
    for number, fields in _read_tsv(path, EVAL_HEADER):
        try:
            if len(fields) != 4:
                raise annotation_error(path, number, f"expected 4 tab-separated fields, found {len(fields)}",
                                       "Each row must read filename<TAB>onset<TAB>offset<TAB>label.")
            filename, onset_text, offset_text, label = (f.strip() for f in fields)
            try:
                onset, offset = int(onset_text), int(offset_text)
            except ValueError:
                raise annotation_error(path, number, f"onset and offset must be integer seconds, got "
                                       f"{onset_text!r} and {offset_text!r}", "Fix or delete the row.") from None
            if known_labels is not None and label not in known_labels:
                raise annotation_error(path, number, f"unknown label {label!r}",
                                       "Use the class names of the training csv, or pass class_names.")
        except AnnotationError as error:
            report_or_raise(error, path, skipped)
            continue
        records.append(LLPEvalEvent(filename, onset, offset, label, number))

    empty = sum(r.is_empty for r in records)
    reversed_rows = sum(r.is_reversed for r in records)
    if empty or reversed_rows:
        logger.info("%s: %d zero-length rows and %d rows with onset after offset; both mark no second",
                    path, empty, reversed_rows)
    if known_filenames is not None:
        known = set(known_filenames)
        unmatched = sorted({r.filename for r in records if r.filename not in known})
        if unmatched:
            logger.warning("%s: %d filenames match no video (%d rows), for example %s", path, len(unmatched),
                           sum(r.filename not in known for r in records), unmatched[:3])
    return records


def llp_class_vocabulary(train_csv: str | Path, class_names: Sequence[str] | None = None) -> list[str]:
    """Return the class list: ``class_names`` when given, else the sorted labels of ``train_csv``.

    On the public AVVP_train.csv this gives :data:`LLP_CLASSES`.
    """
    if class_names is not None:
        names = list(class_names)
        if len(set(names)) != len(names):
            raise ValueError(f"class_names contains repeated names: {names}")
        return names
    return sorted({label for record in parse_llp_labels(train_csv) for label in record.labels})


def segment_labels(
    events: Sequence[LLPEvalEvent], class_index: dict[str, int], num_segments: int
) -> torch.Tensor:
    """Turn eval events of one video into a multi-hot float32 ``[T, C]``.

    Empty and reversed rows mark nothing, and events past ``num_segments`` are cut.
    """
    labels = torch.zeros(num_segments, len(class_index), dtype=torch.float32)  # [T, C]
    for event in events:
        if event.label in class_index and event.onset < event.offset:
            labels[max(0, event.onset) : min(event.offset, num_segments), class_index[event.label]] = 1.0
    return labels


class LLPDataset(ClassifiedClipDataset):
    """LLP clips with video-level labels and, for val and test, per-second labels per modality.

    Each item is ``{"video": uint8 [T, 3, H, W], "audio": float32 [T, S],
    "label": float32 [C], "seg_audio": float32 [T, C], "seg_visual": float32 [T, C],
    "has_segment_labels": bool, "video_id": str}``. Train items have all-zero
    segment labels and ``has_segment_labels=False``.

    ``cache_dir`` and ``decode_workers`` work as in :class:`phplib.data.ave.AVEDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_segments: int = 10,
        image_size: int = 64,
        sample_rate: int = 16000,
        class_names: Sequence[str] | None = None,
        on_error: str = "raise",
        progress: bool = True,
        cache_dir: str | Path | None = None,
        decode_workers: int = 1,
    ) -> None:
        self.root = Path(root)
        self.split = check_split(split)
        self.on_error = check_on_error(on_error)
        self.num_segments = num_segments
        self.skipped: list[tuple[str, str]] = []
        base = self.root / "AVVP"
        if not base.is_dir():
            raise FileNotFoundError(
                f"LLP folder not found at {base}. Pass as root the folder that contains AVVP/, "
                "or generate the toy world there."
            )
        data = base / "data"
        train_csv = data / LABEL_FILES["train"]
        if class_names is None:
            require_file(train_csv, "LLP training label file",
                         "The class list is read from it; pass class_names to do without it.")
        self._class_names = llp_class_vocabulary(train_csv, class_names)
        class_index = {name: i for i, name in enumerate(self._class_names)}

        label_csv = require_file(data / LABEL_FILES[split], f"LLP {split} label file",
                                 "Copy it from the LLP release into AVVP/data.")
        skip_rows = self.skipped if self.on_error == "skip" else None
        records = parse_llp_labels(label_csv, self._class_names, skipped=skip_rows)

        self.has_segment_labels = split != "train"
        events: dict[str, dict[str, list[LLPEvalEvent]]] = {"audio": {}, "visual": {}}
        if self.has_segment_labels:
            eval_videos = set()
            for other in ("val", "test"):
                if (data / LABEL_FILES[other]).is_file():
                    eval_videos |= {r.filename for r in parse_llp_labels(data / LABEL_FILES[other])}
            for modality, name in EVAL_FILES.items():
                eval_file = require_file(data / name, f"LLP {modality} eval file",
                                         "Copy it from the LLP release into AVVP/data.")
                for event in parse_llp_eval(eval_file, known_filenames=eval_videos,
                                            class_names=self._class_names, skipped=skip_rows):
                    events[modality].setdefault(event.filename, []).append(event)

        paths = {r.filename: base / "LLP_dataset" / "video" / f"{r.filename}.mp4" for r in records}
        decoder = AVClipDecoder(num_segments, image_size, sample_rate)
        self._clips = load_clips(paths, decoder, dataset="llp", root=self.root, cache_dir=cache_dir,
                                 on_error=self.on_error, skipped=self.skipped, progress=progress,
                                 description=f"LLP {split}", workers=decode_workers)
        self.samples: list[dict[str, Any]] = []
        for record in records:
            if record.filename not in self._clips:
                continue
            label = torch.zeros(len(self._class_names), dtype=torch.float32)  # [C]
            label[[class_index[name] for name in record.labels]] = 1.0
            self.samples.append({
                "video_id": record.filename,
                "label": label,
                "seg_audio": segment_labels(events["audio"].get(record.filename, []), class_index, num_segments),
                "seg_visual": segment_labels(events["visual"].get(record.filename, []), class_index, num_segments),
            })
        logger.info("LLP %s: %d videos, %d skipped", split, len(self.samples), len(self.skipped))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        clip = self._clips[sample["video_id"]]
        return {
            "video": clip["video"],
            "audio": clip["audio"],
            "label": sample["label"],
            "seg_audio": sample["seg_audio"],
            "seg_visual": sample["seg_visual"],
            "has_segment_labels": self.has_segment_labels,
            "video_id": sample["video_id"],
        }


__all__ = [
    "LLPDataset",
    "LLPEvalEvent",
    "LLPVideoLabels",
    "LLP_CLASSES",
    "PHP_REFERENCE_LLP_ORDER",
    "llp_class_vocabulary",
    "parse_llp_eval",
    "parse_llp_labels",
    "segment_labels",
]
