"""Shared fixtures: a tiny toy world on disk, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from phplib.data.toyworld import ToyWorldConfig, generate_toy_world

# 8 train clips per task, so the train split contains every class of each task
# (LLP uses 7 classes) and class lists read from train annotations are complete.
TINY_TOY_WORLD = ToyWorldConfig(seed=0, ave_clips=(8, 2, 4), llp_clips=(8, 2, 4), avqa_clips=(8, 2, 4),
                                avs_clips=(8, 2, 4))


@pytest.fixture(scope="session")
def toy_world_config() -> ToyWorldConfig:
    """Config of the session's tiny toy world."""
    return TINY_TOY_WORLD


@pytest.fixture(scope="session")
def toy_world_root(tmp_path_factory: pytest.TempPathFactory, toy_world_config: ToyWorldConfig) -> Path:
    """Folder containing a tiny toy world (8 train, 2 val, 4 test clips per task) in the real dataset layouts.

    Tests that damage files copy the part they need into their own folder first.
    """
    root = tmp_path_factory.mktemp("toy_world")
    generate_toy_world(root, toy_world_config, progress=False)
    return root
