"""Task-agnostic inference for PHP: predict each clip's task from the input, then score with that prediction.

PHP picks a task's TMDG, TMI and head by the task identity. Without it, the identity must come from
the clip. PHP has no prompt keys to match, so phplib predicts the task with a nearest-prototype
classifier over the frozen towers' features (``frozen_query``, the query the prompt baselines use):

- each task stores one prototype, the normalised mean query of its training clips, computed when
  the task ends. That is ``Dv + Da`` numbers per task and no training;
- the towers are frozen, so a prototype never drifts and the classifier cannot forget;
- a clip goes to the task whose prototype is closest in cosine similarity, among the tasks
  learned so far.

A linear task classifier would need the earlier tasks' features when a new task arrives, which
is replay, and prompt-key matching would need keys PHP does not have.

The tasks have different output spaces (AVE classes, LLP labels, MUSIC-AVQA answers), so a clip
sent to another task's modules gets that task's kind of prediction, which cannot be scored
against its own labels. A misrouted clip therefore scores as wrong: its prediction is replaced by
one that earns nothing under its task's metric. That is class -1 (no class) for AVE segments and
MUSIC-AVQA answers, and the complement of the ground truth for LLP events and AVSBench masks.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from phplib.continual.baselines.common import frozen_query
from phplib.continual.learner import PHPLearner, collate, merge_collected, to_device
from phplib.heads.avqa import AVQAHead
from phplib.heads.ave import AVEHead
from phplib.heads.avs import AVSHead
from phplib.heads.avvp import AVVPHead

logger = logging.getLogger(__name__)


class TaskPrototypes:
    """One normalised mean frozen query per task; predicts the nearest task by cosine similarity."""

    def __init__(self):
        self.names: list[str] = []
        self.vectors: list[torch.Tensor] = []

    def add(self, name: str, queries: torch.Tensor) -> None:
        """Store the prototype of task ``name`` from its training queries ``[N, D]``."""
        if name in self.names:
            raise ValueError(f"task {name!r} already has a prototype")
        self.names.append(name)
        self.vectors.append(nn.functional.normalize(queries.mean(dim=0), dim=0))

    def predict(self, queries: torch.Tensor) -> torch.Tensor:
        """Index into ``names`` of each query's nearest prototype, ``[B]``."""
        if not self.names:
            raise ValueError("no task prototype yet; a task must end before task identities can be predicted")
        prototypes = torch.stack(self.vectors).to(queries.device)  # [tasks, D]
        return (nn.functional.normalize(queries, dim=-1) @ prototypes.T).argmax(dim=1)


def score_misrouted_as_wrong(head, collected: dict, wrong: torch.Tensor, batch: dict) -> dict:
    """Replace the predictions of the clips with ``wrong[b]`` True by ones their task's metric scores zero."""
    collected = dict(collected)
    wrong = wrong.cpu()
    if isinstance(head, (AVEHead, AVQAHead)):
        pred = collected["pred"].clone()
        pred[wrong] = -1  # no class: never equal to a target
        collected["pred"] = pred
    elif isinstance(head, AVVPHead):
        for predicted, truth in (("pred_audio", "gt_audio"), ("pred_visual", "gt_visual"), ("video_pred", "video_target")):
            values = collected[predicted].clone()
            values[wrong] = ~collected[truth][wrong]  # every segment and class wrong: F1 0
            collected[predicted] = values
    elif isinstance(head, AVSHead):
        valid = batch["mask_valid"].bool().cpu() if "mask_valid" in batch else torch.ones(wrong.shape[0], batch["mask"].shape[1], dtype=torch.bool)
        frames_wrong = wrong[:, None].expand_as(valid)[valid]  # the rows of collected["pred"] that belong to misrouted clips
        pred = collected["pred"].clone()
        pred[frames_wrong] = ~collected["target"][frames_wrong]  # IoU 0
        collected["pred"] = pred
    else:
        raise NotImplementedError(f"no rule to score a misrouted clip for head {type(head).__name__}")
    return collected


class TaskInferencePHPLearner(PHPLearner):
    """PHP's learner that also scores every evaluation with the task identity predicted from the input.

    ``evaluate`` returns the score with the given identity, exactly as ``PHPLearner`` does, so R is
    unchanged. Beside it the learner fills ``predicted_matrix`` (R with predicted identities) and
    ``task_id_accuracy`` (per cell, the share of test clips routed to their own task).
    """

    def __init__(self, model, config, progress: bool = True, num_tasks: int | None = None):
        super().__init__(model, config, progress)
        self.prototypes = TaskPrototypes()
        self.seen_tasks: list[str] = []
        self.task_seconds: dict[str, float] = {}
        size = num_tasks or 0
        self.predicted_matrix = np.full((size, size), np.nan)
        self.task_id_accuracy = np.full((size, size), np.nan)
        self._pending_queries: torch.Tensor | None = None

    def _grow(self) -> None:
        size = len(self.seen_tasks)
        if self.predicted_matrix.shape[0] < size:
            for attribute in ("predicted_matrix", "task_id_accuracy"):
                grown = np.full((size, size), np.nan)
                old = getattr(self, attribute)
                grown[: old.shape[0], : old.shape[1]] = old
                setattr(self, attribute, grown)

    @torch.no_grad()
    def queries(self, data: Dataset) -> torch.Tensor:
        """Frozen queries ``[N, D]`` of every item of a prepared split."""
        loader = DataLoader(data, batch_size=self.config.eval_batch_size, shuffle=False, collate_fn=collate)
        parts = [frozen_query(self.model, b["frames"].to(self.device), b["spectrogram"].to(self.device)).cpu() for b in loader]
        return torch.cat(parts)

    def train_task(self, task, data: Dataset):
        result = super().train_task(task, data)
        self.task_seconds[task.name] = result.seconds
        self._pending_queries = self.queries(data)
        return result

    def end_task(self, task) -> None:
        super().end_task(task)
        if self._pending_queries is not None:
            self.prototypes.add(task.name, self._pending_queries)
            self._pending_queries = None
        self.seen_tasks.append(task.name)
        self._grow()

    @torch.no_grad()
    def evaluate(self, task_name: str, data: Dataset) -> tuple[float, dict[str, float]]:
        if task_name not in self.prototypes.names:  # a resumed run rebuilds tasks without training them
            return super().evaluate(task_name, data)
        self.model.eval()
        loader = DataLoader(data, batch_size=self.config.eval_batch_size, shuffle=False, collate_fn=collate)
        head = self.model.heads[task_name]
        own = self.prototypes.names.index(task_name)
        given_identity, predicted_identity, routed = [], [], []
        for batch in tqdm(loader, desc=f"evaluate {task_name}", disable=not self.progress, leave=False):
            batch = to_device(batch, self.device)
            collected = head.collect(self.model(batch["frames"], batch["spectrogram"], task_name, batch), batch)
            wrong = self.prototypes.predict(frozen_query(self.model, batch["frames"], batch["spectrogram"])) != own
            given_identity.append(collected)
            predicted_identity.append(score_misrouted_as_wrong(head, collected, wrong, batch))
            routed.append(~wrong.cpu())
        row, column = len(self.seen_tasks) - 1, own
        predicted_score, _ = head.score(merge_collected(predicted_identity))
        self.predicted_matrix[row, column] = predicted_score
        self.task_id_accuracy[row, column] = float(torch.cat(routed).float().mean())
        logger.info(
            "after %s: %s with predicted task identity %.4f (task identified for %.1f %% of clips)",
            self.seen_tasks[-1], task_name, predicted_score, 100 * self.task_id_accuracy[row, column],
        )
        return head.score(merge_collected(given_identity))
