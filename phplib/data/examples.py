"""One real annotation record of each dataset beside the toy world's record of the same kind, for notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from phplib.data import avs_layout
from phplib.data.ave import parse_ave_annotations
from phplib.data.avsbench import parse_s4_frame_list, parse_s4_meta
from phplib.data.llp import parse_llp_eval, parse_llp_labels
from phplib.data.music_avqa import parse_avqa_json

COLUMNS = ["dataset", "field", "real", "toy"]

# Files read under the real-annotations folder (the layout of shared/real_annotations) and under a toy root.
REAL_FILES = {
    "AVE": "AVE/Annotations.txt",
    "LLP (weak labels)": "LLP/AVVP_train.csv",
    "LLP (audio events)": "LLP/AVVP_eval_audio.csv",
    "MUSIC-AVQA": "MUSIC-AVQA/avqa-val.json",
    "AVSBench S4": "AVSBench/ACL-SSL/avs1_s4_test.csv",
}
TOY_FILES = {
    "AVE": "AVE/AVE_Dataset/Annotations.txt",
    "LLP (weak labels)": "AVVP/data/AVVP_train.csv",
    "LLP (audio events)": "AVVP/data/AVVP_eval_audio.csv",
    "MUSIC-AVQA": "AVQA/data/json/avqa-val.json",
    "AVSBench S4": f"{avs_layout.S4_DIR}/{avs_layout.S4_META_FILE}",
}


def _ave(path: Path) -> dict[str, object]:
    row = parse_ave_annotations(path)[0]
    return {"category": row.category, "video_id": row.video_id, "quality": row.quality, "start": row.start,
            "end": row.end}


def _llp_labels(path: Path) -> dict[str, object]:
    row = parse_llp_labels(path)[0]
    return {"filename": row.filename, "event_labels": ",".join(row.labels)}


def _llp_event(path: Path) -> dict[str, object]:
    row = parse_llp_eval(path)[0]
    return {"filename": row.filename, "onset": row.onset, "offset": row.offset, "event_labels": row.label}


def _avqa(path: Path) -> dict[str, object]:
    row = parse_avqa_json(path)[0]
    return {"video_id": row.video_id, "question_id": row.question_id, "type": row.type_name,
            "question": row.question, "answer": row.answer}


def _s4_real(path: Path) -> dict[str, object]:
    # The derived list contains test frames only and has no start_time column.
    frame = parse_s4_frame_list(path)[0]
    return {"name": frame.name, "frame": frame.index, "category": frame.category, "split": "test",
            "start_time": "not in this file"}


def _s4_toy(path: Path) -> dict[str, object]:
    record = next(r for r in parse_s4_meta(path) if r.split == "test")
    return {"name": record.name, "frame": 1, "category": record.category, "split": record.split,
            "start_time": record.start_time}


READERS: dict[str, tuple[Callable[[Path], dict], Callable[[Path], dict]]] = {
    "AVE": (_ave, _ave),
    "LLP (weak labels)": (_llp_labels, _llp_labels),
    "LLP (audio events)": (_llp_event, _llp_event),
    "MUSIC-AVQA": (_avqa, _avqa),
    "AVSBench S4": (_s4_real, _s4_toy),
}


def _read(reader: Callable[[Path], dict], path: Path) -> dict[str, object] | str:
    if not path.is_file():
        return f"file not found: {path}"
    return reader(path)


def real_and_toy_examples(real_annotations_dir: str | Path, toy_root: str | Path) -> pd.DataFrame:
    """Return one real annotation record of each dataset beside the toy world's counterpart.

    The table has the columns dataset, field, real and toy, with one row per
    field (the first row of each dataset is the file the record came from).
    ``real_annotations_dir`` has the layout of the project's copy of the public
    annotation files (``AVE/Annotations.txt``, ``LLP/AVVP_train.csv``, ...);
    ``toy_root`` is a folder written by
    :func:`phplib.data.toyworld.generate_toy_world`. A file that is missing on
    either side shows as "file not found: <path>" in its column.
    """
    real_dir, toy_dir = Path(real_annotations_dir), Path(toy_root)
    for folder, what in ((real_dir, "real annotations folder"), (toy_dir, "toy world folder")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} not found: {folder}")
    rows = []
    for dataset, (real_reader, toy_reader) in READERS.items():
        real_path, toy_path = real_dir / REAL_FILES[dataset], toy_dir / TOY_FILES[dataset]
        real, toy = _read(real_reader, real_path), _read(toy_reader, toy_path)
        rows.append([dataset, "file", REAL_FILES[dataset], TOY_FILES[dataset]])
        fields = next((list(r) for r in (real, toy) if isinstance(r, dict)), [])
        if not fields:
            rows.append([dataset, "record", real, toy])
        for name in fields:
            rows.append([dataset, name, real.get(name, "") if isinstance(real, dict) else real,
                         toy.get(name, "") if isinstance(toy, dict) else toy])
    return pd.DataFrame(rows, columns=COLUMNS)


__all__ = ["REAL_FILES", "TOY_FILES", "real_and_toy_examples"]
