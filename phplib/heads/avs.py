"""AVS-S4 head: segment the sounding object in each frame, from ViT patch tokens conditioned on audio.

Patch tokens are projected to a small width and modulated by the segment's audio feature
(feature-wise scale and shift), and an audio-token similarity map is appended as an extra channel,
so the decoder sees where the frame matches what is heard. Three 3x3 convolutions with 2x
upsampling between them, then bilinear upsampling, bring the patch grid to the frame size. The
loss is binary cross-entropy plus a soft IoU loss, over the frames that have a ground-truth mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from phplib.heads.base import TaskHead


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return 1 - soft IoU per frame ``[N]`` from mask logits and binary targets ``[N, H, W]``."""
    probability = torch.sigmoid(logits)
    intersection = (probability * target).sum(dim=(-2, -1))
    union = (probability + target - probability * target).sum(dim=(-2, -1))
    return 1.0 - (intersection + 1.0) / (union + 1.0)


class AVSHead(TaskHead):
    """Audio-conditioned mask decoder over ViT patch tokens."""

    metric_name = "mIoU"
    uses_video_tokens = True

    def __init__(self, token_dim: int, audio_dim: int, mask_size: int, hidden: int = 32, threshold: float = 0.5):
        super().__init__()
        self.mask_size = mask_size
        self.threshold = threshold
        self.token_projection = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, hidden))
        self.audio_film = nn.Sequential(nn.LayerNorm(audio_dim), nn.Linear(audio_dim, 2 * hidden))
        self.audio_query = nn.Linear(audio_dim, hidden)
        self.decoder = nn.ModuleList(
            [
                nn.Conv2d(hidden + 1, hidden, 3, padding=1),
                nn.Conv2d(hidden, hidden // 2, 3, padding=1),
                nn.Conv2d(hidden // 2, hidden // 2, 3, padding=1),
            ]
        )
        self.output = nn.Conv2d(hidden // 2, 1, 1)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, batch: dict, video_tokens: torch.Tensor | None = None):
        if video_tokens is None:
            raise ValueError("AVSHead needs the ViT patch tokens; call it through PHPModel.forward")
        batch_size, segments, patches, _ = video_tokens.shape
        side = int(math.isqrt(patches))
        tokens = self.token_projection(video_tokens)  # [B, T, N, h]
        scale, shift = self.audio_film(audio).chunk(2, dim=-1)  # [B, T, h] each
        tokens = tokens * (1 + scale.unsqueeze(2)) + shift.unsqueeze(2)
        similarity = torch.einsum("btnh,bth->btn", tokens, self.audio_query(audio)) / tokens.shape[-1] ** 0.5
        grid = torch.cat([tokens, similarity.unsqueeze(-1)], dim=-1)  # [B, T, N, h + 1]
        x = rearrange(grid, "b t (gh gw) c -> (b t) c gh gw", gh=side, gw=side)
        for index, convolution in enumerate(self.decoder):
            x = F.gelu(convolution(x))
            if index < len(self.decoder) - 1:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.interpolate(self.output(x), size=(self.mask_size, self.mask_size), mode="bilinear", align_corners=False)
        return rearrange(x, "(b t) 1 h w -> b t h w", b=batch_size, t=segments)  # mask logits

    def loss(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        target = batch["mask"].float()
        valid = batch["mask_valid"].bool() if "mask_valid" in batch else torch.ones(target.shape[:2], dtype=torch.bool)
        logits, target = outputs[valid], target[valid]  # [frames with a mask, H, W]
        if logits.numel() == 0:
            return outputs.sum() * 0.0
        return F.binary_cross_entropy_with_logits(logits, target) + soft_iou_loss(logits, target).mean()

    def collect(self, outputs: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        valid = batch["mask_valid"].bool() if "mask_valid" in batch else torch.ones(outputs.shape[:2], dtype=torch.bool)
        return {
            "pred": (torch.sigmoid(outputs[valid]) >= self.threshold).cpu(),
            "target": batch["mask"][valid].bool().cpu(),
        }

    def score(self, collected: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        from phplib.metrics.tasks import avs_fscore, avs_miou

        miou = float(avs_miou(collected["pred"], collected["target"]))
        fscore = float(avs_fscore(collected["pred"], collected["target"]))
        return miou, {"mIoU": miou, "F-score": fscore}
