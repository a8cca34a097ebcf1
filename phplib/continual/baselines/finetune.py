"""Fine-tuning: PHP's trainable modules, all shared by every task, trained on each task in turn.

The lower bound of the comparison. It is the model of PHP-shared (``stages.task_specific: false``):
one TMA, one TMDG and one TMI that keep training on every task, with nothing to protect what
earlier tasks learned. Heads stay task-specific, because the tasks have different output spaces.

Two variants:

- ``finetune``: only those shared modules and the current head train; the towers stay frozen.
- ``finetune-blocks``: also unfreezes the last ``DEFAULT_UNFROZEN_BLOCKS`` blocks of both towers
  (ViT residual blocks and HTS-AT Swin blocks at the same depths), the usual "partial fine-tuning"
  reference for parameter-efficient methods. Two blocks is phplib's choice, not a value from a paper.

NOTE: checkpoints leave out every ``visual.``/``audio.`` tensor, so a ``finetune-blocks`` run
directory cannot be resumed with the blocks it trained; run it again from the start instead.
"""

from __future__ import annotations

from torch import nn

from phplib.config import RunConfig
from phplib.continual.baselines.common import BaselineLearner, unique_parameters
from phplib.model import count_parameters

DEFAULT_UNFROZEN_BLOCKS = 2  # last blocks of each tower that finetune-blocks trains (phplib's choice)


def finetune_config(config: RunConfig) -> RunConfig:
    """The model config of fine-tuning: PHP's stages at their places, one set shared by all tasks."""
    config.stages.task_specific = False
    return config


class FineTuneLearner(BaselineLearner):
    """Trains the shared TMA, TMDG and TMI and the current head on every task; nothing is kept per task but the head."""

    name = "finetune"

    def __init__(self, model, config, progress: bool = True, unfrozen_blocks: int = 0):
        super().__init__(model, config, progress)
        if model.stage_config.task_specific:
            raise ValueError("fine-tuning shares PHP's stages across tasks; build the model with stages.task_specific=False")
        if not 0 <= unfrozen_blocks <= len(model.pairs):
            raise ValueError(f"unfrozen_blocks must be between 0 and {len(model.pairs)}, got {unfrozen_blocks}")
        self.unfrozen_blocks = unfrozen_blocks
        if unfrozen_blocks:
            self.name = "finetune-blocks"

    def backbone_blocks(self) -> list[nn.Module]:
        """The tower blocks this variant trains: the last ``unfrozen_blocks`` of each tower."""
        if not self.unfrozen_blocks:
            return []
        pairs = self.model.pairs[-self.unfrozen_blocks:]
        blocks: list[nn.Module] = []
        for pair in pairs:
            blocks += [pair.video_block, pair.audio_block]
        # The ViT's final norm and projection and HTS-AT's final norm follow the last block.
        blocks += [self.model.visual.ln_post, self.model.audio.norm]
        return blocks

    def trainable_parameters(self, task_name: str) -> list[nn.Parameter]:
        modules = self.model.shared_modules(task_name) + [self.model.heads[task_name]] + self.backbone_blocks()
        parameters = unique_parameters(modules)
        if self.unfrozen_blocks and self.model.visual.proj is not None:
            parameters.append(self.model.visual.proj)
        return parameters

    def stored_per_task(self, task_name: str) -> int:
        return count_parameters(self.model.heads[task_name])
