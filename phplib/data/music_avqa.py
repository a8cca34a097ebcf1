"""MUSIC-AVQA (audio-visual question answering): annotation parser and Dataset.

A question file is a JSON list of records with the keys ``video_id``,
``question_id``, ``type`` (a JSON-encoded list string such as
``"[\\"Audio-Visual\\", \\"Counting\\"]"``), ``question_content`` with placeholders
such as ``<Object>`` and ``<LR>``, ``templ_values`` (a JSON-encoded list of the
placeholder values, in order), ``question_deleted`` and the answer under the
key ``anser`` (spelled so in the public files; ``answer`` is accepted too).

The original public val and test files (data/json in the GeWu-Lab/MUSIC-AVQA
repository) repeat some question ids with conflicting answers: 27 ids in
avqa-val.json and 55 in avqa-test.json. The data/json_update files fix them. The parser drops exact repeats and keeps
conflicting ones by default, with a warning that gives the count.

Expected layout under ``root``::

    AVQA/MUSIC-AVQA-videos-Real/<video_id>.mp4
    AVQA/MUSIC-AVQA-videos-Synthetic/<video_id>.mp4     (ids such as "esa00000004" and "vv00008937")
    AVQA/data/json/avqa-{train,val,test}.json

The question files mix real and synthetic videos (avqa-val.json holds the
records of avqa-val_real.json and avqa-val_fake.json), so a video is looked up
in the real folder first and in the synthetic folder next.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from phplib.data.common import (
    ClipDataset,
    AnnotationError,
    AVClipDecoder,
    annotation_error,
    check_on_error,
    check_split,
    load_clips,
    report_or_raise,
    require_file,
)

logger = logging.getLogger(__name__)

PAD_ID = 0  # question token id used for padding
UNKNOWN_ID = 1  # question token id of a word missing from the vocabulary
UNKNOWN_ANSWER = -1  # answer id of an answer missing from the answer vocabulary
PLACEHOLDER = re.compile(r"<[^<>]+>")
WORD = re.compile(r"[a-z0-9_]+")

_RECORD_FIX = "Use the MUSIC-AVQA record layout (video_id, question_id, type, question_content, templ_values, anser)."


@dataclass(frozen=True)
class AVQAQuestion:
    """One MUSIC-AVQA question with its placeholders filled in."""

    video_id: str
    question_id: int
    question_type: tuple[str, str]  # (modality, kind), for example ("Audio-Visual", "Counting")
    template: str  # question_content as in the file, with placeholders
    values: tuple[str, ...]  # templ_values, in placeholder order
    question: str  # template with every placeholder replaced by its value
    answer: str
    deleted: bool  # question_deleted flag of the record
    record: int  # 1-based position of the record in the file

    @property
    def type_name(self) -> str:
        """Type as one string, for example "Audio-Visual/Counting"."""
        return "/".join(self.question_type)


def fill_template(template: str, values: Sequence[str]) -> str:
    """Replace each ``<...>`` placeholder of ``template`` by the next value, in order."""
    found = PLACEHOLDER.findall(template)
    if len(found) != len(values):
        raise ValueError(f"{len(found)} placeholders {found} but {len(values)} values {list(values)}")
    remaining = iter(values)
    return PLACEHOLDER.sub(lambda _: next(remaining), template)


def _decode_string_list(value: Any, key: str) -> list[str]:
    decoded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(decoded, list) or not all(isinstance(v, str) for v in decoded):
        raise ValueError(f"{key} must encode a list of strings, got {value!r}")
    return decoded


def _parse_record(path: Path, number: int, raw: Any) -> AVQAQuestion:
    where = f"record {number}"
    if not isinstance(raw, dict):
        raise annotation_error(path, where, f"expected a JSON object, got {type(raw).__name__}", _RECORD_FIX)
    missing = [k for k in ("video_id", "question_id", "type", "question_content", "templ_values") if k not in raw]
    answer = raw.get("anser", raw.get("answer"))
    if answer is None:
        missing.append("anser")
    if missing:
        raise annotation_error(path, where, f"missing keys {missing}", _RECORD_FIX)
    where = f"record {number} (question_id {raw['question_id']})"
    try:
        question_type = _decode_string_list(raw["type"], "type")
        values = _decode_string_list(raw["templ_values"], "templ_values")
    except (ValueError, json.JSONDecodeError) as error:
        raise annotation_error(path, where, str(error), _RECORD_FIX) from None
    if len(question_type) != 2:
        raise annotation_error(path, where, f"type must name a modality and a kind, got {question_type}", _RECORD_FIX)
    try:
        question = fill_template(str(raw["question_content"]), values)
    except ValueError as error:
        raise annotation_error(path, where, str(error), "Make templ_values list one value per placeholder.") from None
    try:
        question_id = int(raw["question_id"])
    except (TypeError, ValueError):
        raise annotation_error(path, where, f"question_id must be an integer, got {raw['question_id']!r}",
                               _RECORD_FIX) from None
    return AVQAQuestion(
        video_id=str(raw["video_id"]),
        question_id=question_id,
        question_type=(question_type[0], question_type[1]),
        template=str(raw["question_content"]),
        values=tuple(values),
        question=question,
        answer=str(answer),
        deleted=bool(raw.get("question_deleted", 0)),
        record=number,
    )


def parse_avqa_json(
    path: str | Path,
    conflicting_repeats: Literal["keep", "drop"] = "keep",
    skipped: list[tuple[str, str]] | None = None,
) -> list[AVQAQuestion]:
    """Parse a MUSIC-AVQA question file into records with filled-in question text.

    Exact repeats of a record are dropped and counted in a log line. Records that
    repeat a question id with different content (the public val and test files
    contain such pairs, differing only in the answer) are kept by default, or all
    dropped with ``conflicting_repeats="drop"``. A malformed record raises
    :class:`AnnotationError` naming the file and record, unless ``skipped`` is a
    list: then it is left out, logged and appended to it.
    """
    path = Path(path)
    if conflicting_repeats not in ("keep", "drop"):
        raise ValueError(f"conflicting_repeats must be 'keep' or 'drop', got {conflicting_repeats!r}")
    try:
        raw_records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise annotation_error(path, error.lineno, f"invalid JSON ({error.msg})",
                               "Download the question file again.") from None
    if not isinstance(raw_records, list):
        raise annotation_error(path, 1, "expected a JSON list of question records", _RECORD_FIX)

    records: list[AVQAQuestion] = []
    seen: dict[int, list[AVQAQuestion]] = {}
    exact_repeats = 0
    for number, raw in enumerate(raw_records, start=1):
        try:
            record = _parse_record(path, number, raw)
        except AnnotationError as error:
            report_or_raise(error, path, skipped)
            continue
        earlier = seen.setdefault(record.question_id, [])
        if any(_same_content(record, other) for other in earlier):
            exact_repeats += 1
            continue
        earlier.append(record)
        records.append(record)

    if exact_repeats:
        logger.info("%s: dropped %d exact repeats of earlier records", path, exact_repeats)
    conflicting = {qid for qid, group in seen.items() if len(group) > 1}
    if conflicting:
        action = "kept" if conflicting_repeats == "keep" else "dropped"
        logger.warning("%s: %d question ids appear with conflicting content (%s); the json_update files fix them",
                       path, len(conflicting), action)
        if conflicting_repeats == "drop":
            records = [r for r in records if r.question_id not in conflicting]
    return records


def _same_content(a: AVQAQuestion, b: AVQAQuestion) -> bool:
    return (a.video_id, a.question_type, a.template, a.values, a.answer, a.deleted) == (
        b.video_id, b.question_type, b.template, b.values, b.answer, b.deleted)


def count_repeated_question_ids(records: Sequence[AVQAQuestion]) -> int:
    """Return how many question ids appear in more than one record."""
    counts: dict[int, int] = {}
    for record in records:
        counts[record.question_id] = counts.get(record.question_id, 0) + 1
    return sum(1 for n in counts.values() if n > 1)


def read_vocab_file(path: str | Path) -> list[str]:
    """Read a vocabulary file with one entry per line (such as ans_vocab.txt), skipping blank lines."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def tokenize_question(text: str) -> list[str]:
    """Split a question into lowercase words of letters, digits and underscores."""
    return WORD.findall(text.lower())


