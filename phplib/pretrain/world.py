"""The pretraining world: single images and one-second sounds with captions, rendered in memory.

Its objects are random combinations of the attribute values in :mod:`phplib.pretrain.captions`
(shape, colour, texture, size, position; pitch band, timbre, envelope), drawn with the toy
world's shape and texture painters. It shares no clip with the continual-learning tasks, because
it renders its own scenes from its own seeds. Its classes overlap the task classes only in part:
an image never pairs a shape with the colour that a task class of the toy world has, and the
sounds are attribute combinations, not the task classes' sound signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phplib.data.toyworld import TOY_CLASSES, _shape_mask, _texture
from phplib.pretrain.captions import (
    COLOURS,
    ENVELOPES,
    NOISY_TIMBRES,
    PITCHES,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    TIMBRES,
    ImageAttributes,
    SoundAttributes,
    image_caption,
    sound_caption,
)

# Distinguishes pretraining seeds from the toy world's per-clip seeds, which have four entries.
_SEED_TAG = 7_301
PIXEL_NOISE = 6.0  # std on the 0-255 scale, half the toy world's default
AUDIO_NOISE = 0.03  # std of white noise, full scale 1.0


def _nearest_colour(rgb: tuple[int, int, int]) -> str:
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], rgb)))


# (shape, colour) pairs that look like a task class; pretraining images never draw them.
TASK_LOOKALIKES: frozenset[tuple[str, str]] = frozenset(
    (object_class.shape, _nearest_colour(object_class.colour)) for object_class in TOY_CLASSES
)


@dataclass
class PretrainSet:
    """Rendered images and sounds with their captions and attribute values."""

    images: np.ndarray  # uint8 [N, 3, H, W]
    image_captions: list[str]
    image_attributes: list[ImageAttributes]
    sounds: np.ndarray  # float32 [M, sample_rate], one second each
    sound_captions: list[str]
    sound_attributes: list[SoundAttributes]


def _rng(seed: int, kind: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SEED_TAG, kind, index]))


def _choose(rng: np.random.Generator, options) -> str:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def sample_image_attributes(rng: np.random.Generator) -> ImageAttributes:
    """Draw image attributes uniformly, skipping (shape, colour) pairs of the task classes."""
    while True:
        shape, colour = _choose(rng, SHAPES), _choose(rng, COLOURS)
        if (shape, colour) not in TASK_LOOKALIKES:
            break
    return ImageAttributes(shape, colour, _choose(rng, TEXTURES), _choose(rng, SIZES), _choose(rng, POSITIONS))


def render_image(attributes: ImageAttributes, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw one object of ``attributes`` on a noisy gradient background: uint8 ``[3, size, size]``."""
    # A dim, nearly uniform background: the object is the only structure an image has, which lets
    # the contrastive loss leave its initial plateau within the few hundred steps a CPU run allows.
    top = rng.integers(30, 90, size=3)
    bottom = np.clip(top + rng.integers(-15, 16, size=3), 0, 255)
    weights = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    image = (top + weights * (bottom - top)).astype(np.float32) * np.ones((1, size, 1), np.float32)  # [H, W, 3]

    diameter = max(3, int(round(rng.uniform(*SIZES[attributes.size]) * size)))
    centre_x = rng.uniform(*POSITIONS[attributes.position])
    centre_y = rng.uniform(0.3, 0.7)
    left = int(round(np.clip(centre_x * size - diameter / 2, 0, size - diameter)))
    top_row = int(round(np.clip(centre_y * size - diameter / 2, 0, size - diameter)))
    grid = (np.arange(diameter) + 0.5) / diameter * 2 - 1
    v, u = np.meshgrid(grid, grid, indexing="ij")  # [d, d] each
    mask = _shape_mask(attributes.shape, u, v)
    shade = _texture(attributes.texture, u, v)[..., None] * np.asarray(COLOURS[attributes.colour], np.float32)
    contrast = rng.uniform(0.6, 1.0)
    patch = image[top_row:top_row + diameter, left:left + diameter]
    blended = patch + contrast * (shade - patch)
    patch[mask] = blended[mask]

    image += PIXEL_NOISE * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(2, 0, 1)


def sample_sound_attributes(rng: np.random.Generator) -> SoundAttributes:
    """Draw sound attributes uniformly."""
    return SoundAttributes(_choose(rng, PITCHES), _choose(rng, TIMBRES), _choose(rng, ENVELOPES))


def _envelope(name: str, t: np.ndarray) -> np.ndarray:
    if name == "steady":
        return np.ones_like(t)
    if name == "fading":
        return np.exp(-t / 0.25)
    if name == "pulsing":
        phase = (t * 4.0) % 1.0
        return np.where(phase < 0.5, 1.0, 0.0)
    if name == "swelling":
        return 0.05 + 0.95 * t**2
    raise ValueError(f"unknown envelope {name!r}; expected one of {', '.join(ENVELOPES)}")


def render_sound(attributes: SoundAttributes, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Synthesise one second of ``attributes`` plus white noise: float32 ``[sample_rate]``."""
    t = np.arange(sample_rate, dtype=np.float64) / sample_rate
    pitch = rng.uniform(*PITCHES[attributes.pitch])
    tone = np.zeros_like(t)
    for ratio, amplitude in TIMBRES[attributes.timbre]:
        if pitch * ratio < sample_rate / 2:
            tone += amplitude * np.sin(2 * np.pi * pitch * ratio * t + rng.uniform(0, 2 * np.pi))
    tone /= np.sqrt(np.mean(tone**2)) + 1e-8
    noise_share = NOISY_TIMBRES.get(attributes.timbre, 0.0)
    if noise_share:
        tone = (1 - noise_share) * tone + noise_share * np.sqrt(3.0) * rng.uniform(-1.0, 1.0, t.size)
    wave = tone * _envelope(attributes.envelope, t)
    wave *= rng.uniform(0.05, 0.15) / (np.sqrt(np.mean(wave**2)) + 1e-8)
    wave += AUDIO_NOISE * rng.standard_normal(t.size)
    return np.clip(wave, -0.99, 0.99).astype(np.float32)


def build_pretrain_set(
    num_images: int, num_sounds: int, seed: int, image_size: int, sample_rate: int, offset: int = 0
) -> PretrainSet:
    """Render ``num_images`` captioned images and ``num_sounds`` captioned sounds, deterministic for ``seed``.

    Item ``i`` is drawn from its own generator seeded by ``(seed, i + offset)``, so sets with
    disjoint index ranges (a training set and a held-out set) never share an item.
    """
    image_attributes, images = [], []
    for index in range(offset, offset + num_images):
        rng = _rng(seed, 0, index)
        attributes = sample_image_attributes(rng)
        image_attributes.append(attributes)
        images.append(render_image(attributes, rng, image_size))
    sound_attributes, sounds = [], []
    for index in range(offset, offset + num_sounds):
        rng = _rng(seed, 1, index)
        attributes = sample_sound_attributes(rng)
        sound_attributes.append(attributes)
        sounds.append(render_sound(attributes, rng, sample_rate))
    return PretrainSet(
        images=np.stack(images) if images else np.zeros((0, 3, image_size, image_size), np.uint8),
        image_captions=[image_caption(a) for a in image_attributes],
        image_attributes=image_attributes,
        sounds=np.stack(sounds) if sounds else np.zeros((0, sample_rate), np.float32),
        sound_captions=[sound_caption(a) for a in sound_attributes],
        sound_attributes=sound_attributes,
    )
