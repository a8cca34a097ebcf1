"""EWC, Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017).

After each finished task, EWC estimates the diagonal of the Fisher information of the shared
parameters on that task's training data and stores it with the parameters' values (the anchor).
While later tasks train, a quadratic penalty pulls each shared parameter back towards every
earlier anchor, weighted by its Fisher value:

    penalty = lambda / 2 * sum_k sum_j F_k[j] * (theta[j] - theta*_k[j])^2

with one term per finished task k, as the paper keeps one penalty per earlier task when a third
task follows. The shared parameters are fine-tuning's: PHP's TMA, TMDG and TMI,
one set for all tasks. Heads stay task-specific (the tasks have different output spaces) and are
frozen when their task ends, so they need no penalty.

Defaults: ``lambda = 100``. It is phplib's choice, because the paper tunes lambda per experiment and
publishes none that transfers to this stream. Each finished task stores a Fisher vector and an
anchor, which is why EWC's storage per task is twice the shared parameter count plus the head.

NOTE: the Fisher is estimated from the squared gradient of each mini-batch's mean loss (the
"empirical Fisher" with batches), not from per-sample gradients of sampled labels. It costs one
pass over the training data, and on batches it underestimates the per-sample Fisher by about the
batch size, so lambda absorbs that factor.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from phplib.continual.baselines.common import training_loader, unique_parameters
from phplib.continual.baselines.finetune import FineTuneLearner
from phplib.continual.learner import to_device
from phplib.model import count_parameters

DEFAULT_LAMBDA = 100.0  # phplib's choice; see the module docstring


class EWCLearner(FineTuneLearner):
    """Fine-tuning plus a Fisher-weighted quadratic penalty towards each finished task's shared parameters."""

    name = "ewc"

    def __init__(self, model, config, progress: bool = True, ewc_lambda: float = DEFAULT_LAMBDA):
        super().__init__(model, config, progress)
        self.ewc_lambda = ewc_lambda
        # task -> (Fisher diagonal, anchor), each a list of tensors in the order of shared_parameters()
        self.consolidated: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    def shared_parameters(self, task_name: str) -> list[nn.Parameter]:
        """The parameters every task shares, the ones the penalty protects."""
        return unique_parameters(self.model.shared_modules(task_name))

    def penalty(self, task_name: str) -> torch.Tensor:
        """lambda / 2 * sum over finished tasks of F * (theta - anchor)^2; zero at every anchor, positive away from it."""
        parameters = self.shared_parameters(task_name)
        total = torch.zeros((), device=self.device)
        for fisher, anchor in self.consolidated.values():
            for parameter, weight, value in zip(parameters, fisher, anchor):
                total = total + (weight * (parameter - value) ** 2).sum()
        return 0.5 * self.ewc_lambda * total

    def regularizer(self, task, batch: dict, outputs) -> torch.Tensor | None:
        return self.penalty(task.name) if self.consolidated else None

    def estimate_fisher(self, task, data: Dataset) -> list[torch.Tensor]:
        """The diagonal empirical Fisher of the shared parameters on ``data``: the mean over batches of squared gradients."""
        parameters = self.shared_parameters(task.name)
        fisher = [torch.zeros_like(parameter) for parameter in parameters]
        head = self.model.heads[task.name]
        batches = 0
        for batch in training_loader(data, self.config):
            batch = to_device(batch, self.device)
            loss = head.loss(self.outputs(task.name, batch), batch)
            gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
            for total, gradient in zip(fisher, gradients):
                if gradient is not None:
                    total += gradient.detach() ** 2
            batches += 1
        return [total / max(batches, 1) for total in fisher]

    def after_training(self, task, data: Dataset) -> None:
        fisher = self.estimate_fisher(task, data)
        anchor = [parameter.detach().clone() for parameter in self.shared_parameters(task.name)]
        self.consolidated[task.name] = (fisher, anchor)

    def stored_per_task(self, task_name: str) -> int:
        shared = sum(parameter.numel() for parameter in self.shared_parameters(task_name))
        return count_parameters(self.model.heads[task_name]) + 2 * shared
