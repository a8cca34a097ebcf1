"""A seeded synthetic audio-visual world, exported in the layouts of AVE, LLP, MUSIC-AVQA and AVSBench S4.

Each clip lasts ``num_segments`` seconds. Objects of a few plain-word classes
("bell", "drum", "violin", ...) appear on screen and make sounds; every class
has a visual signature (shape, colour, texture, typical position) and an audio
signature (pitch, partials, envelope). Three tasks share some classes so that
knowledge can transfer between them:

- AVE: one event (sometimes two) per video. A second is labelled with the event
  class only when the object is both visible and audible in it. The event object
  is often visible longer than it sounds, or sounds longer than it is visible.
- LLP: weak video-level labels over events that are audible only, visible only
  or both, with per-modality onset and offset for the val and test videos.
- AVQA: two or three instruments in a row, questions about existence, counting,
  left/right location, temporal order and loudness.
- AVS: five-second clips with one sounding object and a per-frame mask of its
  pixels, written as png frames, png masks and a wav file (AVSBench S4 layout,
  see :mod:`phplib.data.toy_avs`).

Distractors make the tasks hard: visible but silent objects, audible off-screen
sounds, small low-contrast objects, pixel noise and audio noise.
:func:`render_clip` renders one clip in memory; :func:`generate_toy_world`
writes H.264/AAC mp4 files and the annotation files of the real datasets.

This module imports no torch, so worker processes stay light.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import av
import numpy as np
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

Task = Literal["ave", "llp", "avqa", "avs"]
# New tasks go at the end: a clip's seed contains its task's index here, so the
# clips of the earlier tasks stay byte-identical.
TASKS: tuple[Task, ...] = ("ave", "llp", "avqa", "avs")
AVS_NUM_SEGMENTS = 5  # AVSBench S4 clips last five seconds, regardless of num_segments
SPLITS: tuple[str, ...] = ("train", "val", "test")

MANIFEST_NAME = "toyworld.json"
TRUTH_NAME = "toyworld_truth.json"
FORMAT_VERSION = 1

# Paths of the exported files relative to the generation root. They follow the
# layouts of the public AVE, LLP (AVVP) and MUSIC-AVQA releases.
AVE_VIDEO_DIR = "AVE/AVE_Dataset/AVE"
AVE_ANNOTATION_DIR = "AVE/AVE_Dataset"
LLP_VIDEO_DIR = "AVVP/LLP_dataset/video"
LLP_ANNOTATION_DIR = "AVVP/data"
AVQA_VIDEO_DIR = "AVQA/MUSIC-AVQA-videos-Real"
AVQA_ANNOTATION_DIR = "AVQA/data/json"

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


class ToyWorldError(ValueError):
    """A toy-world root or configuration cannot be used."""


# ---------------------------------------------------------------------------
# Object classes


@dataclass(frozen=True)
class ObjectClass:
    """Visual and audio signature of one toy class."""

    name: str
    shape: str  # circle, square, triangle, diamond, ring, cross, hbar, vbar, ellipse, star, xshape, halfdisc
    colour: tuple[int, int, int]  # RGB at full contrast
    texture: str  # solid, stripes, checker or dots
    position: tuple[float, float]  # typical centre (x, y) as fractions of the frame side
    pitch_hz: float  # fundamental frequency
    partials: tuple[tuple[float, float], ...]  # (frequency ratio to the fundamental, amplitude)
    envelope: str  # flat, bell (decays and restarts), pulsed (short bursts) or swell (slow tremolo)
    rate_hz: float  # repetition rate of bell and pulsed envelopes, tremolo rate of swell
    vibrato: float = 0.0  # relative depth of a 5 Hz pitch modulation
    sweep: float = 0.0  # relative depth of a 0.5 Hz pitch sweep (siren)
    noise: float = 0.0  # share of white noise in the timbre (breath, scrape, hiss)


TOY_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass("bell", "circle", (230, 190, 40), "solid", (0.5, 0.25), 880.0,
                ((1.0, 1.0), (2.76, 0.5), (5.4, 0.25)), "bell", 1.0),
    ObjectClass("dog", "ellipse", (150, 100, 60), "dots", (0.5, 0.72), 350.0,
                ((1.0, 1.0), (2.0, 0.6), (3.0, 0.35)), "pulsed", 3.0, noise=0.3),
    ObjectClass("drum", "square", (170, 60, 40), "checker", (0.5, 0.7), 95.0,
                ((1.0, 1.0), (1.6, 0.5)), "pulsed", 2.0, noise=0.5),
    ObjectClass("whistle", "triangle", (200, 200, 210), "solid", (0.5, 0.3), 1800.0,
                ((1.0, 1.0),), "flat", 0.0, vibrato=0.01),
    ObjectClass("violin", "diamond", (200, 50, 60), "stripes", (0.5, 0.5), 440.0,
                ((1.0, 1.0), (2.0, 0.5), (3.0, 0.33), (4.0, 0.25), (5.0, 0.2)), "flat", 0.0, vibrato=0.012),
    ObjectClass("flute", "vbar", (120, 180, 230), "solid", (0.5, 0.45), 466.0,
                ((1.0, 1.0), (2.0, 0.25), (3.0, 0.08)), "flat", 0.0, vibrato=0.006, noise=0.15),
    ObjectClass("guitar", "halfdisc", (180, 120, 50), "stripes", (0.5, 0.55), 330.0,
                ((1.0, 1.0), (2.0, 0.7), (3.0, 0.45), (4.0, 0.3)), "bell", 2.0),
    ObjectClass("horn", "star", (220, 170, 60), "checker", (0.5, 0.4), 220.0,
                ((1.0, 1.0), (2.0, 0.9), (3.0, 0.7), (4.0, 0.5)), "swell", 1.5),
    ObjectClass("piano", "hbar", (235, 235, 235), "stripes", (0.5, 0.65), 523.0,
                ((1.0, 1.0), (2.0, 0.5), (3.0, 0.25)), "bell", 2.0),
    ObjectClass("siren", "ring", (60, 90, 220), "solid", (0.5, 0.3), 700.0,
                ((1.0, 1.0), (2.0, 0.3)), "flat", 0.0, sweep=0.3),
    ObjectClass("engine", "cross", (110, 110, 110), "dots", (0.5, 0.75), 70.0,
                ((1.0, 1.0), (2.0, 0.8), (3.0, 0.6), (4.0, 0.5), (5.0, 0.4), (6.0, 0.3)), "swell", 8.0, noise=0.2),
    ObjectClass("bird", "xshape", (80, 190, 90), "solid", (0.5, 0.2), 2600.0,
                ((1.0, 1.0), (1.5, 0.3)), "pulsed", 4.0, vibrato=0.05),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in TOY_CLASSES)


# ---------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ToyWorldConfig:
    """Every knob of the toy world. Equal configs generate byte-identical annotations."""

    seed: int = 0  # master seed, from which every clip derives its own seed
    frame_size: int = 64  # side of the square frames in pixels (even, for yuv420p)
    fps: int = 4  # frame rate of the written mp4 files
    sample_rate: int = 16000  # audio sample rate in Hz
    num_segments: int = 10  # clip length in one-second segments
    ave_clips: tuple[int, int, int] = (128, 32, 64)  # AVE videos in train, val, test
    llp_clips: tuple[int, int, int] = (128, 32, 64)  # LLP videos in train, val, test
    avqa_clips: tuple[int, int, int] = (128, 32, 64)  # MUSIC-AVQA videos in train, val, test
    avs_clips: tuple[int, int, int] = (128, 32, 64)  # AVSBench S4 videos in train, val, test
    ave_classes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # indices into TOY_CLASSES used by AVE
    llp_classes: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9)  # classes used by LLP
    avqa_classes: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)  # classes used by MUSIC-AVQA
    avs_classes: tuple[int, ...] = (0, 1, 2, 6, 9, 11)  # classes used by AVSBench S4
    pixel_noise: float = 12.0  # std of Gaussian pixel noise on the 0-255 scale, fresh in every frame
    audio_noise: float = 0.03  # std of white noise added to the mix (full scale is 1.0)
    object_scale: tuple[float, float] = (0.16, 0.34)  # object diameter range as a fraction of the frame side
    contrast: tuple[float, float] = (0.35, 1.0)  # range of the blend factor between background and object colour
    position_jitter: float = 0.12  # max offset of an object from its class's typical position (fraction of frame)
    pitch_jitter: float = 0.04  # max relative shift of a class's pitch in one clip
    gain_range: tuple[float, float] = (0.03, 0.15)  # RMS range of one sound source (full scale is 1.0)
    visible_distractor_prob: float = 0.6  # chance of a visible but silent object of another class
    audible_distractor_prob: float = 0.6  # chance of an audible off-screen sound of another class
    partial_modality_prob: float = 0.5  # chance that an AVE event object is visible or audible beyond the event
    second_event_prob: float = 0.15  # chance that an AVE video contains a second event (a second annotation row)
    full_event_prob: float = 0.4  # chance that an AVE event lasts the whole clip
    llp_max_events: int = 3  # max labelled events in one LLP video
    questions_per_clip: int = 3  # questions asked about each MUSIC-AVQA video

    def __post_init__(self) -> None:
        if self.frame_size < 16 or self.frame_size % 2:
            raise ToyWorldError(f"frame_size must be even and at least 16, got {self.frame_size}")
        if self.fps < 1 or self.sample_rate < 8000 or self.num_segments < 2:
            raise ToyWorldError(
                f"need fps >= 1, sample_rate >= 8000 and num_segments >= 2, got "
                f"{self.fps}, {self.sample_rate}, {self.num_segments}"
            )
        for name in ("ave_clips", "llp_clips", "avqa_clips", "avs_clips"):
            counts = getattr(self, name)
            if len(counts) != 3 or any(int(n) < 0 for n in counts):
                raise ToyWorldError(f"{name} must be three counts (train, val, test) >= 0, got {counts}")
        for name in ("ave_classes", "llp_classes", "avqa_classes", "avs_classes"):
            classes = getattr(self, name)
            if len(set(classes)) < 2 or any(not 0 <= c < len(TOY_CLASSES) for c in classes):
                raise ToyWorldError(
                    f"{name} must list at least two distinct class indices in 0..{len(TOY_CLASSES) - 1}, got {classes}"
                )
        low, high = self.object_scale
        if not 0 < low <= high <= 1:
            raise ToyWorldError(f"object_scale must satisfy 0 < low <= high <= 1, got {self.object_scale}")
        low, high = self.contrast
        if not 0 < low <= high <= 1:
            raise ToyWorldError(f"contrast must satisfy 0 < low <= high <= 1, got {self.contrast}")

    def clips(self, task: Task, split: str) -> int:
        """Return the number of clips of ``task`` in ``split``."""
        return int(getattr(self, f"{task}_clips")[SPLITS.index(split)])

    def segments(self, task: Task) -> int:
        """Return the clip length of ``task`` in one-second segments."""
        return AVS_NUM_SEGMENTS if task == "avs" else self.num_segments

    def to_json(self) -> dict[str, Any]:
        """Return the config as JSON-compatible values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "ToyWorldConfig":
        """Build a config from :meth:`to_json` output."""
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)


