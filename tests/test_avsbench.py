"""AVSBench S4: the csv parsers, clip decoding, the Dataset, and the toy world's S4 export."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from phplib.data import avs_layout
from phplib.data.avsbench import (
    AVS_S4_CATEGORIES,
    AVSDataset,
    S4ClipFiles,
    S4Record,
    decode_s4_clip,
    frame_list_videos,
    parse_s4_frame_list,
    parse_s4_meta,
)
from phplib.data.common import AnnotationError, collate_av
from phplib.data.media import MediaError
from phplib.data.toyworld import CLASS_NAMES, load_truth

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_annotations" / "AVSBench"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real AVSBench annotation files not found at {REAL}")
SR = 16000

# AVSBench's preprocess_s4.py lists the 23 categories in this order.
AVSBENCH_PREPROCESS_ORDER = [
    "baby_laughter", "female_singing", "male_speech", "dog_barking", "cat_meowing", "lions_roaring",
    "horse_clip-clop", "coyote_howling", "mynah_bird_singing", "playing_acoustic_guitar", "playing_tabla",
    "playing_violin", "playing_piano", "playing_ukulele", "playing_glockenspiel", "helicopter", "race_car",
    "driving_buses", "ambulance_siren", "typing_on_computer_keyboard", "chainsawing_trees", "cap_gun_shooting",
    "lawn_mowing",
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- s4_meta_data.csv --------------------------------------------------------


def test_meta_rows_parse(tmp_path):
    path = write(tmp_path / "s4.csv", "name,start_time,category,split\n"
                                      "-0ZmYGOtuPE,0,dog_barking,train\nab_cd_ef,2.5,helicopter,test\n\n")
    records = parse_s4_meta(path, AVS_S4_CATEGORIES)
    assert records == [S4Record("-0ZmYGOtuPE", 0.0, "dog_barking", "train", 2),
                       S4Record("ab_cd_ef", 2.5, "helicopter", "test", 3)]


def test_meta_accepts_index_column_and_bom(tmp_path):
    path = tmp_path / "s4.csv"
    path.write_bytes("\ufeff,name,start_time,category,split\r\n0,v1,1,race_car,val\r\n".encode("utf-8"))
    records = parse_s4_meta(path)
    assert [(r.name, r.category, r.split) for r in records] == [("v1", "race_car", "val")]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("v2,1,dog_barking", "expected 4 comma-separated fields"),
        ("v2,soon,dog_barking,train", "start_time must be a number"),
        ("v2,-1,dog_barking,train", "finite number >= 0"),
        ("v2,1,dog_barking,dev", "unknown split 'dev'"),
        ("v2,1,unicorn,train", "unknown category 'unicorn'"),
        ("v1,3,dog_barking,test", "listed twice \\(first on line 2\\)"),
        (",1,dog_barking,train", "empty name"),
    ],
)
def test_meta_bad_row_names_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "s4.csv", f"name,start_time,category,split\nv1,0,dog_barking,train\n{row}\n")
    with pytest.raises(AnnotationError, match=message) as info:
        parse_s4_meta(path, AVS_S4_CATEGORIES)
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_meta_missing_column_raises(tmp_path):
    path = write(tmp_path / "s4.csv", "name,category,split\nv1,dog_barking,train\n")
    with pytest.raises(AnnotationError, match="line 1.*start_time"):
        parse_s4_meta(path)


def test_meta_skip_mode_keeps_good_rows(tmp_path):
    path = write(tmp_path / "s4.csv", "name,start_time,category,split\nv1,0,cat_meowing,train\nbroken\n"
                                      "v2,1,cat_meowing,val\n")
    skipped: list[tuple[str, str]] = []
    records = parse_s4_meta(path, skipped=skipped)
    assert [r.name for r in records] == ["v1", "v2"]
    assert len(skipped) == 1
    assert "line 3" in skipped[0][1]


# --- per-frame lists -----------------------------------------------------------


def test_frame_list_parse_and_group(tmp_path):
    rows = "".join(f"a_b_{i},race_car\r\n" for i in range(1, 6)) + "".join(f"c_{i},cat_meowing\r\n" for i in range(1, 6))
    path = write(tmp_path / "frames.csv", rows)
    frames = parse_s4_frame_list(path, AVS_S4_CATEGORIES)
    assert frames[0].name == "a_b"
    assert frames[0].index == 1
    assert frame_list_videos(frames) == {"a_b": "race_car", "c": "cat_meowing"}


def test_frame_list_incomplete_video_raises(tmp_path):
    path = write(tmp_path / "frames.csv", "v_1,race_car\nv_2,race_car\nv_2,race_car\n")
    with pytest.raises(ValueError, match=r"'v' has frames \[1, 2, 2\]"):
        frame_list_videos(parse_s4_frame_list(path))
    bad = write(tmp_path / "bad.csv", "v_1,race_car\nv_9,race_car\n")
    with pytest.raises(AnnotationError, match="line 2.*_1 to _5"):
        parse_s4_frame_list(bad)


@needs_real
def test_real_test_frame_list():
    frames = parse_s4_frame_list(REAL / "ACL-SSL" / "avs1_s4_test.csv", AVS_S4_CATEGORIES)
    assert len(frames) == 3700
    videos = frame_list_videos(frames)
    assert len(videos) == 740
    assert len(set(videos.values())) == 23
    per_category = Counter(videos.values())
    assert per_category["helicopter"] == 47
    assert per_category["coyote_howling"] == 9
    assert sum(per_category.values()) == 740


@needs_real
def test_category_constant_matches_reference_files():
    lines = (REAL / "PHP" / "categories.txt").read_text(encoding="utf-8").splitlines()
    assert [line.strip() for line in lines if line.strip()] == list(AVS_S4_CATEGORIES)


def test_category_constant_is_avsbench_set():
    assert len(AVS_S4_CATEGORIES) == 23
    assert sorted(AVS_S4_CATEGORIES) == sorted(AVSBENCH_PREPROCESS_ORDER)


# --- decoding one clip from files written here ---------------------------------


def make_clip(folder: Path, size=(32, 32), seconds: float = 5.0, rate: int = SR, channels: int = 1,
              masks: int = 5) -> S4ClipFiles:
    """Write 5 frames whose brightness is 40 * i, a tone whose amplitude grows each second, and masks."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    frames, mask_paths = [], []
    for i in range(1, 6):
        frame = folder / f"v_{i}.png"
        Image.fromarray(np.full((height, width, 3), 40 * i, np.uint8)).save(frame)
        frames.append(frame)
        mask = folder / f"m_{i}.png"
        if i <= masks:
            values = np.zeros((height, width), np.uint8)
            values[: height // 2] = 255
            Image.fromarray(values).save(mask)
        mask_paths.append(mask)
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.1 * (1 + np.floor(t)) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(folder / "v.wav", np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)
    return S4ClipFiles(tuple(frames), folder / "v.wav", tuple(mask_paths), required_masks=min(masks, 5))


def test_decode_shapes_and_values(tmp_path):
    clip = decode_s4_clip(make_clip(tmp_path), image_size=16, sample_rate=SR)
    assert clip["video"].shape == (5, 3, 16, 16)
    assert clip["video"].dtype == torch.uint8
    assert [int(clip["video"][k].float().mean()) for k in range(5)] == [40, 80, 120, 160, 200]
    assert clip["audio"].shape == (5, SR)
    assert clip["mask"].dtype == torch.float32
    assert set(clip["mask"].unique().tolist()) == {0.0, 1.0}
    assert clip["mask"][:, :8].eq(1).all()
    assert clip["mask"][:, 8:].eq(0).all()
    assert clip["mask_valid"].tolist() == [True] * 5


def test_stereo_44k_wav_becomes_mono_16k(tmp_path):
    clip = decode_s4_clip(make_clip(tmp_path, rate=44100, channels=2), image_size=16, sample_rate=SR)
    assert clip["audio"].shape == (5, SR)
    spectrum = np.abs(np.fft.rfft(clip["audio"][2].numpy()))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
    rms = [float(clip["audio"][k, 1000:-1000].pow(2).mean().sqrt()) for k in range(5)]
    assert rms == pytest.approx([0.1 * (k + 1) / np.sqrt(2) for k in range(5)], rel=0.05)


def test_short_wav_repeats_last_second(tmp_path):
    clip = decode_s4_clip(make_clip(tmp_path, seconds=3.0), image_size=16, sample_rate=SR)
    assert torch.equal(clip["audio"][3], clip["audio"][2])
    assert torch.equal(clip["audio"][4], clip["audio"][2])
    assert not torch.equal(clip["audio"][1], clip["audio"][2])


def test_long_wav_keeps_first_five_seconds(tmp_path):
    clip = decode_s4_clip(make_clip(tmp_path, seconds=8.0), image_size=16, sample_rate=SR)
    rms = float(clip["audio"][4, 1000:-1000].pow(2).mean().sqrt())
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_train_split_first_mask_only(tmp_path):
    files = make_clip(tmp_path, masks=1)
    clip = decode_s4_clip(files, image_size=16)
    assert clip["mask_valid"].tolist() == [True, False, False, False, False]
    assert clip["mask"][1:].sum() == 0
    assert clip["mask"][0].sum() == 16 * 8


def test_missing_required_mask_raises(tmp_path):
    files = make_clip(tmp_path)
    files.masks[3].unlink()
    with pytest.raises(MediaError, match="not found") as info:
        decode_s4_clip(files, image_size=16)
    assert "m_4.png" in str(info.value)


def test_mask_follows_frame_crop(tmp_path):
    # A 48x32 frame: the short side becomes 16 px, the long one 24 px, and 4 px are cropped on each side.
    files = make_clip(tmp_path, size=(48, 32))
    values = np.zeros((32, 48), np.uint8)
    values[:, 32:] = 255  # original columns 32-47 become 16-23, and 16-19 survive as cropped columns 12-15
    Image.fromarray(values).save(files.masks[0])
    clip = decode_s4_clip(files, image_size=16)
    assert clip["mask"][0, :, 12:].eq(1).all()
    assert clip["mask"][0, :, :12].eq(0).all()


def test_mask_threshold_and_palette(tmp_path):
    files = make_clip(tmp_path)
    grey = np.zeros((32, 32), np.uint8)
    grey[:, :16] = 127
    grey[:, 16:] = 128
    Image.fromarray(grey).save(files.masks[0])
    palette = Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 2).astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.save(files.masks[1])
    clip = decode_s4_clip(files, image_size=32)
    assert clip["mask"][0, :, :16].sum() == 0
    assert clip["mask"][0, :, 16:].eq(1).all()
    assert clip["mask"][1].sum() == 32 * 32 / 2


