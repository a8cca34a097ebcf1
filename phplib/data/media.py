"""Decode mp4 and wav files into fixed-length clips of one-second segments.

A clip is ``T`` one-second segments. Each segment contributes one video frame
(the decoded frame nearest to the middle of that second) and one second of
mono audio at ``sample_rate``. Every dataset in ``phplib.data`` goes through
:func:`decode_clip` or :func:`read_wav`, so the padding, cropping and resampling
rules live here only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import soundfile
import torch
from PIL import Image

logger = logging.getLogger(__name__)

Sampling = Literal["first", "uniform"]

# A segment counts as present when at least 1 - _SEGMENT_TOLERANCE_S seconds of
# it exist, so a 9.98 s clip still yields 10 segments (the missing tail is
# zero-padded) while a 9.5 s clip yields 9 and repeats its last second.
_SEGMENT_TOLERANCE_S = 0.25


class MediaError(ValueError):
    """A media file is missing, empty, unreadable or lacks a required stream."""


@dataclass(frozen=True)
class _Windows:
    """Start times of the one-second windows that make up a clip."""

    starts: list[float]  # seconds, one per output segment (padded entries repeat the last real one)
    num_real: int  # windows backed by media, after which every window repeats window num_real - 1


def _check_file(path: Path, kind: str) -> None:
    if not path.exists():
        raise MediaError(
            f"{path}: {kind} file not found. Check the dataset root and that the file was "
            "downloaded or generated, or use on_error='skip' to leave it out."
        )
    if not path.is_file():
        raise MediaError(f"{path}: expected a {kind} file but found a directory or special file.")
    if path.stat().st_size == 0:
        raise MediaError(
            f"{path}: {kind} file is empty (0 bytes). Download or generate it again, "
            "or delete it and use on_error='skip'."
        )


def _check_finite(path: Path, audio: np.ndarray) -> None:
    if not np.isfinite(audio).all():
        bad = int(np.size(audio) - np.isfinite(audio).sum())
        raise MediaError(
            f"{path}: audio contains {bad} NaN or Inf samples. Re-encode the file from a clean "
            "source, or use on_error='skip' to leave it out."
        )


def _plan_windows(
    usable_seconds: float, num_segments: int, start_seconds: float, sampling: Sampling
) -> _Windows:
    """Choose the start time of each one-second window.

    ``usable_seconds`` is the length of media present in both streams.
    """
    span = usable_seconds - start_seconds
    num_real = int(math.floor(span + _SEGMENT_TOLERANCE_S))
    num_real = max(1, num_real)
    if sampling == "uniform" and span > num_segments + _SEGMENT_TOLERANCE_S:
        # Evenly spaced windows: a 60 s video with T=10 gives starts 0, 6, ..., 54.
        starts = [start_seconds + k * span / num_segments for k in range(num_segments)]
        return _Windows(starts=starts, num_real=num_segments)
    num_real = min(num_real, num_segments)
    starts = [start_seconds + float(min(k, num_real - 1)) for k in range(num_segments)]
    return _Windows(starts=starts, num_real=num_real)


def resize_and_crop(
    image: Image.Image, image_size: int, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> np.ndarray:
    """Resize the short side to ``image_size`` and centre-crop to a square.

    Returns uint8 ``[H, W, 3]`` for an RGB image and ``[H, W]`` for a
    single-channel one. Masks need ``resample=Image.Resampling.NEAREST`` so they
    stay binary and line up with frames resized by the default filter.
    """
    width, height = image.size
    scale = image_size / min(width, height)
    new_width = max(image_size, round(width * scale))
    new_height = max(image_size, round(height * scale))
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), resample=resample)
    left = (new_width - image_size) // 2
    top = (new_height - image_size) // 2
    image = image.crop((left, top, left + image_size, top + image_size))
    return np.asarray(image, dtype=np.uint8)



def _stream_seconds(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    start = stream.start_time or 0
    return float((stream.duration + max(0, start)) * stream.time_base)


def _decode_audio(
    container: av.container.InputContainer, path: Path, sample_rate: int
) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``, aligned to t=0."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)
    chunks: list[np.ndarray] = []
    first_time: float | None = None
    for frame in container.decode(stream):
        if first_time is None and frame.time is not None:
            first_time = frame.time
        for converted in resampler.resample(frame):
            chunks.append(converted.to_ndarray().mean(axis=0))  # average channels -> [n]
    for converted in resampler.resample(None):
        chunks.append(converted.to_ndarray().mean(axis=0))
    if not chunks:
        raise MediaError(f"{path}: the audio stream decoded to no samples. Re-encode the file.")
    audio = np.concatenate(chunks).astype(np.float32)
    # A stream that starts after t=0 gets leading silence so audio stays aligned with video.
    if first_time is not None and first_time > 0:
        audio = np.concatenate([np.zeros(round(first_time * sample_rate), np.float32), audio])
    return audio


def _frame_seconds(frame: av.VideoFrame, index: int, fallback_rate: float) -> float:
    return frame.time if frame.time is not None else index / fallback_rate


def _nearest(
    previous: av.VideoFrame | None, previous_time: float, current: av.VideoFrame, current_time: float, target: float
) -> av.VideoFrame:
    if previous is not None and target - previous_time <= current_time - target:
        return previous
    return current


def _pick_frames_sequential(
    container: av.container.InputContainer, targets: list[float], image_size: int
) -> list[np.ndarray]:
    """Decode from the start and keep the frame nearest to each target time (targets ascending)."""
    stream = container.streams.video[0]
    fallback_rate = float(stream.average_rate or 25)
    picked: list[np.ndarray] = []
    previous: av.VideoFrame | None = None
    previous_time = -math.inf
    for index, frame in enumerate(container.decode(stream)):
        time = _frame_seconds(frame, index, fallback_rate)
        while len(picked) < len(targets) and time >= targets[len(picked)]:
            nearest = _nearest(previous, previous_time, frame, time, targets[len(picked)])
            picked.append(resize_and_crop(nearest.to_image(), image_size))
        if len(picked) == len(targets):
            return picked
        previous, previous_time = frame, time
    if previous is None:
        raise MediaError("the video stream decoded to no frames")
    # Targets after the last decoded frame take the last frame.
    last = resize_and_crop(previous.to_image(), image_size)
    picked.extend(last for _ in range(len(targets) - len(picked)))
    return picked


def _pick_frame_by_seek(
    container: av.container.InputContainer, target: float, image_size: int
) -> np.ndarray | None:
    """Seek to the key frame before ``target``, decode forward and keep the nearest frame."""
    stream = container.streams.video[0]
    fallback_rate = float(stream.average_rate or 25)
    offset = int(max(0.0, target - 1.0) / stream.time_base)
    container.seek(offset, stream=stream, backward=True, any_frame=False)
    previous: av.VideoFrame | None = None
    previous_time = -math.inf
    for index, frame in enumerate(container.decode(stream)):
        time = _frame_seconds(frame, index, fallback_rate)
        if time >= target:
            nearest = _nearest(previous, previous_time, frame, time, target)
            return resize_and_crop(nearest.to_image(), image_size)
        previous, previous_time = frame, time
    if previous is None:
        return None
    return resize_and_crop(previous.to_image(), image_size)


def _pick_frames(
    container: av.container.InputContainer, targets: list[float], image_size: int, seek: bool
) -> list[np.ndarray]:
    """Return the decoded frame nearest to each target time.

    Seeking per target saves decoding every frame of a long video (MUSIC-AVQA
    videos last 60 s) when only a few of its seconds are sampled.
    """
    # NOTE: the seek path is tested only on H.264 files from write_mp4. Real MUSIC-AVQA
    # videos (other encoders, B-frames, edit lists) have not been decoded with it.
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if not seek or stream.time_base is None:
        container.seek(0)
        return _pick_frames_sequential(container, targets, image_size)
    picked: list[np.ndarray] = []
    for target in targets:
        frame = _pick_frame_by_seek(container, target, image_size)
        if frame is None:
            frame = picked[-1] if picked else None
        if frame is None:
            raise MediaError("the video stream decoded to no frames")
        picked.append(frame)
    return picked


def decode_clip(
    path: str | Path,
    num_segments: int = 10,
    image_size: int = 64,
    sample_rate: int = 16000,
    start_seconds: float = 0.0,
    sampling: Sampling = "first",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode an mp4 into ``num_segments`` one-second segments of frames and audio.

    Returns ``frames`` uint8 ``[T, 3, image_size, image_size]`` (per segment, the
    decoded frame nearest to the middle of its second, short side resized to
    ``image_size`` and centre-cropped) and ``audio`` float32 ``[T, sample_rate]``
    (mono as the mean of the channels, resampled with ``av.AudioResampler``).

    ``sampling="first"`` takes the seconds starting at ``start_seconds``.
    ``sampling="uniform"`` spreads ``T`` windows evenly over the clip when it is
    longer than ``T`` seconds, and behaves like ``"first"`` otherwise. A clip shorter
    than ``T`` seconds repeats its last second in both streams.

    Raises :class:`MediaError` for a missing, empty or unreadable file, a file
    without a video or audio stream, and audio with NaN or Inf samples.
    """
    path = Path(path)
    if num_segments < 1:
        raise ValueError(f"num_segments must be at least 1, got {num_segments}")
    if image_size < 1 or sample_rate < 1:
        raise ValueError(f"image_size and sample_rate must be positive, got {image_size}, {sample_rate}")
    if sampling not in ("first", "uniform"):
        raise ValueError(f"sampling must be 'first' or 'uniform', got {sampling!r}")
    if start_seconds < 0:
        raise ValueError(f"start_seconds must be >= 0, got {start_seconds}")
    _check_file(path, "video")

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise MediaError(
            f"{path}: not a readable video container ({error}). The file is corrupt or "
            "truncated: download or generate it again."
        ) from error
    try:
        if not container.streams.video:
            raise MediaError(
                f"{path}: no video stream. This loader expects mp4 files with both video and "
                "audio; use read_wav for audio-only data."
            )
        if not container.streams.audio:
            raise MediaError(
                f"{path}: no audio stream. Re-encode the file with its audio track, "
                "or use on_error='skip' to leave it out."
            )
        try:
            audio = _decode_audio(container, path, sample_rate)  # [n]
        except av.error.FFmpegError as error:
            raise MediaError(f"{path}: decoding the audio stream failed ({error}). The file is corrupt.") from error
        _check_finite(path, audio)

        video_seconds = _stream_seconds(container.streams.video[0])
        if video_seconds is None and container.duration is not None:
            video_seconds = container.duration / av.time_base
        audio_seconds = audio.size / sample_rate
        usable = min(audio_seconds, video_seconds) if video_seconds else audio_seconds
        if start_seconds >= usable:
            raise MediaError(
                f"{path}: start_seconds={start_seconds} is past the end of the clip ({usable:.2f} s). "
                "Check the start time in the annotation."
            )
        windows = _plan_windows(usable, num_segments, start_seconds, sampling)

        real_starts = windows.starts[: windows.num_real]
        targets = [start + 0.5 for start in real_starts]
        long_clip = usable > 3 * num_segments
        try:
            frames_real = _pick_frames(container, targets, image_size, seek=long_clip)
        except av.error.FFmpegError as error:
            raise MediaError(f"{path}: decoding the video stream failed ({error}). The file is corrupt.") from error
        except MediaError as error:
            raise MediaError(f"{path}: {error}. The file is corrupt: download or generate it again.") from error
    finally:
        container.close()

    # Padded segments repeat the last real frame; windows.starts already repeats the last start.
    frames = np.stack([frames_real[min(k, windows.num_real - 1)] for k in range(num_segments)])  # [T, H, W, 3]
    segments = _cut_segments(audio, windows.starts, sample_rate)  # [T, S]
    video = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))  # [T, 3, H, W]
    return video, torch.from_numpy(segments)