# ---------------------------------------------------------------------------
# Clip specification


@dataclass
class SceneObject:
    """One object in a clip: where it is drawn and when it is seen and heard."""

    class_id: int
    visible: tuple[int, int] | None  # [start, end) seconds on screen, or None when never on screen
    audible: tuple[int, int] | None  # [start, end) seconds sounding, or None when silent
    x: float  # centre, fraction of the frame width
    y: float  # centre, fraction of the frame height
    scale: float  # diameter as a fraction of the frame side
    contrast: float  # 1.0 draws the class colour, smaller values blend towards the background
    gain: float  # peak amplitude of the sound
    pitch_factor: float  # multiplies the class pitch
    role: str  # event, distractor or instrument, kept for reading the ground truth

    def visible_at(self, second: int) -> bool:
        return self.visible is not None and self.visible[0] <= second < self.visible[1]

    def audible_at(self, second: int) -> bool:
        return self.audible is not None and self.audible[0] <= second < self.audible[1]


@dataclass
class ClipSpec:
    """Everything needed to render one clip and write its annotations."""

    video_id: str
    task: Task
    split: str
    render_seed: int  # seeds the pixel noise, audio noise and phases at render time
    objects: list[SceneObject]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]  # top and bottom colour of the gradient
    ave_events: list[tuple[int, int, int]] = field(default_factory=list)  # (class_id, start, end) per AVE row
    questions: list[dict[str, Any]] = field(default_factory=list)  # AVQA questions with answers


