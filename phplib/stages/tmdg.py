"""TMDG, task-specific modality-shared dynamic prompt generators at the middle blocks.

Each middle block holds a bank of prompt vectors per modality. A small generator reads the
mean-pooled tokens of both modalities at that block and outputs softmax weights over the bank.
The two modalities share these weights. Each instance's prompts are the weighted mixture, scaled
by a learned gate. The prompts join the block's attention as prefix keys and values, in the ViT and in
every HTS-AT window. Prefix keys and values rather than tokens added to the stream: they leave the
frozen tokens untouched and use the same mechanism as TMI, so the two stages differ only in
where the prompts come from.

Size: a block costs ``2 * bank_size * length * (Cv + Ca)`` bank parameters plus the generator MLP.
With the defaults (bank 8, length 4, hidden 64) a task's generators for blocks 3 and 4 hold
275,730 parameters at paper scale (ViT-B/32 width 768, HTSAT-tiny widths 192 and 384) and
42,770 at toy scale, as ``benchmarks/stage_costs.py`` prints. The reference implementation's generator has about 17.7 M
parameters per middle layer because it maps tokens to whole prompt tensors through wide layers.
phplib mixes a learned bank instead: the prompts still depend on each instance, the per-task
storage stays below 0.5 % of the towers, and the toy scale can afford one generator per task.
"""

from __future__ import annotations

import torch
from einops import einsum
from torch import nn


class DynamicPromptBlock(nn.Module):
    """Bank, generator and gate of one middle block."""

    def __init__(self, video_dim: int, audio_dim: int, bank_size: int, length: int, hidden: int, init_std: float = 0.02):
        super().__init__()
        # [M, 2, L, C]: M bank entries, each with prefix keys (index 0) and values (index 1).
        self.video_bank = nn.Parameter(torch.randn(bank_size, 2, length, video_dim) * init_std)
        self.audio_bank = nn.Parameter(torch.randn(bank_size, 2, length, audio_dim) * init_std)
        self.generator = nn.Sequential(
            nn.LayerNorm(video_dim + audio_dim),
            nn.Linear(video_dim + audio_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, bank_size),
        )
        self.gate = nn.Parameter(torch.ones(1))

    def mixture_weights(self, video_tokens: torch.Tensor, audio_tokens: torch.Tensor) -> torch.Tensor:
        """Softmax weights over the bank per instance: ``[N, M]`` from tokens ``[N, *, C]``."""
        condition = torch.cat([video_tokens.mean(dim=1), audio_tokens.mean(dim=1)], dim=-1)  # [N, Cv + Ca]
        return self.generator(condition).softmax(dim=-1)

    def forward(self, video_tokens: torch.Tensor, audio_tokens: torch.Tensor):
        """Return ``(video_prefix, audio_prefix, weights)``; each prefix is ``(keys [N, L, C], values [N, L, C])``."""
        weights = self.mixture_weights(video_tokens, audio_tokens)  # [N, M]
        video = einsum(weights, self.video_bank, "n m, m two l c -> two n l c") * self.gate
        audio = einsum(weights, self.audio_bank, "n m, m two l c -> two n l c") * self.gate
        return (video[0], video[1]), (audio[0], audio[1]), weights


class TaskDynamicPrompts(nn.Module):
    """All middle-block generators of one task."""

    def __init__(
        self,
        blocks: list[int],
        video_widths: dict[int, int],
        audio_widths: dict[int, int],
        bank_size: int = 8,
        length: int = 4,
        hidden: int = 64,
    ):
        super().__init__()
        self.blocks = list(blocks)
        self.generators = nn.ModuleDict(
            {
                str(b): DynamicPromptBlock(video_widths[b], audio_widths[b], bank_size, length, hidden)
                for b in self.blocks
            }
        )

    def forward(self, block: int, video_tokens: torch.Tensor, audio_tokens: torch.Tensor):
        """Generate the prefixes for ``block`` (see ``DynamicPromptBlock.forward``)."""
        return self.generators[str(block)](video_tokens, audio_tokens)
