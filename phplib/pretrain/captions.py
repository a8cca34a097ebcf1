"""Caption vocabulary of the pretraining world and a word-level tokenizer for the tiny text towers.

An image caption names five visual attributes ("a small red striped triangle on the left"); a
sound caption names three audio attributes ("a low bell tone fading out"). Each attribute value
has a caption phrase, and every word of every phrase is in :data:`VOCABULARY`, so the tokenizer
never meets an unknown word in generated captions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Visual attributes: value -> caption phrase. Shapes use the toy world's shape names as values.
SHAPES: dict[str, str] = {
    "circle": "circle", "square": "square", "triangle": "triangle", "diamond": "diamond", "ring": "ring",
    "cross": "cross", "hbar": "wide bar", "vbar": "tall bar", "ellipse": "oval", "star": "star",
    "xshape": "x", "halfdisc": "half disc",
}
# Named colours as RGB at full contrast.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 45, 50), "green": (60, 175, 70), "blue": (55, 85, 225), "yellow": (235, 205, 40),
    "white": (240, 240, 240), "grey": (120, 120, 125), "brown": (140, 90, 50), "orange": (240, 135, 35),
    "purple": (145, 60, 185), "cyan": (70, 205, 215),
}
TEXTURES: dict[str, str] = {"solid": "plain", "stripes": "striped", "checker": "checked", "dots": "dotted"}
SIZES: dict[str, tuple[float, float]] = {"small": (0.24, 0.34), "large": (0.44, 0.58)}  # diameter / frame side
POSITIONS: dict[str, tuple[float, float]] = {  # range of the centre's x as a fraction of the frame width
    "left": (0.22, 0.34), "middle": (0.44, 0.56), "right": (0.66, 0.78),
}
POSITION_PHRASES: dict[str, str] = {"left": "on the left", "middle": "in the middle", "right": "on the right"}

# Audio attributes.
PITCHES: dict[str, tuple[float, float]] = {"low": (70.0, 180.0), "middle": (300.0, 650.0), "high": (1200.0, 2600.0)}  # Hz
TIMBRES: dict[str, tuple[tuple[float, float], ...]] = {  # (frequency ratio to the fundamental, amplitude)
    "whistle": ((1.0, 1.0),),
    "bell": ((1.0, 1.0), (2.76, 0.5), (5.4, 0.25)),
    "buzz": tuple((float(k), 1.0 / k) for k in range(1, 9)),
    "reed": tuple((float(k), 1.0 / k) for k in (1, 3, 5, 7)),
    "rasp": ((1.0, 1.0), (2.0, 0.6), (3.0, 0.4)),  # half of its energy is noise, see NOISY_TIMBRES
}
NOISY_TIMBRES: dict[str, float] = {"rasp": 0.5}  # share of uniform noise in the timbre
ENVELOPES: dict[str, str] = {
    "steady": "held steady", "fading": "fading out", "pulsing": "pulsing", "swelling": "swelling up",
}

CONTEXT_LENGTH = 12  # tokens per caption, end-of-text token included


@dataclass(frozen=True)
class ImageAttributes:
    """Attribute values of one pretraining image (keys of the tables above)."""

    shape: str
    colour: str
    texture: str
    size: str
    position: str


@dataclass(frozen=True)
class SoundAttributes:
    """Attribute values of one pretraining sound (keys of the tables above)."""

    pitch: str
    timbre: str
    envelope: str


def image_caption(attributes: ImageAttributes) -> str:
    """Caption an image, e.g. ``"a small red striped triangle on the left"``."""
    return " ".join([
        "a", attributes.size, attributes.colour, TEXTURES[attributes.texture], SHAPES[attributes.shape],
        POSITION_PHRASES[attributes.position],
    ])


def sound_caption(attributes: SoundAttributes) -> str:
    """Caption a sound, e.g. ``"a low bell tone fading out"``."""
    return f"a {attributes.pitch} {attributes.timbre} tone {ENVELOPES[attributes.envelope]}"


def _vocabulary() -> tuple[str, ...]:
    phrases = ["a tone sound", *SHAPES.values(), *COLOURS, *TEXTURES.values(), *SIZES, *POSITION_PHRASES.values(),
               *PITCHES, *TIMBRES, *ENVELOPES.values()]
    return tuple(sorted({word for phrase in phrases for word in phrase.split()}))


VOCABULARY: tuple[str, ...] = _vocabulary()
PAD_ID = 0
# open_clip's text tower pools the token with the largest id (pool_type "argmax"), so the
# end-of-text token gets the largest id of the vocabulary.
EOT_ID = len(VOCABULARY) + 1
VOCAB_SIZE = len(VOCABULARY) + 2
_WORD_IDS = {word: index + 1 for index, word in enumerate(VOCABULARY)}


def tokenize(captions: list[str] | str, context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """Turn captions into token ids ``[N, context_length]``: word ids, then end-of-text, then padding.

    Raises ``ValueError`` for a word outside :data:`VOCABULARY` or a caption that does not fit.
    """
    if isinstance(captions, str):
        captions = [captions]
    tokens = torch.full((len(captions), context_length), PAD_ID, dtype=torch.long)
    for row, caption in enumerate(captions):
        words = caption.lower().split()
        unknown = [word for word in words if word not in _WORD_IDS]
        if unknown:
            raise ValueError(
                f"caption {caption!r} contains words outside the toy caption vocabulary: {', '.join(unknown)}. "
                f"Known words: {', '.join(VOCABULARY)}"
            )
        if len(words) + 1 > context_length:
            raise ValueError(f"caption {caption!r} has {len(words)} words; at most {context_length - 1} fit")
        ids = [_WORD_IDS[word] for word in words] + [EOT_ID]
        tokens[row, : len(ids)] = torch.tensor(ids)
    return tokens
