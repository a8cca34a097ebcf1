"""The toy world's AVSBench S4 task: scenes, masks and files in the S4 layout.

Each AVS clip lasts five seconds, and one object of the clip's class sounds.
A silent object of another class is often on screen too, so a model has to
use the audio to pick the object to segment. The mask of a frame marks the pixels
of the sounding object in that second, and is empty in a second where it is
silent. Files follow :mod:`phplib.data.avs_layout`: five png frames, five png
masks (values 0 and 255) and a mono 16-bit wav per clip, and one
``s4_meta_data.csv`` with the columns of the real file.

Like :mod:`phplib.data.toyworld`, this module imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile
from PIL import Image

from phplib.data import avs_layout

if TYPE_CHECKING:
    from phplib.data.toyworld import ClipSpec, SceneObject, ToyWorldConfig

SOUNDING_ROLE = "sounding"
ALWAYS_SOUNDING_PROB = 0.7  # share of clips whose object sounds for all five seconds


def sample_avs_objects(rng: np.random.Generator, config: "ToyWorldConfig", main_class: int) -> list["SceneObject"]:
    """Draw the objects of one AVS clip: the sounding object of ``main_class`` and maybe a silent one."""
    from phplib.data.toyworld import AVS_NUM_SEGMENTS, SceneObject, _interval, _place, _sound

    T = AVS_NUM_SEGMENTS
    if rng.random() < ALWAYS_SOUNDING_PROB:
        audible: tuple[int, int] = (0, T)
    else:
        audible = _interval(rng, T, min_len=3)
    sounding = SceneObject(main_class, (0, T), audible, **_place(rng, config, main_class), **_sound(rng, config),
                           role=SOUNDING_ROLE)
    objects = [sounding]
    if rng.random() < config.visible_distractor_prob:
        other = int(rng.choice([c for c in config.avs_classes if c != main_class]))
        placement = _place(rng, config, other, x=float(rng.uniform(0.1, 0.9)))
        # Inserted first, so it is drawn under the sounding object where the two overlap.
        objects.insert(0, SceneObject(other, (0, T), None, **placement, gain=0.0, pitch_factor=1.0,
                                      role="visible_distractor"))
    return objects


def sounding_object(spec: "ClipSpec") -> "SceneObject":
    """Return the object whose pixels the masks of ``spec`` mark."""
    for obj in spec.objects:
        if obj.role == SOUNDING_ROLE:
            return obj
    raise ValueError(f"{spec.video_id}: no sounding object; this is not an AVS clip")


def category_of(spec: "ClipSpec") -> str:
    """Return the category name of an AVS clip (the class of its sounding object)."""
    from phplib.data.toyworld import CLASS_NAMES

    return CLASS_NAMES[sounding_object(spec).class_id]


def render_masks(spec: "ClipSpec", config: "ToyWorldConfig") -> np.ndarray:
    """Render the ground-truth masks of ``spec``: bool ``[5, H, W]``, one per second.

    A pixel is True when the sounding object covers it in that second, it sounds
    in that second, and no object drawn above it covers the pixel.
    """
    from phplib.data.toyworld import AVS_NUM_SEGMENTS, object_footprint

    size = config.frame_size
    target = sounding_object(spec)
    order = spec.objects.index(target)
    masks = np.zeros((AVS_NUM_SEGMENTS, size, size), dtype=bool)  # [T, H, W]
    for second in range(AVS_NUM_SEGMENTS):
        if not (target.visible_at(second) and target.audible_at(second)):
            continue
        mask = object_footprint(target, size)
        for above in spec.objects[order + 1 :]:
            if above.visible_at(second):
                mask &= ~object_footprint(above, size)
        masks[second] = mask
    return masks


def start_time_of(spec: "ClipSpec") -> int:
    """Return the ``start_time`` column of a clip: a whole second in 0..5, derived from its seed.

    Real S4 clips were cut from 10-second videos at this offset. The toy clips
    are generated already cut, so the value only fills the column.
    """
    return int(spec.render_seed % 6)


def done_path(root: Path, spec: "ClipSpec") -> Path:
    """Return the wav file of ``spec``: written last, so its presence marks a complete clip."""
    return avs_layout.audio_path(root, spec.split, category_of(spec), spec.video_id)


def _save_png(image: np.ndarray, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(image).save(partial, format="PNG", compress_level=1)
    os.replace(partial, path)


def write_avs_clip(spec: "ClipSpec", config: "ToyWorldConfig", root: Path) -> Path:
    """Render one AVS clip and write its frames, masks and wav; return the wav path.

    Frames and masks are written first and the wav last, each under a
    ``.partial`` name renamed when complete, so an interrupted clip has no wav
    and is written again on the next run.
    """
    from phplib.data.toyworld import AVS_NUM_SEGMENTS, render_audio, render_frames

    frames = render_frames(spec, config, frames_per_second=1)  # [T, H, W, 3]
    masks = render_masks(spec, config)  # [T, H, W]
    audio = render_audio(spec, config)  # [T * sample_rate]
    category = category_of(spec)
    for index in range(1, AVS_NUM_SEGMENTS + 1):
        frame_file = avs_layout.frame_path(root, spec.split, category, spec.video_id, index)
        mask_file = avs_layout.mask_path(root, spec.split, category, spec.video_id, index)
        frame_file.parent.mkdir(parents=True, exist_ok=True)
        mask_file.parent.mkdir(parents=True, exist_ok=True)
        _save_png(frames[index - 1], frame_file)
        _save_png(masks[index - 1].astype(np.uint8) * 255, mask_file)
    wav = done_path(root, spec)
    wav.parent.mkdir(parents=True, exist_ok=True)
    partial = wav.with_name(wav.name + ".partial")
    soundfile.write(partial, audio, config.sample_rate, subtype="PCM_16", format="WAV")
    os.replace(partial, wav)
    return wav


def avs_meta_rows(specs: dict[str, list["ClipSpec"]]) -> list[str]:
    """Return the lines of ``s4_meta_data.csv``: the header, then train, val and test rows."""
    lines = [",".join(avs_layout.S4_META_COLUMNS)]
    for split in ("train", "val", "test"):
        for spec in specs[split]:
            lines.append(f"{spec.video_id},{start_time_of(spec)},{category_of(spec)},{split}")
    return lines


__all__ = [
    "ALWAYS_SOUNDING_PROB",
    "SOUNDING_ROLE",
    "avs_meta_rows",
    "category_of",
    "done_path",
    "render_masks",
    "sample_avs_objects",
    "sounding_object",
    "start_time_of",
    "write_avs_clip",
]
