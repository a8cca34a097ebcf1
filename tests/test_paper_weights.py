"""Weight files in the layouts users bring, loaded through the config keys backbone.vision_weights and backbone.audio_weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from phplib.backbones.clap_audio import build_clap_audio, htsat_forward_blockwise
from phplib.backbones.clip_vision import build_clip_vision
from phplib.backbones.weights import WeightsError
from phplib.config import BackboneConfig, StageConfig
from phplib.model import PHPModel

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source_towers():
    torch.manual_seed(3)
    return build_clip_vision("tiny-vit").eval(), build_clap_audio("tiny-htsat").eval()


@pytest.mark.parametrize("prefix", ["", "visual."])
def test_clip_vision_only_state_dict_loads(tmp_path, source_towers, prefix):
    visual, _ = source_towers
    path = tmp_path / "vision.pt"
    torch.save({f"{prefix}{key}": value for key, value in visual.state_dict().items()}, path)
    loaded = build_clip_vision("tiny-vit", weights=path).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(images), visual(images))


def test_clap_bare_state_dict_loads(tmp_path, source_towers):
    """A CLAP state dict saved without DataParallel's 'module.' prefix or a 'state_dict' wrapper."""
    _, audio = source_towers
    state = {f"audio_branch.{key}": value for key, value in audio.state_dict().items()}
    state["text_branch.embeddings.position_ids"] = torch.arange(8).unsqueeze(0)
    path = tmp_path / "bare.pt"
    torch.save(state, path)
    loaded = build_clap_audio("tiny-htsat", weights=path).eval()
    waveform = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert torch.equal(htsat_forward_blockwise(loaded, waveform), htsat_forward_blockwise(audio, waveform))


def test_fusion_checkpoint_names_config_key(tmp_path, source_towers):
    _, audio = source_towers
    state = {f"module.audio_branch.{key}": value for key, value in audio.state_dict().items()}
    state["module.audio_branch.mel_conv1d.0.weight"] = torch.zeros(1)
    path = tmp_path / "630k-audioset-fusion-best.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"backbone\.audio_weights.*630k-audioset-best\.pt") as raised:
        build_clap_audio("tiny-htsat", weights=path)
    assert "630k-audioset-fusion-best.pt" in str(raised.value)


def test_model_loads_weights_from_config_keys(tmp_path, source_towers):
    visual, audio = source_towers
    vision_path, audio_path = tmp_path / "vision.safetensors", tmp_path / "clap.pt"
    from safetensors.torch import save_file

    save_file({key: value.contiguous() for key, value in visual.state_dict().items()}, str(vision_path))
    torch.save({"state_dict": {f"module.audio_branch.{k}": v for k, v in audio.state_dict().items()}}, audio_path)
    model = PHPModel(BackboneConfig(vision_weights=str(vision_path), audio_weights=str(audio_path)), StageConfig())
    for name, value in visual.state_dict().items():
        assert torch.equal(model.visual.state_dict()[name], value), name
    for name, value in audio.state_dict().items():
        assert torch.equal(model.audio.state_dict()[name], value), name
    assert not any(parameter.requires_grad for parameter in model.visual.parameters())
    assert not any(parameter.requires_grad for parameter in model.audio.parameters())


def test_missing_weights_file_names_config_key(tmp_path):
    from phplib.cli import missing_inputs
    from phplib.config import RunConfig

    config = RunConfig()
    config.backbone.vision_weights = str(tmp_path / "ViT-B-32-openai.pt")
    config.backbone.audio_weights = str(tmp_path / "630k-audioset-best.pt")
    problems = missing_inputs(config)
    assert any(problem.startswith("backbone.vision_weights:") for problem in problems)
    assert any(problem.startswith("backbone.audio_weights:") and "630k-audioset-best.pt" in problem for problem in problems)


@pytest.mark.parametrize("method", [[], ["--method", "l2p"]])
def test_run_reports_missing_weights(tmp_path, capsys, method):
    """PHP runs and baseline runs list the missing files and start nothing."""
    from phplib.cli import main

    missing = tmp_path / "630k-audioset-best.pt"
    code = main([
        "run", "--config", str(REPO / "configs" / "toy.yaml"), *method,
        "--set", f"backbone.audio_weights={missing}", "--output-dir", str(tmp_path / "runs"),
    ])
    assert code == 2
    error = capsys.readouterr().err
    assert "1 input(s) missing" in error
    assert str(missing) in error
    assert not (tmp_path / "runs").exists()