def _cut_segments(audio: np.ndarray, starts: list[float], sample_rate: int) -> np.ndarray:
    """Cut one second per start time, zero-padding a segment that runs past the end."""
    segments = np.zeros((len(starts), sample_rate), dtype=np.float32)  # [T, S]
    for k, start in enumerate(starts):
        begin = round(start * sample_rate)
        piece = audio[begin : begin + sample_rate]
        segments[k, : piece.size] = piece
    return segments


def split_audio_segments(
    waveform: torch.Tensor | np.ndarray,
    num_segments: int = 10,
    sample_rate: int = 16000,
    start_seconds: float = 0.0,
    sampling: Sampling = "first",
) -> torch.Tensor:
    """Cut a mono waveform ``[n]`` into ``[T, sample_rate]`` with the same rules as decode_clip."""
    audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
    usable = audio.size / sample_rate
    if start_seconds >= usable:
        raise ValueError(f"start_seconds={start_seconds} is past the end of the waveform ({usable:.2f} s)")
    windows = _plan_windows(usable, num_segments, start_seconds, sampling)
    return torch.from_numpy(_cut_segments(audio, windows.starts, sample_rate))  # [T, S]


def resample_audio(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float32 audio with libswresample (``av.AudioResampler``, its default filter)."""
    waveform = np.ascontiguousarray(waveform, dtype=np.float32).reshape(-1)
    if source_rate == target_rate or waveform.size == 0:
        return waveform
    frame = av.AudioFrame.from_ndarray(waveform[None, :], format="flt", layout="mono")
    frame.sample_rate = source_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    converted = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([piece.to_ndarray().reshape(-1) for piece in converted]).astype(np.float32)


def read_wav(path: str | Path, sample_rate: int = 16000) -> torch.Tensor:
    """Read an audio file with soundfile as mono float32 ``[n]`` at ``sample_rate``.

    Channels are averaged. A file at another rate is resampled with
    libswresample through :func:`resample_audio`. Raises :class:`MediaError`
    for a missing, empty or unreadable file and for NaN or Inf samples.
    """
    path = Path(path)
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    _check_file(path, "audio")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # [n, channels]
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise MediaError(
            f"{path}: not a readable audio file ({error}). The file is corrupt or in a format "
            "libsndfile does not read: convert it to wav."
        ) from error
    if data.shape[0] == 0:
        raise MediaError(f"{path}: the audio file contains no samples. Download or generate it again.")
    _check_finite(path, data)
    mono = data.mean(axis=1)  # [n]
    if file_rate != sample_rate:
        logger.debug("resampling %s from %d Hz to %d Hz", path, file_rate, sample_rate)
        mono = resample_audio(mono, file_rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def probe_duration(path: str | Path) -> float:
    """Return the container duration of a media file in seconds."""
    path = Path(path)
    _check_file(path, "media")
    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / av.time_base
            seconds = [s for s in (_stream_seconds(st) for st in container.streams) if s is not None]
    except av.error.FFmpegError as error:
        raise MediaError(f"{path}: not a readable media file ({error}).") from error
    if not seconds:
        raise MediaError(f"{path}: the container reports no duration.")
    return max(seconds)


__all__ = [
    "MediaError",
    "Sampling",
    "decode_clip",
    "probe_duration",
    "read_wav",
    "resample_audio",
    "resize_and_crop",
    "split_audio_segments",
]
