"""The methods phplib compares on one stream: PHP and six baselines, each a ``Learner``.

Every method runs through ``run_stream`` on the same towers, tasks, heads and metrics. A method
is a model config (which PHP stages exist and whether they are shared) and a learner factory.
Heads are task-specific in every method, because the tasks have different output spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from phplib.config import RunConfig, config_from_dict, config_to_dict
from phplib.continual.learner import Learner
from phplib.model import PHPModel


@dataclass(frozen=True)
class Method:
    """A method of the comparison table."""

    name: str  # what --method takes
    label: str  # what the results table shows
    description: str  # one line: what trains and what is kept per task
    configure: Callable[[RunConfig], None]  # edits a copy of the run config in place (the model's stages)
    make_learner: Callable[[PHPModel, RunConfig, bool], Learner]


def _keep_stages(config: RunConfig) -> None:
    """PHP's stages as the config sets them."""


def _shared_stages(config: RunConfig) -> None:
    config.stages.task_specific = False


def _no_stages(config: RunConfig) -> None:
    config.stages.order = "-" * len(config.stages.groups)


def _php(model, config, progress):
    from phplib.continual.task_inference import TaskInferencePHPLearner

    return TaskInferencePHPLearner(model, config.train, progress, num_tasks=len(config.tasks))


def _finetune(model, config, progress):
    from phplib.continual.baselines.finetune import FineTuneLearner

    return FineTuneLearner(model, config.train, progress)


def _finetune_blocks(model, config, progress):
    from phplib.continual.baselines.finetune import DEFAULT_UNFROZEN_BLOCKS, FineTuneLearner

    return FineTuneLearner(model, config.train, progress, unfrozen_blocks=DEFAULT_UNFROZEN_BLOCKS)


def _lwf(model, config, progress):
    from phplib.continual.baselines.lwf import LwFLearner

    return LwFLearner(model, config.train, progress)


def _ewc(model, config, progress):
    from phplib.continual.baselines.ewc import EWCLearner

    return EWCLearner(model, config.train, progress)


def _l2p(model, config, progress):
    from phplib.continual.baselines.l2p import L2PLearner

    return L2PLearner(model, config.train, progress)


def _dualprompt(model, config, progress):
    from phplib.continual.baselines.dualprompt import DualPromptLearner

    return DualPromptLearner(model, config.train, progress)


def _coda_prompt(model, config, progress):
    from phplib.continual.baselines.coda_prompt import CodaPromptLearner

    return CodaPromptLearner(model, config.train, progress)


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("php", "PHP", "TMA shared; TMDG, TMI and head per task (stages as configured)", _keep_stages, _php),
        Method("finetune", "Fine-tune (stages)", "TMA, TMDG, TMI shared by all tasks; head per task; towers frozen",
               _shared_stages, _finetune),
        Method("finetune-blocks", "Fine-tune (stages + last 2 blocks)",
               "as Fine-tune (stages), plus the last two blocks of both towers trained", _shared_stages, _finetune_blocks),
        Method("lwf", "LwF", "Fine-tune (stages) plus distillation on earlier heads' recorded outputs", _shared_stages, _lwf),
        Method("ewc", "EWC", "Fine-tune (stages) plus a Fisher-weighted penalty on the shared stages", _shared_stages, _ewc),
        Method("l2p", "L2P", "shared prompt pool, top-5 prompts per clip by key-query match; head per task", _no_stages, _l2p),
        Method("dualprompt", "DualPrompt", "shared G-prompts; one E-prompt per task, picked per clip by its key",
               _no_stages, _dualprompt),
        Method("coda-prompt", "CODA-Prompt", "prompt components per task, mixed per clip by attention-weighted keys",
               _no_stages, _coda_prompt),
    )
}


def get_method(name: str) -> Method:
    """The method called ``name``; raise ``ValueError`` listing the known names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]


def method_config(name: str, config: RunConfig) -> RunConfig:
    """A copy of ``config`` with the model stages method ``name`` runs on."""
    method = get_method(name)
    copied = config_from_dict(config_to_dict(config))
    method.configure(copied)
    copied.validate()
    return copied
