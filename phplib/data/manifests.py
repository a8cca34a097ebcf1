"""Dataset manifests (``data_manifests/*.yaml``): what a dataset folder must contain, and a check of a folder.

A manifest names where the media and annotations come from and lists the
annotation files with their sha256 checksums. A checksum entry is a list of
accepted values, or null where no copy was available to compute one. The
manifest also gives the number of videos per split, the class list and the
preprocessing settings ``prepare`` uses.
:func:`load_manifest` validates a manifest; :func:`verify_dataset` checks a
dataset folder against one and returns a :class:`VerificationReport` that
lists missing files with their count and names checksum mismatches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from phplib.data import avs_layout

logger = logging.getLogger(__name__)

# NOTE: data_manifests/ sits beside the package, so it is found in a source checkout (pip install -e .).
# A wheel does not ship it, so pass manifest_dir there.
MANIFEST_DIR = Path(__file__).resolve().parents[2] / "data_manifests"
SPLITS = ("train", "val", "test")
_SHA256_LENGTH = 64


class ManifestError(ValueError):
    """A manifest file is missing, not valid YAML, or lacks a required entry."""


@dataclass(frozen=True)
class AnnotationFile:
    """One annotation file a dataset folder must (or may) contain."""

    path: str  # relative to the dataset root
    sha256: tuple[str, ...] | None  # accepted checksums; None when the manifest has none
    rows: int | None  # records in the file, for people to read
    required: bool  # False for files only some copies ship
    note: str  # where the checksums come from, or why there are none


@dataclass(frozen=True)
class MediaGroup:
    """The media files of one dataset layout, listed from its annotation files."""

    list_from: str  # key of MEDIA_LISTERS: "ave", "llp", "music_avqa" or "avsbench_s4"
    layout: tuple[str, ...]  # path patterns, for people to read
    videos: dict[str, int | None]  # videos per split; None where unknown
    counts_from: str | None  # "toyworld.json" when counts come from the toy world's config instead


@dataclass(frozen=True)
class Manifest:
    """A parsed and validated ``data_manifests/<name>.yaml``."""

    name: str
    title: str
    sources: dict[str, str]
    annotations: tuple[AnnotationFile, ...]
    media: tuple[MediaGroup, ...]
    classes: dict[str, list[str]]  # class list per media group (list_from key)
    preprocessing: dict[str, Any]
    path: Path
    checksums_for: dict[str, Any] | None = None  # the toy world config the checksums belong to, if any


def _require(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def _parse_annotation(entry: Any, where: str) -> AnnotationFile:
    path = _require(entry, "path", str, where)
    checksums = entry.get("sha256")
    if checksums is not None:
        if isinstance(checksums, str):
            checksums = [checksums]
        if not isinstance(checksums, list) or not checksums:
            raise ManifestError(f"{where} ({path}): sha256 must be a list of checksums or null")
        for value in checksums:
            if not isinstance(value, str) or len(value) != _SHA256_LENGTH or any(c not in "0123456789abcdef" for c in value):
                raise ManifestError(f"{where} ({path}): {value!r} is not a lowercase sha256 hex digest")
        checksums = tuple(checksums)
    note = str(entry.get("note", ""))
    if checksums is None and not note:
        raise ManifestError(f"{where} ({path}): sha256 is null, so a note must say why")
    rows = entry.get("rows")
    if rows is not None and (not isinstance(rows, int) or rows < 0):
        raise ManifestError(f"{where} ({path}): rows must be a count >= 0 or null")
    return AnnotationFile(path, checksums, rows, bool(entry.get("required", True)), note)


def _parse_media(entry: Any, where: str) -> MediaGroup:
    list_from = _require(entry, "list_from", str, where)
    if list_from not in MEDIA_LISTERS:
        raise ManifestError(f"{where}: list_from must be one of {sorted(MEDIA_LISTERS)}, got {list_from!r}")
    videos = _require(entry, "videos", dict, where)
    if set(videos) != set(SPLITS):
        raise ManifestError(f"{where}: videos must give a count for each of {', '.join(SPLITS)}")
    for split, count in videos.items():
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ManifestError(f"{where}: videos.{split} must be a count >= 0 or null")
    layout = entry.get("layout", [])
    counts_from = entry.get("counts_from")
    if counts_from not in (None, "toyworld.json"):
        raise ManifestError(f"{where}: counts_from must be toyworld.json or absent, got {counts_from!r}")
    return MediaGroup(list_from, tuple(str(p) for p in layout), dict(videos), counts_from)


def load_manifest(name_or_path: str | Path, manifest_dir: str | Path | None = None) -> Manifest:
    """Read and validate a manifest by dataset name (``"ave"``) or by path.

    Raises :class:`ManifestError` naming the file and the entry that is
    missing or malformed.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        path = candidate
    else:
        path = Path(manifest_dir or MANIFEST_DIR) / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(manifest_dir or MANIFEST_DIR).glob("*.yaml"))
        raise ManifestError(f"manifest {path} not found; known datasets: {', '.join(known) or 'none'}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML ({error})") from error
    where = str(path)
    name = _require(raw, "name", str, where)
    if name != path.stem:
        raise ManifestError(f"{where}: name {name!r} differs from the file name {path.stem!r}")
    sources = _require(raw, "sources", dict, where)
    annotations = tuple(_parse_annotation(entry, f"{where}, annotations[{i}]")
                        for i, entry in enumerate(_require(raw, "annotations", list, where)))
    media = tuple(_parse_media(entry, f"{where}, media[{i}]")
                  for i, entry in enumerate(_require(raw, "media", list, where)))
    classes = _require(raw, "classes", dict, where)
    for group in media:
        names = classes.get(group.list_from)
        if not isinstance(names, list) or not names or len(set(names)) != len(names):
            raise ManifestError(f"{where}: classes.{group.list_from} must list distinct class names")
    preprocessing = _require(raw, "preprocessing", dict, where)
    for key in ("num_segments", "image_size", "sample_rate"):
        value = _require(preprocessing, key, int, f"{where}, preprocessing")
        if value < 1:
            raise ManifestError(f"{where}: preprocessing.{key} must be positive, got {value}")
    checksums_for = raw.get("checksums_for")
    return Manifest(name, str(raw.get("title", name)), {str(k): str(v) for k, v in sources.items()},
                    annotations, media, {k: list(v) for k, v in classes.items()}, dict(preprocessing), path,
                    checksums_for)


