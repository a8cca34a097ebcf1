"""The parsers on the public annotation files of AVE, LLP and MUSIC-AVQA (no media needed).

The tests read copies of the public files from shared/real_annotations beside
the repository. The counts below were taken from those files and pin every
row, so a parser that drops or invents a row fails here.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from phplib.data.ave import AVE_CATEGORIES, parse_ave_annotations, read_ave_categories
from phplib.data.examples import real_and_toy_examples
from phplib.data.llp import LLP_CLASSES, llp_class_vocabulary, parse_llp_eval, parse_llp_labels
from phplib.data.music_avqa import count_repeated_question_ids, parse_avqa_json, read_vocab_file

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_annotations"

if not REAL.is_dir():
    pytest.skip(
        f"real annotation files not found at {REAL}; they sit in shared/real_annotations beside the repository",
        allow_module_level=True,
    )

AVE = REAL / "AVE"
LLP = REAL / "LLP"
AVQA = REAL / "MUSIC-AVQA"


# --- AVE -------------------------------------------------------------------


@pytest.mark.parametrize("path", [AVE / "Annotations.txt", AVE / "DG-SCT" / "Annotations.txt", AVE / "PHP" / "test.txt"])
def test_ave_annotations_every_row(path):
    rows = parse_ave_annotations(path, AVE_CATEGORIES)
    assert len(rows) == 4143
    assert len({r.video_id for r in rows}) == 4097
    assert len({r.category for r in rows}) == 28
    assert all(r.quality == "good" for r in rows)
    assert sum(r.start == r.end for r in rows) == 1
    assert max(r.end for r in rows) == 10


def test_ave_official_file_has_no_header():
    rows = parse_ave_annotations(AVE / "Annotations.txt")
    assert rows[0].line == 1
    assert (rows[0].category, rows[0].video_id, rows[0].start, rows[0].end) == ("Church bell", "RUhOCu3LNXM", 0, 10)


def test_ave_copies_agree_with_official():
    official = [(r.category, r.video_id, r.start, r.end) for r in parse_ave_annotations(AVE / "Annotations.txt")]
    for copy in (AVE / "DG-SCT" / "Annotations.txt", AVE / "PHP" / "test.txt"):
        assert [(r.category, r.video_id, r.start, r.end) for r in parse_ave_annotations(copy)] == official


def test_ave_php_copy_has_domains():
    rows = parse_ave_annotations(AVE / "PHP" / "test.txt")
    assert all(r.domain for r in rows)


def test_ave_video_with_two_rows():
    rows = parse_ave_annotations(AVE / "Annotations.txt")
    per_video = Counter(r.video_id for r in rows)
    assert sum(n - 1 for n in per_video.values()) == 4143 - 4097
    assert max(per_video.values()) >= 2


def test_ave_categories_match_constant():
    for path in (AVE / "categories.txt", AVE / "DG-SCT" / "categories.txt"):
        assert read_ave_categories(path) == list(AVE_CATEGORIES)
    assert sum("," in name for name in AVE_CATEGORIES) == 7


@pytest.mark.parametrize("folder", [AVE, AVE / "DG-SCT"])
def test_ave_splits_cover_annotations(folder):
    counts = {}
    union = []
    for split in ("train", "val", "test"):
        rows = parse_ave_annotations(folder / f"{split}Set.txt", AVE_CATEGORIES)
        counts[split] = len(rows)
        union += [(r.category, r.video_id, r.start, r.end) for r in rows]
    assert counts == {"train": 3339, "val": 402, "test": 402}
    everything = [(r.category, r.video_id, r.start, r.end) for r in parse_ave_annotations(AVE / "Annotations.txt")]
    assert sorted(union) == sorted(everything)


# --- LLP -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows"),
    [("AVVP_train.csv", 10000), ("AVVP_val_pd.csv", 649), ("AVVP_test_pd.csv", 1200), ("AVVP_dataset_full.csv", 11849)],
)
def test_llp_label_files(name, rows):
    for folder in (LLP, LLP / "DG-SCT"):
        records = parse_llp_labels(folder / name, class_names=LLP_CLASSES)
        assert len(records) == rows
        assert len({r.filename for r in records}) == rows
        assert {label for r in records for label in r.labels} == set(LLP_CLASSES)


def test_llp_class_constant_is_train_vocabulary():
    assert len(LLP_CLASSES) == 25
    assert llp_class_vocabulary(LLP / "AVVP_train.csv") == list(LLP_CLASSES)


def test_llp_full_is_union_of_splits():
    splits = set()
    for name in ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv"):
        splits |= {r.filename for r in parse_llp_labels(LLP / name)}
    assert splits == {r.filename for r in parse_llp_labels(LLP / "AVVP_dataset_full.csv")}


def eval_videos() -> set[str]:
    return {r.filename for name in ("AVVP_val_pd.csv", "AVVP_test_pd.csv") for r in parse_llp_labels(LLP / name)}


@pytest.mark.parametrize(
    ("path", "rows", "empty", "reversed_rows", "files", "unmatched"),
    [
        (LLP / "AVVP_eval_audio.csv", 4131, 5, 1, 1848, 8),
        (LLP / "AVVP_eval_visual.csv", 2495, 0, 0, 1665, 7),
        (LLP / "DG-SCT" / "AVVP_eval_audio.csv", 4131, 5, 1, 1850, 10),
        (LLP / "DG-SCT" / "AVVP_eval_visual.csv", 2495, 0, 0, 1665, 7),
    ],
)
def test_llp_eval_files(path, rows, empty, reversed_rows, files, unmatched, caplog):
    known = eval_videos()
    with caplog.at_level(logging.WARNING, logger="phplib.data.llp"):
        events = parse_llp_eval(path, known_filenames=known, class_names=LLP_CLASSES)
    assert len(events) == rows
    assert sum(e.is_empty for e in events) == empty
    assert sum(e.is_reversed for e in events) == reversed_rows
    names = {e.filename for e in events}
    assert len(names) == files
    assert len(names - known) == unmatched
    assert f"{unmatched} filenames match no video" in caplog.text
    assert all(0 <= e.onset <= 10 and 0 <= e.offset <= 10 for e in events)


# --- MUSIC-AVQA ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "records", "repeated_ids"),
    [
        ("avqa-val.json", 4595, 27),
        ("avqa-test.json", 9185, 55),
        ("avqa-val_real.json", 3698, 17),
        ("avqa-val_fake.json", 897, 10),
        ("avqa-test_real.json", 7402, 37),
        ("avqa-test_fake.json", 1783, 18),
        ("avqa-train_fake.json", 6233, 56),
        ("json_update/avqa-val.json", 4568, 0),
        ("json_update/avqa-test.json", 9129, 0),
    ],
)
def test_avqa_question_files(name, records, repeated_ids):
    questions = parse_avqa_json(AVQA / name)
    # The public files contain no exact repeats, so every record is kept.
    assert len(questions) == records
    assert count_repeated_question_ids(questions) == repeated_ids
    assert all("<" not in q.question and ">" not in q.question for q in questions)
    assert len({q.type_name for q in questions}) == 9
    answers = set(read_vocab_file(AVQA / "ans_vocab.txt"))
    assert {q.answer for q in questions} <= answers


def test_avqa_repeats_differ_in_answer():
    questions = parse_avqa_json(AVQA / "avqa-val.json")
    groups: dict[int, list] = {}
    for q in questions:
        groups.setdefault(q.question_id, []).append(q)
    repeated = [g for g in groups.values() if len(g) > 1]
    assert len(repeated) == 27
    for first, second in repeated:
        assert (first.video_id, first.question) == (second.video_id, second.question)
        assert first.answer != second.answer
    dropped = parse_avqa_json(AVQA / "avqa-val.json", conflicting_repeats="drop")
    assert len(dropped) == 4595 - 2 * 27


def test_avqa_answer_vocabulary():
    answers = read_vocab_file(AVQA / "ans_vocab.txt")
    assert len(answers) == 42
    assert len(set(answers)) == 42
    assert read_vocab_file(AVQA / "DG-SCT" / "ans_vocab.txt") == answers


def test_avqa_example_record():
    first = parse_avqa_json(AVQA / "avqa-val.json")[0]
    assert first.video_id == "00000028"
    assert first.question_id == 7
    assert first.question == "Is the ukulele in the video always playing?"
    assert first.type_name == "Audio-Visual/Existential"
    assert first.answer == "yes"


# --- real records beside toy ones -------------------------------------------


def test_examples_table_pairs_real_and_toy(toy_world_root):
    table = real_and_toy_examples(REAL, toy_world_root)
    assert not table["real"].astype(str).str.startswith("file not found").any()
    assert not table["toy"].astype(str).str.startswith("file not found").any()
    rows = {(d, f): (r, t) for d, f, r, t in table.itertuples(index=False)}
    assert rows[("AVE", "video_id")] == ("RUhOCu3LNXM", "toyave00001")
    assert rows[("AVE", "category")][0] == "Church bell"
    assert rows[("LLP (weak labels)", "event_labels")][0] == "Speech,Dog"
    assert rows[("MUSIC-AVQA", "question")][0] == "Is the ukulele in the video always playing?"
    assert rows[("AVSBench S4", "name")][0] == "0d9u2CymIxc"
    assert rows[("AVSBench S4", "category")][0] == "helicopter"
    assert rows[("AVSBench S4", "start_time")][0] == "not in this file"
