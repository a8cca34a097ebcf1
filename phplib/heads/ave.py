"""AVE head: per-segment event class or background, scored by segment accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phplib.heads.base import TaskHead, fuse_features
from phplib.metrics.tasks import ave_segment_accuracy


class AVEHead(TaskHead):
    """A linear classifier over the fused features of each segment into C classes + background."""

    metric_name = "segment accuracy"

    def __init__(self, video_dim: int, audio_dim: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.LayerNorm(video_dim + audio_dim)
        self.classifier = nn.Linear(video_dim + audio_dim, num_classes + 1)  # last index = background

    def forward(self, video: torch.Tensor, audio: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.classifier(self.norm(fuse_features(video, audio)))  # [B, T, C + 1]

    def loss(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(outputs.flatten(0, 1), batch["label"].flatten())

    def collect(self, outputs: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        return {"pred": outputs.argmax(-1).cpu(), "target": batch["label"].cpu()}

    def score(self, collected: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        accuracy = float(ave_segment_accuracy(collected["pred"], collected["target"]))
        return accuracy, {"segment_accuracy": accuracy}
