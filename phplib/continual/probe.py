"""Task heads trained on frozen-tower features: the probe baseline and PHP's head warm-up.

The frozen towers' per-segment features are computed once per split, so a head can train on
them for many cheap epochs. Two uses:

- the *probe*: how well a task can be solved from frozen features alone, printed beside PHP's
  score (a toy task whose probe scores near 1 cannot show what adapters and prompts add);
- the *warm-up*: PHP starts each task from the probed head and then tunes the head together with
  the adapters and prompts. This is linear probing then fine-tuning (LP-FT, Kumar et al., ICLR 2022),
  and it keeps the few PHP epochs from being spent on teaching a random head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from phplib.continual.learner import collate, merge_collected
from phplib.heads.base import TaskHead
from phplib.model import PHPModel


@dataclass
class FrozenFeatures:
    """Per-segment frozen features of a whole split, with the items' other fields."""

    video: torch.Tensor  # [N, T, Dv]
    audio: torch.Tensor  # [N, T, Da]
    fields: list[dict]
    video_tokens: torch.Tensor | None = None  # [N, T, patches, C], for heads that use patch tokens


@torch.no_grad()
def frozen_features(
    model: PHPModel,
    data: Dataset,
    batch_size: int,
    device: str,
    description: str = "",
    progress: bool = True,
    with_tokens: bool = False,
) -> FrozenFeatures:
    """Compute the towers' features (no PHP stage) for every item of a prepared split."""
    videos, audios, tokens, fields = [], [], [], []
    loader = DataLoader(data, batch_size=batch_size, collate_fn=collate)
    for batch in tqdm(loader, desc=f"frozen features {description}", disable=not progress, leave=False):
        outputs = model.frozen_features(batch["frames"].to(device), batch["spectrogram"].to(device), return_tokens=with_tokens)
        video, audio = outputs[0], outputs[1]
        if with_tokens:
            tokens.append(outputs[2].cpu())
        videos.append(video.cpu())
        audios.append(audio.cpu())
    for index in range(len(data)):
        fields.append(data.fields[index] if hasattr(data, "fields") else {k: v for k, v in data[index].items() if k not in ("frames", "spectrogram")})
    return FrozenFeatures(torch.cat(videos), torch.cat(audios), fields, torch.cat(tokens) if with_tokens else None)


def _apply(head: TaskHead, features: FrozenFeatures, index, batch: dict):
    if head.uses_video_tokens:
        return head(features.video[index], features.audio[index], batch, video_tokens=features.video_tokens[index])
    return head(features.video[index], features.audio[index], batch)


def train_head_on_features(
    head: TaskHead, features: FrozenFeatures, epochs: int, batch_size: int, lr: float = 1e-3, seed: int = 0
) -> float:
    """Train ``head`` on cached features with Adam; return the last batch's loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=lr)
    head.train()
    loss_value = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(features.fields), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = collate([features.fields[i] for i in index.tolist()])
            loss = head.loss(_apply(head, features, index, batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
    head.eval()
    return loss_value


@torch.no_grad()
def score_head_on_features(head: TaskHead, features: FrozenFeatures, batch_size: int = 64) -> tuple[float, dict[str, float]]:
    """Score ``head`` on cached features with the task's headline metric."""
    head.eval()
    parts = []
    for start in range(0, len(features.fields), batch_size):
        batch = collate(features.fields[start:start + batch_size])
        outputs = _apply(head, features, slice(start, start + batch_size), batch)
        parts.append(head.collect(outputs, batch))
    return head.score(merge_collected(parts))
