"""Bad input through prepare and the cached datasets: each case raises naming the file, or is skipped and listed.

test_media.py and test_avsbench.py test the decoders' own errors, and test_parsers.py those of the
uncached datasets. Here the same damage goes through the cache and the prepare command.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from phplib.cli import main
from phplib.data import avs_layout
from phplib.data.ave import AVEDataset
from phplib.data.avsbench import AVSDataset, S4ClipFiles, parse_s4_meta
from phplib.data.common import AnnotationError
from phplib.data.llp import LLPDataset
from phplib.data.media import MediaError
from phplib.data.music_avqa import MusicAVQADataset
from phplib.data.prepare import PrepareError, prepare_dataset
from phplib.data.toyworld import write_mp4

from media_files import write_black_clip

SR = 16000


def corrupt(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def without_audio(path: Path) -> None:
    write_mp4(path, np.zeros((8, 16, 16, 3), np.uint8), 4, audio=None)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def nan_audio(path: Path) -> None:
    """Write float PCM audio containing NaN in a QuickTime container (AAC cannot carry NaN), under the .mp4 name."""
    samples = np.zeros((1, 10 * SR), np.float32)
    samples[0, 100:110] = np.nan
    write_black_clip(path, samples, SR, num_frames=40, codec="pcm_f32le", container_format="mov")


def missing(path: Path) -> None:
    path.unlink()


MP4_CASES = {
    "corrupt mp4": (corrupt, "corrupt"),
    "mp4 without audio": (without_audio, "no audio stream"),
    "empty file": (empty, "empty"),
    "audio with NaN": (nan_audio, "NaN"),
    "file missing from the folder": (missing, "not found"),
}


def ave_videos(root: Path) -> list[Path]:
    return sorted((root / "AVE/AVE_Dataset/AVE").glob("*.mp4"))


@pytest.fixture()
def ave_copy(toy_world_root, tmp_path) -> Path:
    root = tmp_path / "world"
    shutil.copytree(toy_world_root / "AVE", root / "AVE")
    return root


@pytest.mark.parametrize("case", list(MP4_CASES))
def test_cached_dataset_raises_naming_file(ave_copy, tmp_path, case):
    damage, message = MP4_CASES[case]
    victim = ave_videos(ave_copy)[-1]  # a test-split video
    damage(victim)
    with pytest.raises(MediaError, match=message) as info:
        AVEDataset(ave_copy, "test", progress=False, cache_dir=tmp_path / "cache")
    assert str(victim) in str(info.value)


@pytest.mark.parametrize("case", list(MP4_CASES))
def test_cached_dataset_skips_and_keeps_rest(ave_copy, tmp_path, case):
    damage, message = MP4_CASES[case]
    victim = ave_videos(ave_copy)[-1]
    damage(victim)
    dataset = AVEDataset(ave_copy, "test", on_error="skip", progress=False, cache_dir=tmp_path / "cache",
                         decode_workers=2)
    assert [path for path, _ in dataset.skipped] == [str(victim)]
    assert message in dataset.skipped[0][1]
    assert dataset.num_videos == 3
    assert victim.stem not in {item["video_id"] for item in dataset}
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 3


def test_malformed_row_raises_and_skips(ave_copy, tmp_path):
    split_file = ave_copy / "AVE/AVE_Dataset/testSet.txt"
    lines = split_file.read_text().splitlines()
    split_file.write_text("\n".join(lines[:1] + ["bell&toyave00099&good&three&7"] + lines[1:]) + "\n")
    with pytest.raises(AnnotationError, match="testSet.txt, line 2: start and end must be integer seconds"):
        AVEDataset(ave_copy, "test", progress=False, cache_dir=tmp_path / "cache")
    dataset = AVEDataset(ave_copy, "test", on_error="skip", progress=False, cache_dir=tmp_path / "cache")
    assert len(dataset.skipped) == 1
    assert "line 2" in dataset.skipped[0][1]
    assert dataset.num_videos == 4


@pytest.fixture()
def s4_copy(toy_world_root, tmp_path) -> tuple[Path, list]:
    shutil.copytree(toy_world_root / "AVSBench_data", tmp_path / "AVSBench_data")
    records = parse_s4_meta(tmp_path / avs_layout.S4_DIR / avs_layout.S4_META_FILE)
    return tmp_path, [r for r in records if r.split == "test"]


def nan_wav(path: Path) -> None:
    samples = np.zeros(5 * SR, np.float32)
    samples[7] = np.nan
    soundfile.write(path, samples, SR, subtype="FLOAT")


S4_CASES = {
    "corrupt frame": (lambda files: corrupt(files.frames[2]), 2, "not a readable frame image"),
    "empty wav": (lambda files: empty(files.audio), None, "empty"),
    "wav with NaN": (lambda files: nan_wav(files.audio), None, "NaN"),
    "mask missing": (lambda files: missing(files.masks[4]), 4, "mask file not found"),
}


@pytest.mark.parametrize("case", list(S4_CASES))
def test_s4_bad_files(s4_copy, tmp_path, case):
    root, records = s4_copy
    damage, frame_index, message = S4_CASES[case]
    files = S4ClipFiles.of(root, records[1])
    damage(files)
    if frame_index is None:
        named = files.audio
    elif "mask" in case:
        named = files.masks[frame_index]
    else:
        named = files.frames[frame_index]
    with pytest.raises(MediaError, match=message) as info:
        AVSDataset(root, "test", progress=False, cache_dir=tmp_path / "cache")
    assert str(named) in str(info.value)
    dataset = AVSDataset(root, "test", on_error="skip", progress=False, cache_dir=tmp_path / "cache")
    assert [item["video_id"] for item in dataset] == [r.name for r in records if r is not records[1]]
    assert message in dataset.skipped[0][1]


@pytest.fixture()
def damaged_world(toy_world_root, tmp_path) -> tuple[Path, dict[str, Path]]:
    """A copy of the tiny toy world with one bad input of each kind."""
    root = tmp_path / "world"
    shutil.copytree(toy_world_root, root)
    ave = ave_videos(root)
    llp = sorted((root / "AVVP/LLP_dataset/video").glob("*.mp4"))
    avqa = sorted((root / "AVQA/MUSIC-AVQA-videos-Real").glob("*.mp4"))
    victims = {"corrupt mp4": ave[0], "mp4 without audio": ave[1], "empty file": llp[0],
               "audio with NaN": llp[-1], "file missing from the folder": avqa[0]}
    for case, path in victims.items():
        MP4_CASES[case][0](path)
    split_file = root / "AVE/AVE_Dataset/valSet.txt"
    split_file.write_text(split_file.read_text() + "bell&toyave00099&good&0\n")
    victims["malformed row"] = split_file
    return root, victims


def test_prepare_skip_lists_every_bad_input(damaged_world, tmp_path, capsys):
    root, victims = damaged_world
    code = main(["prepare", "toyworld", "--root", str(root), "--cache", str(tmp_path / "cache"),
                 "--on-error", "skip", "--no-progress"])
    output = capsys.readouterr().out
    assert code == 0
    assert "1 media files missing (music_avqa train)" in output
    summary = output[output.index("prepared toyworld"):]
    assert "skipped 6 items:" in summary
    for case, path in victims.items():
        assert str(path) in summary, case
    assert "valSet.txt, line 3" in summary
    # Everything else is in the cache: 14 videos per layout, minus the five damaged ones.
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 4 * 14 - 5
    assert summary.rstrip().splitlines()[-1].startswith("  - ")


def test_prepare_raise_stops_at_verification(damaged_world, tmp_path, capsys):
    root, victims = damaged_world
    code = main(["prepare", "toyworld", "--root", str(root), "--cache", str(tmp_path / "cache"), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2
    assert "media files missing" in error
    assert str(victims["file missing from the folder"].relative_to(root)) in error
    assert "--on-error skip" in error
    assert not list((tmp_path / "cache").rglob("*.pt"))


def test_prepare_raise_names_unreadable_file(toy_world_root, tmp_path):
    root = tmp_path / "world"
    shutil.copytree(toy_world_root, root)
    victim = ave_videos(root)[3]
    corrupt(victim)
    with pytest.raises(MediaError, match="corrupt") as info:
        prepare_dataset("toyworld", root, cache_dir=tmp_path / "cache", progress=False)
    assert str(victim) in str(info.value)
    assert issubclass(PrepareError, ValueError)  # so the command line reports it as an error, exit code 2
    with pytest.raises(ValueError, match="unknown dataset 'vggsound'"):
        prepare_dataset("vggsound", root)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        prepare_dataset("ave", root, splits=("dev",))


def test_llp_and_avqa_skip_through_cache(damaged_world, tmp_path):
    root, victims = damaged_world
    llp = LLPDataset(root, "test", on_error="skip", progress=False, cache_dir=tmp_path / "cache")
    assert [path for path, _ in llp.skipped] == [str(victims["audio with NaN"])]
    avqa = MusicAVQADataset(root, "train", on_error="skip", progress=False, cache_dir=tmp_path / "cache")
    assert [path for path, _ in avqa.skipped] == [str(victims["file missing from the folder"])]
    assert all(q.video_id != victims["file missing from the folder"].stem for q in avqa.questions)
