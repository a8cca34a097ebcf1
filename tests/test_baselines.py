"""Baselines on the toy stream: each method learns, prompt selection is per clip, the regularisers behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from phplib.cli import main
from phplib.config import load_config
from phplib.continual.baselines import METHODS, get_method, method_config

REPO = Path(__file__).resolve().parents[1]


def stream_config(root: Path, toy_config, **overrides):
    """AVE -> LLP on the session's tiny toy world, trained from random heads (no probe warm-up)."""
    values = {
        "data.root": str(root),
        "data.toy": toy_config.to_json(),
        "tasks": ["AVE", "LLP"],
        "train.epochs": 3,
        "train.batch_size": 4,
        "train.lr": 0.003,
        "train.probe": False,
        "train.head_warmup": False,
        "train.num_threads": 1,
        "stages.tma_tokens": 4,
        "data.num_segments": 4,
    }
    values.update(overrides)
    return load_config(REPO / "configs" / "toy.yaml", values)


@pytest.fixture(scope="module")
def method_runs(toy_world_root, toy_world_config):
    from phplib.continual.compare import run_method

    config = stream_config(toy_world_root, toy_world_config)
    return {name: run_method(config, name, None, progress=False) for name in METHODS}


@pytest.mark.parametrize("name", list(METHODS))
def test_method_learns_first_task(method_runs, toy_world_config, name):
    run = method_runs[name]
    classes = len(toy_world_config.ave_classes) + 1  # AVE's event classes and background
    chance = 1.0 / classes
    assert run.matrix.shape == (2, 2)
    assert np.isnan(run.matrix[0, 1])
    assert np.isfinite(run.matrix[np.tril_indices(2)]).all()
    assert run.matrix[0, 0] > chance, f"{name}: AVE {run.matrix[0, 0]:.3f} is not above chance {chance:.3f}"


@pytest.mark.parametrize("name", [name for name in METHODS if name != "php"])
def test_training_loss_falls(method_runs, name):
    losses = method_runs[name].learner.epoch_losses["AVE"]
    assert len(losses) == 3
    assert losses[-1] < losses[0], f"{name}: AVE loss per epoch {losses}"


def test_parameter_accounting(method_runs):
    heads_only = method_runs["finetune"].stored_per_task
    assert method_runs["php"].stored_per_task > heads_only  # TMDG and TMI per task
    assert method_runs["ewc"].stored_per_task > heads_only  # Fisher and anchor per task
    assert method_runs["l2p"].stored_per_task == heads_only  # the pool is shared
    assert method_runs["finetune-blocks"].trainable > method_runs["finetune"].trainable
    for run in method_runs.values():
        assert run.trainable > 0
        assert run.seconds_per_task > 0


def test_php_task_inference_matrices(method_runs):
    run = method_runs["php"]
    assert run.predicted_matrix.shape == run.matrix.shape
    assert np.array_equal(np.isnan(run.predicted_matrix), np.isnan(run.matrix))
    lower = np.tril_indices(2)
    # A misrouted clip scores as wrong, so the predicted identity can never score above the given one.
    assert (run.predicted_matrix[lower] <= run.matrix[lower] + 1e-9).all()
    assert run.task_id_accuracy[0, 0] == 1.0  # one task learned: every clip goes to it
    assert ((run.task_id_accuracy[lower] >= 0) & (run.task_id_accuracy[lower] <= 1)).all()


# ----- per-clip prompt selection ----------------------------------------------------------------


@pytest.fixture(scope="module")
def prompt_model():
    from phplib.continual.runner import seed_everything
    from phplib.model import PHPModel

    config = method_config("l2p", load_config(REPO / "configs" / "toy.yaml", {"train.num_threads": 1}))
    seed_everything(0)
    return config, PHPModel(config.backbone, config.stages)


def _fresh_learner(name, prompt_model):
    import copy

    from phplib.continual.stream import Task
    from phplib.heads.ave import AVEHead

    config, model = prompt_model
    model = copy.deepcopy(model)
    learner = get_method(name).make_learner(model, config, False)
    for task_name in ("A", "B"):
        task = Task(task_name, None, None, lambda m: AVEHead(m.video_dim, m.audio_dim, 3), "accuracy")
        learner.begin_task(task)
        learner.end_task(task)
    return learner


