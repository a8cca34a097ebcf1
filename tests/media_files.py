"""Media files that the toy world's writer cannot make: float PCM audio with NaN, stereo audio."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_black_clip(
    path: Path,
    samples: np.ndarray,
    sample_rate: int,
    num_frames: int,
    codec: str = "aac",
    container_format: str | None = None,
) -> None:
    """Write ``num_frames`` black 16x16 H.264 frames at 4 fps and ``samples`` ``[channels, n]`` as one audio frame.

    ``codec="aac"`` stores planar float audio. ``codec="pcm_f32le"`` stores interleaved float audio,
    which can carry NaN (AAC cannot) and needs a QuickTime container (a .mov name, or
    ``container_format="mov"``).
    """
    layout = {1: "mono", 2: "stereo"}[samples.shape[0]]
    with av.open(str(path), mode="w", format=container_format) as container:
        video = container.add_stream("libx264", rate=4)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        sound = container.add_stream(codec, rate=sample_rate)
        sound.layout = layout
        for _ in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        sample_format = "fltp" if codec == "aac" else "flt"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32), format=sample_format, layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in list(sound.encode(frame)) + list(sound.encode(None)):
            container.mux(packet)
