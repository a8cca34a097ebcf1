"""Annotation parsers and Dataset classes on small files written for each test."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from phplib.data.ave import AVE_CATEGORIES, AVEDataset, parse_ave_annotations, read_ave_categories
from phplib.data.common import AnnotationError, collate_av
from phplib.data.llp import LLPDataset, llp_class_vocabulary, parse_llp_eval, parse_llp_labels, segment_labels
from phplib.data.media import MediaError
from phplib.data.music_avqa import (
    UNKNOWN_ANSWER,
    UNKNOWN_ID,
    MusicAVQADataset,
    build_question_vocab,
    count_repeated_question_ids,
    encode_question,
    fill_template,
    parse_avqa_json,
    tokenize_question,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def avqa_record(question_id: int, answer: str = "yes", **changes) -> dict:
    record = {
        "video_id": "00000001",
        "question_id": question_id,
        "type": '["Audio", "Comparative"]',
        "question_content": "Is the <Object> louder than the <Object>?",
        "templ_values": '["violin", "piano"]',
        "question_deleted": 0,
        "anser": answer,
    }
    record.update(changes)
    return record


# --- AVE -------------------------------------------------------------------


def test_ave_rows_with_commas_in_category(tmp_path):
    path = write(tmp_path / "ann.txt", "Violin, fiddle&abc&good&2&7\nBark&xyz&good&0&10\nBark&abc&good&8&10\n")
    rows = parse_ave_annotations(path, AVE_CATEGORIES)
    assert [r.category for r in rows] == ["Violin, fiddle", "Bark", "Bark"]
    assert (rows[0].start, rows[0].end) == (2, 7)
    assert [r.line for r in rows] == [1, 2, 3]
    assert [r.video_id for r in rows].count("abc") == 2


def test_ave_header_and_domain_column(tmp_path):
    path = write(tmp_path / "ann.txt", "Category&VideoID&Quality&StartTime&EndTime&Domain\n"
                                       "Church bell&v1&good&0&10&domestic environments\n")
    rows = parse_ave_annotations(path)
    assert len(rows) == 1
    assert rows[0].domain == "domestic environments"
    assert rows[0].line == 2


def test_ave_wrong_field_count_raises(tmp_path):
    path = write(tmp_path / "ann.txt", "Bark&a&good&0&10\nBark&b&good&0&10\nBark&c&good&0\n")
    with pytest.raises(AnnotationError) as info:
        parse_ave_annotations(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "5 '&'-separated fields" in message


def test_ave_non_integer_time_raises(tmp_path):
    path = write(tmp_path / "ann.txt", "Bark&a&good&zero&10\n")
    with pytest.raises(AnnotationError, match="line 1.*integer"):
        parse_ave_annotations(path)


def test_ave_reversed_interval_raises(tmp_path):
    path = write(tmp_path / "ann.txt", "Bark&a&good&7&3\n")
    with pytest.raises(AnnotationError, match="interval"):
        parse_ave_annotations(path)


def test_ave_unknown_category_raises(tmp_path):
    path = write(tmp_path / "ann.txt", "Bark&a&good&0&10\nUnicorn&b&good&0&10\n")
    with pytest.raises(AnnotationError, match="line 2.*unknown category 'Unicorn'"):
        parse_ave_annotations(path, AVE_CATEGORIES)


def test_ave_skip_mode_collects_bad_rows(tmp_path):
    path = write(tmp_path / "ann.txt", "Bark&a&good&0&10\nbroken row\nBark&b&good&1&2\n")
    skipped: list[tuple[str, str]] = []
    rows = parse_ave_annotations(path, skipped=skipped)
    assert [r.video_id for r in rows] == ["a", "b"]
    assert len(skipped) == 1
    assert skipped[0][0] == str(path)
    assert "line 2" in skipped[0][1]


def test_ave_categories_reject_repeats(tmp_path):
    assert read_ave_categories(write(tmp_path / "c.txt", "Bark\n\nCat\n")) == ["Bark", "Cat"]
    with pytest.raises(AnnotationError, match="line 2"):
        read_ave_categories(write(tmp_path / "d.txt", "Bark\nBark\n"))


# --- LLP -------------------------------------------------------------------


def test_llp_labels_parse(tmp_path):
    path = write(tmp_path / "train.csv", "filename\tevent_labels\nv1_0_10\tSpeech,Dog\nv2_5_15\tCat\n")
    records = parse_llp_labels(path)
    assert [(r.filename, r.labels) for r in records] == [("v1_0_10", ("Speech", "Dog")), ("v2_5_15", ("Cat",))]
    assert llp_class_vocabulary(path) == ["Cat", "Dog", "Speech"]
    assert llp_class_vocabulary(path, ["Speech", "Cat"]) == ["Speech", "Cat"]


def test_llp_missing_header_raises(tmp_path):
    path = write(tmp_path / "train.csv", "v1_0_10\tSpeech\n")
    with pytest.raises(AnnotationError, match="line 1.*header"):
        parse_llp_labels(path)


def test_llp_wrong_field_count_raises(tmp_path):
    path = write(tmp_path / "train.csv", "filename\tevent_labels\nv1\tSpeech\nv2\tCat\textra\n")
    with pytest.raises(AnnotationError) as info:
        parse_llp_labels(path)
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_llp_unknown_label_raises(tmp_path):
    path = write(tmp_path / "test.csv", "filename\tevent_labels\nv1\tSpeech,Unicorn\n")
    with pytest.raises(AnnotationError, match="Unicorn"):
        parse_llp_labels(path, class_names=["Speech"])


def test_llp_eval_empty_and_reversed_rows(tmp_path, caplog):
    path = write(tmp_path / "eval.csv", "filename\tonset\toffset\tevent_labels\n"
                                        "v1\t0\t4\tSpeech\nv1\t9\t9\tDog\nv1\t9\t0\tCat\nghost\t0\t1\tDog\n")
    with caplog.at_level(logging.WARNING, logger="phplib.data.llp"):
        events = parse_llp_eval(path, known_filenames={"v1"})
    assert len(events) == 4
    assert sum(e.is_empty for e in events) == 1
    assert sum(e.is_reversed for e in events) == 1
    assert "1 filenames match no video" in caplog.text
    labels = segment_labels([e for e in events if e.filename == "v1"], {"Speech": 0, "Dog": 1, "Cat": 2}, 10)
    assert labels.shape == (10, 3)
    assert labels[:, 0].tolist() == [1.0] * 4 + [0.0] * 6
    assert labels[:, 1].sum() == 0
    assert labels[:, 2].sum() == 0


def test_llp_eval_non_integer_onset_raises(tmp_path):
    path = write(tmp_path / "eval.csv", "filename\tonset\toffset\tevent_labels\nv1\t0.5\t4\tSpeech\n")
    with pytest.raises(AnnotationError, match="line 2.*integer"):
        parse_llp_eval(path)


# --- MUSIC-AVQA ------------------------------------------------------------


def test_avqa_fills_placeholders_in_order(tmp_path):
    records = [
        avqa_record(1),
        avqa_record(2, "left", type='["Audio-Visual", "Temporal"]', question_content="Where is the <FL> sounding instrument?",
                    templ_values='["first"]'),
        avqa_record(3, "two", question_content="How many instruments are sounding in the video?", templ_values="[]"),
    ]
    path = write(tmp_path / "q.json", json.dumps(records))
    questions = parse_avqa_json(path)
    assert questions[0].question == "Is the violin louder than the piano?"
    assert questions[0].question_type == ("Audio", "Comparative")
    assert questions[0].type_name == "Audio/Comparative"
    assert questions[1].question == "Where is the first sounding instrument?"
    assert questions[1].answer == "left"
    assert questions[2].question == "How many instruments are sounding in the video?"


def test_avqa_accepts_answer_key(tmp_path):
    record = avqa_record(1)
    record["answer"] = record.pop("anser")
    questions = parse_avqa_json(write(tmp_path / "q.json", json.dumps([record])))
    assert questions[0].answer == "yes"


def test_avqa_drops_exact_repeats(tmp_path, caplog):
    path = write(tmp_path / "q.json", json.dumps([avqa_record(1), avqa_record(1), avqa_record(2)]))
    with caplog.at_level(logging.INFO, logger="phplib.data.music_avqa"):
        questions = parse_avqa_json(path)
    assert [q.question_id for q in questions] == [1, 2]
    assert "dropped 1 exact repeats" in caplog.text


def test_avqa_conflicting_repeats(tmp_path, caplog):
    path = write(tmp_path / "q.json", json.dumps([avqa_record(1, "yes"), avqa_record(1, "no"), avqa_record(2)]))
    with caplog.at_level(logging.WARNING, logger="phplib.data.music_avqa"):
        parsed = parse_avqa_json(path)
    assert len(parsed) == 3
    assert count_repeated_question_ids(parsed) == 1
    assert "1 question ids appear with conflicting content" in caplog.text
    dropped = parse_avqa_json(path, conflicting_repeats="drop")
    assert [q.question_id for q in dropped] == [2]


def test_avqa_placeholder_mismatch_raises(tmp_path):
    path = write(tmp_path / "q.json", json.dumps([avqa_record(1), avqa_record(5, templ_values='["violin"]')]))
    with pytest.raises(AnnotationError) as info:
        parse_avqa_json(path)
    assert "record 2 (question_id 5)" in str(info.value)
    assert str(path) in str(info.value)


def test_avqa_bad_type_string_raises(tmp_path):
    path = write(tmp_path / "q.json", json.dumps([avqa_record(1, type="Audio")]))
    with pytest.raises(AnnotationError, match="record 1"):
        parse_avqa_json(path)


def test_avqa_missing_key_raises(tmp_path):
    record = avqa_record(1)
    del record["anser"]
    with pytest.raises(AnnotationError, match="missing keys.*anser"):
        parse_avqa_json(write(tmp_path / "q.json", json.dumps([record])))


def test_avqa_invalid_json_names_line(tmp_path):
    path = write(tmp_path / "q.json", "[\n  {\"video_id\": \n")
    with pytest.raises(AnnotationError, match="line 3.*invalid JSON"):
        parse_avqa_json(path)


def test_fill_template_counts_placeholders():
    assert fill_template("What is the <LR> instrument of the <FL> sounding instrument?", ["left", "first"]) == (
        "What is the left instrument of the first sounding instrument?")
    with pytest.raises(ValueError, match="2 placeholders"):
        fill_template("<A> and <B>", ["x"])


def test_question_vocab_and_encoding():
    assert tokenize_question("How many sounding acoustic_guitar in the video\uff1f") == [
        "how", "many", "sounding", "acoustic_guitar", "in", "the", "video"]
    vocab = build_question_vocab(["Is the violin louder?", "Is there a drum sound?"])
    assert vocab["<pad>"] == 0
    assert vocab["<unk>"] == 1
    assert len(vocab) == 2 + len({"is", "the", "violin", "louder", "there", "a", "drum", "sound"})
    tokens, length = encode_question("Is the tuba louder?", vocab, max_len=6)
    assert tokens.dtype == torch.int64
    assert tokens.shape == (6,)
    assert length == 4
    assert tokens[2].item() == UNKNOWN_ID
    assert tokens[4:].tolist() == [0, 0]
    truncated, length = encode_question("is the violin louder is the violin louder", vocab, max_len=3)
    assert length == 3
    assert truncated.tolist() == [vocab["is"], vocab["the"], vocab["violin"]]


# --- collate ---------------------------------------------------------------


def test_collate_tensors_and_strings():
    batch = [
        {"video": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "n": 3, "flag": True, "name": "a", "x": 0.5},
        {"video": torch.ones(2, 3, 4, 4, dtype=torch.uint8), "n": 4, "flag": False, "name": "b", "x": 1.5},
    ]
    out = collate_av(batch)
    assert out["video"].shape == (2, 2, 3, 4, 4)
    assert out["n"].tolist() == [3, 4]
    assert out["n"].dtype == torch.int64
    assert out["flag"].dtype == torch.bool
    assert out["x"].dtype == torch.float32
    assert out["name"] == ["a", "b"]
    with pytest.raises(ValueError, match="empty"):
        collate_av([])


# --- datasets on a copy of the toy world ------------------------------------


@pytest.fixture()
def ave_copy(toy_world_root, tmp_path) -> Path:
    """A private copy of the toy world's AVE folder that a test may damage."""
    shutil.copytree(toy_world_root / "AVE", tmp_path / "AVE")
    return tmp_path


