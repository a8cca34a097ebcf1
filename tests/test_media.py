"""decode_clip and read_wav on media files written in temporary folders."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch

from phplib.data.media import MediaError, decode_clip, read_wav, resample_audio, split_audio_segments
from phplib.data.toyworld import write_mp4

from media_files import write_black_clip

SR = 16000


def ramp_clip(path: Path, seconds: int, fps: int = 4, size: int = 32) -> Path:
    """Write a clip whose frame i has brightness 20 + 4 * i and whose second k is a tone of amplitude 0.05 * (k + 1)."""
    frames = np.stack([np.full((size, size, 3), 20 + 4 * i, np.uint8) for i in range(seconds * fps)])
    t = np.arange(SR) / SR
    audio = np.concatenate([0.05 * (k + 1) * np.sin(2 * np.pi * 440 * t) for k in range(seconds)]).astype(np.float32)
    write_mp4(path, frames, fps, audio, SR)
    return path


def second_clip(path: Path, seconds: int, size: int = 32) -> Path:
    """Write a 1 fps clip whose second k has brightness 6 * k and a tone of amplitude 0.02 * (k + 1)."""
    frames = np.stack([np.full((size, size, 3), 6 * k, np.uint8) for k in range(seconds)])
    t = np.arange(SR) / SR
    audio = np.concatenate([0.02 * (k + 1) * np.sin(2 * np.pi * 440 * t) for k in range(seconds)]).astype(np.float32)
    write_mp4(path, frames, 1, audio, SR)
    return path


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def test_decode_shapes_and_dtypes(tmp_path):
    path = ramp_clip(tmp_path / "clip.mp4", seconds=5)
    frames, audio = decode_clip(path, num_segments=5, image_size=24, sample_rate=SR)
    assert frames.shape == (5, 3, 24, 24)
    assert frames.dtype == torch.uint8
    assert audio.shape == (5, SR)
    assert audio.dtype == torch.float32


def test_decode_takes_middle_frame(tmp_path):
    # At 4 fps the frame nearest to k + 0.5 s is frame 4k + 2.
    path = ramp_clip(tmp_path / "clip.mp4", seconds=5)
    frames, _ = decode_clip(path, num_segments=5, image_size=32)
    for k in range(5):
        expected = 20 + 4 * (4 * k + 2)
        assert abs(frames[k].float().mean().item() - expected) < 2.5, k


def test_decode_audio_follows_segments(tmp_path):
    path = ramp_clip(tmp_path / "clip.mp4", seconds=5)
    _, audio = decode_clip(path, num_segments=5, image_size=32)
    expected_rms = [0.05 * (k + 1) / np.sqrt(2) for k in range(5)]
    for k in range(5):
        # Skip the first and last 50 ms of each second, where the AAC encoder smears the step.
        middle = audio[k, 800:-800]
        assert rms(middle) == pytest.approx(expected_rms[k], rel=0.1), k


def test_short_clip_repeats_last_second(tmp_path):
    path = ramp_clip(tmp_path / "short.mp4", seconds=3)
    frames, audio = decode_clip(path, num_segments=5, image_size=32)
    assert frames.shape == (5, 3, 32, 32)
    assert torch.equal(frames[3], frames[2])
    assert torch.equal(frames[4], frames[2])
    assert torch.equal(audio[3], audio[2])
    assert torch.equal(audio[4], audio[2])
    assert not torch.equal(frames[1], frames[2])


def test_long_clip_first_seconds_by_default(tmp_path):
    path = second_clip(tmp_path / "long.mp4", seconds=12)
    frames, audio = decode_clip(path, num_segments=4, image_size=32)
    means = [frames[k].float().mean().item() for k in range(4)]
    assert means == pytest.approx([0, 6, 12, 18], abs=2.5)
    assert rms(audio[3, 800:-800]) == pytest.approx(0.08 / np.sqrt(2), rel=0.1)


def test_start_seconds_shifts_window(tmp_path):
    path = second_clip(tmp_path / "long.mp4", seconds=12)
    frames, _ = decode_clip(path, num_segments=3, image_size=32, start_seconds=5)
    means = [frames[k].float().mean().item() for k in range(3)]
    assert means == pytest.approx([30, 36, 42], abs=2.5)


def test_uniform_sampling_spreads_windows(tmp_path):
    # 40 s with T=4: windows start at 0, 10, 20 and 30 s. The clip is long enough to decode by seeking.
    path = second_clip(tmp_path / "long.mp4", seconds=40, size=16)
    frames, audio = decode_clip(path, num_segments=4, image_size=16, sampling="uniform")
    means = [frames[k].float().mean().item() for k in range(4)]
    assert means == pytest.approx([0, 60, 120, 180], abs=3)
    expected = [0.02 * (s + 1) / np.sqrt(2) for s in (0, 10, 20, 30)]
    for k in range(4):
        assert rms(audio[k, 800:-800]) == pytest.approx(expected[k], rel=0.1), k


def test_uniform_on_short_clip_equals_first(tmp_path):
    path = ramp_clip(tmp_path / "clip.mp4", seconds=5)
    first = decode_clip(path, num_segments=5, image_size=16, sampling="first")
    uniform = decode_clip(path, num_segments=5, image_size=16, sampling="uniform")
    assert torch.equal(first[0], uniform[0])
    assert torch.equal(first[1], uniform[1])


def test_resize_then_centre_crop(tmp_path):
    # A 64x32 frame: left half black, right half white. After resizing to 32x16 and
    # cropping 16x16 from the centre, the left 8 columns are black and the right 8 white.
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, 32:] = 255
    path = tmp_path / "wide.mp4"
    write_mp4(path, np.stack([frame] * 8), 4, np.zeros(2 * SR, np.float32), SR)
    frames, _ = decode_clip(path, num_segments=2, image_size=16)
    assert frames.shape == (2, 3, 16, 16)
    assert frames[0, :, :, :6].float().mean() < 30
    assert frames[0, :, :, 10:].float().mean() > 225


def test_decode_resamples_audio(tmp_path):
    path = ramp_clip(tmp_path / "clip.mp4", seconds=2)
    _, audio = decode_clip(path, num_segments=2, image_size=16, sample_rate=8000)
    assert audio.shape == (2, 8000)
    spectrum = np.abs(np.fft.rfft(audio[1].numpy()))
    # One second of audio gives 1 Hz bins, so the bin index is the frequency.
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)


def test_missing_file_raises(tmp_path):
    with pytest.raises(MediaError, match="not found") as info:
        decode_clip(tmp_path / "absent.mp4")
    assert "absent.mp4" in str(info.value)


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty") as info:
        decode_clip(path)
    assert str(path) in str(info.value)


def test_corrupt_mp4_raises(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(MediaError, match="corrupt") as info:
        decode_clip(path)
    assert str(path) in str(info.value)


def test_truncated_mp4_raises(tmp_path):
    whole = ramp_clip(tmp_path / "whole.mp4", seconds=3).read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaError, match="truncated.mp4"):
        decode_clip(path)


def test_mp4_without_audio_raises(tmp_path):
    path = tmp_path / "silent.mp4"
    write_mp4(path, np.zeros((8, 16, 16, 3), np.uint8), 4, audio=None)
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0
    with pytest.raises(MediaError, match="no audio stream"):
        decode_clip(path)


def test_mp4_without_video_raises(tmp_path):
    path = tmp_path / "audio_only.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, SR), np.float32), format="fltp", layout="mono")
        frame.sample_rate = SR
        frame.pts = 0
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    with pytest.raises(MediaError, match="no video stream"):
        decode_clip(path)


def test_clip_audio_with_nan_raises(tmp_path):
    # AAC cannot carry NaN, so this file stores float PCM in a QuickTime container.
    path = tmp_path / "nan.mov"
    samples = np.zeros((1, 2 * SR), np.float32)
    samples[0, 100:110] = np.nan
    write_black_clip(path, samples, SR, num_frames=8, codec="pcm_f32le")
    with pytest.raises(MediaError, match="NaN"):
        decode_clip(path, num_segments=2)


def test_start_past_end_raises(tmp_path):
    path = ramp_clip(tmp_path / "clip.mp4", seconds=2)
    with pytest.raises(MediaError, match="past the end"):
        decode_clip(path, num_segments=2, start_seconds=5)


def test_invalid_arguments_raise(tmp_path):
    path = ramp_clip(tmp_path / "clip.mp4", seconds=2)
    with pytest.raises(ValueError, match="sampling"):
        decode_clip(path, sampling="random")
    with pytest.raises(ValueError, match="num_segments"):
        decode_clip(path, num_segments=0)


def test_media_error_is_value_error():
    assert issubclass(MediaError, ValueError)


def test_read_wav_averages_channels(tmp_path):
    path = tmp_path / "stereo.wav"
    left = np.full(SR, 0.5, np.float32)
    right = np.full(SR, -0.1, np.float32)
    soundfile.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    audio = read_wav(path, SR)
    assert audio.dtype == torch.float32
    assert audio.shape == (SR,)
    assert torch.allclose(audio, torch.full((SR,), 0.2))


def test_read_wav_resamples_other_rate(tmp_path):
    path = tmp_path / "tone44k.wav"
    t = np.arange(44100) / 44100
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100, subtype="FLOAT")
    audio = read_wav(path, SR)
    assert abs(audio.numel() - SR) <= 2
    spectrum = np.abs(np.fft.rfft(audio[:SR].numpy(), n=SR))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
    assert rms(audio[1000:-1000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_read_wav_with_nan_raises(tmp_path):
    path = tmp_path / "nan.wav"
    samples = np.zeros(SR, np.float32)
    samples[10] = np.nan
    soundfile.write(path, samples, SR, subtype="FLOAT")
    with pytest.raises(MediaError, match="NaN") as info:
        read_wav(path, SR)
    assert "nan.wav" in str(info.value)


def test_read_wav_missing_and_corrupt(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        read_wav(tmp_path / "absent.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(MediaError, match="corrupt.wav"):
        read_wav(corrupt)


def test_resample_audio_identity_and_length():
    wave = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    assert resample_audio(wave, 8000, 8000) is not None
    assert np.array_equal(resample_audio(wave, 8000, 8000), wave)
    assert abs(resample_audio(wave, 8000, 16000).size - 16000) <= 2


def test_split_audio_segments_pads_by_repeating():
    wave = torch.arange(3 * 10, dtype=torch.float32)  # 3 s at 10 Hz
    segments = split_audio_segments(wave, num_segments=5, sample_rate=10)
    assert segments.shape == (5, 10)
    assert torch.equal(segments[0], torch.arange(10, dtype=torch.float32))
    assert torch.equal(segments[4], segments[2])


def test_stereo_44k_mp4_becomes_mono(tmp_path):
    # Left and right carry the same 440 Hz tone at amplitudes 0.4 and 0.2; their mean has amplitude 0.3.
    path = tmp_path / "stereo.mp4"
    rate = 44100
    t = np.arange(3 * rate) / rate
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    write_black_clip(path, np.stack([0.4 * tone, 0.2 * tone]), rate, num_frames=12)
    _, audio = decode_clip(path, num_segments=3, image_size=16, sample_rate=SR)
    assert audio.shape == (3, SR)
    assert rms(audio[1, 800:-800]) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)
    spectrum = np.abs(np.fft.rfft(audio[1].numpy()))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
