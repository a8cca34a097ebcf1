"""A disk cache of decoded clips, so a dataset's media are decoded once and read many times.

Layout under a cache folder::

    <cache_dir>/<dataset>/<key>/settings.json     the settings the key hashes, for people to read
    <cache_dir>/<dataset>/<key>/clips/<video id>.<signature>.pt

``key`` hashes the preprocessing settings (segments, frame size, sample rate,
sampling, the cache format) and, for a toy world, its generation config, so
changing any of them starts a separate set of entries. ``signature`` hashes
the size and modification time of the clip's source files: an entry whose
media changed no longer matches and is decoded again. Copying a dataset
without keeping modification times (``cp`` without ``-p``) therefore
invalidates its entries.

An entry is a ``torch.save`` dict: ``video`` uint8 ``[T, 3, H, W]``, ``audio``
float16 ``[T, S]`` (about three significant digits, enough for waveforms in
[-1, 1]), and for AVSBench ``mask`` uint8 ``[T, H, W]`` and ``mask_valid`` bool
``[T]``. Entries are written to a temporary name, flushed with fsync and renamed,
so an interrupted write never leaves a file under an entry's name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from phplib.data.media import MediaError

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the entry layout changes; old entries then sit under another key
SETTINGS_NAME = "settings.json"
CLIPS_DIR = "clips"
ENTRY_SUFFIX = ".pt"
FLOAT16_MAX = float(np.finfo(np.float16).max)
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp\.(?P<pid>\d+)$")


class CacheEntryError(ValueError):
    """A cache entry is unreadable or does not match the settings it was stored under."""


@dataclass(frozen=True)
class CacheSettings:
    """Everything a decoded clip depends on besides its source files."""

    dataset: str  # manifest name: "ave", "llp", "music_avqa" or "avsbench_s4"
    num_segments: int  # one-second segments per clip
    image_size: int  # side of the square frames in pixels
    sample_rate: int  # audio samples per second
    sampling: str = "first"  # how segments are picked from a longer clip ("first" or "uniform")
    source: str = ""  # fingerprint of generated data (the toy world's config); "" for a real dataset
    format: int = CACHE_FORMAT

    def key(self) -> str:
        """Return the 16-hex-digit hash that names this settings' folder."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def source_fingerprint(root: str | Path) -> str:
    """Return the fingerprint of a dataset root: the toy world's config hash, or "" for real data."""
    manifest = Path(root) / "toyworld.json"
    if not manifest.is_file():
        return ""
    try:
        config = json.loads(manifest.read_text(encoding="utf-8")).get("config")
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest} is not valid JSON ({error}); generate the toy world again.") from error
    text = json.dumps(config, sort_keys=True)
    return "toyworld:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def source_signature(files: Iterable[Path]) -> str | None:
    """Hash the names, sizes and modification times of ``files``; None when one of them is missing."""
    digest = hashlib.sha1()
    for path in files:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        digest.update(f"{Path(path).name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8"))
    return digest.hexdigest()[:12]


def entry_stem(video_id: str) -> str:
    """Return the file-name part for ``video_id``: the id itself when it is a safe name, else a hash."""
    if _SAFE_ID.fullmatch(video_id):
        return video_id
    return "id-" + hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:20]


