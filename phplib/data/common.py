"""Helpers shared by the dataset parsers and Dataset classes: errors, decoding once, collation."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Protocol, Sequence

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from phplib.data.cache import (
    CacheEntryError,
    CacheSettings,
    ClipCache,
    dequantise,
    entry_stem,
    quantise,
    source_fingerprint,
    source_signature,
)
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


Clip = dict[str, torch.Tensor]  # one decoded clip: "video", "audio" and, for AVSBench, "mask", "mask_valid"


class ClipDecoder(Protocol):
    """Decoder from one clip's source (a file, or a group of files) to tensors; picklable for worker processes."""

    num_segments: int
    image_size: int
    sample_rate: int
    sampling: str

    def __call__(self, source: Any) -> Clip: ...

    def files(self, source: Any) -> list[Path]:
        """Return the files ``source`` is read from, in a fixed order."""
        ...


@dataclass(frozen=True)
class AVClipDecoder:
    """Decode an mp4 with :func:`decode_clip` into ``{"video": uint8 [T, 3, H, W], "audio": float32 [T, S]}``."""

    num_segments: int
    image_size: int
    sample_rate: int
    sampling: Sampling = "first"

    def __call__(self, source: Path) -> Clip:
        video, audio = decode_clip(source, num_segments=self.num_segments, image_size=self.image_size,
                                   sample_rate=self.sample_rate, sampling=self.sampling)
        return {"video": video, "audio": audio}

    def files(self, source: Path) -> list[Path]:
        return [Path(source)]


class CachedClips(Mapping):
    """Clips read from a :class:`ClipCache` on each access; an unreadable entry is decoded again."""

    def __init__(self, cache: ClipCache, sources: dict[str, Any], decoder: ClipDecoder, signatures: dict[str, str]):
        self.cache = cache
        self.sources = sources  # video id -> what the decoder reads
        self.decoder = decoder
        self._signatures = signatures  # video id -> signature of its entry

    def __getitem__(self, video_id: str) -> Clip:
        signature = self._signatures[video_id]
        try:
            return dequantise(self.cache.load(self.cache.entry_path(video_id, signature)))
        except CacheEntryError as error:
            logger.warning("%s; decoding video %s again", error, video_id)
        _, outcome = _decode_into_cache((self.cache, self.decoder, video_id, self.sources[video_id], [signature]))
        if isinstance(outcome, MediaError):
            raise outcome
        self._signatures[video_id] = outcome
        return dequantise(self.cache.load(self.cache.entry_path(video_id, outcome)))

    def __iter__(self) -> Iterator[str]:
        return iter(self._signatures)

    def __len__(self) -> int:
        return len(self._signatures)


def _decode_into_cache(job: tuple[ClipCache, ClipDecoder, str, Any, Iterable[str]]) -> tuple[str, str | MediaError]:
    """Decode one clip and store it; return (video id, signature of the new entry) or the MediaError."""
    cache, decoder, video_id, source, replaces = job
    files = decoder.files(source)
    try:
        clip = decoder(source)
        stored = quantise(clip, where=str(files[0]))
    except MediaError as error:
        return video_id, error
    signature = source_signature(files)
    if signature is None:
        return video_id, MediaError(f"{files[0]}: a source file disappeared while it was decoded.")
    cache.write(video_id, signature, stored, replaces=replaces)
    return video_id, signature


def _limit_worker_threads() -> None:
    # Forked workers must not start OpenMP thread pools inherited from the parent.
    torch.set_num_threads(1)


def _report_error(
    error: MediaError, video_id: str, on_error: OnError, skipped: list[tuple[str, str]] | None, files: list[Path]
) -> None:
    if on_error == "raise":
        raise error
    logger.warning("skipping video %s: %s", video_id, error)
    if skipped is not None:
        skipped.append((str(files[0]), str(error)))