def test_mask_size_mismatch_raises(tmp_path):
    files = make_clip(tmp_path)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(files.masks[2])
    with pytest.raises(MediaError, match="m_3.png: mask is 20x20 but its frame v_3.png is 32x32"):
        decode_s4_clip(files)


def test_corrupt_frame_raises(tmp_path):
    files = make_clip(tmp_path)
    files.frames[1].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    with pytest.raises(MediaError, match="v_2.png: not a readable frame image"):
        decode_s4_clip(files)


def test_segment_count_limits(tmp_path):
    files = make_clip(tmp_path)
    with pytest.raises(ValueError, match="1 to 5"):
        decode_s4_clip(files, num_segments=6)
    clip = decode_s4_clip(files, num_segments=3, image_size=8)
    assert clip["video"].shape == (3, 3, 8, 8)
    assert clip["audio"].shape == (3, SR)


# --- the toy export and the Dataset ----------------------------------------------


def test_toy_layout_and_csv(toy_world_root, toy_world_config):
    base = toy_world_root / avs_layout.S4_DIR
    lines = (base / avs_layout.S4_META_FILE).read_text().splitlines()
    assert lines[0] == "name,start_time,category,split"
    records = parse_s4_meta(base / avs_layout.S4_META_FILE)
    assert Counter(r.split for r in records) == {"train": 8, "val": 2, "test": 4}
    for record in records:
        assert len(record.name) == 11
        files = S4ClipFiles.of(toy_world_root, record)
        assert all(path.is_file() for path in files.frames + files.masks + (files.audio,)), record.name
        info = soundfile.info(files.audio)
        assert (info.samplerate, info.channels, info.frames) == (toy_world_config.sample_rate, 1, 5 * SR)
    expected = [CLASS_NAMES[c] for c in toy_world_config.avs_classes]
    assert (base / avs_layout.CATEGORIES_FILE).read_text().splitlines() == expected


