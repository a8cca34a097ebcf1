"""Throughput settings: bf16 autocast, the no_grad frozen prefix, loader keys and their validation."""

from __future__ import annotations

import functools

import pytest
import torch

from phplib.config import BackboneConfig, RunConfig, StageConfig, TrainConfig
from phplib.continual.learner import autocast_context
from phplib.heads.ave import AVEHead
from phplib.model import PHPModel


@functools.lru_cache(maxsize=None)
def tiny_model(order: str) -> PHPModel:
    """Build once per order (about a second each); tests reset what they change."""
    torch.manual_seed(0)
    model = PHPModel(BackboneConfig(), StageConfig(order=order, tma_tokens=4))
    model.add_task("AVE", AVEHead(model.video_dim, model.audio_dim, 4))
    return model


def tiny_inputs(model: PHPModel, clips: int = 2):
    torch.manual_seed(1)
    video = torch.randint(0, 256, (clips, 3, 3, 64, 64), dtype=torch.uint8)
    frames, spectrogram = model.prepare_inputs(video, torch.randn(clips, 3, 16000) * 0.1)
    return frames, spectrogram, {"label": torch.randint(0, 5, (clips, 3))}


def test_bf16_training_step_on_cpu_is_finite():
    model = tiny_model("SMD")
    frames, spectrogram, batch = tiny_inputs(model, clips=1)
    config = TrainConfig(precision="bf16")
    model.train()
    with autocast_context(config, torch.device("cpu")):
        outputs = model(frames, spectrogram, "AVE", batch)
        loss = model.heads["AVE"].loss(outputs, batch)
    assert outputs.dtype == torch.bfloat16
    assert torch.isfinite(loss)
    loss.backward()
    gradients = [p.grad for p in model.trainable_parameters("AVE") if p.grad is not None]
    assert gradients
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in gradients)
    model.zero_grad(set_to_none=True)


def test_fp32_autocast_is_a_no_op():
    model = tiny_model("SMD")
    frames, spectrogram, batch = tiny_inputs(model)
    with torch.no_grad(), autocast_context(TrainConfig(precision="fp32"), torch.device("cpu")):
        assert model(frames, spectrogram, "AVE", batch).dtype == torch.float32


def test_first_stage_block_per_order():
    assert tiny_model("SMD").first_stage_block == 0
    assert tiny_model("-MD").first_stage_block == 3
    assert tiny_model("--D").first_stage_block == 5


@pytest.mark.parametrize("order", ["-MD", "--D", "SMD"])
def test_frozen_prefix_no_grad_changes_nothing(order):
    model = tiny_model(order)
    frames, spectrogram, batch = tiny_inputs(model)
    results = []
    for no_grad_prefix in (True, False):
        model.frozen_prefix_no_grad = no_grad_prefix
        model.zero_grad(set_to_none=True)
        loss = model.heads["AVE"].loss(model(frames, spectrogram, "AVE", batch), batch)
        loss.backward()
        gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), gradients))
    (loss_with, gradients_with), (loss_without, gradients_without) = results
    assert torch.equal(loss_with, loss_without)
    assert gradients_with.keys() == gradients_without.keys()
    assert gradients_with
    for name in gradients_with:
        assert torch.equal(gradients_with[name], gradients_without[name]), name


def test_prefix_keeps_input_gradients():
    model = tiny_model("-MD")
    frames, spectrogram, batch = tiny_inputs(model)
    frames.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model.heads["AVE"].loss(model(frames, spectrogram, "AVE", batch), batch).backward()
    model.zero_grad(set_to_none=True)
    assert frames.grad is not None
    assert frames.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("precision", "fp16", "train.precision must be 'fp32' or 'bf16'"),
        ("num_workers", -1, "train.num_workers must not be negative"),
    ],
)
def test_invalid_throughput_settings(key, value, message):
    config = RunConfig()
    setattr(config.train, key, value)
    with pytest.raises(ValueError, match=message):
        config.validate()
