"""Training on two processes: batch splitting, evaluation shards, and a torchrun run killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler

from phplib.config import load_config
from phplib.continual.distributed import DistributedClipGroupedBatchSampler, shard_range, split_batch_by_groups
from phplib.continual.learner import ClipGroupedBatchSampler
from phplib.continual.runner import run_stream

REPO = Path(__file__).resolve().parents[1]


def overrides(root: Path, toy_config) -> dict:
    return {
        "data.root": str(root),
        "data.toy": toy_config.to_json(),
        "tasks": ["AVE", "AVQA"],
        "train.epochs": 2,
        "train.batch_size": 4,
        "train.probe_epochs": 5,
        "train.num_threads": 1,
        "stages.tma_tokens": 4,
    }


def cli_arguments(values: dict) -> list[str]:
    return [argument for key, value in values.items() for argument in ("--set", f"{key}={json.dumps(value)}")]


def test_split_keeps_clip_groups_together():
    group_of = {0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 2}
    parts = split_batch_by_groups([0, 1, 2, 3, 4, 5], group_of, 2)
    assert sorted(parts[0] + parts[1]) == [0, 1, 2, 3, 4, 5]
    for part in parts:
        assert {group_of[i] for i in part} in ({0}, {1, 2}, {0, 1}, {2}, {1}, {0, 2})
        for group in set(group_of.values()):
            members = [i for i in group_of if group_of[i] == group]
            assert set(members) <= set(part) or not set(members) & set(part)


def test_split_balances_single_items():
    group_of = {i: i for i in range(5)}
    parts = split_batch_by_groups([4, 0, 3, 1, 2], group_of, 2)
    assert parts == [[4, 3, 2], [0, 1]]


def test_split_fills_empty_rank_with_copy():
    parts = split_batch_by_groups([7, 8], {7: 3, 8: 3}, 3)
    assert parts[0] == [7, 8]
    assert parts[1] == [7, 8]
    assert parts[2] == [7, 8]


def test_grouped_shards_union_equals_single_process():
    video_ids = ["a", "a", "a", "b", "c", "c", "d", "e", "e", "e", "f"]
    single = ClipGroupedBatchSampler(video_ids, 4, torch.Generator().manual_seed(5))
    shards = [
        DistributedClipGroupedBatchSampler(
            ClipGroupedBatchSampler(video_ids, 4, torch.Generator().manual_seed(5)), video_ids, rank, 2
        )
        for rank in range(2)
    ]
    for _ in range(3):  # three epochs: the generators advance alike
        expected = list(single)
        per_rank = [list(shard) for shard in shards]
        assert len(per_rank[0]) == len(per_rank[1]) == len(expected) == len(shards[0])
        for batch, first, second in zip(expected, *per_rank):
            assert sorted(first + second) == sorted(batch)
            assert not {video_ids[i] for i in first} & {video_ids[i] for i in second}


def test_ungrouped_shards_follow_shuffled_loader_order():
    items = list(range(10))
    single = BatchSampler(RandomSampler(items, generator=torch.Generator().manual_seed(1)), 4, drop_last=False)
    ids = [str(i) for i in items]
    shards = [
        DistributedClipGroupedBatchSampler(
            BatchSampler(RandomSampler(items, generator=torch.Generator().manual_seed(1)), 4, drop_last=False), ids, rank, 2
        )
        for rank in range(2)
    ]
    for _ in range(2):
        for batch, first, second in zip(list(single), *[list(shard) for shard in shards]):
            assert sorted(first + second) == sorted(batch)
            assert len(first) - len(second) in (0, 1)


def test_sampler_rejects_rank_outside_world():
    with pytest.raises(ValueError, match="rank 2 is outside a world of 2"):
        DistributedClipGroupedBatchSampler([[0]], ["a"], 2, 2)


@pytest.mark.parametrize("length, world", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_shard_ranges_cover_in_order(length, world):
    indices = [i for rank in range(world) for i in shard_range(length, rank, world)]
    assert indices == list(range(length))


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_command(arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(free_loopback_port()), "-m", "phplib", "run", *arguments]


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid``, read from Linux's /proc children lists."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the task ended while being read
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it, as a job scheduler stops a job.

    torchrun starts each worker in a session of its own, so killing torchrun's process group
    would leave the workers running.
    """
    for victim in [*descendants(pid), pid]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def torchrun_environment() -> dict[str, str]:
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    environment.pop("WORLD_SIZE", None)
    return environment


@pytest.mark.slow
def test_two_process_run_killed_and_resumed(toy_world_root, toy_world_config, tmp_path):
    values = overrides(toy_world_root, toy_world_config)
    config = load_config(REPO / "configs" / "toy.yaml", values)
    single = run_stream(config, tmp_path / "single", progress=False)

    run_dir = tmp_path / "runs" / "ddp"
    command = torchrun_command(["--config", str(REPO / "configs" / "toy.yaml"), "--output-dir", str(tmp_path / "runs"),
                                "--name", "ddp", "--no-progress", *cli_arguments(values)])
    process = subprocess.Popen(command, cwd=REPO, env=torchrun_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = run_dir / "run.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and "begin task AVQA" in log.read_text():
            kill_tree(process.pid)
            break
        time.sleep(0.02)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed during AVQA: {errors[-3000:]}"
    assert (run_dir / "checkpoints" / "after_AVE.pt").is_file()
    assert not (run_dir / "checkpoints" / "after_AVQA.pt").exists()

    resumed = subprocess.run(torchrun_command(["--resume", str(run_dir), "--no-progress"]), cwd=REPO,
                             env=torchrun_environment(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("Accuracy matrix R[t, i]") == 1  # rank 0 prints, rank 1 does not

    text = log.read_text()
    assert text.count("checkpoint written after AVE") == 1
    assert text.count("checkpoint written after AVQA") == 1
    assert text.count("begin task AVQA") == 2  # the killed attempt and the resumed one, rank 0 only
    assert "resume" in text
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["after_AVE.pt", "after_AVQA.pt"]
    assert (run_dir / "metrics.json").is_file()

    matrix = pd.read_csv(run_dir / "accuracy_matrix.csv", index_col=0).to_numpy()
    assert matrix.shape == (2, 2)
    assert np.isfinite(matrix[np.tril_indices(2)]).all()
    # Same global batches and gradients weighted to the global mean: the two-process run trains
    # the same parameters as one process, up to the order of floating-point sums.
    for task in ("AVE", "AVQA"):
        one = torch.load(tmp_path / "single" / "checkpoints" / f"after_{task}.pt", weights_only=True)["parameters"]
        two = torch.load(run_dir / "checkpoints" / f"after_{task}.pt", weights_only=True)["parameters"]
        assert one.keys() == two.keys()
        largest = max((one[name] - two[name]).abs().max().item() for name in one)
        assert largest < 1e-4, f"parameters after {task} differ by {largest}"
    assert np.allclose(matrix, single.accuracy_matrix, atol=0.05, equal_nan=True)