def _clips(model, count: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    size = model.vision.image_size
    frames = torch.randn(count, 2, 3, size, size, generator=generator)
    spectrogram = torch.randn(count, 2, 1, model.audio_tower.spec_size, model.audio_tower.spec_size, generator=generator)
    return frames, spectrogram


def _steer_keys(learner, queries: torch.Tensor) -> None:
    """Point one key at clip 0's query and another at clip 1's: prompt 0 and 1 (L2P), tasks A and B (DualPrompt)."""
    with torch.no_grad():
        if learner.name == "l2p":
            learner.pool.keys[0] = queries[0]
            learner.pool.keys[1] = queries[1]
        else:
            learner.prompts.experts["A"].key.copy_(queries[0])
            learner.prompts.experts["B"].key.copy_(queries[1])


@pytest.mark.parametrize("name", ["l2p", "dualprompt", "coda-prompt"])
def test_selection_is_per_clip(prompt_model, name):
    from phplib.continual.baselines.common import frozen_query

    learner = _fresh_learner(name, prompt_model)
    model = learner.model
    frames, spectrogram = _clips(model, 4, seed=1)
    queries = frozen_query(model, frames, spectrogram)
    if name != "coda-prompt":
        _steer_keys(learner, queries)  # clips 0 and 1 are meant to pick different prompts
    with torch.no_grad():
        learner.prefixes(queries, segments=2, train=False)
        together = learner.last_selection.clone()
        alone = []
        for index in range(4):
            learner.prefixes(queries[index:index + 1], segments=2, train=False)
            alone.append(learner.last_selection.clone())
    alone = torch.cat(alone)
    assert torch.allclose(together.float(), alone.float(), atol=1e-6), "a clip's selection depends on the rest of its batch"
    assert not torch.equal(together[0], together[1]), "two clips with different queries got the same selection"


@pytest.mark.parametrize("name", ["l2p", "dualprompt", "coda-prompt"])
def test_selection_unchanged_by_batch_mates(prompt_model, name):
    """The same clip keeps its prompts and its head output whatever the other clips of its batch are."""
    learner = _fresh_learner(name, prompt_model)
    model = learner.model
    frames, spectrogram = _clips(model, 3, seed=2)
    others, other_spectrograms = _clips(model, 3, seed=3)
    batch_a = {"frames": frames, "spectrogram": spectrogram}
    batch_b = {"frames": torch.cat([frames[:1], others[1:]]), "spectrogram": torch.cat([spectrogram[:1], other_spectrograms[1:]])}
    with torch.no_grad():
        first = learner.outputs("A", batch_a)[0]
        selection_a = learner.last_selection[0].clone()
        second = learner.outputs("A", batch_b)[0]
        selection_b = learner.last_selection[0].clone()
    assert torch.allclose(selection_a.float(), selection_b.float(), atol=1e-6)
    assert torch.allclose(first, second, atol=1e-5)


# ----- regularisers -------------------------------------------------------------------------------


def test_ewc_penalty_zero_at_anchor_positive_away(method_runs):
    learner = method_runs["ewc"].learner
    task = learner.seen_tasks[-1]
    assert len(learner.consolidated) == 2
    for fisher, _ in learner.consolidated.values():
        assert sum(float(f.sum()) for f in fisher) > 0
    parameters = learner.shared_parameters(task)
    saved = [p.detach().clone() for p in parameters]
    consolidated = learner.consolidated
    learner.consolidated = {task: consolidated[task]}  # the anchor is the current state only for the last task
    try:
        with torch.no_grad():
            assert float(learner.penalty(task)) == 0.0
            for parameter in parameters:
                parameter.add_(0.05)
            assert float(learner.penalty(task)) > 0.0
    finally:
        learner.consolidated = consolidated
        with torch.no_grad():
            for parameter, value in zip(parameters, saved):
                parameter.copy_(value)


def test_lwf_distillation_zero_when_unchanged(toy_world_root, toy_world_config):
    from phplib.continual.baselines.lwf import LwFLearner
    from phplib.continual.runner import _prepare_stream, seed_everything

    config = method_config("lwf", stream_config(toy_world_root, toy_world_config, **{"train.epochs": 1}))
    seed_everything(0)
    model, tasks, prepared = _prepare_stream(config, False, {})
    learner = LwFLearner(model, config.train, progress=False)
    learner.begin_task(tasks[0])
    learner.train_task(tasks[0], prepared["AVE"][0])
    learner.end_task(tasks[0])
    learner.begin_task(tasks[1])
    learner.record(prepared["LLP"][0])
    assert list(learner.recorded) == ["AVE"]

    from phplib.continual.baselines.common import IndexedData
    from phplib.continual.learner import collate

    batch = collate([IndexedData(prepared["LLP"][0])[i] for i in range(4)])
    with torch.no_grad():
        assert float(learner.distillation(batch)) == pytest.approx(0.0, abs=1e-6)
        for parameter in model.shared_modules("LLP")[0].parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        assert float(learner.distillation(batch)) > 1e-6


# ----- names --------------------------------------------------------------------------------------


def test_unknown_method_lists_known_ones():
    with pytest.raises(ValueError) as error:
        get_method("sgd")
    for name in METHODS:
        assert name in str(error.value)


def test_cli_unknown_method(capsys):
    code = main(["run", "--config", str(REPO / "configs" / "toy.yaml"), "--method", "sgd"])
    assert code == 2
    message = capsys.readouterr().err
    assert "unknown method 'sgd'" in message
    assert "coda-prompt" in message


def test_cli_methods_writes_comparison(toy_world_root, toy_world_config, tmp_path, capsys):
    code = main([
        "run", "--config", str(REPO / "configs" / "toy.yaml"), "--methods", "finetune", "l2p",
        "--output-dir", str(tmp_path), "--name", "compare", "--no-progress",
        "--set", f"data.root={toy_world_root}", "--set", f"data.toy={json.dumps(toy_world_config.to_json())}", "--set", "tasks=[AVE]", "--set", "train.epochs=1",
        "--set", "train.probe=false", "--set", "train.num_threads=1", "--set", "data.num_segments=2",
    ])
    assert code == 0
    folder = tmp_path / "compare"
    for name in ("comparison.csv", "comparison_summary.csv", "comparison_heatmaps.png"):
        assert (folder / name).is_file(), name
    import pandas as pd

    table = pd.read_csv(folder / "comparison.csv")
    assert list(table["method"]) == ["Fine-tune (stages)", "L2P"]
    assert "Fine-tune (stages)" in capsys.readouterr().out

    # --resume continues PHP runs only: a baseline's folders are rejected before anything is built.
    l2p_runs = [path.parent for path in folder.rglob("method.txt") if path.read_text().strip() == "L2P"]
    assert len(l2p_runs) == 1
    for run_dir in (folder, l2p_runs[0]):
        assert main(["run", "--resume", str(run_dir)]) == 2
        assert "--resume continues PHP runs only" in capsys.readouterr().err
