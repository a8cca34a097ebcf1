"""Kill and resume, determinism, single-task references, results tables and the shared variant."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from phplib.cli import main
from phplib.config import load_config
from phplib.continual.results import format_mean_std, results_row, summarize_over_seeds
from phplib.continual.runner import run_single_task_references, run_stream
from phplib.continual.store import CheckpointError, latest_checkpoint, restore_rng_state, rng_state

REPO = Path(__file__).resolve().parents[1]


def overrides(root: Path, toy_config, **extra) -> dict:
    values = {
        "data.root": str(root),
        "data.toy": toy_config.to_json(),
        "train.epochs": 2,
        "train.batch_size": 4,
        "train.probe_epochs": 5,
        "stages.tma_tokens": 4,
    }
    values.update(extra)
    return values


def cli_arguments(values: dict) -> list[str]:
    arguments = []
    for key, value in values.items():
        arguments += ["--set", f"{key}={json.dumps(value)}"]
    return arguments


def test_rng_state_round_trip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), __import__("random").random())
    restore_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2] == again[2]


def test_same_seed_gives_same_matrix(toy_world_root, toy_world_config):
    values = overrides(toy_world_root, toy_world_config, **{"train.epochs": 1, "tasks": ["AVE", "AVQA"]})
    config = load_config(REPO / "configs" / "toy.yaml", values)
    first = run_stream(config, None, progress=False)
    second = run_stream(config, None, progress=False)
    assert np.array_equal(first.accuracy_matrix, second.accuracy_matrix, equal_nan=True)
    assert first.probe_scores == second.probe_scores


@pytest.mark.slow
def test_killed_run_resumes_to_same_matrix(toy_world_root, toy_world_config, tmp_path):
    values = overrides(toy_world_root, toy_world_config, **{"train.epochs": 4, "tasks": ["AVE", "LLP"]})
    command = [sys.executable, "-m", "phplib", "run", "--config", str(REPO / "configs" / "toy.yaml"),
               "--output-dir", str(tmp_path), "--no-progress", *cli_arguments(values)]

    reference = subprocess.run(command + ["--name", "whole"], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "Accuracy matrix R[t, i]" in reference.stdout
    assert "A_mean" in reference.stdout
    assert (tmp_path / "whole" / "heatmap.png").stat().st_size > 0

    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(command + ["--name", "killed"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed_dir / "run.log"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and "begin task LLP" in log.read_text():
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed during LLP"
    assert (killed_dir / "checkpoints" / "after_AVE.pt").is_file()
    assert not (killed_dir / "checkpoints" / "after_LLP.pt").exists()
    rows_before = pd.read_csv(killed_dir / "accuracy_matrix.csv", index_col=0)
    assert rows_before.loc["after AVE", "AVE"] >= 0

    resumed = subprocess.run([sys.executable, "-m", "phplib", "run", "--resume", str(killed_dir), "--no-progress"],
                             capture_output=True, text=True, timeout=900, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resume" in (killed_dir / "run.log").read_text()
    whole = pd.read_csv(tmp_path / "whole" / "accuracy_matrix.csv", index_col=0).to_numpy()
    continued = pd.read_csv(killed_dir / "accuracy_matrix.csv", index_col=0).to_numpy()
    assert np.array_equal(whole, continued, equal_nan=True)
    assert rows_before.loc["after AVE", "AVE"] == continued[0, 0]


def test_resume_without_checkpoint_starts_over(toy_world_root, toy_world_config, tmp_path):
    config = load_config(REPO / "configs" / "toy.yaml", overrides(toy_world_root, toy_world_config, **{"tasks": ["AVE"]}))
    result = run_stream(config, tmp_path / "fresh", progress=False, resume=True)
    assert result.accuracy_matrix.shape == (1, 1)
    assert (tmp_path / "fresh" / "checkpoints" / "after_AVE.pt").is_file()


def test_checkpoint_of_other_stream_is_rejected(toy_world_root, toy_world_config, tmp_path):
    config = load_config(REPO / "configs" / "toy.yaml", overrides(toy_world_root, toy_world_config, **{"tasks": ["AVE"]}))
    run_stream(config, tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="belongs to another stream"):
        latest_checkpoint(tmp_path / "run", ["AVE", "LLP"])


def test_truncated_checkpoint_is_named(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "after_AVE.pt").write_bytes(b"\x80\x02 truncated")
    with pytest.raises(CheckpointError, match="after_AVE.pt"):
        latest_checkpoint(tmp_path, ["AVE"])


def test_resume_cli_needs_run_directory(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "config.yaml not found" in capsys.readouterr().err


@pytest.mark.parametrize("saved, expected", [(None, "none"), ("toy", "toy"), ("none", "none")])
def test_resume_keeps_the_run_backbones(tmp_path, monkeypatch, saved, expected):
    """A config.yaml written before backbone.pretrained existed resumes on random towers."""
    import yaml

    import phplib.continual.runner as runner

    values = yaml.safe_load((REPO / "configs" / "toy.yaml").read_text())
    values["backbone"].pop("pretrained", None)
    if saved is not None:
        values["backbone"]["pretrained"] = saved
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    seen = {}

    def fake_run_stream(config, run_dir, progress=True, resume=False):
        seen["pretrained"] = config.backbone.pretrained
        raise KeyboardInterrupt  # stop before anything runs

    monkeypatch.setattr(runner, "run_stream", fake_run_stream)
    with pytest.raises(KeyboardInterrupt):
        main(["run", "--resume", str(tmp_path)])
    assert seen["pretrained"] == expected


def test_single_task_references_and_diff(toy_world_root, toy_world_config, tmp_path):
    values = overrides(toy_world_root, toy_world_config, **{"tasks": ["AVE", "LLP"]})
    config = load_config(REPO / "configs" / "toy.yaml", values)
    scores = run_single_task_references(config, tmp_path, progress=False)
    assert set(scores) == {"AVE", "LLP"}
    assert json.loads((tmp_path / "single_task.json").read_text()) == scores
    result = run_stream(config, None, progress=False)
    row = results_row(config, result.accuracy_matrix, scores)
    expected = ((result.accuracy_matrix[0, 0] - scores["AVE"]) + (result.accuracy_matrix[1, 1] - scores["LLP"])) / 2
    assert row["Diff"] == pytest.approx(expected)
    # The first task of the stream is trained exactly like its single-task run.
    assert result.accuracy_matrix[0, 0] == pytest.approx(scores["AVE"])


def test_results_table_mean_and_std():
    table = pd.DataFrame(
        [
            {"method": "PHP", "order": "SMD", "tasks": "AVE > LLP", "seed": 0, "A_mean": 0.5, "A_final": 0.4, "F_mean": 0.1, "BWT": -0.1, "Diff": np.nan},
            {"method": "PHP", "order": "SMD", "tasks": "AVE > LLP", "seed": 1, "A_mean": 0.7, "A_final": 0.6, "F_mean": 0.3, "BWT": -0.3, "Diff": np.nan},
            {"method": "PHP", "order": "DMS", "tasks": "AVE > LLP", "seed": 0, "A_mean": 0.2, "A_final": 0.2, "F_mean": 0.0, "BWT": 0.0, "Diff": 0.1},
        ]
    )
    summary = summarize_over_seeds(table)
    smd = summary[summary["order"] == "SMD"].iloc[0]
    assert smd["A_mean mean"] == pytest.approx(0.6)
    assert smd["A_mean std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert smd["seeds"] == 2
    dms = summary[summary["order"] == "DMS"].iloc[0]
    assert np.isnan(dms["A_mean std"])
    shown = format_mean_std(summary)
    assert shown.loc[shown["order"] == "SMD", "A_mean"].item() == "0.600 ± 0.141"
    assert shown.loc[shown["order"] == "DMS", "A_mean"].item() == "0.200"
    assert shown.loc[shown["order"] == "SMD", "Diff"].item() == "-"


def test_cli_seeds_write_results(toy_world_root, toy_world_config, tmp_path):
    values = overrides(toy_world_root, toy_world_config, **{"tasks": ["AVE"], "train.epochs": 1})
    code = main(["run", "--config", str(REPO / "configs" / "toy.yaml"), "--output-dir", str(tmp_path), "--name", "sweep",
                 "--no-progress", "--seeds", "0", "1", *cli_arguments(values)])
    assert code == 0
    table = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert list(table["seed"]) == [0, 1]
    assert (tmp_path / "sweep" / "seed_1" / "accuracy_matrix.csv").is_file()
    summary = pd.read_csv(tmp_path / "sweep" / "results_summary.csv")
    assert summary["seeds"].item() == 2


def test_shared_variant_trains_earlier_prompts():
    from phplib.config import BackboneConfig, StageConfig
    from phplib.heads.ave import AVEHead
    from phplib.model import PHPModel

    torch.manual_seed(0)
    model = PHPModel(BackboneConfig(), StageConfig(order="-MD", task_specific=False))
    for name in ("first", "second"):
        model.add_task(name, AVEHead(model.video_dim, model.audio_dim, 4))
    assert list(model.tmi) == ["shared"]
    assert model.task_owned_modules("first") == [model.heads["first"]]
    before = model.tmi["shared"].video["5"].detach().clone()
    video = torch.randint(0, 256, (2, 10, 3, 64, 64), dtype=torch.uint8)
    frames, spectrogram = model.prepare_inputs(video, torch.randn(2, 10, 16000) * 0.1)
    batch = {"label": torch.randint(0, 5, (2, 10))}
    optimizer = torch.optim.SGD(model.trainable_parameters("second"), lr=1.0)
    model.heads["second"].loss(model(frames, spectrogram, "second", batch), batch).backward()
    optimizer.step()
    assert not torch.equal(before, model.tmi["shared"].video["5"])


def test_shared_variant_runs_as_php_shared(toy_world_root, toy_world_config):
    values = overrides(
        toy_world_root,
        toy_world_config,
        **{"stages.task_specific": False, "train.probe": False, "tasks": ["AVE", "LLP"], "train.epochs": 1},
    )
    config = load_config(REPO / "configs" / "toy.yaml", values)
    result = run_stream(config, None, progress=False)
    assert result.accuracy_matrix.shape == (2, 2)
    assert results_row(config, result.accuracy_matrix)["method"] == "PHP-shared"
