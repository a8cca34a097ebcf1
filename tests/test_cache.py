"""The decoded-clip cache: equal items, reuse, invalidation, interrupted writes and prepare resuming."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from phplib.data import cache as cache_module
from phplib.data.ave import AVEDataset
from phplib.data.avsbench import AVSDataset
from phplib.data.cache import (
    CacheEntryError,
    CacheSettings,
    ClipCache,
    entry_stem,
    quantise,
    source_fingerprint,
    source_signature,
)
from phplib.data.llp import LLPDataset
from phplib.data.media import MediaError
from phplib.data.music_avqa import MusicAVQADataset
from phplib.data.prepare import prepare_dataset

REPO = Path(__file__).resolve().parents[1]
FLOAT16_STEP = 2.0**-11  # relative rounding error of float16 for normal numbers
FLOAT16_TINY = 2.0**-24  # absolute rounding error of float16 below its normal range


def entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.pt"))


def assert_items_equal(fresh: dict, cached: dict) -> None:
    for key, value in fresh.items():
        if key == "audio":
            assert cached[key].dtype == torch.float32
            assert torch.allclose(cached[key], value, rtol=FLOAT16_STEP, atol=FLOAT16_TINY)
        elif isinstance(value, torch.Tensor):
            assert cached[key].dtype == value.dtype, key
            assert torch.equal(cached[key], value), key
        else:
            assert cached[key] == value, key


@pytest.mark.parametrize(
    ("factory", "split"),
    [(AVEDataset, "val"), (LLPDataset, "test"), (MusicAVQADataset, "val"), (AVSDataset, "test")],
)
def test_cached_items_equal_fresh(toy_world_root, tmp_path, factory, split):
    fresh = factory(toy_world_root, split, progress=False)
    filled = factory(toy_world_root, split, progress=False, cache_dir=tmp_path)
    reread = factory(toy_world_root, split, progress=False, cache_dir=tmp_path)
    assert len(fresh) == len(filled) == len(reread) > 0
    for index in range(len(fresh)):
        assert_items_equal(fresh[index], filled[index])
        assert_items_equal(fresh[index], reread[index])


def test_second_construction_decodes_nothing(toy_world_root, tmp_path, monkeypatch):
    AVEDataset(toy_world_root, "test", progress=False, cache_dir=tmp_path)
    written = {path: path.stat().st_mtime_ns for path in entries(tmp_path)}
    assert len(written) == 4

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached clip was decoded again")

    monkeypatch.setattr("phplib.data.common.decode_clip", no_decoding)
    dataset = AVEDataset(toy_world_root, "test", progress=False, cache_dir=tmp_path)
    assert dataset[0]["video"].shape == (10, 3, 64, 64)
    assert {path: path.stat().st_mtime_ns for path in entries(tmp_path)} == written


def test_settings_get_their_own_folder(toy_world_root, tmp_path):
    AVEDataset(toy_world_root, "val", progress=False, cache_dir=tmp_path)
    AVEDataset(toy_world_root, "val", image_size=32, progress=False, cache_dir=tmp_path)
    folders = sorted(p.parent.parent.name for p in entries(tmp_path))
    assert len(set(folders)) == 2
    settings = [CacheSettings("ave", 10, 64, 16000, source=source_fingerprint(toy_world_root)),
                CacheSettings("ave", 10, 32, 16000, source=source_fingerprint(toy_world_root))]
    assert {s.key() for s in settings} == set(folders)
    assert source_fingerprint(toy_world_root).startswith("toyworld:")
    assert source_fingerprint(tmp_path) == ""


@pytest.fixture()
def ave_copy(toy_world_root, tmp_path) -> Path:
    """A private copy of the toy world's AVE folder (with its toyworld.json) that a test may change."""
    root = tmp_path / "world"
    shutil.copytree(toy_world_root / "AVE", root / "AVE")
    shutil.copy2(toy_world_root / "toyworld.json", root / "toyworld.json")
    return root


