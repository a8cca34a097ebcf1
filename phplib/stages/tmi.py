"""TMI, task-specific modality-independent prompts: learned prefix keys and values at deep blocks.

Each task owns, for every deep block and each modality, ``length`` key vectors and ``length``
value vectors in the attention space of that block. They join the frozen block's own keys and
values (prefix tuning), so the tower's weights never change. In HTS-AT the same prompts join every
attention window of a clip.
"""

from __future__ import annotations

import torch
from torch import nn


class TaskPrompts(nn.Module):
    """Deep prefix prompts of one task: ``{block: (keys, values)}`` per modality."""

    def __init__(
        self,
        blocks: list[int],
        video_widths: dict[int, int],
        audio_widths: dict[int, int],
        length: int = 10,
        visual_only: bool = False,
        init_std: float = 0.02,
    ):
        super().__init__()
        self.blocks = list(blocks)
        self.length = length
        self.visual_only = visual_only
        # [2, L, C]: index 0 stores the prefix keys and index 1 the prefix values.
        self.video = nn.ParameterDict(
            {str(b): nn.Parameter(torch.randn(2, length, video_widths[b]) * init_std) for b in self.blocks}
        )
        self.audio = nn.ParameterDict(
            {}
            if visual_only
            else {str(b): nn.Parameter(torch.randn(2, length, audio_widths[b]) * init_std) for b in self.blocks}
        )

    def prefix(self, block: int, modality: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Return ``(keys [L, C], values [L, C])`` for ``block`` and modality ("video"/"audio"), or None."""
        table = self.video if modality == "video" else self.audio
        prompts = table[str(block)] if str(block) in table else None
        if prompts is None:
            return None
        return prompts[0], prompts[1]
