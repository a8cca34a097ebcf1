"""Run configs: YAML round trip, overrides and errors that name the bad key or value."""

from __future__ import annotations

from pathlib import Path

import pytest

from phplib.config import RunConfig, config_from_dict, load_config, save_config

REPO = Path(__file__).resolve().parents[1]


def test_toy_config_loads():
    config = load_config(REPO / "configs" / "toy.yaml")
    assert config.tasks == ["AVE", "LLP", "AVQA"]
    assert config.stages.order == "SMD"
    assert config.backbone.vision_model == "tiny-vit"


def test_paper_config_names_paper_towers():
    config = load_config(REPO / "configs" / "paper_ave_llp_avqa.yaml")
    assert config.backbone.vision_model == "ViT-B-32"
    assert config.backbone.audio_model == "HTSAT-tiny"
    assert config.data.source == "real"


def test_round_trip(tmp_path):
    config = load_config(REPO / "configs" / "toy.yaml", {"train.epochs": 7, "stages.order": "DMS"})
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config
    assert again.train.epochs == 7
    assert again.stages.order == "DMS"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"tasks": ["AVE", "VGGSound"]}, "unknown task 'VGGSound'"),
        ({"tasks": ["AVE", "AVE"]}, "lists a task twice"),
        ({"train": {"epoch": 3}}, r"unknown key\(s\) in config.train: epoch"),
        ({"stages": {"order": "SMX"}}, "unknown letter\\(s\\) X"),
        ({"stages": {"order": "SSD"}}, "must use each of S, M, D"),
        ({"stages": {"groups": [[0, 1], [1, 2], [5]]}}, r"block 1 is in two depth groups"),
        ({"stages": {"groups": [[-1], [3], [5]]}}, r"block -1 is negative"),
        ({"data": {"toy": {"ave_clip": [4, 0, 4]}}}, r"unknown key\(s\) data.toy.ave_clip; data.toy takes: .*ave_clips"),
        ({"stages": {"order": "SM"}}, "one letter"),
        ({"data": {"on_error": "ignore"}}, "on_error"),
        ({"backbone": 3}, "must be a mapping"),
        ({"train": {"epochs": "abc"}}, "train.epochs must be an integer"),
        ({"train": {"batch_size": -1}}, "train.batch_size must be at least 1"),
        ({"train": {"lr": 0}}, "train.lr must be positive"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number"),
        ({"train": {"device": "tpu"}}, "train.device must be"),
        ({"train": {"probe": "yes"}}, "train.probe must be true or false"),
        ({"tasks": []}, "tasks is empty"),
        ({"stages": {"groups": [[0, 1], "3"]}}, "stages.groups must be a list of lists"),
        ({"stages": {"tmi_length": 0}}, "stages.tmi_length must be at least 1"),
    ],
)
def test_invalid_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_yaml_forms_are_coerced():
    config = config_from_dict({"train": {"lr": "3e-3"}, "tasks": "AVE"})
    assert config.train.lr == 0.003
    assert config.tasks == ["AVE"]


def test_yaml_syntax_error_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: {epochs: 3\n")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.yaml"):
        load_config(tmp_path / "absent.yaml")


def test_defaults_are_valid():
    RunConfig().validate()