def test_changed_media_is_decoded_again(ave_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    first = AVEDataset(ave_copy, "val", progress=False, cache_dir=cache_dir)
    videos = sorted((ave_copy / "AVE/AVE_Dataset/AVE").glob("*.mp4"))
    target = ave_copy / "AVE/AVE_Dataset/AVE" / f"{first.rows[0].video_id}.mp4"
    other = next(p for p in videos if p != target)
    shutil.copyfile(other, target)  # new content, size and modification time
    second = AVEDataset(ave_copy, "val", progress=False, cache_dir=cache_dir)
    stems = [p.name.split(".")[0] for p in entries(cache_dir)]
    assert stems.count(first.rows[0].video_id) == 1  # the stale entry was replaced, not kept beside
    fresh = AVEDataset(ave_copy, "val", progress=False)
    assert torch.equal(second[0]["video"], fresh[0]["video"])


def test_corrupt_entry_is_decoded_again(ave_copy, tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    dataset = AVEDataset(ave_copy, "val", progress=False, cache_dir=cache_dir)
    victim = next(p for p in entries(cache_dir) if p.name.startswith(dataset.rows[0].video_id))
    victim.write_bytes(victim.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="phplib.data.common"):
        item = dataset[0]
    assert "unreadable cache entry" in caplog.text
    assert torch.equal(item["video"], AVEDataset(ave_copy, "val", progress=False)[0]["video"])
    assert len(torch.load(victim, weights_only=True)) == 2  # rewritten whole


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = ClipCache(tmp_path, CacheSettings("ave", 2, 4, 10))
    clip = quantise({"video": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "audio": torch.zeros(2, 10)}, "x.mp4")
    real_save = torch.save

    def crash(obj, handle):
        real_save(obj, handle)
        handle.truncate(50)  # half written
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.write("v1", "abc", clip)
    assert list(cache.clips_dir.iterdir()) == []
    monkeypatch.undo()
    path = cache.write("v1", "abc", clip)
    assert cache.index() == {"v1": {"abc"}}
    assert torch.equal(cache.load(path)["video"], clip["video"])


def test_temporary_files_of_dead_processes_are_removed(tmp_path):
    cache = ClipCache(tmp_path, CacheSettings("ave", 2, 4, 10))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = cache.clips_dir / f".v1.abc.pt.tmp.{int(finished.stdout)}"
    alive = cache.clips_dir / f".v2.abc.pt.tmp.{os.getpid()}"
    dead.write_bytes(b"partial")
    alive.write_bytes(b"partial")
    assert cache.clean_temporary() == 1
    assert not dead.exists()
    assert alive.exists()
    assert cache.index() == {}


def test_entry_checks_shapes(tmp_path):
    cache = ClipCache(tmp_path, CacheSettings("ave", 2, 4, 10))
    wrong = quantise({"video": torch.zeros(3, 3, 4, 4, dtype=torch.uint8), "audio": torch.zeros(3, 10)}, "x.mp4")
    path = cache.write("v1", "abc", wrong)
    with pytest.raises(CacheEntryError, match=r"video should be torch.uint8 \(2, 3, 4, 4\)"):
        cache.load(path)


def test_settings_file_guards_folder(tmp_path):
    cache = ClipCache(tmp_path, CacheSettings("ave", 2, 4, 10))
    (cache.folder / "settings.json").write_text("{}")
    with pytest.raises(ValueError, match="edited by hand"):
        ClipCache(tmp_path, CacheSettings("ave", 2, 4, 10))


def test_quantise_guards_and_names():
    with pytest.raises(MediaError, match="clip.mp4: audio peak 1000000.0 does not fit in float16"):
        quantise({"video": torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "audio": torch.full((1, 4), 1e6)}, "clip.mp4")
    assert entry_stem("-0ZmYGOtuPE") == "-0ZmYGOtuPE"
    assert entry_stem("abc_30_40") == "abc_30_40"
    assert entry_stem("../evil").startswith("id-")
    assert entry_stem("a b") != entry_stem("a_b")


def test_source_signature_tracks_files(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"one")
    first = source_signature([path])
    assert source_signature([path]) == first
    path.write_bytes(b"three")
    assert source_signature([path]) != first
    assert source_signature([path, tmp_path / "missing"]) is None


def test_parallel_fill_matches_serial(toy_world_root, tmp_path):
    serial = AVEDataset(toy_world_root, "train", progress=False, cache_dir=tmp_path / "serial")
    parallel = AVEDataset(toy_world_root, "train", progress=False, cache_dir=tmp_path / "parallel",
                          decode_workers=2)
    assert [p.name for p in entries(tmp_path / "serial")] == [p.name for p in entries(tmp_path / "parallel")]
    for index in range(len(serial)):
        assert torch.equal(serial[index]["video"], parallel[index]["video"])
        assert torch.equal(serial[index]["audio"], parallel[index]["audio"])


def test_killed_prepare_resumes(toy_world_root, tmp_path):
    cache_dir = tmp_path / "cache"
    command = [sys.executable, "-m", "phplib", "prepare", "toyworld", "--root", str(toy_world_root),
               "--cache", str(cache_dir), "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and len(entries(cache_dir)) < 5:
        time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()

    result = prepare_dataset("toyworld", toy_world_root, cache_dir=cache_dir, progress=False)
    expected = 3 * (8 + 2 + 4) + (8 + 2 + 4)  # distinct videos: AVE, LLP, MUSIC-AVQA, then AVSBench
    assert sum(result.clips.values()) == expected
    assert not result.skipped
    written = entries(cache_dir)
    assert len(written) == expected
    assert not [p for p in cache_dir.rglob(".*.tmp.*")]
    for path in written:
        settings = CacheSettings(**__import__("json").loads((path.parent.parent / "settings.json").read_text()))
        ClipCache(cache_dir, settings).load(path)  # every entry is whole and has the right shapes


def test_float16_precision_bound():
    values = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, 10000).astype(np.float32))
    rounded = values.half().float()
    assert torch.allclose(rounded, values, rtol=FLOAT16_STEP, atol=FLOAT16_TINY)