def sha256_of(path: str | Path) -> str:
    """Return the sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Expected media, listed from the annotation files in a folder


def _list_ave(root: Path, split: str) -> dict[str, list[Path]]:
    from phplib.data.ave import SPLIT_FILES, parse_ave_annotations

    rows = parse_ave_annotations(root / "AVE/AVE_Dataset" / SPLIT_FILES[split], skipped=[])
    return {r.video_id: [root / "AVE/AVE_Dataset/AVE" / f"{r.video_id}.mp4"] for r in rows}


def _list_llp(root: Path, split: str) -> dict[str, list[Path]]:
    from phplib.data.llp import LABEL_FILES, parse_llp_labels

    records = parse_llp_labels(root / "AVVP/data" / LABEL_FILES[split], skipped=[])
    return {r.filename: [root / "AVVP/LLP_dataset/video" / f"{r.filename}.mp4"] for r in records}


def _list_avqa(root: Path, split: str) -> dict[str, list[Path]]:
    from phplib.data.music_avqa import find_video, parse_avqa_json

    folders = [root / "AVQA/MUSIC-AVQA-videos-Real", root / "AVQA/MUSIC-AVQA-videos-Synthetic"]
    questions = parse_avqa_json(root / "AVQA/data/json" / f"avqa-{split}.json", skipped=[])
    return {q.video_id: [find_video(folders, q.video_id)] for q in questions if not q.deleted}


def _list_s4(root: Path, split: str) -> dict[str, list[Path]]:
    from phplib.data.avsbench import S4ClipFiles, find_s4_meta, parse_s4_meta

    records = [r for r in parse_s4_meta(find_s4_meta(root), skipped=[]) if r.split == split]
    listed = {}
    for record in records:
        files = S4ClipFiles.of(root, record)
        listed[record.name] = [*files.frames, files.audio, *files.masks[: files.required_masks]]
    return listed


def _annotation_of(list_from: str, split: str) -> str:
    """Return the annotation file (relative to the root) that lists a split's media."""
    from phplib.data.ave import SPLIT_FILES
    from phplib.data.llp import LABEL_FILES

    return {
        "ave": f"AVE/AVE_Dataset/{SPLIT_FILES[split]}",
        "llp": f"AVVP/data/{LABEL_FILES[split]}",
        "music_avqa": f"AVQA/data/json/avqa-{split}.json",
        "avsbench_s4": f"{avs_layout.S4_DIR}/{avs_layout.S4_META_FILE}",
    }[list_from]


MEDIA_LISTERS: dict[str, Callable[[Path, str], dict[str, list[Path]]]] = {
    "ave": _list_ave,
    "llp": _list_llp,
    "music_avqa": _list_avqa,
    "avsbench_s4": _list_s4,
}
TOY_TASKS = {"ave": "ave", "llp": "llp", "music_avqa": "avqa", "avsbench_s4": "avs"}  # list_from -> toy task


# ---------------------------------------------------------------------------
# Verification