def test_ave_dataset_items(toy_world_root):
    dataset = AVEDataset(toy_world_root, "val", progress=False)
    item = dataset[0]
    assert item["video"].dtype == torch.uint8
    assert item["video"].shape == (10, 3, 64, 64)
    assert item["audio"].shape == (10, 16000)
    assert item["label"].dtype == torch.int64
    assert int(item["label"].max()) <= dataset.num_classes
    assert dataset.class_names == ["bell", "dog", "drum", "whistle", "violin", "flute"]
    assert isinstance(item["video_id"], str)


def test_ave_dataset_loader_batches(toy_world_root):
    dataset = AVEDataset(toy_world_root, "train", num_segments=4, image_size=32, sample_rate=8000, progress=False)
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_av)))
    assert batch["video"].shape == (3, 4, 3, 32, 32)
    assert batch["audio"].shape == (3, 4, 8000)
    assert batch["label"].shape == (3, 4)
    assert len(batch["video_id"]) == 3


def test_dataset_skips_broken_video(ave_copy):
    full = AVEDataset(ave_copy, "train", progress=False)
    victim = full.rows[0].video_id
    (ave_copy / "AVE/AVE_Dataset/AVE" / f"{victim}.mp4").write_bytes(b"\x00" * 100)
    dataset = AVEDataset(ave_copy, "train", on_error="skip", progress=False)
    assert len(dataset) == len(full) - sum(r.video_id == victim for r in full.rows)
    assert len(dataset.skipped) == 1
    assert f"{victim}.mp4" in dataset.skipped[0][0]
    assert "corrupt" in dataset.skipped[0][1]
    assert victim not in [dataset[i]["video_id"] for i in range(len(dataset))]


