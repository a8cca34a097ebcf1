"""Run a whole stream: build the model and tasks, learn them in order, fill R, write the run directory.

A run directory contains ``config.yaml`` (the config used), ``run.log``, ``accuracy_matrix.csv``
(rewritten after every task, so a stopped run keeps its finished rows), ``metrics.json``,
``heatmap.png`` and ``checkpoints/after_<task>.pt`` (trainable parameters after each task).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from phplib.backbones.clap_audio import calibrate_mel_normalization
from phplib.config import RunConfig, config_from_dict, config_to_dict, save_config
from phplib.continual import distributed
from phplib.continual.learner import Learner, PHPLearner, PreparedData
from phplib.continual.probe import frozen_features, score_head_on_features, train_head_on_features
from phplib.continual.stream import Task, build_stream
from phplib.continual.store import (
    atomic_write_text,
    latest_checkpoint,
    load_trainable_state,
    restore_rng_state,
    save_task_checkpoint,
)
from phplib.metrics.incremental import summarize
from phplib.model import PHPModel

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Everything a finished run computed."""

    run_dir: Path | None
    task_names: list[str]
    accuracy_matrix: np.ndarray  # R[t, i], NaN above the diagonal
    metrics: dict[str, float]
    probe_scores: dict[str, float] = field(default_factory=dict)  # task head on frozen features
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    model: PHPModel | None = None  # the trained model, for inspection in notebooks and tests
    learner: Learner | None = None  # the learner that trained it, with what the method records besides R


METHOD_FILE = "method.txt"  # written in the run folder of a baseline method (not PHP)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def matrix_frame(matrix: np.ndarray, task_names: list[str]) -> pd.DataFrame:
    """Label R for display and CSV: rows 'after <task>', columns the evaluated tasks."""
    return pd.DataFrame(matrix, index=[f"after {name}" for name in task_names], columns=task_names)


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("phplib").addHandler(handler)
    logging.getLogger("phplib").setLevel(logging.INFO)
    return handler


def probe_head(model: PHPModel, task: Task, train: PreparedData, test: PreparedData, config: RunConfig, progress: bool):
    """Train a fresh head of ``task`` on frozen features; return ``(test score or None, head)``.

    The probe draws its initialisation from its own generator seeded by the run's seed and the
    task's name, so its score depends only on the frozen features, not on what ran before it.
    """
    settings = config.train
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed * 1000 + sum(map(ord, task.name)))
        head = task.make_head(model)
    tokens = head.uses_video_tokens
    features = frozen_features(model, train, settings.eval_batch_size, settings.device, f"{task.name} train", progress, tokens)
    train_head_on_features(head, features, settings.probe_epochs, settings.batch_size, seed=settings.seed)
    score = None
    if settings.probe:
        test_features = frozen_features(model, test, settings.eval_batch_size, settings.device, f"{task.name} test", progress, tokens)
        score, _ = score_head_on_features(head, test_features)
    return score, head


def _prepare_stream(config: RunConfig, progress: bool, timings: dict[str, float]):
    """Build the model and tasks, calibrate the audio front-end, and compute tower inputs once."""
    started = time.perf_counter()
    model = PHPModel(config.backbone, config.stages)
    timings["build_model"] = time.perf_counter() - started

    started = time.perf_counter()
    with distributed.main_process_first():  # rank 0 writes a missing toy world before the others read it
        tasks = build_stream(config, model.vision.image_size, model.audio_tower.sample_rate, progress=progress)
    timings["read_data"] = time.perf_counter() - started

    # Audio weights (given or shipped) carry their own bn0 statistics; only a random tower is calibrated.
    if model.audio_weights is None and config.backbone.calibrate_mel_norm:
        first = tasks[0].train
        waveforms = torch.cat([torch.as_tensor(first[i]["audio"]) for i in range(len(first))])
        calibrate_mel_normalization(model.audio, waveforms)
        logger.info("calibrated HTS-AT log-mel normalisation on %d segments of %s", len(waveforms), tasks[0].name)

    started = time.perf_counter()
    batch = config.train.eval_batch_size
    prepared = {
        task.name: (
            PreparedData(task.train, model, batch, f"{task.name} train", progress),
            PreparedData(task.test, model, batch, f"{task.name} test", progress),
        )
        for task in tasks
    }
    timings["prepare_inputs"] = time.perf_counter() - started
    return model, tasks, prepared


