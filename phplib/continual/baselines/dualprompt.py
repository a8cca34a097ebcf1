"""DualPrompt (Wang et al., ECCV 2022): a G(eneral)-prompt shared by all tasks and one E(xpert)-prompt per task.

G-prompts sit at the shallow blocks and train on every task. E-prompts sit at the blocks after
them; task t owns E-prompt t and a key. While task t trains, its own E-prompt is used (the task
identity is known during training) and a matching term ``1 - cos(query, key_t)`` pulls its key
towards the task's queries. At test time each clip picks the E-prompt whose key is closest to its
own frozen query (top-1, per clip), among the tasks learned so far. Keys of tasks not yet learned
are untrained, so they take no part. Both prompts join attention as prefix keys/values.

Heads stay task-specific, because the tasks have different output spaces. Per task the method
stores the head, the E-prompt and its key.

Defaults and their source: G-prompts of length 6 at blocks 0-1 and E-prompts of length 20 at
blocks 2-4, one E-prompt per task, top-1 selection, as GT-RIPL's CODA-Prompt code runs DualPrompt
(``experiments/cifar-100.sh``, ``prompt_param 10 20 6`` for 10 tasks; ``models/zoo.py`` sets
g_layers [0, 1], e_layers [2, 3, 4], top_k 1). Matching weight 1, averaged over the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from phplib.continual.baselines.common import PrefixTable
from phplib.continual.baselines.prompting import PromptPoolLearner, block_prompts, check_length, split_prefix
from phplib.model import count_parameters

DEFAULT_G_LENGTH = 6
DEFAULT_E_LENGTH = 20
DEFAULT_G_BLOCKS = (0, 1)
DEFAULT_E_BLOCKS = (2, 3, 4)


class ExpertPrompt(nn.Module):
    """One task's E-prompt: a key ``[D]`` and a prompt ``[L, C]`` per E-block and tower."""

    def __init__(self, blocks, video_widths, audio_widths, query_dim: int, length: int):
        super().__init__()
        self.key = nn.Parameter(torch.rand(query_dim))  # uniform(0, 1), as GT-RIPL's code draws keys
        self.video = block_prompts(blocks, video_widths, (length,))
        self.audio = block_prompts(blocks, audio_widths, (length,))


class DualPromptLearner(PromptPoolLearner):
    """DualPrompt on the frozen towers."""

    name = "dualprompt"

    def __init__(
        self,
        model,
        config,
        progress: bool = True,
        g_length: int = DEFAULT_G_LENGTH,
        e_length: int = DEFAULT_E_LENGTH,
        g_blocks: tuple[int, ...] = DEFAULT_G_BLOCKS,
        e_blocks: tuple[int, ...] = DEFAULT_E_BLOCKS,
    ):
        super().__init__(model, config, progress)
        check_length(g_length, "dualprompt G-prompt")
        check_length(e_length, "dualprompt E-prompt")
        if set(g_blocks) & set(e_blocks):
            raise ValueError(f"dualprompt: G-blocks {g_blocks} and E-blocks {e_blocks} must not overlap")
        self.g_blocks, self.e_blocks, self.e_length = list(g_blocks), list(e_blocks), e_length
        prompts = nn.Module()
        prompts.g_video = block_prompts(self.g_blocks, model.video_widths, (g_length,))
        prompts.g_audio = block_prompts(self.g_blocks, model.audio_widths, (g_length,))
        prompts.experts = nn.ModuleDict()
        model.add_module("dualprompt", prompts.to(self.device))
        self.prompts = prompts
        self.training_task: str | None = None

    def begin_task(self, task) -> None:
        expert = ExpertPrompt(self.e_blocks, self.model.video_widths, self.model.audio_widths, self.query_dim, self.e_length)
        self.prompts.experts[task.name] = expert.to(self.device)
        self.training_task = task.name
        super().begin_task(task)

    def end_task(self, task) -> None:
        self.prompts.experts[task.name].requires_grad_(False)
        self.training_task = None
        super().end_task(task)

    def prefixes(self, query: torch.Tensor, segments: int, train: bool) -> PrefixTable:
        names = list(self.prompts.experts)
        keys = torch.stack([self.prompts.experts[name].key for name in names])  # [tasks, D]
        similarity = nn.functional.normalize(query, dim=-1) @ nn.functional.normalize(keys, dim=-1).T  # [B, tasks]
        if train:
            chosen = torch.full((query.shape[0],), names.index(self.training_task), device=query.device)
            self.matching_loss = (1.0 - similarity[:, chosen[0]]).mean()
        else:
            chosen = similarity.argmax(dim=1)  # per clip
        self.last_selection = chosen.detach()

        table: PrefixTable = {}
        batch = query.shape[0]
        for block in self.g_blocks:
            table[block] = tuple(
                split_prefix(prompts[str(block)].unsqueeze(0).expand(batch, -1, -1), segments)
                for prompts in (self.prompts.g_video, self.prompts.g_audio)
            )
        for block in self.e_blocks:
            video = torch.stack([self.prompts.experts[name].video[str(block)] for name in names])[chosen]  # [B, L, C]
            audio = torch.stack([self.prompts.experts[name].audio[str(block)] for name in names])[chosen]
            table[block] = (split_prefix(video, segments), split_prefix(audio, segments))
        return table

    def trainable_parameters(self, task_name: str) -> list[nn.Parameter]:
        general = list(self.prompts.g_video.parameters()) + list(self.prompts.g_audio.parameters())
        return general + list(self.prompts.experts[task_name].parameters()) + list(self.model.heads[task_name].parameters())

    def stored_per_task(self, task_name: str) -> int:
        return count_parameters(self.model.heads[task_name]) + count_parameters(self.prompts.experts[task_name])
