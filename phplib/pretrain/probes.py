"""Layer-wise linear probes on the 12 paired blocks of the two towers.

Features after each block are the mean over that block's tokens. A probe is a ridge-regression
classifier (closed form, so it is deterministic and needs no training loop) fitted on standardised
features of a training split and scored on a test split. Four targets:

- colour (ViT) and pitch band (HTS-AT): low-level attributes, on held-out pretraining-world items;
- event class (each tower alone) and audio-visual correspondence (does this sound belong to this
  frame?): on AVE clips of the toy task world. A linear function of the two feature vectors side by
  side cannot test whether they agree, so the correspondence probe reads the outer product of each
  tower's first principal components, a fixed expansion in which agreement is linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from phplib.backbones.clap_audio import htsat_embed, htsat_frontend, swin_block_attention, swin_block_mlp, swin_blocks
from phplib.backbones.clip_vision import normalize_frames, vit_block_attention, vit_block_mlp, vit_embed
from phplib.data.toyworld import ToyWorldConfig, clip_truth, render_clip, sample_clip_spec


@torch.no_grad()
def vit_block_features(visual, frames: torch.Tensor, batch_size: int = 128) -> list[torch.Tensor]:
    """Mean token of every ViT block for uint8 frames ``[N, 3, H, W]``: one ``[N, C]`` per block."""
    per_block: list[list[torch.Tensor]] = [[] for _ in visual.transformer.resblocks]
    for start in range(0, len(frames), batch_size):
        x = vit_embed(visual, normalize_frames(frames[start:start + batch_size]))  # [B, N, C]
        for index, block in enumerate(visual.transformer.resblocks):
            x = vit_block_mlp(block, vit_block_attention(block, x))
            per_block[index].append(x.mean(dim=1))
    return [torch.cat(chunks) for chunks in per_block]


@torch.no_grad()
def htsat_block_features(tower, waveforms: torch.Tensor, batch_size: int = 128) -> list[torch.Tensor]:
    """Mean token of every Swin block (before patch merging) for waveforms ``[N, S]``: one ``[N, C_i]`` per block."""
    blocks = swin_blocks(tower)
    per_block: list[list[torch.Tensor]] = [[] for _ in blocks]
    for start in range(0, len(waveforms), batch_size):
        x = htsat_embed(tower, htsat_frontend(tower, waveforms[start:start + batch_size].float()))
        for index, (block, downsample) in enumerate(blocks):
            x = swin_block_mlp(block, swin_block_attention(block, x))
            per_block[index].append(x.mean(dim=1))
            if downsample is not None:
                x = downsample(x)
    return [torch.cat(chunks) for chunks in per_block]


def _principal_components(train: torch.Tensor, features: torch.Tensor, count: int) -> torch.Tensor:
    """Project ``features`` on the first ``count`` principal directions of ``train`` (standardised)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    _, _, directions = torch.linalg.svd(((train - mean) / std).double(), full_matrices=False)
    return ((features - mean) / std).double() @ directions[:count].T


def pair_features(video: torch.Tensor, audio: torch.Tensor, train: np.ndarray, count: int = 12) -> torch.Tensor:
    """Flattened outer product of the two towers' first ``count`` principal components: ``[N, count**2]``."""
    v = _principal_components(video[train], video, count)
    a = _principal_components(audio[train], audio, count)
    return (v[:, :, None] * a[:, None, :]).flatten(1).float()


