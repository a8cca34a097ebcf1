"""CODA-Prompt (Smith et al., CVPR 2023): prompts assembled from components with attention-weighted keys.

Each prompted block holds prompt components ``P_m [L, C]`` with keys ``K_m [D]`` and attention
vectors ``A_m [D]``. A clip's prompt at that block is ``sum_m alpha_m P_m`` with
``alpha_m = cos(query * A_m, K_m)``: every component contributes, weighted per clip, so there
is no discrete selection and the weights are trained end to end with the task loss. Each task
adds its own components; earlier tasks' components, keys and attention vectors are frozen. The
first half of the assembled prompt becomes prefix keys and the second half prefix values.

Heads stay task-specific, because the tasks have different output spaces. Per task the method
stores the head and the task's components, keys and attention vectors.

Defaults and their source, GT-RIPL's CODA-Prompt code: 100 components for a 10-task stream (10
per task) of length 8 at blocks 0-4 (``experiments/cifar-100.sh``, ``prompt_param 100 8 0.1``;
``models/zoo.py``, e_layers [0..4]). Components, keys and attention vectors start orthogonal
(``nn.init.orthogonal_``), and an orthogonality penalty of weight 0.1 x 1e-6 acts on the current
task's parameters (the code scales its penalty by 1e-6).

NOTE: the paper orthogonalises a new task's components against the earlier tasks' ones
(Gram-Schmidt); here each task's components start orthogonal among themselves only.
"""

from __future__ import annotations

import torch
from torch import nn

from phplib.continual.baselines.common import PrefixTable
from phplib.continual.baselines.prompting import PromptPoolLearner, check_length, split_prefix
from phplib.model import count_parameters

DEFAULT_COMPONENTS_PER_TASK = 10
DEFAULT_LENGTH = 8
DEFAULT_BLOCKS = (0, 1, 2, 3, 4)
DEFAULT_ORTHO_WEIGHT = 0.1 * 1e-6


def orthogonal(*shape: int) -> nn.Parameter:
    """Create a parameter whose rows (first dimension) are orthonormal, or as near as the shape allows."""
    weight = torch.empty(shape[0], int(torch.tensor(shape[1:]).prod()))
    nn.init.orthogonal_(weight)
    return nn.Parameter(weight.view(*shape))


def ortho_penalty(weight: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of the rows' Gram matrix from the identity."""
    rows = weight.flatten(1)
    return ((rows @ rows.T - torch.eye(rows.shape[0], device=rows.device)) ** 2).mean()


class TaskComponents(nn.Module):
    """One task's components at every prompted block: keys and attention ``[k, D]``, prompts ``[k, L, C]`` per tower."""

    def __init__(self, blocks, video_widths, audio_widths, query_dim: int, count: int, length: int):
        super().__init__()
        self.keys = nn.ParameterDict({str(b): orthogonal(count, query_dim) for b in blocks})
        self.attention = nn.ParameterDict({str(b): orthogonal(count, query_dim) for b in blocks})
        self.video = nn.ParameterDict({str(b): orthogonal(count, length, video_widths[b]) for b in blocks})
        self.audio = nn.ParameterDict({str(b): orthogonal(count, length, audio_widths[b]) for b in blocks})


class CodaPromptLearner(PromptPoolLearner):
    """CODA-Prompt on the frozen towers."""

    name = "coda-prompt"

    def __init__(
        self,
        model,
        config,
        progress: bool = True,
        components_per_task: int = DEFAULT_COMPONENTS_PER_TASK,
        length: int = DEFAULT_LENGTH,
        blocks: tuple[int, ...] = DEFAULT_BLOCKS,
        ortho_weight: float = DEFAULT_ORTHO_WEIGHT,
    ):
        super().__init__(model, config, progress)
        check_length(length, "coda-prompt")
        if components_per_task < 1:
            raise ValueError(f"coda-prompt: components_per_task must be at least 1, got {components_per_task}")
        self.blocks, self.count, self.length, self.ortho_weight = list(blocks), components_per_task, length, ortho_weight
        self.components = nn.ModuleDict()
        model.add_module("coda_prompt", self.components)
        self.training_task: str | None = None
        self.last_weights: dict[int, torch.Tensor] = {}  # block -> alpha [B, components], of the latest batch

    def begin_task(self, task) -> None:
        components = TaskComponents(
            self.blocks, self.model.video_widths, self.model.audio_widths, self.query_dim, self.count, self.length
        )
        self.components[task.name] = components.to(self.device)
        self.training_task = task.name
        super().begin_task(task)

    def end_task(self, task) -> None:
        self.components[task.name].requires_grad_(False)
        self.training_task = None
        super().end_task(task)

    def prefixes(self, query: torch.Tensor, segments: int, train: bool) -> PrefixTable:
        parts = list(self.components.values())
        table: PrefixTable = {}
        for block in self.blocks:
            key = str(block)
            keys = torch.cat([part.keys[key] for part in parts])  # [M, D]
            attention = torch.cat([part.attention[key] for part in parts])
            attended = torch.einsum("bd,md->bmd", query, attention)  # [B, M, D]
            alpha = torch.einsum(
                "bmd,md->bm", nn.functional.normalize(attended, dim=-1), nn.functional.normalize(keys, dim=-1)
            )  # [B, M], per clip
            self.last_weights[block] = alpha.detach()
            video = torch.einsum("bm,mlc->blc", alpha, torch.cat([part.video[key] for part in parts]))
            audio = torch.einsum("bm,mlc->blc", alpha, torch.cat([part.audio[key] for part in parts]))
            table[block] = (split_prefix(video, segments), split_prefix(audio, segments))
        self.last_selection = self.last_weights[self.blocks[0]]
        if train and self.ortho_weight > 0:
            current = self.components[self.training_task]
            penalty = sum(ortho_penalty(p) for p in current.parameters())
            self.matching_loss = self.ortho_weight * penalty
        return table

    def trainable_parameters(self, task_name: str) -> list[nn.Parameter]:
        return list(self.components[task_name].parameters()) + list(self.model.heads[task_name].parameters())

    def stored_per_task(self, task_name: str) -> int:
        return count_parameters(self.model.heads[task_name]) + count_parameters(self.components[task_name])