def _interval(rng: np.random.Generator, num_segments: int, min_len: int = 1) -> tuple[int, int]:
    length = int(rng.integers(min_len, num_segments + 1))
    start = int(rng.integers(0, num_segments - length + 1))
    return start, start + length


def _place(rng: np.random.Generator, config: ToyWorldConfig, class_id: int, x: float | None = None) -> dict[str, float]:
    """Draw position, size and contrast for one object of ``class_id``."""
    typical_x, typical_y = TOY_CLASSES[class_id].position
    jitter = config.position_jitter
    scale = float(rng.uniform(*config.object_scale))
    half = scale / 2
    centre_x = (typical_x if x is None else x) + rng.uniform(-jitter, jitter)
    centre_y = typical_y + rng.uniform(-jitter, jitter)
    return {
        "x": float(np.clip(centre_x, half, 1 - half)),
        "y": float(np.clip(centre_y, half, 1 - half)),
        "scale": scale,
        "contrast": float(rng.uniform(*config.contrast)),
    }


def _sound(rng: np.random.Generator, config: ToyWorldConfig) -> dict[str, float]:
    jitter = config.pitch_jitter
    return {"gain": float(rng.uniform(*config.gain_range)), "pitch_factor": float(1 + rng.uniform(-jitter, jitter))}


