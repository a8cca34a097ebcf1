"""Toy pretraining: a shortened regeneration end to end, the shipped files, and bad weights files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from phplib.backbones.clap_audio import build_clap_audio
from phplib.backbones.clip_vision import build_clip_vision
from phplib.backbones.pretrained import (
    TOY_AUDIO_WEIGHTS,
    TOY_VISION_WEIGHTS,
    TOY_WEIGHTS_DIR,
    resolve_backbone_weights,
    verify_toy_weights,
)
from phplib.backbones.weights import WeightsError
from phplib.config import BackboneConfig, RunConfig, config_from_dict
from phplib.pretrain.captions import VOCABULARY, tokenize
from phplib.pretrain.train import CHECKSUM_FILE, CLAP_FILE, CLIP_FILE, PretrainSettings, pretrain_toy
from phplib.pretrain.world import TASK_LOOKALIKES, build_pretrain_set

# Two steps on 32 items: enough to exercise every part of the pipeline in a few seconds.
SHORT = PretrainSettings(steps=2, num_images=32, num_sounds=32, batch_size=16, warmup_steps=1)


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two shortened pretraining runs with the same settings, in separate folders."""
    torch.set_num_threads(1)
    folders = []
    for name in ("first", "second"):
        folder = tmp_path_factory.mktemp(name)
        pretrain_toy(folder, SHORT, progress=False)
        folders.append(folder)
    return folders[0], folders[1]


def test_short_run_writes_files(short_runs):
    first, _ = short_runs
    for name in (CLIP_FILE, CLAP_FILE, CHECKSUM_FILE):
        assert (first / name).is_file(), name
    assert set(verify_toy_weights(first)) == {CLIP_FILE, CLAP_FILE}


def test_short_run_is_deterministic(short_runs):
    first, second = short_runs
    for name in (CLIP_FILE, CLAP_FILE):
        a, b = torch.load(first / name, weights_only=True), torch.load(second / name, weights_only=True)
        a = a.get("state_dict", a)
        b = b.get("state_dict", b)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs between two identical runs"
    assert (first / CHECKSUM_FILE).read_text() == (second / CHECKSUM_FILE).read_text()


def test_short_run_loads_through_config(short_runs):
    first, _ = short_runs
    backbone = BackboneConfig(vision_weights=str(first / CLIP_FILE), audio_weights=str(first / CLAP_FILE))
    vision_path, audio_path = resolve_backbone_weights(backbone)
    assert vision_path == str(first / CLIP_FILE)
    assert audio_path == str(first / CLAP_FILE)

    visual = build_clip_vision("tiny-vit", vision_path)
    state = torch.load(first / CLIP_FILE, weights_only=True)
    assert torch.equal(visual.conv1.weight, state["visual.conv1.weight"].float())

    audio = build_clap_audio("tiny-htsat", audio_path)
    saved = torch.load(first / CLAP_FILE, weights_only=True)["state_dict"]
    # bn0 carries the log-mel statistics set during pretraining, not the random-init mean 0 / variance 1.
    assert torch.equal(audio.bn0.running_mean, saved["module.audio_branch.bn0.running_mean"])
    assert audio.bn0.running_mean.abs().max() > 1.0
    assert not torch.allclose(audio.bn0.running_var, torch.ones_like(audio.bn0.running_var))


def test_runner_keeps_checkpoint_normalisation(toy_world_root, toy_world_config):
    from phplib.continual.runner import _prepare_stream

    config = config_from_dict({"tasks": ["AVE"], "data": {"root": str(toy_world_root), "toy": toy_world_config.to_json()}})
    model, _, _ = _prepare_stream(config, progress=False, timings={})
    saved = torch.load(TOY_AUDIO_WEIGHTS, weights_only=True)["state_dict"]
    assert model.audio_weights == str(TOY_AUDIO_WEIGHTS)
    assert torch.equal(model.audio.bn0.running_mean, saved["module.audio_branch.bn0.running_mean"])


def test_shipped_weights_checksums():
    verified = verify_toy_weights()
    assert set(verified) == {CLIP_FILE, CLAP_FILE}
    total = sum((TOY_WEIGHTS_DIR / name).stat().st_size for name in verified)
    assert total <= 10 * 1024 * 1024, f"shipped toy weights take {total} bytes, over 10 MB"