def _resume(run_dir: Path, learner: PHPLearner, tasks: list[Task]) -> tuple[int, np.ndarray | None, dict[str, float]]:
    """Rebuild the finished tasks' modules, load the newest checkpoint and restore the generators."""
    names = [task.name for task in tasks]
    point = latest_checkpoint(run_dir, names)
    if point is None:
        logger.info("resume %s: no finished task yet, starting from %s", run_dir, names[0])
        return 0, None, {}
    for task in tasks[: point.tasks_done]:
        learner.begin_task(task)
        learner.end_task(task)
    load_trainable_state(learner.model, point.parameters, point.path)
    restore_rng_state(point.rng)
    logger.info(
        "resume %s after %s (%d of %d tasks done) from %s",
        run_dir, names[point.tasks_done - 1], point.tasks_done, len(names), point.path.name,
    )
    return point.tasks_done, point.matrix, point.probe_scores


def run_stream(
    config: RunConfig,
    run_dir: str | Path | None = None,
    progress: bool = True,
    resume: bool = False,
    on_task_end: Callable[[int, list[str], np.ndarray], None] | None = None,
    make_learner: Callable[[PHPModel, RunConfig, bool], Learner] | None = None,
    method: str = "PHP",
) -> RunResult:
    """Learn ``config.tasks`` in order with PHP and return R, its metrics and timings.

    With ``run_dir`` the config, log, matrix, metrics, heatmap and per-task checkpoints are written
    there. Each file is replaced atomically, so a stopped run leaves complete files of its finished
    tasks. With ``resume`` the run continues after the last task checkpointed in ``run_dir``.
    ``on_task_end(t, task_names, R)`` is called after row t of R is filled (notebooks redraw R there).
    ``make_learner(model, config, progress)`` replaces PHP's learner with another method's (see
    ``phplib.continual.baselines``); ``method`` names it in the heatmap titles.

    Under torchrun every process runs this function (see ``phplib.continual.distributed``). All of
    them compute the same R, and only rank 0 writes files and shows progress bars.
    """
    config.validate()
    if config.train.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device is {config.train.device!r} but no CUDA device is available; set train.device=cpu")
    if resume and run_dir is None:
        raise ValueError("resume needs the run directory to continue")
    distributed.init_from_environment(config.train.device)
    writes = run_dir is not None and distributed.is_main_process()
    progress = progress and distributed.is_main_process()
    timings: dict[str, float] = {}
    handler = None
    if run_dir is not None:
        run_dir = Path(run_dir)
    if writes:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_config(config, run_dir / "config.yaml")
            if method != "PHP":
                # config.yaml does not name the learner, and --resume continues PHP runs only.
                atomic_write_text(method + "\n", run_dir / METHOD_FILE)
        handler = _attach_log_file(run_dir)
    try:
        if config.train.num_threads:
            torch.set_num_threads(config.train.num_threads)
        seed_everything(config.train.seed)
        model, tasks, prepared = _prepare_stream(config, progress, timings)

        names = [task.name for task in tasks]
        matrix = np.full((len(tasks), len(tasks)), np.nan)
        probes: dict[str, float] = {}
        if make_learner is None:
            learner = PHPLearner(model, config.train, progress=progress)
        else:
            learner = make_learner(model, config, progress)
        seed_everything(config.train.seed)
        first_task = 0
        if resume:
            first_task, saved_matrix, probes = _resume(run_dir, learner, tasks)
            if saved_matrix is not None:
                matrix = saved_matrix

        started = time.perf_counter()
        for t in range(first_task, len(tasks)):
            task = tasks[t]
            learner.begin_task(task)
            if config.train.probe or config.train.head_warmup:
                probes_started = time.perf_counter()
                probe_score, probe_trained = probe_head(model, task, *prepared[task.name], config, progress)
                if probe_score is not None:
                    probes[task.name] = probe_score
                    logger.info("frozen-feature probe on %s: %.4f", task.name, probe_score)
                if config.train.head_warmup:
                    model.heads[task.name].load_state_dict(probe_trained.state_dict())
                timings["probe_and_warmup"] = timings.get("probe_and_warmup", 0.0) + time.perf_counter() - probes_started
            result = learner.train_task(task, prepared[task.name][0])
            learner.end_task(task)
            logger.info("trained %s: %d steps in %.1f s, final loss %.4f", task.name, result.steps, result.seconds, result.final_loss)
            for i in range(t + 1):
                score, details = learner.evaluate(names[i], prepared[names[i]][1])
                matrix[t, i] = score
                logger.info("after %s: %s %.4f %s", task.name, names[i], score, details)
            if writes:
                atomic_write_text(matrix_frame(matrix, names).to_csv(), run_dir / "accuracy_matrix.csv")
                checkpoint_started = time.perf_counter()
                path = save_task_checkpoint(run_dir, model, names, t + 1, matrix, probes)
                timings["checkpoints"] = timings.get("checkpoints", 0.0) + time.perf_counter() - checkpoint_started
                logger.info("checkpoint written after %s: %s", task.name, path.name)
            if on_task_end is not None:
                on_task_end(t, names, matrix.copy())
        timings["train_and_evaluate"] = time.perf_counter() - started

        metrics = summarize(matrix)
        result = RunResult(run_dir, names, matrix, metrics, probes, timings, model, learner)
        if writes:
            write_run_outputs(result, config, method)
        distributed.barrier()  # every rank returns after rank 0 has written the run's files
        return result
    except Exception as error:
        logger.error("run stopped by %s: %s", type(error).__name__, error)
        raise
    finally:
        if handler is not None:
            logging.getLogger("phplib").removeHandler(handler)
            handler.close()


