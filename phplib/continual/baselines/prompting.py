"""Pieces the three prompt-pool baselines share: prompt tensors per block, prefix halves, the learner skeleton.

A prompt of length L at one block is stored as ``[L, C]`` in the block's width. Its first L/2
vectors become prefix keys and its last L/2 prefix values of that block's attention, in the ViT
and in every HTS-AT window of the clip. GT-RIPL's CODA-Prompt code (``models/zoo.py``) splits
prompts the same way, for its L2P and DualPrompt re-implementations too.
"""

from __future__ import annotations

import torch
from torch import nn

from phplib.continual.baselines.common import BaselineLearner, PrefixTable, apply_head, frozen_query, per_segment, prompted_encode

PROMPT_INIT_STD = 0.02  # the init of PHP's TMI prompts, so every method starts from the same near-identity prefix


def block_prompts(blocks: list[int], widths: dict[int, int], shape: tuple[int, ...], init_std: float = PROMPT_INIT_STD) -> nn.ParameterDict:
    """Create one parameter ``[*shape, C_block]`` per block, drawn from N(0, init_std^2)."""
    return nn.ParameterDict({str(b): nn.Parameter(torch.randn(*shape, widths[b]) * init_std) for b in blocks})


def split_prefix(prompts: torch.Tensor, segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip prompts ``[B, L, C]`` -> (keys, values), each ``[B * T, L / 2, C]``."""
    half = prompts.shape[1] // 2
    return per_segment(prompts[:, :half], segments), per_segment(prompts[:, half:], segments)


def check_length(length: int, method: str) -> None:
    if length < 2 or length % 2:
        raise ValueError(f"{method}: prompt length must be even and at least 2 (half keys, half values), got {length}")


class PromptPoolLearner(BaselineLearner):
    """A learner whose prompts are chosen per clip from a query on the frozen towers' features.

    Subclasses implement ``prefixes(query, segments, train)``, which returns the prefix table for
    a batch of queries ``[B, D]`` and may set ``self.matching_loss`` (the key-query term). The
    prompt modules are registered on the model, so checkpoints carry them.
    """

    matching_weight = 1.0

    def __init__(self, model, config, progress: bool = True):
        super().__init__(model, config, progress)
        if any(model.placement.blocks(stage) for stage in "SMD"):
            raise ValueError(f"{self.name} runs on the frozen towers alone; build the model with stages.order='---'")
        self.query_dim = model.video_dim + model.audio_dim
        self.matching_loss: torch.Tensor | None = None
        self.last_selection: torch.Tensor | None = None  # the latest batch's selection, for inspection and tests

    def prefixes(self, query: torch.Tensor, segments: int, train: bool) -> PrefixTable:
        raise NotImplementedError

    def encode(self, frames: torch.Tensor, spectrogram: torch.Tensor, with_tokens: bool = False, train: bool = False):
        """Choose each clip's prompts from its own frozen query, then run the towers with them."""
        query = frozen_query(self.model, frames, spectrogram)  # [B, D]
        table = self.prefixes(query, frames.shape[1], train)
        return prompted_encode(self.model, frames, spectrogram, table, with_tokens)

    def outputs(self, task_name: str, batch: dict, train: bool = False):
        self.matching_loss = None
        return apply_head(self.model, task_name, batch, lambda f, s, tokens: self.encode(f, s, tokens, train))

    def regularizer(self, task, batch: dict, outputs) -> torch.Tensor | None:
        return None if self.matching_loss is None else self.matching_weight * self.matching_loss