def build_question_vocab(questions: Sequence[str]) -> dict[str, int]:
    """Build a word -> id map: 0 is padding, 1 is unknown, then the sorted words of ``questions``."""
    words = sorted({word for text in questions for word in tokenize_question(text)})
    vocab = {"<pad>": PAD_ID, "<unk>": UNKNOWN_ID}
    for word in words:
        vocab.setdefault(word, len(vocab))
    return vocab


def encode_question(text: str, vocab: dict[str, int], max_len: int) -> tuple[torch.Tensor, int]:
    """Return token ids int64 ``[max_len]`` padded with 0 and the unpadded length (at most ``max_len``)."""
    ids = [vocab.get(word, UNKNOWN_ID) for word in tokenize_question(text)][:max_len]
    tokens = torch.full((max_len,), PAD_ID, dtype=torch.int64)  # [max_len]
    tokens[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return tokens, len(ids)


def find_video(folders: Sequence[Path], video_id: str) -> Path:
    """Return ``<folder>/<video_id>.mp4`` for the first folder that has it, else the path in the first folder."""
    for folder in folders:
        path = folder / f"{video_id}.mp4"
        if path.exists():
            return path
    return folders[0] / f"{video_id}.mp4"


class MusicAVQADataset(ClipDataset):
    """MUSIC-AVQA questions over decoded videos. Each video is decoded once and shared by its questions.

    Each item is ``{"video": uint8 [T, 3, H, W], "audio": float32 [T, S],
    "question": int64 [max_question_len], "question_len": int, "answer": int64,
    "question_type": str, "video_id": str}``. Videos longer than ``num_segments``
    seconds (the real ones last 60 s) are sampled uniformly.

    Without ``answer_vocab`` and ``question_vocab`` both are built from the
    train split. Pass ``train_set.answer_vocab`` and ``train_set.question_vocab``
    to the val and test sets so all splits share the ids.

    ``cache_dir`` and ``decode_workers`` work as in :class:`phplib.data.ave.AVEDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_segments: int = 10,
        image_size: int = 64,
        sample_rate: int = 16000,
        answer_vocab: Sequence[str] | None = None,
        question_vocab: dict[str, int] | None = None,
        max_question_len: int = 16,
        on_error: str = "raise",
        progress: bool = True,
        annotation_dir: str = "data/json",
        video_dir: str = "MUSIC-AVQA-videos-Real",
        extra_video_dirs: Sequence[str] = ("MUSIC-AVQA-videos-Synthetic",),
        cache_dir: str | Path | None = None,
        decode_workers: int = 1,
    ) -> None:
        self.root = Path(root)
        self.split = check_split(split)
        self.on_error = check_on_error(on_error)
        if max_question_len < 1:
            raise ValueError(f"max_question_len must be at least 1, got {max_question_len}")
        self.max_question_len = max_question_len
        self.skipped: list[tuple[str, str]] = []
        base = self.root / "AVQA"
        if not base.is_dir():
            raise FileNotFoundError(
                f"MUSIC-AVQA folder not found at {base}. Pass as root the folder that contains AVQA/, "
                "or generate the toy world there."
            )
        json_dir = base / annotation_dir
        skip_rows = self.skipped if self.on_error == "skip" else None

        if answer_vocab is None or question_vocab is None:
            train_file = require_file(json_dir / "avqa-train.json", "MUSIC-AVQA train question file",
                                      "The vocabularies are built from it; pass answer_vocab and question_vocab "
                                      "(for example from ans_vocab.txt) to do without it.")
            train = [q for q in parse_avqa_json(train_file) if not q.deleted]
            if answer_vocab is None:
                answer_vocab = sorted({q.answer for q in train})
            if question_vocab is None:
                question_vocab = build_question_vocab([q.question for q in train])
        self.answer_vocab: list[str] = list(answer_vocab)
        self.question_vocab: dict[str, int] = dict(question_vocab)
        answer_index = {answer: i for i, answer in enumerate(self.answer_vocab)}

        question_file = require_file(json_dir / f"avqa-{split}.json", f"MUSIC-AVQA {split} question file",
                                     "Copy it from the MUSIC-AVQA release into AVQA/data/json.")
        questions = parse_avqa_json(question_file, skipped=skip_rows)
        deleted = sum(q.deleted for q in questions)
        if deleted:
            logger.info("%s: leaving out %d questions marked question_deleted", question_file, deleted)
        questions = [q for q in questions if not q.deleted]

        folders = [base / video_dir] + [base / name for name in extra_video_dirs]
        paths = {q.video_id: find_video(folders, q.video_id) for q in questions}
        decoder = AVClipDecoder(num_segments, image_size, sample_rate, sampling="uniform")
        self._clips = load_clips(paths, decoder, dataset="music_avqa", root=self.root, cache_dir=cache_dir,
                                 on_error=self.on_error, skipped=self.skipped, progress=progress,
                                 description=f"MUSIC-AVQA {split}", workers=decode_workers)
        self.questions = [q for q in questions if q.video_id in self._clips]
        unknown = sum(q.answer not in answer_index for q in self.questions)
        if unknown:
            # NOTE: an answer missing from the train vocabulary gets UNKNOWN_ANSWER (-1). A loss must
            # ignore it (cross_entropy(..., ignore_index=-1)), and accuracy should count it as wrong.
            logger.warning("MUSIC-AVQA %s: %d answers are missing from the answer vocabulary and get id %d",
                           split, unknown, UNKNOWN_ANSWER)
        self._encoded = [encode_question(q.question, self.question_vocab, max_question_len) for q in self.questions]
        self._answers = [answer_index.get(q.answer, UNKNOWN_ANSWER) for q in self.questions]
        logger.info("MUSIC-AVQA %s: %d questions over %d videos, %d skipped", split, len(self.questions),
                    len(self._clips), len(self.skipped))

    @property
    def num_answers(self) -> int:
        """Size of the answer vocabulary."""
        return len(self.answer_vocab)

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        question = self.questions[index]
        clip = self._clips[question.video_id]
        tokens, length = self._encoded[index]
        return {
            "video": clip["video"],
            "audio": clip["audio"],
            "question": tokens,
            "question_len": length,
            "answer": torch.tensor(self._answers[index], dtype=torch.int64),
            "question_type": question.type_name,
            "video_id": question.video_id,
        }


__all__ = [
    "AVQAQuestion",
    "MusicAVQADataset",
    "PAD_ID",
    "UNKNOWN_ANSWER",
    "UNKNOWN_ID",
    "build_question_vocab",
    "count_repeated_question_ids",
    "encode_question",
    "fill_template",
    "find_video",
    "parse_avqa_json",
    "read_vocab_file",
    "tokenize_question",
]
