"""The contract every task head follows."""

from __future__ import annotations

import torch
from torch import nn


class TaskHead(nn.Module):
    """Maps per-segment video and audio features to a task's outputs, loss and score.

    ``forward(video [B, T, Dv], audio [B, T, Da], batch)`` returns the raw outputs;
    ``loss(outputs, batch)`` returns a scalar. ``collect(outputs, batch)`` returns CPU tensors of
    predictions and targets for one batch. ``score(collected)`` takes the concatenation of every
    batch's ``collect`` and returns the headline score in [0, 1] and a dict of details.
    """

    metric_name: str = "score"
    # True when forward also takes ``video_tokens`` [B, T, N, C], the ViT's final patch tokens.
    uses_video_tokens: bool = False

    def loss(self, outputs, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def collect(self, outputs, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def score(self, collected: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        raise NotImplementedError


def fuse_features(video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Concatenate per-segment features of both modalities: ``[B, T, Dv + Da]``."""
    return torch.cat([video, audio], dim=-1)
