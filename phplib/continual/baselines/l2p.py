"""L2P, Learning to Prompt (Wang et al., CVPR 2022).

A pool of prompts, each with a learnable key. A clip's query is the frozen towers' feature of
that clip (``frozen_query``). The N prompts whose keys are closest to the query in cosine
similarity join attention. A matching term, ``sum over the chosen keys of (1 - cos)``, pulls
those keys towards the queries that chose them. Selection is per clip, at training and at test
time. A batch-wise vote (the most frequent prompts over the batch, one of the options of the
official code) would leak the task identity when a test batch holds clips of one task only.

The pool, keys and prompts are shared by all tasks; heads stay task-specific because the tasks
have different output spaces. Nothing but the head is stored per task.

Defaults and their source: pool size 30, prompt length 20 and the top N = 5 are the "L2P++"
setting of GT-RIPL's CODA-Prompt code (``experiments/cifar-100.sh``; ``models/zoo.py`` sets top-k 5),
which applies L2P's prompts as prefix keys/values at the first block (block 0) rather than as
input tokens. The matching term's weight is 1, and it is averaged over the clips of the batch
(that code sums over the batch; the mean keeps the weight independent of the batch size).
"""

from __future__ import annotations

import torch
from torch import nn

from phplib.continual.baselines.common import PrefixTable, per_segment
from phplib.continual.baselines.prompting import PromptPoolLearner, block_prompts, check_length

DEFAULT_POOL_SIZE = 30
DEFAULT_LENGTH = 20
DEFAULT_TOP_K = 5
DEFAULT_BLOCKS = (0,)


class L2PPool(nn.Module):
    """Keys ``[M, D]`` and prompts ``[M, L, C]`` at each prompted block, for the ViT and HTS-AT."""

    def __init__(self, blocks, video_widths, audio_widths, query_dim: int, pool_size: int, length: int, top_k: int):
        super().__init__()
        check_length(length, "l2p")
        if not 1 <= top_k <= pool_size:
            raise ValueError(f"l2p: top_k must be between 1 and the pool size {pool_size}, got {top_k}")
        self.blocks = list(blocks)
        self.top_k = top_k
        self.keys = nn.Parameter(torch.rand(pool_size, query_dim))  # uniform(0, 1), as GT-RIPL's code draws keys
        self.video = block_prompts(self.blocks, video_widths, (pool_size, length))
        self.audio = block_prompts(self.blocks, audio_widths, (pool_size, length))

    def select(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per clip, the indices of the ``top_k`` closest keys ``[B, N]`` and every key's cosine similarity ``[B, M]``."""
        similarity = nn.functional.normalize(query, dim=-1) @ nn.functional.normalize(self.keys, dim=-1).T
        return similarity.topk(self.top_k, dim=1).indices, similarity

    def prefixes(self, indices: torch.Tensor, segments: int) -> PrefixTable:
        """Build the prefix table of the chosen prompts ``indices [B, N]``: their key halves in a row, then their value halves."""
        table = {}
        for block in self.blocks:
            table[block] = tuple(
                chosen_prefix(prompts[str(block)][indices], segments) for prompts in (self.video, self.audio)
            )
        return table


def chosen_prefix(chosen: torch.Tensor, segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen prompts ``[B, N, L, C]`` -> (keys, values), each ``[B * T, N * L / 2, C]``."""
    half = chosen.shape[2] // 2
    keys = per_segment(chosen[:, :, :half].flatten(1, 2), segments)
    values = per_segment(chosen[:, :, half:].flatten(1, 2), segments)
    return keys, values


class L2PLearner(PromptPoolLearner):
    """L2P on the frozen towers: a shared prompt pool with per-clip key-query selection."""

    name = "l2p"

    def __init__(
        self,
        model,
        config,
        progress: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
        length: int = DEFAULT_LENGTH,
        top_k: int = DEFAULT_TOP_K,
        blocks: tuple[int, ...] = DEFAULT_BLOCKS,
    ):
        super().__init__(model, config, progress)
        pool = L2PPool(blocks, model.video_widths, model.audio_widths, self.query_dim, pool_size, length, top_k)
        model.add_module("l2p", pool.to(self.device))
        self.pool = pool

    def prefixes(self, query: torch.Tensor, segments: int, train: bool) -> PrefixTable:
        indices, similarity = self.pool.select(query)
        self.last_selection = indices.detach()
        if train:
            self.matching_loss = (1.0 - similarity.gather(1, indices)).sum(dim=1).mean()
        return self.pool.prefixes(indices, segments)

    def trainable_parameters(self, task_name: str) -> list[nn.Parameter]:
        return list(self.pool.parameters()) + list(self.model.heads[task_name].parameters())
