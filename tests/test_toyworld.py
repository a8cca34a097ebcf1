"""The toy world: rendering, files on disk in the real layouts, ground truth and determinism."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from phplib.data.ave import AVEDataset, parse_ave_annotations
from phplib.data.llp import LLPDataset, parse_llp_eval, parse_llp_labels
from phplib.data.media import decode_clip
from phplib.data.music_avqa import MusicAVQADataset, parse_avqa_json
from phplib.data.examples import real_and_toy_examples
from phplib.data.toy_avs import render_masks
from phplib.data.toyworld import (
    CLASS_NAMES,
    TOY_CLASSES,
    ToyWorldConfig,
    ToyWorldError,
    generate_toy_world,
    load_truth,
    object_footprint,
    render_clip,
    sample_clip_spec,
)

MICRO_COUNTS = dict(ave_clips=(2, 1, 1), llp_clips=(2, 1, 1), avqa_clips=(2, 1, 1), avs_clips=(2, 1, 1))

ANNOTATION_FILES = [
    "AVE/AVE_Dataset/Annotations.txt",
    "AVE/AVE_Dataset/trainSet.txt",
    "AVE/AVE_Dataset/valSet.txt",
    "AVE/AVE_Dataset/testSet.txt",
    "AVE/AVE_Dataset/categories.txt",
    "AVVP/data/AVVP_train.csv",
    "AVVP/data/AVVP_val_pd.csv",
    "AVVP/data/AVVP_test_pd.csv",
    "AVVP/data/AVVP_eval_audio.csv",
    "AVVP/data/AVVP_eval_visual.csv",
    "AVQA/data/json/avqa-train.json",
    "AVQA/data/json/avqa-val.json",
    "AVQA/data/json/avqa-test.json",
]


def all_videos(root: Path) -> list[Path]:
    return sorted(root.rglob("*.mp4"))


# --- rendering in memory ---------------------------------------------------


def test_render_clip_shapes():
    config = ToyWorldConfig()
    spec = sample_clip_spec(config, "ave", "train", 0)
    frames, audio = render_clip(spec, config)
    assert frames.shape == (10 * config.fps, 64, 64, 3)
    assert frames.dtype == np.uint8
    assert audio.shape == (10 * config.sample_rate,)
    assert audio.dtype == np.float32
    assert np.abs(audio).max() <= 1.0


def test_render_one_frame_per_second():
    config = ToyWorldConfig(frame_size=32)
    spec = sample_clip_spec(config, "llp", "val", 3)
    frames, _ = render_clip(spec, config, frames_per_second=1)
    assert frames.shape == (10, 32, 32, 3)


def test_render_is_deterministic():
    config = ToyWorldConfig()
    first = render_clip(sample_clip_spec(config, "avqa", "test", 1), config)
    second = render_clip(sample_clip_spec(config, "avqa", "test", 1), config)
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])


def test_visible_object_changes_pixels():
    config = ToyWorldConfig(pixel_noise=0.0, contrast=(1.0, 1.0))
    spec = sample_clip_spec(config, "ave", "train", 0)
    event = next(o for o in spec.objects if o.role == "event")
    spec.objects = [event]
    frames, _ = render_clip(spec, config, frames_per_second=1)
    spec.objects = []
    empty, _ = render_clip(spec, config, frames_per_second=1)
    for k in range(10):
        changed = not np.array_equal(frames[k], empty[k])
        assert changed == event.visible_at(k), k


def test_audible_object_adds_energy():
    config = ToyWorldConfig(audio_noise=0.0, audible_distractor_prob=0.0)
    spec = sample_clip_spec(config, "ave", "val", 1)
    event = next(o for o in spec.objects if o.role == "event")
    spec.objects = [event]
    _, audio = render_clip(spec, config)
    seconds = audio.reshape(10, -1)
    for k in range(10):
        energy = float(np.sqrt((seconds[k] ** 2).mean()))
        if event.audible_at(k):
            assert energy > 0.01, k
        else:
            assert energy == 0.0, k


def test_class_names_are_plain_words():
    assert len(TOY_CLASSES) == len(set(CLASS_NAMES)) == 12
    for name in CLASS_NAMES:
        assert re.fullmatch(r"[a-z]+", name), name


def test_tasks_share_classes():
    config = ToyWorldConfig()
    assert set(config.ave_classes) & set(config.llp_classes)
    assert set(config.llp_classes) & set(config.avqa_classes)
    assert set(config.ave_classes) != set(config.llp_classes)


def test_ave_events_need_both_modalities():
    """Default AVE clips include seconds where the event object is only seen or only heard, and distractors."""
    config = ToyWorldConfig()
    partial = silent_distractors = offscreen = 0
    for index in range(120):
        spec = sample_clip_spec(config, "ave", "train", index)
        event_classes = {c for c, _, _ in spec.ave_events}
        for obj in spec.objects:
            if obj.role == "event" and obj.visible != obj.audible:
                partial += 1
            if obj.role == "visible_distractor":
                silent_distractors += 1
                assert obj.class_id not in event_classes
            if obj.role == "audible_distractor":
                offscreen += 1
                assert obj.class_id not in event_classes
        # Each annotated second has its class both visible and audible, and no other second does.
        for class_id, start, end in spec.ave_events:
            for k in range(10):
                both = any(o.class_id == class_id and o.visible_at(k) and o.audible_at(k) for o in spec.objects)
                assert both == (start <= k < end), (index, k)
    assert partial > 10
    assert silent_distractors > 30
    assert offscreen > 30


def test_some_ave_videos_have_two_rows():
    config = ToyWorldConfig(second_event_prob=0.5)
    counts = [len(sample_clip_spec(config, "ave", "train", i).ave_events) for i in range(60)]
    assert 2 in counts
    assert 1 in counts


def test_config_rejects_bad_values():
    with pytest.raises(ToyWorldError, match="frame_size"):
        ToyWorldConfig(frame_size=63)
    with pytest.raises(ToyWorldError, match="ave_clips"):
        ToyWorldConfig(ave_clips=(1, 2))
    with pytest.raises(ToyWorldError, match="llp_classes"):
        ToyWorldConfig(llp_classes=(3, 99))
    with pytest.raises(ToyWorldError, match="contrast"):
        ToyWorldConfig(contrast=(0.5, 2.0))


def test_config_json_round_trip():
    config = ToyWorldConfig(seed=3, ave_clips=(1, 2, 3))
    assert ToyWorldConfig.from_json(config.to_json()) == config
    assert ToyWorldConfig.from_json({}) == ToyWorldConfig()


# --- files on disk ---------------------------------------------------------


def test_layout_files_exist(toy_world_root, toy_world_config):
    for name in ANNOTATION_FILES:
        assert (toy_world_root / name).is_file(), name
    expected_videos = sum(sum(getattr(toy_world_config, f"{t}_clips")) for t in ("ave", "llp", "avqa"))
    assert len(all_videos(toy_world_root)) == expected_videos
    assert not list(toy_world_root.rglob("*.partial"))
    manifest = json.loads((toy_world_root / "toyworld.json").read_text())
    assert manifest["complete"] is True
    assert manifest["config"] == toy_world_config.to_json()


def test_videos_are_h264_and_aac(toy_world_root, toy_world_config):
    for path in all_videos(toy_world_root)[:: max(1, len(all_videos(toy_world_root)) // 6)]:
        with av.open(str(path)) as container:
            assert container.format.name.startswith("mov,mp4"), path
            assert container.streams.video[0].codec_context.name == "h264", path
            assert container.streams.audio[0].codec_context.name == "aac", path
            assert container.streams.audio[0].sample_rate == toy_world_config.sample_rate
            assert container.streams.video[0].width == toy_world_config.frame_size
            assert container.duration / av.time_base == pytest.approx(10.0, abs=0.1)


def test_decoded_clip_matches_render(toy_world_root, toy_world_config):
    spec = sample_clip_spec(toy_world_config, "ave", "train", 0)
    path = toy_world_root / "AVE/AVE_Dataset/AVE" / f"{spec.video_id}.mp4"
    frames, audio = decode_clip(path, num_segments=10, image_size=64, sample_rate=16000)
    rendered_frames, rendered_audio = render_clip(spec, toy_world_config)
    fps = toy_world_config.fps
    middle = torch.from_numpy(rendered_frames[fps // 2 :: fps]).permute(0, 3, 1, 2)  # [T, 3, H, W]
    error = (frames.float() - middle.float()).abs().mean().item()
    assert error < 8.0
    reference = torch.from_numpy(rendered_audio).reshape(10, -1)
    correlation = np.corrcoef(audio.flatten().numpy(), reference.flatten().numpy())[0, 1]
    assert correlation > 0.9


def test_ave_annotation_format(toy_world_root):
    text = (toy_world_root / "AVE/AVE_Dataset/Annotations.txt").read_text()
    lines = text.splitlines()
    assert text.endswith("\n")
    assert not lines[0].startswith("Category&")  # the official file has no header
    for line in lines:
        assert re.fullmatch(r"[a-z]+&toyave\d{5}&good&\d+&\d+", line), line
    split_lines = []
    for split in ("train", "val", "test"):
        split_lines += (toy_world_root / f"AVE/AVE_Dataset/{split}Set.txt").read_text().splitlines()
    assert sorted(split_lines) == sorted(lines)


def test_llp_file_headers(toy_world_root):
    data = toy_world_root / "AVVP/data"
    for name in ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv", "AVVP_dataset_full.csv"):
        assert (data / name).read_text().splitlines()[0] == "filename\tevent_labels", name
    for name in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
        assert (data / name).read_text().splitlines()[0] == "filename\tonset\toffset\tevent_labels", name


def test_avqa_json_keys(toy_world_root):
    records = json.loads((toy_world_root / "AVQA/data/json/avqa-train.json").read_text())
    assert records
    for record in records:
        assert list(record) == ["video_id", "question_id", "type", "question_content", "templ_values",
                                "question_deleted", "anser"]
        assert isinstance(json.loads(record["type"]), list)
        assert isinstance(json.loads(record["templ_values"]), list)
        assert isinstance(record["question_id"], int)


def test_annotations_parse(toy_world_root):
    assert parse_ave_annotations(toy_world_root / "AVE/AVE_Dataset/Annotations.txt")
    assert parse_llp_labels(toy_world_root / "AVVP/data/AVVP_train.csv")
    assert parse_llp_eval(toy_world_root / "AVVP/data/AVVP_eval_audio.csv")
    assert parse_avqa_json(toy_world_root / "AVQA/data/json/avqa-test.json")


# --- ground truth through the datasets ------------------------------------


def test_ave_labels_match_truth(toy_world_root):
    truth = load_truth(toy_world_root)
    for split in ("train", "test"):
        dataset = AVEDataset(toy_world_root, split, progress=False)
        assert len(dataset) >= 1
        for index in range(len(dataset)):
            item = dataset[index]
            row = dataset.rows[index]
            class_id = CLASS_NAMES.index(row.category)
            record = truth[item["video_id"]]
            expected = [dataset.class_names.index(row.category) if class_id in record.audio_visual[k]
                        else dataset.num_classes for k in range(10)]
            assert item["label"].tolist() == expected, item["video_id"]
            assert item["video"].shape == (10, 3, 64, 64)
            assert item["audio"].shape == (10, 16000)


def test_llp_labels_match_truth(toy_world_root, toy_world_config):
    truth = load_truth(toy_world_root)
    train = LLPDataset(toy_world_root, "train", progress=False)
    assert train.class_names == sorted(CLASS_NAMES[c] for c in toy_world_config.llp_classes)
    test = LLPDataset(toy_world_root, "test", class_names=train.class_names, progress=False)
    for item in test:
        record = truth[item["video_id"]]
        names = train.class_names
        present = {CLASS_NAMES[c] for k in range(10) for c in record.visible[k] + record.audible[k]}
        assert [names[i] for i in torch.nonzero(item["label"]).flatten().tolist()] == sorted(present & set(names))
        assert item["has_segment_labels"] is True
        for k in range(10):
            audible_names = {names[i] for i in torch.nonzero(item["seg_audio"][k]).flatten().tolist()}
            visible_names = {names[i] for i in torch.nonzero(item["seg_visual"][k]).flatten().tolist()}
            assert audible_names == {CLASS_NAMES[c] for c in record.audible[k]} & set(names)
            assert visible_names == {CLASS_NAMES[c] for c in record.visible[k]} & set(names)
    assert train[0]["has_segment_labels"] is False
    assert train[0]["seg_audio"].sum() == 0


def test_avqa_answers_match_truth(toy_world_root):
    truth = load_truth(toy_world_root)
    train = MusicAVQADataset(toy_world_root, "train", progress=False)
    for index, question in enumerate(train.questions):
        matching = [q for q in truth[question.video_id].questions
                    if q["question_content"] == question.template and q["templ_values"] == list(question.values)]
        assert matching, question
        assert question.answer == matching[0]["answer"]
        assert train[index]["answer"].item() == train.answer_vocab.index(question.answer)


# --- generation behaviour --------------------------------------------------


def test_same_seed_same_files(tmp_path):
    config = ToyWorldConfig(seed=7, **MICRO_COUNTS)
    generate_toy_world(tmp_path / "a", config, progress=False)
    generate_toy_world(tmp_path / "b", config, progress=False)
    for name in ANNOTATION_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    videos_a, videos_b = all_videos(tmp_path / "a"), all_videos(tmp_path / "b")
    assert [p.name for p in videos_a] == [p.name for p in videos_b]
    for path_a, path_b in zip(videos_a[:3], videos_b[:3]):
        frames_a, audio_a = decode_clip(path_a)
        frames_b, audio_b = decode_clip(path_b)
        assert torch.equal(frames_a, frames_b)
        assert torch.equal(audio_a, audio_b)


def test_other_seed_other_files(tmp_path):
    generate_toy_world(tmp_path / "a", ToyWorldConfig(seed=7, **MICRO_COUNTS), progress=False)
    generate_toy_world(tmp_path / "b", ToyWorldConfig(seed=8, **MICRO_COUNTS), progress=False)
    annotations = "AVE/AVE_Dataset/Annotations.txt"
    assert (tmp_path / "a" / annotations).read_bytes() != (tmp_path / "b" / annotations).read_bytes()
    frames_a, _ = decode_clip(all_videos(tmp_path / "a")[0])
    frames_b, _ = decode_clip(all_videos(tmp_path / "b")[0])
    assert not torch.equal(frames_a, frames_b)


def test_second_generation_is_skipped(toy_world_root, toy_world_config):
    video = all_videos(toy_world_root)[0]
    before = video.stat().st_mtime_ns
    started = time.perf_counter()
    manifest = generate_toy_world(toy_world_root, toy_world_config, progress=False)
    assert time.perf_counter() - started < 1.0
    assert manifest["complete"] is True
    assert video.stat().st_mtime_ns == before


def test_other_config_on_same_root_raises(toy_world_root, toy_world_config):
    with pytest.raises(ToyWorldError, match="another folder") as info:
        generate_toy_world(toy_world_root, ToyWorldConfig(seed=toy_world_config.seed + 1, **MICRO_COUNTS), progress=False)
    assert "seed" in str(info.value)
    assert str(toy_world_root) in str(info.value)


def test_interrupted_generation_resumes(tmp_path):
    config = ToyWorldConfig(seed=2, **MICRO_COUNTS)
    root = tmp_path / "world"
    generate_toy_world(root, config, progress=False)
    reference = {p.name: p.read_bytes() for p in all_videos(root)}
    # Simulate a crash: manifest not complete, one video missing, one half-written file left behind.
    manifest = json.loads((root / "toyworld.json").read_text())
    manifest["complete"] = False
    (root / "toyworld.json").write_text(json.dumps(manifest))
    victim = all_videos(root)[1]
    victim.unlink()
    stale = victim.with_name(victim.name + ".partial")
    stale.write_bytes(b"half written")
    untouched = all_videos(root)[0]
    untouched_mtime = untouched.stat().st_mtime_ns

    generate_toy_world(root, config, progress=False)
    assert json.loads((root / "toyworld.json").read_text())["complete"] is True
    assert not stale.exists()
    assert victim.read_bytes() == reference[victim.name]
    assert untouched.stat().st_mtime_ns == untouched_mtime


def test_progress_bar_writes_to_stderr(tmp_path, capsys):
    generate_toy_world(tmp_path / "world", ToyWorldConfig(seed=1, **MICRO_COUNTS), progress=True)
    assert "toy world clips" in capsys.readouterr().err


def test_corrupt_manifest_raises(tmp_path):
    root = tmp_path / "world"
    root.mkdir()
    (root / "toyworld.json").write_text("{not json")
    with pytest.raises(ToyWorldError, match="delete"):
        generate_toy_world(root, ToyWorldConfig(**MICRO_COUNTS), progress=False)


def test_parallel_generation_matches_serial(tmp_path):
    config = ToyWorldConfig(seed=4, **MICRO_COUNTS)
    generate_toy_world(tmp_path / "serial", config, progress=False, num_workers=1)
    generate_toy_world(tmp_path / "parallel", config, progress=False, num_workers=2)
    for path in all_videos(tmp_path / "serial"):
        twin = tmp_path / "parallel" / path.relative_to(tmp_path / "serial")
        assert path.read_bytes() == twin.read_bytes(), path.name
    assert os.path.exists(tmp_path / "parallel" / "toyworld_truth.json")


# --- the AVSBench S4 task ---------------------------------------------------


def test_avs_clip_lasts_five_seconds():
    config = ToyWorldConfig()
    spec = sample_clip_spec(config, "avs", "train", 0)
    frames, audio = render_clip(spec, config, frames_per_second=1)
    assert frames.shape == (5, 64, 64, 3)
    assert audio.shape == (5 * config.sample_rate,)
    assert spec.video_id == "toyavs00001"
    sounding = [o for o in spec.objects if o.role == "sounding"]
    assert len(sounding) == 1
    assert CLASS_NAMES[sounding[0].class_id] == CLASS_NAMES[config.avs_classes[0]]


def test_footprint_is_what_rendering_changes():
    config = ToyWorldConfig(pixel_noise=0.0, contrast=(1.0, 1.0))
    for index in range(6):
        spec = sample_clip_spec(config, "avs", "val", index)
        target = next(o for o in spec.objects if o.role == "sounding")
        spec.objects = [target]
        drawn = render_clip(spec, config, frames_per_second=1)[0][0]
        spec.objects = []
        background = render_clip(spec, config, frames_per_second=1)[0][0]
        changed = np.any(drawn != background, axis=-1)
        footprint = object_footprint(target, config.frame_size)
        assert not np.any(changed & ~footprint)  # nothing outside the footprint changes
        assert changed.sum() >= 0.9 * footprint.sum()  # texture can match the background on a few pixels


def test_avs_masks_exclude_objects_drawn_above():
    config = ToyWorldConfig(visible_distractor_prob=1.0)
    spec = sample_clip_spec(config, "avs", "test", 2)
    target = next(o for o in spec.objects if o.role == "sounding")
    above = spec.objects[0]
    spec.objects = [target, above]  # put the silent object on top
    masks = render_masks(spec, config)
    expected = object_footprint(target, config.frame_size) & ~object_footprint(above, config.frame_size)
    for second in range(5):
        if target.audible_at(second):
            assert np.array_equal(masks[second], expected)
        else:
            assert not masks[second].any()


def test_avs_does_not_change_other_exports(tmp_path):
    with_avs = ToyWorldConfig(seed=5, **MICRO_COUNTS)
    without = ToyWorldConfig(seed=5, **{**MICRO_COUNTS, "avs_clips": (0, 0, 0)})
    generate_toy_world(tmp_path / "a", with_avs, progress=False)
    generate_toy_world(tmp_path / "b", without, progress=False)
    for name in ANNOTATION_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for path in all_videos(tmp_path / "b"):
        assert path.read_bytes() == (tmp_path / "a" / path.relative_to(tmp_path / "b")).read_bytes(), path.name
    assert not (tmp_path / "b" / "AVSBench_data/Single-source/s4_data").exists()
    assert len(list((tmp_path / "a").rglob("*.wav"))) == 4


def test_world_without_avs_fields_gets_avs_added(tmp_path):
    config = ToyWorldConfig(seed=6, **MICRO_COUNTS)
    root = tmp_path / "world"
    generate_toy_world(root, config, progress=False)
    # Make it look like a world written before the AVS task existed.
    manifest = json.loads((root / "toyworld.json").read_text())
    for key in ("avs_clips", "avs_classes"):
        del manifest["config"][key]
    (root / "toyworld.json").write_text(json.dumps(manifest))
    shutil.rmtree(root / "AVSBench_data")
    video = all_videos(root)[0]
    before = video.stat().st_mtime_ns

    generate_toy_world(root, config, progress=False)
    assert json.loads((root / "toyworld.json").read_text())["config"] == config.to_json()
    assert len(list(root.rglob("*.wav"))) == 4
    assert video.stat().st_mtime_ns == before
    with pytest.raises(ToyWorldError, match="seed"):
        manifest["config"]["seed"] = 7
        (root / "toyworld.json").write_text(json.dumps(manifest))
        generate_toy_world(root, config, progress=False)


def test_config_rejects_bad_avs_values():
    with pytest.raises(ToyWorldError, match="avs_clips"):
        ToyWorldConfig(avs_clips=(1, 2))
    with pytest.raises(ToyWorldError, match="avs_classes"):
        ToyWorldConfig(avs_classes=(0,))
    assert ToyWorldConfig().segments("avs") == 5
    assert ToyWorldConfig(num_segments=8).segments("ave") == 8


def test_examples_table_without_real_files(toy_world_root, tmp_path):
    table = real_and_toy_examples(tmp_path, toy_world_root)
    assert list(table.columns) == ["dataset", "field", "real", "toy"]
    assert set(table["dataset"]) == {"AVE", "LLP (weak labels)", "LLP (audio events)", "MUSIC-AVQA", "AVSBench S4"}
    ave = table[table["dataset"] == "AVE"].set_index("field")
    assert ave.loc["video_id", "toy"] == "toyave00001"
    assert str(ave.loc["video_id", "real"]).startswith("file not found: ")
    s4 = table[table["dataset"] == "AVSBench S4"].set_index("field")
    assert s4.loc["split", "toy"] == "test"
    with pytest.raises(FileNotFoundError, match="toy world folder"):
        real_and_toy_examples(tmp_path, tmp_path / "absent")