@dataclass
class VerificationReport:
    """Findings of :func:`verify_dataset` in a dataset folder."""

    dataset: str
    root: Path
    missing_annotations: list[str] = field(default_factory=list)  # required files not found
    missing_media: dict[str, list[Path]] = field(default_factory=dict)  # "<group> <split>" -> files not found
    checksum_mismatches: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # path, found, accepted
    count_mismatches: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # what could not be checked, and why
    media_checked: int = 0  # media files looked for

    @property
    def ok(self) -> bool:
        """True when nothing required is missing and every checked checksum matches."""
        return not (self.missing_annotations or self.checksum_mismatches or any(self.missing_media.values()))

    @property
    def missing_media_count(self) -> int:
        """Number of media files the annotations list but the folder lacks."""
        return sum(len(files) for files in self.missing_media.values())

    def summary(self, limit: int = 10) -> str:
        """Describe the findings in a few lines, listing at most ``limit`` files per problem."""
        lines = [f"{self.dataset} at {self.root}: "
                 + ("all checked files present" if self.ok else "problems found")
                 + f" ({self.media_checked} media files looked for)"]
        if self.missing_annotations:
            lines.append(f"  {len(self.missing_annotations)} annotation files missing: "
                         + ", ".join(self.missing_annotations))
        for path, found, accepted in self.checksum_mismatches:
            lines.append(f"  checksum mismatch: {path} has sha256 {found}, expected "
                         + " or ".join(a[:12] + "..." for a in accepted))
        for group, files in self.missing_media.items():
            if not files:
                continue
            shown = ", ".join(str(f.relative_to(self.root)) for f in files[:limit])
            more = f" and {len(files) - limit} more" if len(files) > limit else ""
            lines.append(f"  {len(files)} media files missing ({group}): {shown}{more}")
        lines.extend(f"  note: {text}" for text in self.count_mismatches + self.unchecked)
        return "\n".join(lines)


def _toy_config(root: Path) -> dict[str, Any] | None:
    manifest = root / "toyworld.json"
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("config")
    except json.JSONDecodeError:
        return None


def _check_annotations(manifest: Manifest, root: Path, report: VerificationReport, toy: dict | None) -> None:
    checksums_apply = True
    if manifest.checksums_for is not None:
        from phplib.data.toyworld import ToyWorldConfig

        default = ToyWorldConfig.from_json(manifest.checksums_for).to_json()
        checksums_apply = toy == default
        if not checksums_apply:
            report.unchecked.append("annotation checksums are listed for the default toy world config; "
                                    "this world has another config, so they were not compared")
    for entry in manifest.annotations:
        path = root / entry.path
        if not path.is_file():
            if entry.required:
                report.missing_annotations.append(entry.path)
            continue
        if entry.sha256 is None:
            report.unchecked.append(f"{entry.path}: no checksum in the manifest ({entry.note})")
            continue
        if not checksums_apply:
            continue
        found = sha256_of(path)
        if found not in entry.sha256:
            report.checksum_mismatches.append((entry.path, found, entry.sha256))


def _expected_videos(group: MediaGroup, split: str, toy: dict | None) -> int | None:
    if group.counts_from == "toyworld.json":
        if toy is None:
            return None
        from phplib.data.toyworld import ToyWorldConfig

        return ToyWorldConfig.from_json(toy).clips(TOY_TASKS[group.list_from], split)
    return group.videos[split]


def verify_dataset(
    manifest: Manifest | str, root: str | Path, splits: tuple[str, ...] = SPLITS, check_media: bool = True
) -> VerificationReport:
    """Check a dataset folder against a manifest.

    Annotation files: each required one must exist, and its sha256 must be one
    of the manifest's (files without a checksum in the manifest are listed as
    unchecked). Media: the files each split's annotation file lists must exist
    (for MUSIC-AVQA, in the real or the synthetic video folder), and the number
    of videos is compared with the manifest's count.
    """
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} not found; pass the folder that contains the dataset")
    report = VerificationReport(manifest.name, root)
    toy = _toy_config(root)
    _check_annotations(manifest, root, report, toy)
    if not check_media:
        return report
    for group in manifest.media:
        for split in splits:
            annotation = _annotation_of(group.list_from, split)
            if not (root / annotation).is_file():
                report.unchecked.append(f"{group.list_from} {split}: media not listed because {annotation} is missing")
                continue
            listed = MEDIA_LISTERS[group.list_from](root, split)
            files = [path for paths in listed.values() for path in paths]
            report.media_checked += len(files)
            report.missing_media[f"{group.list_from} {split}"] = [path for path in files if not path.exists()]
            expected = _expected_videos(group, split, toy)
            if expected is not None and expected != len(listed):
                report.count_mismatches.append(f"{group.list_from} {split}: {annotation} lists {len(listed)} "
                                               f"videos, the manifest expects {expected}")
    logger.info("verified %s at %s: %s", manifest.name, root, "ok" if report.ok else "problems found")
    return report


__all__ = [
    "AnnotationFile",
    "MANIFEST_DIR",
    "MEDIA_LISTERS",
    "Manifest",
    "ManifestError",
    "MediaGroup",
    "VerificationReport",
    "load_manifest",
    "sha256_of",
    "verify_dataset",
]
