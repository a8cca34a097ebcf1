"""Zero-shot evaluation of the toy CLIP and CLAP: pick the best caption out of every possible one.

Each held-out image (sound) is compared with the caption of every attribute combination the
pretraining world can draw. The top caption is right when it is the item's own caption; per
attribute, it is right when its value of that attribute matches the item's.
"""

from __future__ import annotations

import itertools

import pandas as pd
import torch

from phplib.backbones.clip_vision import normalize_frames
from phplib.pretrain.captions import (
    COLOURS,
    ENVELOPES,
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
    tokenize,
)
from phplib.pretrain.models import normalized
from phplib.pretrain.world import TASK_LOOKALIKES, PretrainSet

IMAGE_FIELDS = ("shape", "colour", "texture", "size", "position")
SOUND_FIELDS = ("pitch", "timbre", "envelope")


def all_image_attributes() -> list[ImageAttributes]:
    """Every image attribute combination the pretraining world draws."""
    return [
        ImageAttributes(*values)
        for values in itertools.product(SHAPES, COLOURS, TEXTURES, SIZES, POSITIONS)
        if (values[0], values[1]) not in TASK_LOOKALIKES
    ]


def all_sound_attributes() -> list[SoundAttributes]:
    """Every sound attribute combination the pretraining world draws."""
    return [SoundAttributes(*values) for values in itertools.product(PITCHES, TIMBRES, ENVELOPES)]


@torch.no_grad()
def embed_captions(encode_text, captions: list[str], batch_size: int = 512) -> torch.Tensor:
    """Normalised text embeddings of ``captions``: ``[N, D]``."""
    return torch.cat([normalized(encode_text(tokenize(captions[i:i + batch_size])))
                      for i in range(0, len(captions), batch_size)])


def _accuracy_table(item_features, attributes, candidates, caption_features, fields, chance) -> pd.DataFrame:
    best = (item_features @ caption_features.T).argmax(dim=1)  # [N]
    predicted = [candidates[int(i)] for i in best]
    rows = {"whole caption": [sum(p == a for p, a in zip(predicted, attributes)) / len(attributes), 1 / len(candidates)]}
    for name in fields:
        correct = sum(getattr(p, name) == getattr(a, name) for p, a in zip(predicted, attributes))
        rows[name] = [correct / len(attributes), 1 / chance[name]]
    return pd.DataFrame(rows, index=["zero-shot accuracy", "chance"]).T


@torch.no_grad()
def clip_zero_shot(clip, data: PretrainSet, batch_size: int = 256) -> pd.DataFrame:
    """Zero-shot accuracy of ``clip`` on the images of ``data``: whole caption and each attribute, with chance."""
    candidates = all_image_attributes()
    caption_features = embed_captions(clip.encode_text, [image_caption(a) for a in candidates])
    images = torch.from_numpy(data.images)
    item_features = torch.cat([normalized(clip.encode_image(normalize_frames(images[i:i + batch_size])))
                               for i in range(0, len(images), batch_size)])
    chance = {"shape": len(SHAPES), "colour": len(COLOURS), "texture": len(TEXTURES), "size": len(SIZES),
              "position": len(POSITIONS)}
    return _accuracy_table(item_features, data.image_attributes, candidates, caption_features, IMAGE_FIELDS, chance)


@torch.no_grad()
def clap_zero_shot(clap, data: PretrainSet, batch_size: int = 256) -> pd.DataFrame:
    """Zero-shot accuracy of ``clap`` on the sounds of ``data``: whole caption and each attribute, with chance."""
    candidates = all_sound_attributes()
    caption_features = embed_captions(clap.encode_text, [sound_caption(a) for a in candidates])
    sounds = torch.from_numpy(data.sounds)
    item_features = torch.cat([normalized(clap.encode_audio(sounds[i:i + batch_size]))
                               for i in range(0, len(sounds), batch_size)])
    chance = {"pitch": len(PITCHES), "timbre": len(TIMBRES), "envelope": len(ENVELOPES)}
    return _accuracy_table(item_features, data.sound_attributes, candidates, caption_features, SOUND_FIELDS, chance)