def test_dataset_raises_on_missing_video(ave_copy):
    victim = AVEDataset(ave_copy, "train", progress=False).rows[0].video_id
    (ave_copy / "AVE/AVE_Dataset/AVE" / f"{victim}.mp4").unlink()
    with pytest.raises(MediaError, match="not found") as info:
        AVEDataset(ave_copy, "train", progress=False)
    assert f"{victim}.mp4" in str(info.value)


def test_dataset_skips_malformed_row(ave_copy):
    split_file = ave_copy / "AVE/AVE_Dataset/trainSet.txt"
    split_file.write_text(split_file.read_text() + "bell&toyave99999&good&0\n")
    with pytest.raises(AnnotationError, match="trainSet.txt"):
        AVEDataset(ave_copy, "train", progress=False)
    dataset = AVEDataset(ave_copy, "train", on_error="skip", progress=False)
    assert len(dataset.skipped) == 1
    assert "fields" in dataset.skipped[0][1]


def test_dataset_argument_errors(toy_world_root, tmp_path):
    with pytest.raises(ValueError, match="split"):
        AVEDataset(toy_world_root, "dev", progress=False)
    with pytest.raises(ValueError, match="on_error"):
        AVEDataset(toy_world_root, "train", on_error="ignore", progress=False)
    with pytest.raises(FileNotFoundError, match="AVE_Dataset"):
        AVEDataset(tmp_path, "train", progress=False)
    with pytest.raises(FileNotFoundError, match="AVVP"):
        LLPDataset(tmp_path, "train", progress=False)
    with pytest.raises(FileNotFoundError, match="AVQA"):
        MusicAVQADataset(tmp_path, "train", progress=False)