def test_toy_dataset_items(toy_world_root):
    dataset = AVSDataset(toy_world_root, "val", progress=False)
    assert len(dataset) == 2
    item = dataset[0]
    assert item["video"].shape == (5, 3, 64, 64)
    assert item["video"].dtype == torch.uint8
    assert item["audio"].shape == (5, SR)
    assert item["audio"].dtype == torch.float32
    assert item["mask"].shape == (5, 64, 64)
    assert item["mask"].dtype == torch.float32
    assert item["mask_valid"].tolist() == [True] * 5
    assert item["category"] in dataset.class_names
    batch = collate_av([dataset[0], dataset[1]])
    assert batch["mask"].shape == (2, 5, 64, 64)
    assert batch["mask_valid"].shape == (2, 5)
    assert len(batch["category"]) == 2


def test_toy_masks_mark_sounding_seconds(toy_world_root):
    truth = load_truth(toy_world_root)
    for split in ("train", "test"):
        dataset = AVSDataset(toy_world_root, split, progress=False)
        for item in dataset:
            record = truth[item["video_id"]]
            class_id = CLASS_NAMES.index(item["category"])
            for second in range(5):
                sounding = class_id in record.audio_visual[second]
                assert bool(item["mask"][second].sum() > 0) == sounding, (item["video_id"], second)