def ridge_probe_accuracy(
    train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray, ridge: float = 1.0
) -> float:
    """Fit a ridge-regression classifier on one-hot targets; return its test accuracy."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    a = torch.cat([(train_x - mean) / std, torch.ones(len(train_x), 1)], dim=1).double()
    b = torch.cat([(test_x - mean) / std, torch.ones(len(test_x), 1)], dim=1).double()
    classes = np.unique(train_y)
    targets = torch.from_numpy((train_y[:, None] == classes[None, :]).astype(np.float64))
    weights = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=torch.float64), a.T @ targets)
    predicted = classes[(b @ weights).argmax(dim=1).numpy()]
    return float((predicted == test_y).mean())


@dataclass
class ProbeData:
    """Frames and sounds with the labels of the four probe targets, split into train and test halves."""

    colour_images: torch.Tensor  # uint8 [N, 3, H, W] pretraining-world images
    colour_labels: np.ndarray
    pitch_sounds: torch.Tensor  # float32 [N, S] pretraining-world sounds
    pitch_labels: np.ndarray
    event_frames: torch.Tensor  # uint8 [M, 3, H, W] AVE event seconds
    event_sounds: torch.Tensor  # float32 [M, S] the same seconds' audio
    event_labels: np.ndarray  # toy class index of each event second
    mismatched: np.ndarray  # [M] an event second of another class in the same split half; its audio makes a negative pair
    event_clips: np.ndarray  # [M] index of the AVE clip each event second comes from


def build_probe_data(num_items: int, num_ave_clips: int, seed: int = 0, image_size: int = 64,
                     sample_rate: int = 16000) -> ProbeData:
    """Render probe inputs: held-out pretraining-world items and AVE clips of the toy task world (test split)."""
    from phplib.pretrain.world import build_pretrain_set

    # Offset 10**6 keeps these items out of any pretraining run of fewer items.
    items = build_pretrain_set(num_items, num_items, seed=1, image_size=image_size, sample_rate=sample_rate,
                               offset=10**6)
    world = ToyWorldConfig(seed=seed, frame_size=image_size, sample_rate=sample_rate, ave_clips=(0, 0, num_ave_clips))
    frames, sounds, labels, clips = [], [], [], []
    for index in range(num_ave_clips):
        spec = sample_clip_spec(world, "ave", "test", index)
        video, audio = render_clip(spec, world, frames_per_second=1)  # [T, H, W, 3], [T * S]
        truth = clip_truth(spec, world.num_segments)
        for second, both in enumerate(truth.audio_visual):
            if len(both) == 1:  # one object both seen and heard: the event
                frames.append(video[second].transpose(2, 0, 1))
                sounds.append(audio[second * sample_rate:(second + 1) * sample_rate])
                labels.append(both[0])
                clips.append(index)
    labels, clips = np.asarray(labels), np.asarray(clips)
    # A negative pair takes its audio from the same half of the clip split, so no test clip's
    # audio appears in a training pair.
    in_train = np.isin(np.arange(len(labels)), _halves_by_clip(clips, labels)[0])
    rng = np.random.default_rng(seed)
    mismatched = np.array([
        rng.choice(np.flatnonzero((labels != label) & (in_train == in_train[index])))
        for index, label in enumerate(labels)
    ])
    return ProbeData(
        colour_images=torch.from_numpy(items.images),
        colour_labels=np.array([a.colour for a in items.image_attributes]),
        pitch_sounds=torch.from_numpy(items.sounds),
        pitch_labels=np.array([a.pitch for a in items.sound_attributes]),
        event_frames=torch.from_numpy(np.stack(frames)),
        event_sounds=torch.from_numpy(np.stack(sounds)),
        event_labels=labels,
        mismatched=mismatched,
        event_clips=clips,
    )


def _halves(count: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(count)
    return order[: count // 2], order[count // 2:]


def _halves_by_clip(clips: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices so that all seconds of one clip fall in the same half.

    Seconds of one clip show the same object at the same place, so a split by second would let
    a probe recognise test seconds from their clip's training seconds. The clips are split per
    class of their first event second, so that every class has clips in both halves.
    """
    rng = np.random.default_rng(0)
    first_label = {clip: labels[np.flatnonzero(clips == clip)[0]] for clip in np.unique(clips)}
    train_clips = []
    for label in sorted(set(first_label.values())):
        group = rng.permutation([clip for clip, value in first_label.items() if value == label])
        train_clips.extend(group[: (len(group) + 1) // 2])
    in_train = np.isin(clips, train_clips)
    return np.flatnonzero(in_train), np.flatnonzero(~in_train)


def depth_probes(visual, audio, data: ProbeData) -> pd.DataFrame:
    """Probe accuracy of every paired block for the four targets: a frame with one row per block."""
    colour = vit_block_features(visual, data.colour_images)
    pitch = htsat_block_features(audio, data.pitch_sounds)
    event_video = vit_block_features(visual, data.event_frames)
    event_audio = htsat_block_features(audio, data.event_sounds)
    colour_train, colour_test = _halves(len(data.colour_labels))
    pitch_train, pitch_test = _halves(len(data.pitch_labels))
    event_train, event_test = _halves_by_clip(data.event_clips, data.event_labels)
    pair_labels = np.concatenate([np.ones(len(data.event_labels)), np.zeros(len(data.event_labels))]).astype(int)
    pair_train = np.concatenate([event_train, event_train + len(data.event_labels)])
    pair_test = np.concatenate([event_test, event_test + len(data.event_labels)])

    def probe(features, labels, train, test):
        return ridge_probe_accuracy(features[train], labels[train], features[test], labels[test])

    rows = []
    for block in range(len(colour)):
        # Matched pairs (same second) followed by mismatched ones (another class's audio).
        video = torch.cat([event_video[block], event_video[block]])
        audio = torch.cat([event_audio[block], event_audio[block][data.mismatched]])
        pairs = pair_features(video, audio, pair_train)
        rows.append({
            "block": block,
            "colour (ViT)": probe(colour[block], data.colour_labels, colour_train, colour_test),
            "pitch (HTS-AT)": probe(pitch[block], data.pitch_labels, pitch_train, pitch_test),
            "event class (ViT)": probe(event_video[block], data.event_labels, event_train, event_test),
            "event class (HTS-AT)": probe(event_audio[block], data.event_labels, event_train, event_test),
            "AV correspondence (both)": probe(pairs, pair_labels, pair_train, pair_test),
        })
    return pd.DataFrame(rows).set_index("block")