def test_llp_dataset_items(toy_world_root):
    dataset = LLPDataset(toy_world_root, "val", progress=False)
    item = dataset[0]
    classes = dataset.num_classes
    assert item["label"].shape == (classes,)
    assert item["label"].dtype == torch.float32
    assert item["seg_audio"].shape == (10, classes)
    assert item["seg_visual"].shape == (10, classes)
    assert item["has_segment_labels"] is True
    batch = collate_av([dataset[0], dataset[1]])
    assert batch["has_segment_labels"].tolist() == [True, True]


def test_avqa_dataset_shares_train_vocabularies(toy_world_root):
    train = MusicAVQADataset(toy_world_root, "train", progress=False)
    test = MusicAVQADataset(toy_world_root, "test", answer_vocab=train.answer_vocab,
                            question_vocab=train.question_vocab, max_question_len=8, progress=False)
    assert test.answer_vocab == train.answer_vocab
    assert test.question_vocab == train.question_vocab
    item = test[0]
    assert item["question"].shape == (8,)
    assert item["question"].dtype == torch.int64
    assert 1 <= item["question_len"] <= 8
    assert item["answer"].dtype == torch.int64
    assert "/" in item["question_type"]
    for index in range(len(test)):
        answer = test[index]["answer"].item()
        expected = test.questions[index].answer
        if expected in train.answer_vocab:
            assert answer == train.answer_vocab.index(expected)
        else:
            assert answer == UNKNOWN_ANSWER
    # Questions of one video share a single decoded tensor.
    same_video = [i for i, q in enumerate(test.questions) if q.video_id == test.questions[0].video_id]
    assert test[same_video[0]]["video"].data_ptr() == test[same_video[-1]]["video"].data_ptr()


def test_avqa_vocab_needs_train_file(toy_world_root, tmp_path):
    shutil.copytree(toy_world_root / "AVQA", tmp_path / "AVQA")
    (tmp_path / "AVQA/data/json/avqa-train.json").unlink()
    with pytest.raises(FileNotFoundError, match="answer_vocab"):
        MusicAVQADataset(tmp_path, "test", progress=False)
    dataset = MusicAVQADataset(tmp_path, "test", answer_vocab=["yes", "no"], question_vocab={"<pad>": 0, "<unk>": 1},
                               progress=False)
    assert len(dataset) > 0
    assert dataset[0]["question"][0].item() == UNKNOWN_ID
