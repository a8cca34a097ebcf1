"""TaskStream: the ordered tasks of a run, each with its datasets and head."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from phplib.config import RunConfig
from phplib.heads.avqa import AVQAHead
from phplib.heads.ave import AVEHead
from phplib.heads.avs import AVSHead
from phplib.heads.avvp import AVVPHead
from phplib.heads.base import TaskHead

logger = logging.getLogger(__name__)


@dataclass
class Task:
    """One task of the stream."""

    name: str  # "AVE", "LLP" or "AVQA"
    train: Dataset
    test: Dataset
    make_head: Callable[["PHPModel"], TaskHead]  # model -> a fresh head sized for its towers
    metric: str  # the headline metric's name, for tables and plots


def ensure_toy_world(root: str | Path, overrides: dict, progress: bool = True) -> Path:
    """Generate the toy world under ``root`` unless it is already complete there."""
    from phplib.data.toyworld import ToyWorldConfig, generate_toy_world

    root = Path(root)
    # YAML gives lists where the config stores tuples, and from_json converts them.
    generate_toy_world(root, ToyWorldConfig.from_json(dict(overrides)), progress=progress)
    return root


def llp_class_names(root: Path, config: RunConfig) -> list[str]:
    """The fixed LLP class list: the 25 real classes, or the toy world's LLP classes.

    A fixed list makes a misspelled label in the training csv an error instead of a new class.
    """
    if config.data.source == "real":
        from phplib.data.llp import LLP_CLASSES

        return list(LLP_CLASSES)
    from phplib.data.toyworld import CLASS_NAMES, ToyWorldConfig

    toy = ToyWorldConfig.from_json(dict(config.data.toy))
    return sorted(CLASS_NAMES[index] for index in toy.llp_classes)


def build_task(name: str, root: Path, config: RunConfig, image_size: int, sample_rate: int, progress: bool) -> Task:
    """Read one task's train and test splits and pair them with a head factory."""
    options = dict(
        num_segments=config.data.num_segments,
        image_size=image_size,
        sample_rate=sample_rate,
        on_error=config.data.on_error,
        progress=progress,
        cache_dir=config.data.cache_dir,
    )
    if name == "AVE":
        from phplib.data.ave import AVEDataset

        train, test = AVEDataset(root, "train", **options), AVEDataset(root, "test", **options)
        classes = train.num_classes
        return Task(name, train, test, lambda model: AVEHead(model.video_dim, model.audio_dim, classes), AVEHead.metric_name)
    if name == "LLP":
        from phplib.data.llp import LLPDataset

        train = LLPDataset(root, "train", class_names=llp_class_names(root, config), **options)
        test = LLPDataset(root, "test", class_names=train.class_names, **options)
        classes = train.num_classes
        return Task(name, train, test, lambda model: AVVPHead(model.video_dim, model.audio_dim, classes), AVVPHead.metric_name)
    if name == "AVQA":
        from phplib.data.music_avqa import MusicAVQADataset

        train = MusicAVQADataset(root, "train", **options)
        test = MusicAVQADataset(
            root, "test", answer_vocab=train.answer_vocab, question_vocab=train.question_vocab, **options
        )
        vocab, answers = len(train.question_vocab), len(train.answer_vocab)
        return Task(
            name, train, test, lambda model: AVQAHead(model.video_dim, model.audio_dim, vocab, answers), AVQAHead.metric_name
        )
    if name == "AVS":
        from phplib.data.avsbench import AVSDataset

        # AVSBench S4 clips are five seconds long, whatever data.num_segments says for the others.
        options = {key: value for key, value in options.items() if key != "num_segments"}
        train, test = AVSDataset(root, "train", **options), AVSDataset(root, "test", **options)

        def make_avs_head(model) -> AVSHead:
            return AVSHead(model.vision.width, model.audio_dim, mask_size=image_size)

        return Task(name, train, test, make_avs_head, AVSHead.metric_name)
    raise ValueError(f"unknown task {name!r}; choose from AVE, LLP, AVS, AVQA")


def build_stream(config: RunConfig, image_size: int, sample_rate: int, progress: bool = True) -> list[Task]:
    """Build the tasks of ``config.tasks`` in stream order, generating the toy world first if needed."""
    root = Path(config.data.root)
    if config.data.source == "toyworld":
        ensure_toy_world(root, config.data.toy, progress=progress)
    elif not root.is_dir():
        raise FileNotFoundError(
            f"dataset root not found: {root}. Point data.root at the folder that contains AVE/, AVVP/ and AVQA/ "
            "(see the README's data section for how to obtain each dataset)."
        )
    tasks = []
    for name in config.tasks:
        logger.info("reading task %s from %s", name, root)
        tasks.append(build_task(name, root, config, image_size, sample_rate, progress))
    return tasks
