"""``python -m phplib prepare``: verify a dataset folder, then decode its media once into the clip cache."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from phplib.data.common import SPLITS, check_on_error
from phplib.data.manifests import VerificationReport, load_manifest, verify_dataset

logger = logging.getLogger(__name__)

DATASETS = ("ave", "llp", "avsbench_s4", "music_avqa", "toyworld")
PARTS = {  # dataset name -> the dataset layouts prepared for it
    "ave": ("ave",),
    "llp": ("llp",),
    "avsbench_s4": ("avsbench_s4",),
    "music_avqa": ("music_avqa",),
    "toyworld": ("ave", "llp", "music_avqa", "avsbench_s4"),
}
DEFAULT_CACHE_NAME = "phplib_cache"  # cache folder under the dataset root when --cache is not given


class PrepareError(ValueError):
    """The dataset folder failed verification, or a split could not be read."""


@dataclass
class PrepareResult:
    """Outcome of one ``prepare`` run."""

    dataset: str
    root: Path
    cache_dir: Path
    report: VerificationReport
    clips: dict[str, int] = field(default_factory=dict)  # "<part> <split>" -> clips now in the cache
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or split, reason)
    seconds: float = 0.0

    def summary(self) -> str:
        """Describe the run: clips per split, then every skipped item."""
        lines = [f"prepared {self.dataset} from {self.root} into {self.cache_dir} in {self.seconds:.1f} s"]
        lines.extend(f"  {name}: {count} clips" for name, count in self.clips.items())
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} items:")
            lines.extend(f"  - {where}: {reason}" for where, reason in self.skipped)
        else:
            lines.append("skipped nothing")
        return "\n".join(lines)


def _dataset_factory(part: str) -> Callable[..., Any]:
    if part == "ave":
        from phplib.data.ave import AVEDataset

        return AVEDataset
    if part == "llp":
        from phplib.data.llp import LLPDataset

        return LLPDataset
    if part == "music_avqa":
        from phplib.data.music_avqa import MusicAVQADataset

        return MusicAVQADataset
    from phplib.data.avsbench import AVSDataset

    return AVSDataset


def prepare_dataset(
    dataset: str,
    root: str | Path,
    cache_dir: str | Path | None = None,
    on_error: str = "raise",
    splits: tuple[str, ...] = SPLITS,
    num_segments: int | None = None,
    image_size: int | None = None,
    sample_rate: int | None = None,
    workers: int = 1,
    progress: bool = True,
    manifest_dir: str | Path | None = None,
) -> PrepareResult:
    """Verify ``root`` against the dataset's manifest, then fill the clip cache for ``splits``.

    Settings left as None come from the manifest's ``preprocessing`` block
    (AVSBench S4 keeps five segments unless ``dataset`` is ``avsbench_s4``).
    With ``on_error="raise"`` a failed verification or an unreadable clip
    raises; with ``"skip"`` they are logged, collected in
    :attr:`PrepareResult.skipped` and the rest is prepared. A run stopped
    part-way keeps the entries it wrote, and the next run decodes only the rest.
    """
    started = time.perf_counter()
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    on_error = check_on_error(on_error)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected some of {', '.join(SPLITS)}")
    root = Path(root)
    manifest = load_manifest(dataset, manifest_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else root / DEFAULT_CACHE_NAME

    report = verify_dataset(manifest, root, splits=splits)
    logger.debug("%s", report.summary())
    if not report.ok and on_error == "raise":
        raise PrepareError(report.summary() + "\nFix the files listed above, or pass --on-error skip to prepare the rest.")
    result = PrepareResult(dataset, root, cache_dir, report)
    for path, found, _ in report.checksum_mismatches:
        result.skipped.append((path, f"sha256 {found} is not one the manifest lists; prepared anyway"))

    settings = manifest.preprocessing
    for part in PARTS[dataset]:
        segments = num_segments or settings["num_segments"]
        if part == "avsbench_s4" and dataset != "avsbench_s4":
            segments = 5
        options = dict(num_segments=segments, image_size=image_size or settings["image_size"],
                       sample_rate=sample_rate or settings["sample_rate"], on_error=on_error, progress=progress,
                       cache_dir=cache_dir, decode_workers=workers)
        _prepare_part(part, root, splits, options, result)
    result.seconds = time.perf_counter() - started
    return result


def _prepare_part(part: str, root: Path, splits: tuple[str, ...], options: dict, result: PrepareResult) -> None:
    factory = _dataset_factory(part)
    for split in splits:
        try:
            data = factory(root, split, **options)
        except (FileNotFoundError, ValueError) as error:
            # Media errors never reach here in "skip" mode; these are missing or unreadable annotation files.
            if options["on_error"] == "raise":
                raise
            logger.warning("skipping %s %s: %s", part, split, error)
            result.skipped.append((f"{part} {split}", str(error)))
            continue
        result.clips[f"{part} {split}"] = data.num_videos
        result.skipped.extend(data.skipped)


__all__ = ["DATASETS", "DEFAULT_CACHE_NAME", "PrepareError", "PrepareResult", "prepare_dataset"]
