"""LwF, Learning without Forgetting (Li and Hoiem, ECCV 2016; TPAMI 2017).

Before training a new task, LwF records what every earlier task's head outputs on the new
task's training inputs (the recorded responses Y_o of their Algorithm 1). While the new task
trains, a distillation term keeps those heads' outputs on the same inputs close to the
recording. The trainable modules are fine-tuning's (PHP's TMA, TMDG and TMI, shared by all
tasks); heads stay task-specific because the tasks have different output spaces, and the
earlier heads stay frozen, so only the shared modules can move their outputs.

Defaults and their source (Li and Hoiem 2016, section 3, "Training"): temperature T = 2 and loss
weight lambda_o = 1. The distillation term is a divergence, not the paper's cross-entropy with
the recorded probabilities: the two differ by the entropy of the recording, which has no
gradient, so training is the same and the term is exactly zero when nothing has changed.

- single-label heads (AVE, MUSIC-AVQA): KL(softmax(recorded / T) || softmax(new / T)), times T^2;
- multi-label and mask heads (LLP, AVSBench): the binary KL between recorded and new probabilities.

NOTE: a MUSIC-AVQA head needs a question with each clip, which clips of another task lack, so an
earlier AVQA head is left out of the distillation (the log says so). In the default stream
AVE -> LLP -> AVQA the AVQA head is the last one and is never distilled.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from phplib.continual.baselines.common import IndexedData, deduplicate_clips
from phplib.continual.baselines.finetune import FineTuneLearner
from phplib.continual.learner import collate, to_device
from phplib.heads.avqa import AVQAHead
from phplib.heads.avs import AVSHead

logger = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 2.0  # Li and Hoiem 2016, section 3
DEFAULT_WEIGHT = 1.0  # lambda_o, Li and Hoiem 2016, section 3


def _binary_kl(recorded: torch.Tensor, new: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean binary KL(recorded || new) between two tensors of probabilities."""
    p = recorded.clamp(eps, 1 - eps)
    q = new.clamp(eps, 1 - eps)
    return (p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() - (1 - q).log())).mean()


def distillation_loss(head, new_outputs, recorded_outputs, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """Divergence of ``head``'s new outputs from its recorded ones; zero when they are equal."""
    if isinstance(new_outputs, dict):  # LLP: probabilities per segment and per video
        return sum(_binary_kl(recorded_outputs[key], new_outputs[key]) for key in sorted(new_outputs))
    if isinstance(head, AVSHead):  # mask logits
        return _binary_kl(torch.sigmoid(recorded_outputs), torch.sigmoid(new_outputs))
    classes = new_outputs.shape[-1]
    recorded = F.log_softmax(recorded_outputs.reshape(-1, classes) / temperature, dim=-1)
    new = F.log_softmax(new_outputs.reshape(-1, classes) / temperature, dim=-1)
    return F.kl_div(new, recorded, log_target=True, reduction="batchmean") * temperature**2


def _rows(outputs, index: torch.Tensor):
    if isinstance(outputs, dict):
        return {key: value[index] for key, value in outputs.items()}
    return outputs[index]


def _concatenate(parts: list):
    if isinstance(parts[0], dict):
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return torch.cat(parts)


class LwFLearner(FineTuneLearner):
    """Fine-tuning plus distillation on earlier heads' recorded outputs for the new task's inputs."""

    name = "lwf"

    def __init__(self, model, config, progress: bool = True, temperature: float = DEFAULT_TEMPERATURE, weight: float = DEFAULT_WEIGHT):
        super().__init__(model, config, progress)
        self.temperature = temperature
        self.weight = weight
        self.recorded: dict[str, object] = {}  # earlier task -> its head's outputs on every item of the current task
        self._earlier_outputs: dict[str, object] | None = None  # the current batch's outputs of the recorded heads

    def distilled_tasks(self, data: Dataset) -> list[str]:
        """Earlier tasks whose heads can run on ``data``'s items."""
        has_question = bool(len(data)) and "question" in data[0]
        tasks = []
        for name in self.seen_tasks:
            if isinstance(self.model.heads[name], AVQAHead) and not has_question:
                logger.info("lwf: the %s head needs questions, which this task's clips lack; it is not distilled", name)
                continue
            tasks.append(name)
        return tasks

    @torch.no_grad()
    def record(self, data: Dataset) -> None:
        """Record every earlier head's outputs on all of ``data`` with the model as it is now."""
        self.recorded = {}
        tasks = self.distilled_tasks(data)
        if not tasks:
            return
        self.model.eval()
        loader = DataLoader(IndexedData(data), batch_size=self.config.eval_batch_size, shuffle=False, collate_fn=collate)
        parts: dict[str, list] = {name: [] for name in tasks}
        for batch in loader:
            outputs = self.heads_outputs(to_device(batch, self.device), tasks)
            for name in tasks:
                parts[name].append(outputs[name])
        self.recorded = {name: _concatenate(chunks) for name, chunks in parts.items()}

    def train_task(self, task, data: Dataset):
        self.record(data)
        return super().train_task(task, data)

    def heads_outputs(self, batch: dict, names: list[str]) -> dict[str, object]:
        """Outputs of several heads from one pass through the towers (all tasks share the stages here)."""
        frames, spectrogram, expand = deduplicate_clips(batch, batch["frames"], batch["spectrogram"])
        video, audio, details = self.model.encode(frames, spectrogram, names[0], return_details=True)
        tokens = details["video_tokens"]
        if expand is not None:
            video, audio, tokens = video[expand], audio[expand], tokens[expand]
        outputs = {}
        for name in names:
            head = self.model.heads[name]
            outputs[name] = head(video, audio, batch, video_tokens=tokens) if head.uses_video_tokens else head(video, audio, batch)
        return outputs

    def outputs(self, task_name: str, batch: dict, train: bool = False):
        if not (train and self.recorded):
            return super().outputs(task_name, batch, train)
        outputs = self.heads_outputs(batch, [task_name, *self.recorded])
        self._earlier_outputs = {name: outputs[name] for name in self.recorded}
        return outputs[task_name]

    def distillation(self, batch: dict, earlier_outputs: dict[str, object] | None = None) -> torch.Tensor | None:
        """The distillation term of one batch: the sum over recorded heads, or None when there are none."""
        if not self.recorded:
            return None
        if earlier_outputs is None:
            earlier_outputs = self.heads_outputs(batch, list(self.recorded))
        index = batch["index"].to(self.device)
        total = 0.0
        for name, recorded in self.recorded.items():
            head = self.model.heads[name]
            total = total + distillation_loss(head, earlier_outputs[name], _rows(recorded, index), self.temperature)
        return total

    def regularizer(self, task, batch: dict, outputs) -> torch.Tensor | None:
        term = self.distillation(batch, self._earlier_outputs)
        return None if term is None else self.weight * term