def test_damaged_shipped_file_fails_checksum(tmp_path):
    copy = tmp_path / "toy"
    shutil.copytree(TOY_WEIGHTS_DIR, copy)
    data = bytearray((copy / CLIP_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / CLIP_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=CLIP_FILE):
        verify_toy_weights(copy)


def test_damaged_shipped_file_stops_model_build(tmp_path, monkeypatch):
    """The shipped weights are checked against SHA256SUMS whenever a config loads them."""
    import phplib.backbones.pretrained as pretrained

    copy = tmp_path / "toy"
    shutil.copytree(TOY_WEIGHTS_DIR, copy)
    monkeypatch.setattr(pretrained, "TOY_VISION_WEIGHTS", copy / CLIP_FILE)
    monkeypatch.setattr(pretrained, "TOY_AUDIO_WEIGHTS", copy / CLAP_FILE)
    assert resolve_backbone_weights(BackboneConfig())[0] == str(copy / CLIP_FILE)
    data = bytearray((copy / CLIP_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / CLIP_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        resolve_backbone_weights(BackboneConfig())


@pytest.mark.parametrize("arguments, message", [(["--steps", "0"], "--steps must be at least 1"), (["--out", "FILE"], "is a file")])
def test_pretrain_rejects_bad_arguments(tmp_path, capsys, arguments, message):
    from phplib.cli import main

    (tmp_path / "weights.pt").write_bytes(b"not a folder")
    arguments = [str(tmp_path / "weights.pt") if value == "FILE" else value for value in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "out")]
    assert main(["pretrain", "--scale", "toy", *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_default_config_uses_shipped_weights():
    assert BackboneConfig().pretrained == "toy"
    assert resolve_backbone_weights(BackboneConfig()) == (str(TOY_VISION_WEIGHTS), str(TOY_AUDIO_WEIGHTS))
    assert resolve_backbone_weights(BackboneConfig(pretrained="none")) == (None, None)


def test_toy_with_paper_model_is_error():
    with pytest.raises(ValueError, match="pretrained: none"):
        config_from_dict({"backbone": {"vision_model": "ViT-B-32"}})
    with pytest.raises(ValueError, match="audio_model"):
        config_from_dict({"backbone": {"audio_model": "HTSAT-tiny"}})
    with pytest.raises(ValueError, match="must be one of"):
        config_from_dict({"backbone": {"pretrained": "imagenet"}})
    paper = RunConfig()
    paper.backbone = BackboneConfig(vision_model="ViT-B-32", vision_weights="w.pt", audio_model="HTSAT-tiny",
                                    audio_weights="a.pt")
    paper.validate()  # given weights files take precedence, so "toy" is not consulted


def test_corrupt_weights_file_is_clear_error(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(TOY_AUDIO_WEIGHTS.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="broken.pt"):
        build_clap_audio("tiny-htsat", broken)
    with pytest.raises(WeightsError, match="broken.pt"):
        build_clip_vision("tiny-vit", broken)


def test_wrong_shape_weights_is_clear_error(tmp_path):
    state = torch.load(TOY_VISION_WEIGHTS, weights_only=True)
    state["visual.proj"] = torch.zeros(3, 3)
    path = tmp_path / "wrong_shape.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"wrong_shape\.pt.*visual|proj: file \(3, 3\)"):
        build_clip_vision("tiny-vit", path)

    checkpoint = torch.load(TOY_AUDIO_WEIGHTS, weights_only=True)
    checkpoint["state_dict"]["module.audio_branch.bn0.running_mean"] = torch.zeros(7)
    path = tmp_path / "wrong_shape_clap.pt"
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="bn0.running_mean: file \\(7,\\)"):
        build_clap_audio("tiny-htsat", path)


def test_tokenize_rejects_unknown_word():
    assert tokenize("a high whistle tone").shape == (1, 12)
    with pytest.raises(ValueError, match="trumpet"):
        tokenize("a high trumpet")
    assert "whistle" in VOCABULARY


def test_pretrain_world_avoids_task_lookalikes():
    data = build_pretrain_set(200, 4, seed=3, image_size=32, sample_rate=16000)
    pairs = {(a.shape, a.colour) for a in data.image_attributes}
    assert not pairs & TASK_LOOKALIKES
    assert data.images.shape == (200, 3, 32, 32)
    assert data.sounds.shape == (4, 16000)
    held_out = build_pretrain_set(4, 0, seed=3, image_size=32, sample_rate=16000, offset=200)
    assert not any((held_out.images[0] == image).all() for image in data.images)


def test_probe_split_keeps_clips_whole():
    from phplib.pretrain.probes import _halves_by_clip

    clips = np.repeat(np.arange(8), 3)  # 8 clips of 3 seconds
    labels = np.repeat(np.arange(8) % 2, 3)  # two classes, 4 clips each
    train, test = _halves_by_clip(clips, labels)
    assert set(clips[train]).isdisjoint(clips[test])
    assert sorted(np.concatenate([train, test])) == list(range(24))
    assert set(labels[train]) == {0, 1}
    assert set(labels[test]) == {0, 1}


def test_ridge_probe_separates_and_fails():
    from phplib.pretrain.probes import ridge_probe_accuracy

    generator = torch.Generator().manual_seed(0)
    labels = np.arange(200) % 2
    separable = torch.randn(200, 8, generator=generator) + 4 * torch.from_numpy(labels)[:, None].float()
    assert ridge_probe_accuracy(separable[:100], labels[:100], separable[100:], labels[100:]) == 1.0
    noise = torch.randn(200, 8, generator=generator)
    assert ridge_probe_accuracy(noise[:100], labels[:100], noise[100:], labels[100:]) < 0.75