def quantise(clip: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Convert a decoded clip to its stored form: float16 audio, uint8 masks.

    Raises :class:`MediaError` naming ``where`` when the audio does not fit in
    float16 (magnitudes above 65504 or non-finite values).
    """
    audio = clip["audio"].numpy()
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if not np.isfinite(peak) or peak > FLOAT16_MAX:
        raise MediaError(f"{where}: audio peak {peak} does not fit in float16; the file is corrupt or not audio.")
    stored = {"video": clip["video"].contiguous(), "audio": torch.from_numpy(audio.astype(np.float16))}
    if "mask" in clip:
        stored["mask"] = torch.from_numpy(clip["mask"].numpy().astype(np.uint8))
        stored["mask_valid"] = clip["mask_valid"].clone()
    return stored


def dequantise(entry: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a stored entry back to the dataset's item tensors: float32 audio and masks."""
    clip = {"video": entry["video"], "audio": torch.from_numpy(entry["audio"].numpy().astype(np.float32))}
    if "mask" in entry:
        clip["mask"] = torch.from_numpy(entry["mask"].numpy().astype(np.float32))
        clip["mask_valid"] = entry["mask_valid"]
    return clip


class ClipCache:
    """The entries of one dataset under one set of preprocessing settings."""

    def __init__(self, cache_dir: str | Path, settings: CacheSettings) -> None:
        self.settings = settings
        self.folder = Path(cache_dir) / settings.dataset / settings.key()
        self.clips_dir = self.folder / CLIPS_DIR
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        self._write_settings()

    def _write_settings(self) -> None:
        path = self.folder / SETTINGS_NAME
        text = json.dumps(asdict(self.settings), indent=2, sort_keys=True) + "\n"
        if path.is_file():
            if path.read_text(encoding="utf-8") != text:
                raise ValueError(
                    f"{path} does not match the settings its folder name hashes. The cache folder was edited "
                    "by hand: delete it and run prepare again."
                )
            return
        _atomic_write_bytes(path, text.encode("utf-8"))

    def entry_path(self, video_id: str, signature: str) -> Path:
        """Return the path the entry of ``video_id`` with source ``signature`` has."""
        return self.clips_dir / f"{entry_stem(video_id)}.{signature}{ENTRY_SUFFIX}"

    def index(self) -> dict[str, set[str]]:
        """Scan the entries once: file-name stem -> signatures present."""
        found: dict[str, set[str]] = {}
        with os.scandir(self.clips_dir) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.endswith(ENTRY_SUFFIX):
                    continue
                stem, _, signature = name[: -len(ENTRY_SUFFIX)].rpartition(".")
                if stem:
                    found.setdefault(stem, set()).add(signature)
        return found

    def write(
        self, video_id: str, signature: str, clip: dict[str, torch.Tensor], replaces: Iterable[str] = ()
    ) -> Path:
        """Store a quantised clip; then delete the entries of the same id whose signatures are in ``replaces``."""
        path = self.entry_path(video_id, signature)
        _atomic_write_tensors(path, clip)
        for old in replaces:
            if old != signature:
                self.entry_path(video_id, old).unlink(missing_ok=True)
        return path

    def load(self, path: Path) -> dict[str, torch.Tensor]:
        """Read and check one entry; raise :class:`CacheEntryError` when it is unreadable or has other shapes."""
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises RuntimeError, EOFError, pickle errors, zipfile errors
            raise CacheEntryError(f"{path}: unreadable cache entry ({type(error).__name__}: {error})") from error
        self._check(path, entry)
        return entry

    def _check(self, path: Path, entry: Any) -> None:
        settings = self.settings
        T, size = settings.num_segments, settings.image_size
        expected = {"video": ((T, 3, size, size), torch.uint8), "audio": ((T, settings.sample_rate), torch.float16)}
        if isinstance(entry, dict) and "mask" in entry:
            expected["mask"] = ((T, size, size), torch.uint8)
            expected["mask_valid"] = ((T,), torch.bool)
        if not isinstance(entry, dict):
            raise CacheEntryError(f"{path}: expected a dict of tensors, found {type(entry).__name__}")
        for key, (shape, dtype) in expected.items():
            value = entry.get(key)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or value.dtype != dtype:
                found = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else repr(value)
                raise CacheEntryError(f"{path}: {key} should be {dtype} {shape}, found {found}")

    def clean_temporary(self) -> int:
        """Delete temporary files left by processes that no longer run; return how many were deleted."""
        removed = 0
        for path in self.clips_dir.iterdir():
            match = _TEMPORARY.fullmatch(path.name)
            if match and not _process_alive(int(match.group("pid"))):
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            logger.info("%s: removed %d temporary files of interrupted writes", self.clips_dir, removed)
        return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


def _atomic_write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    temporary = _temporary_name(path)
    try:
        with open(temporary, "wb") as handle:
            torch.save(tensors, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # The rename makes the entry visible complete or not at all. The folder is not
        # fsynced: after a power loss the entry may be missing, and is then decoded again.
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    temporary = _temporary_name(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


__all__ = [
    "CACHE_FORMAT",
    "CacheEntryError",
    "CacheSettings",
    "ClipCache",
    "dequantise",
    "entry_stem",
    "quantise",
    "source_fingerprint",
    "source_signature",
]
