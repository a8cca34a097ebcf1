"""AVVP (LLP) head: weakly supervised audio-visual video parsing.

Training uses only video-level labels. Each modality's segment features give per-segment event
probabilities; attention over segments and modalities pools them into video-level probabilities
(multimodal multiple-instance learning), trained with binary cross-entropy. At evaluation a
segment event is predicted for a modality where its segment probability and the video-level
probability both reach 0.5, and scored with segment-level F1 against the per-modality labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phplib.heads.base import TaskHead
from phplib.metrics.tasks import avvp_segment_f1


class AVVPHead(TaskHead):
    """Per-modality segment classifiers with attention pooling to video level."""

    metric_name = "segment F1 (mean of audio, visual, audio-visual)"

    def __init__(self, video_dim: int, audio_dim: int, num_classes: int, threshold: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.threshold = threshold
        self.video_norm = nn.LayerNorm(video_dim)
        self.audio_norm = nn.LayerNorm(audio_dim)
        self.video_classifier = nn.Linear(video_dim, num_classes)
        self.audio_classifier = nn.Linear(audio_dim, num_classes)
        self.video_attention = nn.Linear(video_dim, num_classes)
        self.audio_attention = nn.Linear(audio_dim, num_classes)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        video, audio = self.video_norm(video), self.audio_norm(audio)
        segment_prob = torch.stack(
            [torch.sigmoid(self.audio_classifier(audio)), torch.sigmoid(self.video_classifier(video))], dim=2
        )  # [B, T, 2 (audio, visual), C]
        attention_logits = torch.stack([self.audio_attention(audio), self.video_attention(video)], dim=2)
        # Attention over segments (dim 1) and over modalities (dim 2), per class.
        temporal = attention_logits.softmax(dim=1)
        modality = attention_logits.softmax(dim=2)
        video_prob = (temporal * modality * segment_prob).sum(dim=(1, 2)).clamp(1e-6, 1 - 1e-6)  # [B, C]
        return {"segment_prob": segment_prob, "video_prob": video_prob}

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        return F.binary_cross_entropy(outputs["video_prob"], batch["label"].float())

    def collect(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        video_on = (outputs["video_prob"] >= self.threshold).unsqueeze(1)  # [B, 1, C]
        segment_on = outputs["segment_prob"] >= self.threshold  # [B, T, 2, C]
        return {
            "pred_audio": (segment_on[:, :, 0] & video_on).cpu(),
            "pred_visual": (segment_on[:, :, 1] & video_on).cpu(),
            "gt_audio": batch["seg_audio"].bool().cpu(),
            "gt_visual": batch["seg_visual"].bool().cpu(),
            "video_pred": video_on.squeeze(1).cpu(),
            "video_target": batch["label"].bool().cpu(),
        }

    def score(self, collected: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        f1 = avvp_segment_f1(collected["pred_audio"], collected["pred_visual"], collected["gt_audio"], collected["gt_visual"])
        details = {f"segment_f1_{key}": float(value) for key, value in f1.items()}
        headline = float(f1["type@AV"])
        return headline, details