def load_clips(
    sources: dict[str, Any],
    decoder: ClipDecoder,
    *,
    dataset: str,
    root: str | Path,
    cache_dir: str | Path | None = None,
    on_error: OnError = "raise",
    skipped: list[tuple[str, str]] | None = None,
    progress: bool = True,
    description: str = "decoding clips",
    workers: int = 1,
) -> Mapping[str, Clip]:
    """Decode every clip in ``sources`` (video id -> source) once and return video id -> clip tensors.

    Without ``cache_dir`` every clip is decoded now and kept in memory. With
    ``cache_dir`` the clips go through a :class:`ClipCache` for ``dataset``.
    Entries already there (same settings, unchanged source files) are reused.
    The others are decoded by ``workers`` processes and stored. The returned
    mapping then reads an entry from disk on each access. Cached audio is
    float16, so it differs from freshly decoded audio by at most 2**-11 of its
    magnitude.

    A clip whose decoding raises :class:`MediaError` stops the call with
    ``on_error="raise"``; with ``"skip"`` it is left out, logged, and
    ``(file, reason)`` is appended to ``skipped``.
    """
    if cache_dir is None:
        return _decode_in_memory(sources, decoder, on_error, skipped, progress, description)
    settings = CacheSettings(dataset=dataset, num_segments=decoder.num_segments, image_size=decoder.image_size,
                             sample_rate=decoder.sample_rate, sampling=decoder.sampling,
                             source=source_fingerprint(root))
    cache = ClipCache(cache_dir, settings)
    cache.clean_temporary()
    index = cache.index()

    signatures: dict[str, str] = {}
    jobs = []
    for video_id, source in sources.items():
        present = index.get(entry_stem(video_id), set())
        signature = source_signature(decoder.files(source))
        if signature is not None and signature in present:
            signatures[video_id] = signature
        else:
            jobs.append((cache, decoder, video_id, source, sorted(present)))
    logger.info("%s: %d of %d clips found in %s, %d to decode", description, len(signatures), len(sources),
                cache.folder, len(jobs))

    bar = tqdm(total=len(sources), initial=len(signatures), desc=description, unit="clip", disable=not progress)
    # closing() stops the worker pool as soon as an error is raised here.
    with bar, contextlib.closing(_run_jobs(jobs, workers)) as outcomes:
        for video_id, outcome in outcomes:
            bar.update(1)
            if isinstance(outcome, MediaError):
                _report_error(outcome, video_id, on_error, skipped, decoder.files(sources[video_id]))
            else:
                signatures[video_id] = outcome
    # Keep the order of ``sources`` so iteration matches the annotation order.
    ordered = {video_id: signatures[video_id] for video_id in sources if video_id in signatures}
    return CachedClips(cache, sources, decoder, ordered)


def _run_jobs(jobs: list, workers: int) -> Iterator[tuple[str, str | MediaError]]:
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            yield _decode_into_cache(job)
        return
    # Fork (where available) needs no importable __main__; the workers run PyAV, numpy and torch.save only.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_limit_worker_threads)
    try:
        yield from pool.map(_decode_into_cache, jobs, chunksize=4)
    finally:
        # On an error in "raise" mode, drop the queued clips instead of decoding them all first.
        pool.shutdown(wait=True, cancel_futures=True)


def _decode_in_memory(
    sources: dict[str, Any],
    decoder: ClipDecoder,
    on_error: OnError,
    skipped: list[tuple[str, str]] | None,
    progress: bool,
    description: str,
) -> dict[str, Clip]:
    clips: dict[str, Clip] = {}
    for video_id, source in tqdm(sources.items(), desc=description, unit="clip", disable=not progress):
        try:
            clips[video_id] = decoder(source)
        except MediaError as error:
            _report_error(error, video_id, on_error, skipped, decoder.files(source))
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
    "AVClipDecoder",
    "AnnotationError",
    "CachedClips",
    "Clip",
    "ClipDecoder",
    "OnError",
    "SPLITS",
    "annotation_error",
    "check_on_error",
    "check_split",
    "collate_av",
    "decode_clips",
    "load_clips",
    "report_or_raise",
    "require_file",
]


class ClipDataset(Dataset):
    """Base of the dataset classes: decoded clips by video id in ``self._clips``."""

    _clips: dict[str, Any]

    @property
    def num_videos(self) -> int:
        """Number of distinct videos read for this split (skipped ones excluded)."""
        return len(self._clips)


class ClassifiedClipDataset(ClipDataset):
    """Base of the datasets with a class list in ``self._class_names``."""

    _class_names: list[str]

    @property
    def class_names(self) -> list[str]:
        """Class names in class-index order."""
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        """Number of classes C (AVE's background label C is not counted)."""
        return len(self._class_names)

