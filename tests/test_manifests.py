"""data_manifests/*.yaml: they load, their checksums match the public files, and folders are verified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from phplib.cli import build_parser
from phplib.data import toyworld as tw
from phplib.data.ave import AVE_CATEGORIES
from phplib.data.avsbench import AVS_S4_CATEGORIES
from phplib.data.llp import LLP_CLASSES
from phplib.data.manifests import MANIFEST_DIR, ManifestError, load_manifest, sha256_of, verify_dataset
from phplib.data.prepare import DATASETS

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_annotations"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real annotation files not found at {REAL}")

# Manifest path -> the copies of that file in the real-annotations folder.
REAL_COPIES = {
    "AVE/AVE_Dataset/Annotations.txt": ["AVE/Annotations.txt", "AVE/DG-SCT/Annotations.txt"],
    "AVE/AVE_Dataset/trainSet.txt": ["AVE/trainSet.txt", "AVE/DG-SCT/trainSet.txt"],
    "AVE/AVE_Dataset/valSet.txt": ["AVE/valSet.txt", "AVE/DG-SCT/valSet.txt"],
    "AVE/AVE_Dataset/testSet.txt": ["AVE/testSet.txt", "AVE/DG-SCT/testSet.txt"],
    "AVE/AVE_Dataset/categories.txt": ["AVE/categories.txt", "AVE/DG-SCT/categories.txt"],
    "AVVP/data/AVVP_train.csv": ["LLP/AVVP_train.csv", "LLP/DG-SCT/AVVP_train.csv"],
    "AVVP/data/AVVP_val_pd.csv": ["LLP/AVVP_val_pd.csv", "LLP/DG-SCT/AVVP_val_pd.csv"],
    "AVVP/data/AVVP_test_pd.csv": ["LLP/AVVP_test_pd.csv", "LLP/DG-SCT/AVVP_test_pd.csv"],
    "AVVP/data/AVVP_eval_audio.csv": ["LLP/AVVP_eval_audio.csv", "LLP/DG-SCT/AVVP_eval_audio.csv"],
    "AVVP/data/AVVP_eval_visual.csv": ["LLP/AVVP_eval_visual.csv", "LLP/DG-SCT/AVVP_eval_visual.csv"],
    "AVVP/data/AVVP_dataset_full.csv": ["LLP/AVVP_dataset_full.csv", "LLP/DG-SCT/AVVP_dataset_full.csv"],
    "AVQA/data/json/avqa-val.json": ["MUSIC-AVQA/avqa-val.json", "MUSIC-AVQA/json_update/avqa-val.json"],
    "AVQA/data/json/avqa-test.json": ["MUSIC-AVQA/avqa-test.json", "MUSIC-AVQA/json_update/avqa-test.json"],
    "AVSBench_data/Single-source/categories.txt": ["AVSBench/PHP/categories.txt"],
}


def test_every_dataset_has_a_manifest():
    assert sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml")) == sorted(DATASETS)
    for name in DATASETS:
        manifest = load_manifest(name)
        assert manifest.name == name
        assert manifest.sources
        assert manifest.preprocessing["num_segments"] >= 1


def test_cli_choices_match_datasets():
    parser = build_parser()
    args = parser.parse_args(["prepare", "ave", "--root", "x"])
    assert args.dataset == "ave"
    assert args.on_error == "raise"
    action = next(a for a in parser._subparsers._group_actions[0].choices["prepare"]._actions
                  if a.dest == "dataset")
    assert tuple(action.choices) == DATASETS


def test_class_lists_match_constants():
    assert load_manifest("ave").classes["ave"] == list(AVE_CATEGORIES)
    assert load_manifest("llp").classes["llp"] == list(LLP_CLASSES)
    assert load_manifest("avsbench_s4").classes["avsbench_s4"] == list(AVS_S4_CATEGORIES)


@needs_real
def test_answer_list_matches_real_vocabulary():
    answers = [line for line in (REAL / "MUSIC-AVQA/ans_vocab.txt").read_text().splitlines() if line]
    assert load_manifest("music_avqa").classes["music_avqa"] == answers


@needs_real
@pytest.mark.parametrize("name", ["ave", "llp", "music_avqa", "avsbench_s4"])
def test_checksums_match_real_copies(name):
    for entry in load_manifest(name).annotations:
        copies = REAL_COPIES.get(entry.path)
        if entry.sha256 is None:
            assert entry.note.startswith("not checked"), entry.path
            assert copies is None, entry.path
            continue
        assert copies, f"{entry.path} has checksums but no real copy to check them against"
        found = {sha256_of(REAL / copy) for copy in copies}
        assert found <= set(entry.sha256), entry.path
        assert set(entry.sha256) <= found, f"{entry.path}: a listed checksum matches no copy"


def test_toy_checksums_match_default_export(tmp_path):
    config = tw.ToyWorldConfig()
    specs = {task: {split: [] for split in tw.SPLITS} for task in tw.TASKS}
    for spec in tw.iter_clip_specs(config):
        specs[spec.task][spec.split].append(spec)
    tw._write_ave(tmp_path, specs["ave"], config)
    tw._write_llp(tmp_path, specs["llp"], config)
    tw._write_avqa(tmp_path, specs["avqa"])
    tw._write_avs(tmp_path, specs["avs"], config)
    manifest = load_manifest("toyworld")
    assert tw.ToyWorldConfig.from_json(manifest.checksums_for) == config
    for entry in manifest.annotations:
        assert sha256_of(tmp_path / entry.path) in entry.sha256, entry.path
    for group in manifest.media:
        task = {"ave": "ave", "llp": "llp", "music_avqa": "avqa", "avsbench_s4": "avs"}[group.list_from]
        assert group.videos == {split: config.clips(task, split) for split in tw.SPLITS}


def write_manifest(folder: Path, name: str, changes: dict) -> Path:
    raw = yaml.safe_load((MANIFEST_DIR / "ave.yaml").read_text())
    raw.update(changes)
    raw["name"] = name
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sources": None}, "'sources' must be dict"),
        ({"media": [{"list_from": "unknown", "videos": {"train": 1, "val": 1, "test": 1}}]}, "list_from must be one of"),
        ({"media": [{"list_from": "ave", "videos": {"train": 1}}]}, "a count for each of train, val, test"),
        ({"annotations": [{"path": "a.txt", "sha256": ["abc"]}]}, "not a lowercase sha256"),
        ({"annotations": [{"path": "a.txt", "sha256": None}]}, "a note must say why"),
        ({"classes": {"ave": ["a", "a"]}}, "distinct class names"),
        ({"preprocessing": {"num_segments": 10, "image_size": 0, "sample_rate": 1}}, "image_size must be positive"),
    ],
)
def test_manifest_validation_names_entry(tmp_path, changes, message):
    path = write_manifest(tmp_path, "broken", changes)
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(path)
    assert str(path) in str(info.value)


def test_manifest_file_errors(tmp_path):
    with pytest.raises(ManifestError, match="not found; known datasets: ave, avsbench_s4, llp"):
        load_manifest("vggsound")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(bad)
    renamed = write_manifest(tmp_path, "other", {})
    renamed.rename(tmp_path / "third.yaml")
    with pytest.raises(ManifestError, match="differs from the file name"):
        load_manifest(tmp_path / "third.yaml")


def copy_real(root: Path, paths: list[str]) -> None:
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / REAL_COPIES[path][0], target)


@needs_real
def test_verify_real_annotations_without_media(tmp_path):
    copy_real(tmp_path, [p for p in REAL_COPIES if p.startswith("AVE/")])
    report = verify_dataset("ave", tmp_path)
    assert not report.ok
    assert report.checksum_mismatches == []
    assert report.missing_annotations == []
    assert {group: len(files) for group, files in report.missing_media.items()} == {
        "ave train": 3312, "ave val": 401, "ave test": 402}
    assert report.count_mismatches == []
    summary = report.summary(limit=2)
    assert "3312 media files missing (ave train): AVE/AVE_Dataset/AVE/" in summary
    assert "and 3310 more" in summary


@needs_real
def test_verify_names_checksum_mismatch_and_missing_file(tmp_path):
    copy_real(tmp_path, ["AVVP/data/AVVP_train.csv", "AVVP/data/AVVP_val_pd.csv", "AVVP/data/AVVP_eval_audio.csv"])
    target = tmp_path / "AVVP/data/AVVP_val_pd.csv"
    target.write_text(target.read_text() + "extra_0_10\tSpeech\n")
    report = verify_dataset("llp", tmp_path, splits=("val",))
    assert [path for path, _, _ in report.checksum_mismatches] == ["AVVP/data/AVVP_val_pd.csv"]
    assert sorted(report.missing_annotations) == ["AVVP/data/AVVP_eval_visual.csv", "AVVP/data/AVVP_test_pd.csv"]
    assert "llp val: AVVP/data/AVVP_val_pd.csv lists 650 videos, the manifest expects 649" in report.count_mismatches
    assert "checksum mismatch: AVVP/data/AVVP_val_pd.csv" in report.summary()


@needs_real
def test_verify_music_avqa_lists_unchecked_train(tmp_path):
    copy_real(tmp_path, ["AVQA/data/json/avqa-val.json"])
    report = verify_dataset("music_avqa", tmp_path, splits=("val",))
    assert report.missing_annotations == ["AVQA/data/json/avqa-train.json", "AVQA/data/json/avqa-test.json"]
    assert len(report.missing_media["music_avqa val"]) == 3815
    synthetic = [p for p in report.missing_media["music_avqa val"] if p.name.startswith(("esa", "vv"))]
    assert synthetic and all(p.parent.name == "MUSIC-AVQA-videos-Real" for p in synthetic)


def test_verify_toy_world(toy_world_root, tmp_path):
    report = verify_dataset("toyworld", toy_world_root)
    assert report.ok, report.summary()
    assert report.count_mismatches == []
    assert any("default toy world config" in note for note in report.unchecked)
    # 14 videos per task: one mp4 each for three tasks; 5 frames, a wav and 1 or 5 masks per AVS video.
    assert report.media_checked == 3 * 14 + 14 * 6 + 8 * 1 + (2 + 4) * 5

    root = tmp_path / "world"
    shutil.copytree(toy_world_root, root)
    victim = sorted((root / "AVVP/LLP_dataset/video").glob("*.mp4"))[0]
    victim.unlink()
    config = json.loads((root / "toyworld.json").read_text())
    config["config"]["ave_clips"] = [9, 2, 4]
    (root / "toyworld.json").write_text(json.dumps(config))
    report = verify_dataset("toyworld", root)
    assert not report.ok
    assert report.missing_media_count == 1
    assert "1 media files missing (llp " in report.summary()
    assert "ave train: AVE/AVE_Dataset/trainSet.txt lists 8 videos, the manifest expects 9" in report.count_mismatches


def test_verify_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root"):
        verify_dataset("ave", tmp_path / "absent")
