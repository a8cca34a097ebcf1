"""TMA, the task-shared modality-aggregating adapter at the shallow blocks.

One ``CrossModalAdapter`` updates one modality's tokens from the other modality. Inside a
bottleneck of width ``C / reduction``:

1. a few learnable aggregation tokens attend to the other modality's tokens and summarise them;
2. this modality's tokens attend to those summaries and read them back;
3. three attention maps driven by the other modality reweight this modality's own features:
   channel attention (which channels matter), spatial attention (which tokens matter) and temporal
   attention across the T one-second segments of a clip (which segments matter);
4. the read-back and the three reweighted features are mixed with weights 1, alpha, beta, gamma,
   projected back up, and added to the tokens behind a gate that starts at zero.

The zero gate makes a freshly inserted adapter the identity, so the frozen model's output is
unchanged before training. TMA is shared by all tasks and keeps training on every task.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class CrossModalAdapter(nn.Module):
    """Update target tokens ``[B*T, N, C]`` from source tokens ``[B*T, M, D]``."""

    def __init__(
        self,
        target_dim: int,
        source_dim: int,
        num_tokens: int = 32,
        reduction: int = 8,
        alpha: float = 0.2,
        beta: float = 0.05,
        gamma: float = 0.01,
    ):
        super().__init__()
        width = max(target_dim // reduction, 4)
        self.width = width
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.norm_target = nn.LayerNorm(target_dim)
        self.norm_source = nn.LayerNorm(source_dim)
        self.down_target = nn.Linear(target_dim, width)
        self.down_source = nn.Linear(source_dim, width)
        self.aggregation_tokens = nn.Parameter(torch.randn(num_tokens, width) / math.sqrt(width))
        self.channel = nn.Linear(width, width)  # source summary -> channel gates
        self.spatial = nn.Linear(width, width)  # source summary -> query scoring target tokens
        self.temporal = nn.Linear(width, width)  # source summary -> query scoring segments
        self.up = nn.Linear(width, target_dim)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, target: torch.Tensor, source: torch.Tensor, num_segments: int, return_maps: bool = False):
        """Return the updated target tokens, and with ``return_maps`` also the three attention maps.

        The maps are ``channel [B*T, r]``, ``spatial [B*T, N]`` (mean 1 over tokens) and
        ``temporal [B, T]`` (mean 1 over segments), detached, for inspection.
        """
        scale = self.width ** -0.5
        x = self.down_target(self.norm_target(target))  # [BT, N, r]
        y = self.down_source(self.norm_source(source))  # [BT, M, r]

        # 1. Aggregation tokens summarise the other modality.
        queries = self.aggregation_tokens.unsqueeze(0).expand(y.shape[0], -1, -1)  # [BT, K, r]
        summary = F.scaled_dot_product_attention(queries, y, y)  # [BT, K, r]
        # 2. This modality's tokens read the summary back.
        read_back = F.scaled_dot_product_attention(x, summary, summary)  # [BT, N, r]

        pooled_source = summary.mean(dim=1)  # [BT, r]
        # 3a. Channel attention: one gate per bottleneck channel, from the other modality.
        channel = torch.sigmoid(self.channel(pooled_source)).unsqueeze(1)  # [BT, 1, r]
        # 3b. Spatial attention: which of this modality's tokens the other modality points at.
        token_scores = torch.einsum("bnr,br->bn", x, self.spatial(pooled_source)) * scale
        spatial = token_scores.softmax(dim=1).unsqueeze(-1) * x.shape[1]  # [BT, N, 1], mean 1
        # 3c. Temporal attention: which segments of the clip the other modality finds relevant.
        segment_target = rearrange(x.mean(dim=1), "(b t) r -> b t r", t=num_segments)
        segment_query = rearrange(self.temporal(pooled_source), "(b t) r -> b t r", t=num_segments)
        segment_scores = (segment_target * segment_query).sum(-1) * scale  # [B, T]
        temporal = rearrange(segment_scores.softmax(dim=1) * num_segments, "b t -> (b t) 1 1")

        # 4. Mix, project up and add behind the zero-initialised gate.
        mixed = read_back + self.alpha * x * channel + self.beta * x * spatial + self.gamma * x * temporal
        out = target + self.gate * self.up(F.gelu(mixed))
        if not return_maps:
            return out
        maps = {
            "channel": channel.squeeze(1).detach(),
            "spatial": spatial.squeeze(-1).detach(),
            "temporal": rearrange(temporal, "(b t) 1 1 -> b t", t=num_segments).detach(),
        }
        return out, maps


class SharedAdapter(nn.Module):
    """TMA at every shallow block and insertion point: one adapter per direction."""

    def __init__(
        self,
        blocks: list[int],
        video_widths: dict[int, int],
        audio_widths: dict[int, int],
        after_attention: bool = True,
        after_mlp: bool = True,
        num_tokens: int = 32,
        reduction: int = 8,
        alpha: float = 0.2,
        beta: float = 0.05,
        gamma: float = 0.01,
    ):
        super().__init__()
        self.blocks = list(blocks)
        self.points = [point for point, on in (("attention", after_attention), ("mlp", after_mlp)) if on]
        adapters = {}
        for block in self.blocks:
            for point in self.points:
                options = dict(num_tokens=num_tokens, reduction=reduction, alpha=alpha, beta=beta, gamma=gamma)
                adapters[f"{block}_{point}_video"] = CrossModalAdapter(video_widths[block], audio_widths[block], **options)
                adapters[f"{block}_{point}_audio"] = CrossModalAdapter(audio_widths[block], video_widths[block], **options)
        self.adapters = nn.ModuleDict(adapters)

    def acts_at(self, block: int, point: str) -> bool:
        """Return True when TMA is inserted at ``block`` after ``point`` ("attention" or "mlp")."""
        return block in self.blocks and point in self.points

    def forward(
        self, block: int, point: str, video: torch.Tensor, audio: torch.Tensor, num_segments: int, return_maps: bool = False
    ):
        """Update both modalities from each other; each direction reads the other's tokens before the update.

        With ``return_maps`` a third value maps "video"/"audio" to that direction's attention maps.
        """
        video_adapter = self.adapters[f"{block}_{point}_video"]
        audio_adapter = self.adapters[f"{block}_{point}_audio"]
        if not return_maps:
            return video_adapter(video, audio, num_segments), audio_adapter(audio, video, num_segments)
        new_video, video_maps = video_adapter(video, audio, num_segments, return_maps=True)
        new_audio, audio_maps = audio_adapter(audio, video, num_segments, return_maps=True)
        return new_video, new_audio, {"video": video_maps, "audio": audio_maps}