def run_single_task_references(config: RunConfig, run_dir: str | Path | None, progress: bool = True) -> dict[str, float]:
    """Train each task of ``config.tasks`` alone on a fresh model and return its score S[task].

    These are the references of the transfer metric Diff = mean_i (R[i, i] - S[i]). Each single-task
    run gets its own folder ``single_<task>`` under ``run_dir``, and ``single_task.json`` collects S.
    """
    scores: dict[str, float] = {}
    for name in config.tasks:
        single = config_from_dict(config_to_dict(config))
        single.tasks = [name]
        folder = None if run_dir is None else Path(run_dir) / f"single_{name}"
        logger.info("single-task reference for %s", name)
        result = run_stream(single, folder, progress=progress)
        scores[name] = float(result.accuracy_matrix[0, 0])
    if run_dir is not None:
        atomic_write_text(json.dumps(scores, indent=2), Path(run_dir) / "single_task.json")
    return scores


def write_run_outputs(result: RunResult, config: RunConfig, method: str = "PHP") -> None:
    """Write metrics.json and heatmap.png into the run directory."""
    import matplotlib.pyplot as plt

    from phplib.viz.heatmaps import plot_accuracy_matrix, plot_forgetting_matrix, save_figure

    run_dir = Path(result.run_dir)
    payload = {
        "tasks": result.task_names,
        "metrics": result.metrics,
        "probe_scores": result.probe_scores,
        "diagonal": {name: float(result.accuracy_matrix[i, i]) for i, name in enumerate(result.task_names)},
        "timings_seconds": result.timings,
        "order": config.stages.order,
    }
    atomic_write_text(json.dumps(payload, indent=2), run_dir / "metrics.json")
    ax = plot_accuracy_matrix(
        result.accuracy_matrix, result.task_names, title=f"{method} ({config.stages.order}), {' → '.join(result.task_names)}"
    )
    save_figure(ax.figure, run_dir / "heatmap.png")
    plt.close(ax.figure)  # a notebook calling run_stream must not see this figure in its next cell
    if len(result.task_names) > 1:
        ax = plot_forgetting_matrix(result.accuracy_matrix, result.task_names, method=method, order=config.stages.order)
        save_figure(ax.figure, run_dir / "forgetting.png")
        plt.close(ax.figure)