@pytest.fixture()
def s4_copy(toy_world_root, tmp_path) -> Path:
    """A private copy of the toy world's AVSBench folder that a test may damage."""
    shutil.copytree(toy_world_root / "AVSBench_data", tmp_path / "AVSBench_data")
    return tmp_path


def test_dataset_handles_train_first_mask_only(s4_copy):
    for record in parse_s4_meta(s4_copy / avs_layout.S4_DIR / avs_layout.S4_META_FILE):
        if record.split == "train":
            for index in range(2, 6):
                avs_layout.mask_path(s4_copy, "train", record.category, record.name, index).unlink()
    dataset = AVSDataset(s4_copy, "train", progress=False)
    assert len(dataset) == 8
    for item in dataset:
        assert item["mask_valid"].tolist() == [True, False, False, False, False]
        assert item["mask"][1:].sum() == 0


def test_dataset_missing_test_mask(s4_copy):
    record = next(r for r in parse_s4_meta(s4_copy / avs_layout.S4_DIR / avs_layout.S4_META_FILE)
                  if r.split == "test")
    victim = avs_layout.mask_path(s4_copy, "test", record.category, record.name, 3)
    victim.unlink()
    with pytest.raises(MediaError, match="mask file not found") as info:
        AVSDataset(s4_copy, "test", progress=False)
    assert str(victim) in str(info.value)
    dataset = AVSDataset(s4_copy, "test", on_error="skip", progress=False)
    assert len(dataset) == 3
    assert [path for path, _ in dataset.skipped] == [str(S4ClipFiles.of(s4_copy, record).frames[0])]
    assert record.name not in [item["video_id"] for item in dataset]


def test_dataset_reads_meta_from_s4_data(s4_copy):
    base = s4_copy / avs_layout.S4_DIR
    (base / avs_layout.S4_META_FILE).rename(base / avs_layout.S4_DATA_DIR / avs_layout.S4_META_FILE)
    assert len(AVSDataset(s4_copy, "val", progress=False)) == 2


def test_dataset_argument_errors(toy_world_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="AVSBench_data/Single-source"):
        AVSDataset(tmp_path, "train", progress=False)
    (tmp_path / avs_layout.S4_DIR).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="s4_meta_data.csv.*outside their repository"):
        AVSDataset(tmp_path, "train", progress=False)
    with pytest.raises(ValueError, match="1 to 5"):
        AVSDataset(toy_world_root, "train", num_segments=10, progress=False)
    with pytest.raises(ValueError, match="split"):
        AVSDataset(toy_world_root, "dev", progress=False)