def _background(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    top = tuple(int(v) for v in rng.integers(30, 160, size=3))
    bottom = tuple(int(v) for v in rng.integers(30, 160, size=3))
    return top, bottom  # type: ignore[return-value]


def _add_distractors(
    rng: np.random.Generator, config: ToyWorldConfig, objects: list[SceneObject], excluded: Iterable[int]
) -> None:
    """Add a visible-but-silent object and an audible off-screen sound, each of a class not in ``excluded``.

    The two distractors never share a class, so a distractor class is never
    both visible and audible.
    """
    candidates = [c for c in range(len(TOY_CLASSES)) if c not in set(excluded)]
    rng.shuffle(candidates)
    T = config.num_segments
    if candidates and rng.random() < config.visible_distractor_prob:
        class_id = candidates.pop()
        placement = _place(rng, config, class_id, x=float(rng.uniform(0.1, 0.9)))
        objects.insert(0, SceneObject(class_id, _interval(rng, T), None, **placement, gain=0.0,
                                      pitch_factor=1.0, role="visible_distractor"))
    if candidates and rng.random() < config.audible_distractor_prob:
        class_id = candidates.pop()
        objects.append(SceneObject(class_id, None, _interval(rng, T), 0.5, 0.5, 0.0, 0.0,
                                   **_sound(rng, config), role="audible_distractor"))


def _sample_ave(
    rng: np.random.Generator, config: ToyWorldConfig, main_class: int
) -> tuple[list[SceneObject], list[tuple[int, int, int]]]:
    T = config.num_segments
    classes = list(config.ave_classes)
    class_id = main_class
    if rng.random() < config.full_event_prob:
        start, end = 0, T
    else:
        start, end = _interval(rng, T, min_len=2)
    visible, audible = (start, end), (start, end)
    if rng.random() < config.partial_modality_prob and (start > 0 or end < T):
        # Extend one modality before the event and the other after it, so the
        # object is seen-but-silent or heard-but-off-screen next to the event
        # while both modalities still overlap exactly on [start, end).
        before = int(rng.integers(0, start + 1))
        after = int(rng.integers(end, T + 1))
        if rng.random() < 0.5:
            visible, audible = (before, end), (start, after)
        else:
            visible, audible = (start, after), (before, end)
    objects = [SceneObject(class_id, visible, audible, **_place(rng, config, class_id), **_sound(rng, config),
                           role="event")]
    events = [(class_id, start, end)]

    free_before, free_after = start, T - end
    if rng.random() < config.second_event_prob and max(free_before, free_after) >= 2:
        second_class = int(rng.choice([c for c in classes if c != class_id]))
        if free_before >= free_after:
            second = _interval(rng, free_before)
        else:
            offset = _interval(rng, free_after)
            second = (offset[0] + end, offset[1] + end)
        objects.append(SceneObject(second_class, second, second, **_place(rng, config, second_class),
                                   **_sound(rng, config), role="event"))
        events.append((second_class, second[0], second[1]))
    _add_distractors(rng, config, objects, excluded=[c for c, _, _ in events])
    return objects, events


def _sample_llp(rng: np.random.Generator, config: ToyWorldConfig, main_class: int) -> list[SceneObject]:
    T = config.num_segments
    count = int(rng.integers(1, config.llp_max_events + 1))
    others = [c for c in config.llp_classes if c != main_class]
    classes = [main_class] + [int(c) for c in rng.choice(others, size=min(count - 1, len(others)), replace=False)]
    objects: list[SceneObject] = []
    for class_id in classes:
        modality = rng.choice(["audio", "visual", "both"], p=[0.3, 0.2, 0.5])
        visible = _interval(rng, T) if modality in ("visual", "both") else None
        audible = _interval(rng, T) if modality in ("audio", "both") else None
        objects.append(SceneObject(class_id, visible, audible, **_place(rng, config, class_id),
                                   **_sound(rng, config), role=f"event_{modality}"))
    # Distractors come from classes outside the LLP vocabulary, so they stay unlabelled.
    _add_distractors(rng, config, objects, excluded=config.llp_classes)
    return objects


def _sample_avqa(rng: np.random.Generator, config: ToyWorldConfig, main_class: int) -> list[SceneObject]:
    T = config.num_segments
    count = int(rng.integers(2, 4))
    slots = [0.2, 0.8] if count == 2 else [0.18, 0.5, 0.82]
    pool = list(config.avqa_classes)
    objects: list[SceneObject] = []
    main_slot = int(rng.integers(len(slots)))
    for position, slot in enumerate(slots):
        # Repeating a class is allowed so that counting questions can answer "two".
        class_id = main_class if position == main_slot else int(rng.choice(pool))
        roll = rng.random()
        if roll < 0.35:
            audible: tuple[int, int] | None = (0, T)
        elif roll < 0.85:
            audible = _interval(rng, T, min_len=2)
        else:
            audible = None
        placement = _place(rng, config, class_id, x=slot)
        placement["x"] = slot  # keep the left-to-right order exact
        objects.append(SceneObject(class_id, (0, T), audible, **placement, **_sound(rng, config),
                                   role="instrument"))
    on_screen = {o.class_id for o in objects}
    off_screen = [c for c in pool if c not in on_screen]
    if off_screen and rng.random() < config.audible_distractor_prob:
        class_id = int(rng.choice(off_screen))
        objects.append(SceneObject(class_id, None, _interval(rng, T, min_len=2), 0.5, 0.5, 0.0, 0.0,
                                   **_sound(rng, config), role="audible_distractor"))
    return objects


def _clip_seed(config: ToyWorldConfig, task: Task, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([config.seed, TASKS.index(task), SPLITS.index(split), index])


def video_id_for(task: Task, split: str, index: int, config: ToyWorldConfig) -> str:
    """Return the exported video id of clip ``index`` of ``task`` in ``split``.

    Ids follow the style of each dataset and are unique across splits:
    AVE ``toyave00012``, LLP ``toyllp00012_0_10`` (id, start and end second as
    in LLP filenames), MUSIC-AVQA ``00000012``, AVSBench ``toyavs00012``
    (11 characters, like a YouTube id).
    """
    offset = sum(config.clips(task, s) for s in SPLITS[: SPLITS.index(split)])
    number = offset + index + 1
    if task == "ave":
        return f"toyave{number:05d}"
    if task == "llp":
        return f"toyllp{number:05d}_0_{config.num_segments}"
    if task == "avs":
        return f"toyavs{number:05d}"
    return f"{number:08d}"


def sample_clip_spec(config: ToyWorldConfig, task: Task, split: str, index: int) -> ClipSpec:
    """Sample the scene of clip ``index`` of ``task`` in ``split`` (deterministic for a config)."""
    if task not in TASKS:
        raise ToyWorldError(f"unknown task {task!r}; expected one of {TASKS}")
    if split not in SPLITS:
        raise ToyWorldError(f"unknown split {split!r}; expected one of {SPLITS}")
    sequence = _clip_seed(config, task, split, index)
    scene_seed, render_seed, question_seed = sequence.spawn(3)
    rng = np.random.default_rng(scene_seed)
    background = _background(rng)
    # The main class cycles through the task's classes, so every split with at
    # least as many clips as classes contains every class.
    task_classes = getattr(config, f"{task}_classes")
    main_class = int(task_classes[index % len(task_classes)])
    events: list[tuple[int, int, int]] = []
    if task == "ave":
        objects, events = _sample_ave(rng, config, main_class)
    elif task == "llp":
        objects = _sample_llp(rng, config, main_class)
    elif task == "avqa":
        objects = _sample_avqa(rng, config, main_class)
    else:
        from phplib.data.toy_avs import sample_avs_objects

        objects = sample_avs_objects(rng, config, main_class)
    spec = ClipSpec(
        video_id=video_id_for(task, split, index, config),
        task=task,
        split=split,
        render_seed=int(render_seed.generate_state(1)[0]),
        objects=objects,
        background=background,
        ave_events=events,
    )
    if task == "avqa":
        spec.questions = _ask_questions(spec, config, np.random.default_rng(question_seed))
    return spec


# ---------------------------------------------------------------------------
# Ground truth


@dataclass
class ClipTruth:
    """Per-second ground truth of one clip, with class indices into TOY_CLASSES."""

    video_id: str
    task: Task
    split: str
    visible: list[list[int]]  # [T] lists of classes on screen in each second
    audible: list[list[int]]  # [T] lists of classes sounding in each second
    audio_visual: list[list[int]]  # [T] lists of classes both on screen and sounding (same object)
    ave_events: list[tuple[int, int, int]]  # (class_id, start, end) per AVE annotation row
    questions: list[dict[str, Any]]  # AVQA questions with their answers

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def clip_truth(spec: ClipSpec, num_segments: int) -> ClipTruth:
    """Compute which class is visible, audible and both in each second of ``spec``."""
    visible, audible, both = [], [], []
    for second in range(num_segments):
        visible.append(sorted({o.class_id for o in spec.objects if o.visible_at(second)}))
        audible.append(sorted({o.class_id for o in spec.objects if o.audible_at(second)}))
        both.append(sorted({o.class_id for o in spec.objects if o.visible_at(second) and o.audible_at(second)}))
    return ClipTruth(spec.video_id, spec.task, spec.split, visible, audible, both,
                     list(spec.ave_events), list(spec.questions))


# ---------------------------------------------------------------------------
# Questions (MUSIC-AVQA style)


def _loudness(obj: SceneObject) -> float:
    # Sources are normalised to unit RMS before the gain, so the gain orders loudness.
    return obj.gain if obj.audible is not None else 0.0


def _slot_name(obj: SceneObject, on_screen: list[SceneObject]) -> str:
    if len(on_screen) == 3 and obj is on_screen[1]:
        return "middle"
    return "left" if obj.x < 0.5 else "right"


def _question(kind: tuple[str, str], template: str, values: list[str], answer: str) -> dict[str, Any]:
    return {"type": list(kind), "question_content": template, "templ_values": values, "answer": answer}


def _candidate_questions(spec: ClipSpec, config: ToyWorldConfig, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Build at most one question per template, with answers computed from the scene."""
    T = config.num_segments
    names = CLASS_NAMES
    on_screen = sorted([o for o in spec.objects if o.visible is not None], key=lambda o: o.x)
    audible = [o for o in spec.objects if o.audible is not None]
    screen_classes = [o.class_id for o in on_screen]
    pool = list(config.avqa_classes)
    candidates: dict[str, dict[str, Any]] = {}

    # Existence by ear: on-screen or off-screen sounds both count.
    queried = int(rng.choice(pool))
    audible_anywhere = any(o.class_id == queried for o in audible)
    candidates["audio_exists"] = _question(("Audio", "Counting"), "Is there a <Object> sound?",
                                           [names[queried]], "yes" if audible_anywhere else "no")

    unique_on_screen = [o for o in on_screen if screen_classes.count(o.class_id) == 1]
    if unique_on_screen:
        obj = unique_on_screen[int(rng.integers(len(unique_on_screen)))]
        always = obj.audible == (0, T)
        candidates["always_playing"] = _question(
            ("Audio-Visual", "Existential"), "Is the <Object> in the video always playing?",
            [names[obj.class_id]], "yes" if always else "no")

    queried = int(rng.choice(screen_classes + [int(rng.choice(pool))]))
    sounding = sum(1 for o in on_screen if o.class_id == queried and o.audible is not None)
    candidates["count_sounding"] = _question(
        ("Audio-Visual", "Counting"), "How many sounding <Object> in the video?", [names[queried]],
        NUMBER_WORDS[sounding])

    queried = int(rng.choice(screen_classes + [int(rng.choice(pool))]))
    candidates["count_visible"] = _question(
        ("Visual", "Counting"), "How many <Object> are in the entire video?", [names[queried]],
        NUMBER_WORDS[screen_classes.count(queried)])

    # Location: the neighbour on one side of an instrument that appears once.
    options = []
    for position, obj in enumerate(on_screen):
        if screen_classes.count(obj.class_id) != 1:
            continue
        if position > 0:
            options.append(("left", obj, on_screen[position - 1]))
        if position < len(on_screen) - 1:
            options.append(("right", obj, on_screen[position + 1]))
    if options:
        side, obj, neighbour = options[int(rng.integers(len(options)))]
        candidates["neighbour"] = _question(
            ("Visual", "Location"), "What is the instrument on the <LR> of <Object>?",
            [side, names[obj.class_id]], names[neighbour.class_id])

    # Temporal order of on-screen sounds, generated only when all onsets differ.
    sounding_on_screen = sorted([o for o in on_screen if o.audible is not None], key=lambda o: o.audible[0])
    onsets = [o.audible[0] for o in sounding_on_screen]
    if len(onsets) >= 2 and len(set(onsets)) == len(onsets):
        which = "first" if rng.random() < 0.5 else "last"
        obj = sounding_on_screen[0] if which == "first" else sounding_on_screen[-1]
        candidates["where_first_last"] = _question(
            ("Audio-Visual", "Temporal"), "Where is the <FL> sounding instrument?", [which],
            _slot_name(obj, on_screen))
        rank = int(rng.integers(2))
        candidates["order"] = _question(
            ("Audio-Visual", "Temporal"), "What is the <TH> instrument that comes in?",
            [("first", "second")[rank]], names[sounding_on_screen[rank].class_id])

    # Loudness: two classes that each sound once, with gains far enough apart.
    heard_classes = [o.class_id for o in audible]
    single = [o for o in audible if heard_classes.count(o.class_id) == 1]
    pairs = [(a, b) for a in single for b in single
             if a is not b and max(_loudness(a), _loudness(b)) >= 1.5 * min(_loudness(a), _loudness(b))]
    if pairs:
        first, second = pairs[int(rng.integers(len(pairs)))]
        candidates["louder"] = _question(
            ("Audio", "Comparative"), "Is the <Object> louder than the <Object>?",
            [names[first.class_id], names[second.class_id]],
            "yes" if _loudness(first) > _loudness(second) else "no")
    return candidates


def _ask_questions(spec: ClipSpec, config: ToyWorldConfig, rng: np.random.Generator) -> list[dict[str, Any]]:
    candidates = _candidate_questions(spec, config, rng)
    keys = sorted(candidates)
    order = rng.permutation(len(keys))
    chosen = [keys[i] for i in order[: config.questions_per_clip]]
    return [candidates[key] for key in sorted(chosen)]


# ---------------------------------------------------------------------------
# Rendering


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return a boolean mask of ``shape`` on coordinates ``u`` (right) and ``v`` (down) in [-1, 1]."""
    radius = np.sqrt(u**2 + v**2)
    if shape == "circle":
        return radius <= 1
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.85
    if shape == "triangle":
        return (v <= 0.9) & (abs(u) <= (v + 1) / 2)
    if shape == "diamond":
        return abs(u) + abs(v) <= 1
    if shape == "ring":
        return (radius <= 1) & (radius >= 0.55)
    if shape == "cross":
        return ((abs(u) <= 0.3) | (abs(v) <= 0.3)) & (np.maximum(abs(u), abs(v)) <= 1)
    if shape == "hbar":
        return (abs(u) <= 1) & (abs(v) <= 0.4)
    if shape == "vbar":
        return (abs(u) <= 0.4) & (abs(v) <= 1)
    if shape == "ellipse":
        return u**2 + (v / 0.6) ** 2 <= 1
    if shape == "star":
        angle = np.arctan2(v, u)
        return radius <= 0.6 + 0.4 * np.cos(5 * angle)
    if shape == "xshape":
        return (np.minimum(abs(u - v), abs(u + v)) <= 0.45) & (np.maximum(abs(u), abs(v)) <= 0.9)
    if shape == "halfdisc":
        return (radius <= 1) & (v >= -0.2)
    raise ToyWorldError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return brightness factors in [0.5, 1] for ``texture``."""
    if texture == "solid":
        return np.ones_like(u)
    if texture == "stripes":
        return np.where(np.sin(np.pi * 3 * v) > 0, 1.0, 0.55)
    if texture == "checker":
        return np.where((np.floor((u + 1) * 2) + np.floor((v + 1) * 2)) % 2 == 0, 1.0, 0.55)
    if texture == "dots":
        du, dv = (u * 2) % 1 - 0.5, (v * 2) % 1 - 0.5
        return np.where(du**2 + dv**2 < 0.06, 0.5, 1.0)
    raise ToyWorldError(f"unknown texture {texture!r}")


@dataclass(frozen=True)
class _Sprite:
    """Placement of an object on a square frame: its box, local coordinates and shape mask."""

    top: int
    left: int
    u: np.ndarray  # [d, d] horizontal coordinate in [-1, 1]
    v: np.ndarray  # [d, d] vertical coordinate in [-1, 1]
    mask: np.ndarray  # [d, d] bool, True inside the shape
    window: tuple[slice, slice] | None  # rows and columns of the frame the box covers, None when off-frame
    local: tuple[slice, slice] | None  # the same region in box coordinates


def _sprite(obj: SceneObject, size: int) -> _Sprite:
    diameter = max(3, int(round(obj.scale * size)))
    left = int(round(obj.x * size - diameter / 2))
    top = int(round(obj.y * size - diameter / 2))
    grid = (np.arange(diameter) + 0.5) / diameter * 2 - 1
    v, u = np.meshgrid(grid, grid, indexing="ij")  # [d, d] each
    mask = _shape_mask(TOY_CLASSES[obj.class_id].shape, u, v)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(size, top + diameter), min(size, left + diameter)
    if y1 <= y0 or x1 <= x0:
        return _Sprite(top, left, u, v, mask, None, None)
    window = (slice(y0, y1), slice(x0, x1))
    local = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    return _Sprite(top, left, u, v, mask, window, local)


def object_footprint(obj: SceneObject, size: int) -> np.ndarray:
    """Return the pixels ``obj`` covers on a ``size`` x ``size`` frame: bool ``[size, size]``.

    These are exactly the pixels :func:`render_frames` blends the object into.
    """
    sprite = _sprite(obj, size)
    footprint = np.zeros((size, size), dtype=bool)
    if sprite.window is not None:
        footprint[sprite.window] = sprite.mask[sprite.local]
    return footprint


def _draw(image: np.ndarray, obj: SceneObject) -> None:
    """Blend ``obj`` into ``image`` ([H, W, 3] float32, 0-255) in place."""
    sprite = _sprite(obj, image.shape[0])
    if sprite.window is None:
        return
    object_class = TOY_CLASSES[obj.class_id]
    shade = _texture(object_class.texture, sprite.u, sprite.v)[..., None] * np.asarray(object_class.colour, np.float32)  # [d, d, 3]
    patch = image[sprite.window]
    local = sprite.local
    blended = patch + obj.contrast * (shade[local] - patch)
    patch[sprite.mask[local]] = blended[sprite.mask[local]]


def render_frames(spec: ClipSpec, config: ToyWorldConfig, frames_per_second: int | None = None) -> np.ndarray:
    """Render the frames of ``spec``: uint8 ``[T * frames_per_second, H, W, 3]``.

    Every frame of second ``k`` shows the scene of second ``k``, each with its
    own pixel noise. ``frames_per_second`` defaults to ``config.fps``.
    """
    fps = config.fps if frames_per_second is None else frames_per_second
    size, T = config.frame_size, config.segments(spec.task)
    rng = np.random.default_rng([spec.render_seed, 1])
    top, bottom = (np.asarray(c, np.float32) for c in spec.background)
    weights = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    background = np.broadcast_to(top + weights * (bottom - top), (size, size, 3))  # [H, W, 3]
    scenes = np.empty((T, size, size, 3), np.float32)  # [T, H, W, 3]
    for second in range(T):
        image = background.copy()
        for obj in spec.objects:
            if obj.visible_at(second):
                _draw(image, obj)
        scenes[second] = image
    frames = np.repeat(scenes, fps, axis=0)  # [T * fps, H, W, 3]
    if config.pixel_noise > 0:
        frames += config.pixel_noise * rng.standard_normal(frames.shape, dtype=np.float32)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _envelope(object_class: ObjectClass, t: np.ndarray) -> np.ndarray:
    if object_class.envelope == "flat":
        return np.ones_like(t)
    if object_class.envelope == "bell":
        # Strikes at rate_hz, each decaying over about 0.3 s.
        return np.exp(-((t * object_class.rate_hz) % 1.0) / object_class.rate_hz / 0.3)
    if object_class.envelope == "pulsed":
        # Bursts that fill 60 % of each period and decay within it.
        phase = (t * object_class.rate_hz) % 1.0
        return np.where(phase < 0.6, np.exp(-phase / 0.3), 0.0)
    if object_class.envelope == "swell":
        return 0.6 + 0.4 * np.sin(2 * np.pi * object_class.rate_hz * t)
    raise ToyWorldError(f"unknown envelope {object_class.envelope!r}")


def _synthesise(obj: SceneObject, config: ToyWorldConfig, rng: np.random.Generator) -> np.ndarray:
    """Return the waveform of ``obj`` over its audible interval, with unit RMS times gain."""
    if obj.audible is None:
        raise ToyWorldError(f"object of class {obj.class_id} is silent and has no waveform")
    object_class = TOY_CLASSES[obj.class_id]
    sr = config.sample_rate
    start, end = obj.audible
    t = np.arange((end - start) * sr, dtype=np.float64) / sr
    frequency = object_class.pitch_hz * obj.pitch_factor * np.ones_like(t)
    if object_class.vibrato:
        frequency *= 1 + object_class.vibrato * np.sin(2 * np.pi * 5.0 * t)
    if object_class.sweep:
        frequency *= 1 + object_class.sweep * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(frequency) / sr
    tone = np.zeros_like(t)
    nyquist = sr / 2
    for ratio, amplitude in object_class.partials:
        if object_class.pitch_hz * obj.pitch_factor * ratio * (1 + object_class.sweep + object_class.vibrato) < nyquist:
            tone += amplitude * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
    tone /= np.sqrt(np.mean(tone**2)) + 1e-8
    if object_class.noise:
        # Uniform noise with unit RMS: its peak is sqrt(3), far below that of Gaussian noise.
        tone = (1 - object_class.noise) * tone + object_class.noise * np.sqrt(3.0) * rng.uniform(-1.0, 1.0, t.size)
    wave = tone * _envelope(object_class, t)
    wave /= np.sqrt(np.mean(wave**2)) + 1e-8
    # 10 ms fades keep the interval edges free of clicks.
    fade = min(int(0.01 * sr), wave.size // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return (obj.gain * wave).astype(np.float32)


def render_audio(spec: ClipSpec, config: ToyWorldConfig) -> np.ndarray:
    """Render the soundtrack of ``spec``: float32 ``[T * sample_rate]`` in [-1, 1]."""
    sr, T = config.sample_rate, config.segments(spec.task)
    rng = np.random.default_rng([spec.render_seed, 2])
    mix = np.zeros(T * sr, np.float32)
    for obj in spec.objects:
        if obj.audible is None:
            continue
        start = obj.audible[0] * sr
        wave = _synthesise(obj, config, rng)
        mix[start : start + wave.size] += wave
    if config.audio_noise > 0:
        mix += config.audio_noise * rng.standard_normal(mix.size, dtype=np.float32)
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        # One scale factor for the whole mix keeps loudness comparisons valid.
        mix *= 0.99 / peak
    return mix


def render_clip(
    spec: ClipSpec, config: ToyWorldConfig, frames_per_second: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render frames uint8 ``[T * fps, H, W, 3]`` and audio float32 ``[T * sample_rate]``.

    Pass ``frames_per_second=1`` for one frame per second, as the datasets decode.
    """
    return render_frames(spec, config, frames_per_second), render_audio(spec, config)


# ---------------------------------------------------------------------------
# Writing files


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    container_format: str = "mp4",
) -> None:
    """Write uint8 frames ``[N, H, W, 3]`` as H.264 and optional mono audio ``[n]`` as AAC.

    ``audio=None`` writes a file without an audio stream. The x264 encoder runs
    single-threaded so that equal inputs give equal files.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 with yuv420p needs even frame sides, got {width}x{height}")
    with av.open(str(path), mode="w", format=container_format) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18", "preset": "ultrafast", "threads": "1"}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
            sound.bit_rate = 64000
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = np.ascontiguousarray(np.asarray(audio, np.float32).reshape(1, -1))  # [1, n]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = 0
            for packet in sound.encode(frame):
                container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _video_path(root: Path, spec: ClipSpec) -> Path:
    """Return the file whose presence marks a finished clip: its mp4, or for AVS its wav (written last)."""
    if spec.task == "avs":
        from phplib.data.toy_avs import done_path

        return done_path(root, spec)
    folder = {"ave": AVE_VIDEO_DIR, "llp": LLP_VIDEO_DIR, "avqa": AVQA_VIDEO_DIR}[spec.task]
    return root / folder / f"{spec.video_id}.mp4"


def _render_and_write(job: tuple[ClipSpec, ToyWorldConfig, str, str]) -> str:
    """Render one clip and write it under a temporary name, renamed when complete."""
    spec, config, target, root = job
    if spec.task == "avs":
        from phplib.data.toy_avs import write_avs_clip

        return str(write_avs_clip(spec, config, Path(root)))
    frames, audio = render_clip(spec, config)
    path = Path(target)
    partial = path.with_name(path.name + ".partial")
    write_mp4(partial, frames, config.fps, audio, config.sample_rate)
    os.replace(partial, path)
    return target


def _ave_rows(specs: list[ClipSpec]) -> list[str]:
    return [
        f"{CLASS_NAMES[class_id]}&{spec.video_id}&good&{start}&{end}"
        for spec in specs
        for class_id, start, end in spec.ave_events
    ]


def _write_ave(root: Path, specs: dict[str, list[ClipSpec]], config: ToyWorldConfig) -> None:
    folder = root / AVE_ANNOTATION_DIR
    # The official Annotations.txt has no header line: one event per row, "\n" endings.
    every = [row for split in SPLITS for row in _ave_rows(specs[split])]
    _write_text(folder / "Annotations.txt", "".join(row + "\n" for row in every))
    for split in SPLITS:
        rows = _ave_rows(specs[split])
        _write_text(folder / f"{split}Set.txt", "".join(row + "\n" for row in rows))
    names = [CLASS_NAMES[c] for c in config.ave_classes]
    _write_text(folder / "categories.txt", "".join(name + "\n" for name in names))


def _llp_labels(spec: ClipSpec, config: ToyWorldConfig) -> list[str]:
    classes = sorted({o.class_id for o in spec.objects if o.class_id in config.llp_classes
                      and (o.visible is not None or o.audible is not None)})
    return [CLASS_NAMES[c] for c in classes]


def _write_llp(root: Path, specs: dict[str, list[ClipSpec]], config: ToyWorldConfig) -> None:
    folder = root / LLP_ANNOTATION_DIR
    files = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
    full = ["filename\tevent_labels\n"]
    for split in SPLITS:
        lines = ["filename\tevent_labels\n"]
        for spec in specs[split]:
            lines.append(f"{spec.video_id}\t{','.join(_llp_labels(spec, config))}\n")
        full.extend(lines[1:])
        _write_text(folder / files[split], "".join(lines))
    _write_text(folder / "AVVP_dataset_full.csv", "".join(full))
    for modality in ("audio", "visual"):
        lines = ["filename\tonset\toffset\tevent_labels\n"]
        for split in ("val", "test"):
            for spec in specs[split]:
                events = []
                for obj in spec.objects:
                    interval = obj.audible if modality == "audio" else obj.visible
                    if obj.class_id in config.llp_classes and interval is not None:
                        events.append((interval[0], interval[1], CLASS_NAMES[obj.class_id]))
                for onset, offset, name in sorted(events):
                    lines.append(f"{spec.video_id}\t{onset}\t{offset}\t{name}\n")
        _write_text(folder / f"AVVP_eval_{modality}.csv", "".join(lines))


def _write_avqa(root: Path, specs: dict[str, list[ClipSpec]]) -> None:
    question_id = 0
    for split in SPLITS:
        records = []
        for spec in specs[split]:
            for question in spec.questions:
                question_id += 1
                # Key order, the JSON-encoded list strings and the "anser" spelling follow the real files.
                records.append({
                    "video_id": spec.video_id,
                    "question_id": question_id,
                    "type": json.dumps(question["type"]),
                    "question_content": question["question_content"],
                    "templ_values": json.dumps(question["templ_values"]),
                    "question_deleted": 0,
                    "anser": question["answer"],
                })
        _write_text(root / AVQA_ANNOTATION_DIR / f"avqa-{split}.json", json.dumps(records, indent=2))


def _write_avs(root: Path, specs: dict[str, list[ClipSpec]], config: ToyWorldConfig) -> None:
    from phplib.data import avs_layout
    from phplib.data.toy_avs import avs_meta_rows

    base = avs_layout.s4_base(root)
    # A header line and comma-separated rows, as AVSBench's loader reads them with pandas.read_csv.
    _write_text(base / avs_layout.S4_META_FILE, "".join(line + "\n" for line in avs_meta_rows(specs)))
    names = [CLASS_NAMES[c] for c in config.avs_classes]
    _write_text(base / avs_layout.CATEGORIES_FILE, "".join(name + "\n" for name in names))


# ---------------------------------------------------------------------------
# Generation


def iter_clip_specs(config: ToyWorldConfig) -> Iterator[ClipSpec]:
    """Yield the spec of every clip in export order: task, then split, then index."""
    for task in TASKS:
        for split in SPLITS:
            for index in range(config.clips(task, split)):
                yield sample_clip_spec(config, task, split, index)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ToyWorldError(
            f"{path} is not valid JSON ({error}). Pick another folder for the toy world, "
            "or delete this one and generate again."
        ) from error


# Config fields added after format version 1 was first written. A world stored
# without them was generated before they existed; generation adds their clips
# and keeps every file already there (the earlier tasks' clips do not depend on them).
_FIELDS_ADDED_LATER = ("avs_clips", "avs_classes")


def _predates_added_fields(stored: Any, current: dict[str, Any]) -> bool:
    """Return True when ``stored`` equals ``current`` except for missing fields of _FIELDS_ADDED_LATER."""
    if not isinstance(stored, dict) or all(k in stored for k in _FIELDS_ADDED_LATER):
        return False
    missing = set(current) - set(stored)
    return missing <= set(_FIELDS_ADDED_LATER) and stored == {k: v for k, v in current.items() if k in stored}


def _check_existing(root: Path, manifest: dict[str, Any] | None, config: ToyWorldConfig) -> bool:
    """Return True when ``root`` already contains a complete world generated from ``config``."""
    if manifest is None:
        return False
    stored = manifest.get("config")
    current = config.to_json()
    if manifest.get("format_version") == FORMAT_VERSION and _predates_added_fields(stored, current):
        logger.info("toy world at %s predates the fields %s; adding their clips and keeping the rest",
                    root, ", ".join(k for k in _FIELDS_ADDED_LATER if k not in stored))
        return False
    if stored != current or manifest.get("format_version") != FORMAT_VERSION:
        changed = sorted(k for k in set(config.to_json()) | set(stored or {})
                         if (stored or {}).get(k) != config.to_json().get(k))
        raise ToyWorldError(
            f"{root} already contains a toy world generated with a different config "
            f"(fields that differ: {', '.join(changed) or 'format_version'}). Pick another folder, "
            "or delete this one to generate it again."
        )
    return bool(manifest.get("complete"))


def _default_workers(num_jobs: int) -> int:
    if num_jobs < 48:
        return 1  # starting worker processes costs more than it saves on a few clips
    return max(1, min(8, os.cpu_count() or 1))


def generate_toy_world(
    root: str | Path,
    config: ToyWorldConfig = ToyWorldConfig(),
    progress: bool = True,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Write the toy world under ``root`` in the AVE, LLP, MUSIC-AVQA and AVSBench S4 layouts; return its manifest.

    A root that already contains a complete world from the same config is left as
    it is. A root generated from another config raises :class:`ToyWorldError`,
    except a world written before the AVS task existed, which gets the AVS clips
    added. An interrupted generation resumes: every file is written under a
    ``.partial`` name and renamed when complete (an AVS clip's wav last), so
    finished clips are kept and half-written ones are redone. ``num_workers``
    processes render clips in parallel (default: one for small worlds, else up
    to 8 by CPU count).
    """
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    for task in TASKS:
        classes = getattr(config, f"{task}_classes")
        if 0 < config.clips(task, "train") < len(classes):
            logger.warning("%s has %d train clips but %d classes; some classes will be missing from its train split, "
                           "and class lists read from the train annotations will lack them",
                           task, config.clips(task, "train"), len(classes))
    if _check_existing(root, _read_manifest(manifest_path), config):
        logger.info("toy world at %s is complete for this config; nothing to do", root)
        return json.loads(manifest_path.read_text(encoding="utf-8"))

    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "complete": False, "config": config.to_json()}
    _write_text(manifest_path, json.dumps(manifest, indent=2))

    specs: dict[Task, dict[str, list[ClipSpec]]] = {task: {split: [] for split in SPLITS} for task in TASKS}
    jobs: list[tuple[ClipSpec, ToyWorldConfig, str, str]] = []
    for spec in iter_clip_specs(config):
        specs[spec.task][spec.split].append(spec)
        path = _video_path(root, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        stale = path.with_name(path.name + ".partial")
        if stale.exists():
            stale.unlink()
        if not path.exists():
            jobs.append((spec, config, str(path), str(root)))
    total = sum(len(v) for task_specs in specs.values() for v in task_specs.values())
    logger.info("generating toy world at %s: %d clips, %d to write", root, total, len(jobs))

    workers = _default_workers(len(jobs)) if num_workers is None else max(1, num_workers)
    bar = tqdm(total=len(jobs), desc="toy world clips", unit="clip", disable=not progress)
    try:
        if workers == 1:
            for job in jobs:
                _render_and_write(job)
                bar.update(1)
        else:
            # Workers only run numpy, PyAV, soundfile and Pillow. Fork (where available) needs no importable
            # __main__, so generation also works from `python -c`, stdin and unguarded scripts.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for _ in pool.map(_render_and_write, jobs, chunksize=8):
                    bar.update(1)
    finally:
        bar.close()

    _write_ave(root, specs["ave"], config)
    _write_llp(root, specs["llp"], config)
    _write_avqa(root, specs["avqa"])
    _write_avs(root, specs["avs"], config)
    truth = {spec.video_id: clip_truth(spec, config.segments(spec.task)).to_json()
             for task_specs in specs.values() for split_specs in task_specs.values() for spec in split_specs}
    _write_text(root / TRUTH_NAME, json.dumps(truth, indent=1))

    manifest.update({
        "complete": True,
        "clips": {task: {split: len(specs[task][split]) for split in SPLITS} for task in TASKS},
        "class_names": list(CLASS_NAMES),
        "truth_file": TRUTH_NAME,
        "generation_seconds": round(time.perf_counter() - started, 2),
    })
    _write_text(manifest_path, json.dumps(manifest, indent=2))
    logger.info("toy world at %s complete in %.1f s", root, manifest["generation_seconds"])
    return manifest


def load_truth(root: str | Path) -> dict[str, ClipTruth]:
    """Read the per-clip ground truth written by :func:`generate_toy_world`."""
    path = Path(root) / TRUTH_NAME
    if not path.exists():
        raise ToyWorldError(f"{path} not found. Run generate_toy_world on {root} first.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        video_id: ClipTruth(**{**values, "ave_events": [tuple(e) for e in values["ave_events"]]})
        for video_id, values in raw.items()
    }


__all__ = [
    "CLASS_NAMES",
    "ClipSpec",
    "ClipTruth",
    "ObjectClass",
    "SceneObject",
    "TOY_CLASSES",
    "ToyWorldConfig",
    "ToyWorldError",
    "clip_truth",
    "generate_toy_world",
    "iter_clip_specs",
    "load_truth",
    "render_audio",
    "render_clip",
    "render_frames",
    "sample_clip_spec",
    "video_id_for",
    "write_mp4",
]
