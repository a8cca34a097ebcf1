"""End to end: a whole toy stream through the runner and the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from phplib.cli import main
from phplib.config import load_config

REPO = Path(__file__).resolve().parents[1]


def tiny_config(root: Path, toy_config, **overrides):
    values = {
        "data.root": str(root),
        "data.toy": toy_config.to_json(),
        "train.epochs": 1,
        "train.batch_size": 4,
        "train.probe": True,
        "stages.tma_tokens": 4,
    }
    values.update(overrides)
    return load_config(REPO / "configs" / "toy.yaml", values)


@pytest.fixture(scope="module")
def finished_run(toy_world_root, toy_world_config, tmp_path_factory):
    from phplib.continual.runner import run_stream

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = tiny_config(toy_world_root, toy_world_config)
    return run_stream(config, run_dir, progress=False), run_dir


def test_matrix_is_lower_triangular(finished_run):
    result, _ = finished_run
    matrix = result.accuracy_matrix
    assert matrix.shape == (3, 3)
    assert np.isnan(matrix[np.triu_indices(3, k=1)]).all()
    lower = matrix[np.tril_indices(3)]
    assert np.isfinite(lower).all()
    assert ((lower >= 0) & (lower <= 1)).all()
    assert result.task_names == ["AVE", "LLP", "AVQA"]


def test_run_directory_files(finished_run):
    result, run_dir = finished_run
    for name in ("config.yaml", "run.log", "accuracy_matrix.csv", "metrics.json", "heatmap.png", "forgetting.png"):
        assert (run_dir / name).is_file(), name
    frame = pd.read_csv(run_dir / "accuracy_matrix.csv", index_col=0)
    assert list(frame.columns) == ["AVE", "LLP", "AVQA"]
    assert np.allclose(frame.to_numpy(), result.accuracy_matrix, equal_nan=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert math.isclose(metrics["metrics"]["A_final"], float(np.mean(result.accuracy_matrix[-1])))
    assert set(metrics["probe_scores"]) == {"AVE", "LLP", "AVQA"}
    log = (run_dir / "run.log").read_text()
    assert "begin task AVE" in log
    assert "checkpoint written after AVQA" in log


def test_checkpoints_load_weights_only(finished_run):
    _, run_dir = finished_run
    checkpoint = torch.load(run_dir / "checkpoints" / "after_LLP.pt", weights_only=True)
    assert checkpoint["tasks_done"] == 2
    assert checkpoint["task_names"] == ["AVE", "LLP", "AVQA"]
    assert any(name.startswith("tmi.LLP.") for name in checkpoint["parameters"])
    assert not any(name.startswith(("visual.", "audio.")) for name in checkpoint["parameters"])


def test_old_task_score_kept_when_tma_absent(toy_world_root, toy_world_config):
    """Without the shared adapter nothing shared trains, so earlier tasks cannot be forgotten."""
    from phplib.continual.runner import run_stream

    config = tiny_config(
        toy_world_root, toy_world_config, **{"stages.order": "-MD", "train.probe": False, "tasks": ["AVE", "LLP"]}
    )
    result = run_stream(config, None, progress=False)
    matrix = result.accuracy_matrix
    for task in range(1):
        assert np.allclose(matrix[task:, task], matrix[task, task])


def test_cli_paper_config_lists_missing_files(capsys):
    code = main(["run", "--config", str(REPO / "configs" / "paper_ave_llp_avqa.yaml")])
    captured = capsys.readouterr()
    assert code == 2
    assert "ViT-B-32-openai.pt not found" in captured.err
    assert "630k-audioset-best.pt not found" in captured.err
    assert "AVVP_train.csv not found" in captured.err


def test_cli_rejects_bad_override(capsys):
    code = main(["run", "--config", str(REPO / "configs" / "toy.yaml"), "--set", "stages.order=SXD"])
    assert code == 2
    assert "stages.order" in capsys.readouterr().err


def test_cli_keeps_existing_run_directory(toy_world_root, tmp_path, capsys):
    existing = tmp_path / "runs" / "kept"
    existing.mkdir(parents=True)
    (existing / "accuracy_matrix.csv").write_text("earlier results")
    code = main(["run", "--config", str(REPO / "configs" / "toy.yaml"), "--output-dir", str(tmp_path / "runs"),
                 "--name", "kept", "--set", f"data.root={toy_world_root}"])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert (existing / "accuracy_matrix.csv").read_text() == "earlier results"


def test_finished_tasks_and_backbone_bit_identical(finished_run):
    """After the whole stream, each task's own modules equal their state when the task ended."""
    from phplib.continual.runner import seed_everything
    from phplib.model import PHPModel

    result, run_dir = finished_run
    final = result.model.state_dict()
    for task in ("AVE", "LLP"):
        saved = torch.load(run_dir / "checkpoints" / f"after_{task}.pt", weights_only=True)["parameters"]
        owned = [name for name in saved if name.startswith((f"tmi.{task}.", f"tmdg.{task}.", f"heads.{task}."))]
        assert owned, task
        for name in owned:
            assert torch.equal(saved[name], final[name]), name
    config = load_config(run_dir / "config.yaml")
    seed_everything(config.train.seed)
    fresh = PHPModel(config.backbone, config.stages)
    for name, parameter in fresh.named_parameters():
        if name.startswith(("visual.", "audio.")):
            assert torch.equal(parameter, final[name]), name


def test_probe_score_independent_of_ordering(toy_world_root, toy_world_config):
    from phplib.continual.runner import run_stream

    scores = []
    for order in ("SMD", "DMS"):
        config = tiny_config(toy_world_root, toy_world_config, **{"tasks": ["AVE"], "stages.order": order})
        scores.append(run_stream(config, None, progress=False).probe_scores["AVE"])
    assert scores[0] == scores[1]


def test_cuda_device_without_gpu_is_named(toy_world_root, toy_world_config):
    from phplib.continual.runner import run_stream

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available, so the error cannot be triggered")
    config = tiny_config(toy_world_root, toy_world_config, **{"train.device": "cuda"})
    with pytest.raises(ValueError, match="no CUDA device is available"):
        run_stream(config, None, progress=False)


def test_stream_with_avs_task(toy_world_root, toy_world_config):
    """AVS joins a stream in any position; its five-second clips and mask head run end to end."""
    from phplib.continual.runner import run_stream

    config = tiny_config(toy_world_root, toy_world_config, **{"tasks": ["AVS", "AVE"], "train.probe_epochs": 2})
    result = run_stream(config, None, progress=False)
    assert result.task_names == ["AVS", "AVE"]
    assert 0.0 <= result.accuracy_matrix[1, 0] <= 1.0
    assert result.model.heads["AVS"].uses_video_tokens
