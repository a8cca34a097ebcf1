"""PHP stages inside the paired model: identity at start, placement, task switching, accounting."""

from __future__ import annotations

import pytest
import torch

from phplib.config import BackboneConfig, StageConfig
from phplib.heads.ave import AVEHead
from phplib.model import PHPModel
from phplib.stages.placement import Placement
from phplib.stages.tma import CrossModalAdapter


def make_model(order: str = "SMD", **stage_options) -> PHPModel:
    torch.manual_seed(0)
    return PHPModel(BackboneConfig(), StageConfig(order=order, tma_tokens=4, **stage_options))


def inputs(model: PHPModel, clips: int = 2):
    torch.manual_seed(1)
    video = torch.randint(0, 256, (clips, 10, 3, 64, 64), dtype=torch.uint8)
    audio = torch.randn(clips, 10, 16000) * 0.1
    return model.prepare_inputs(video, audio)


def add_ave(model: PHPModel, name: str = "AVE") -> None:
    model.add_task(name, AVEHead(model.video_dim, model.audio_dim, 5))


def test_fresh_tma_is_identity():
    model = make_model("S--").eval()
    add_ave(model)
    frames, spectrogram = inputs(model)
    with torch.no_grad():
        video, audio = model.encode(frames, spectrogram, "AVE")
        frozen_video, frozen_audio = model.frozen_features(frames, spectrogram)
    assert torch.allclose(video, frozen_video, atol=1e-5)
    assert torch.allclose(audio, frozen_audio, atol=1e-5)


def test_opened_tma_gate_changes_output():
    model = make_model("S--").eval()
    add_ave(model)
    for adapter in model.tma.adapters.values():
        adapter.gate.data.fill_(1.0)
    frames, spectrogram = inputs(model)
    with torch.no_grad():
        video, audio = model.encode(frames, spectrogram, "AVE")
        frozen_video, frozen_audio = model.frozen_features(frames, spectrogram)
    assert not torch.allclose(video, frozen_video, atol=1e-3)
    assert not torch.allclose(audio, frozen_audio, atol=1e-3)


def test_tma_temporal_attention_mixes_segments():
    adapter = CrossModalAdapter(16, 8, num_tokens=4, reduction=2, gamma=1.0)
    adapter.gate.data.fill_(1.0)
    target, source = torch.randn(2 * 5, 7, 16), torch.randn(2 * 5, 3, 8)
    changed_source = source.clone()
    changed_source[4] = torch.randn(3, 8) * 3.0  # segment 4 of clip 0 only
    out = adapter(target, source, num_segments=5)
    out_changed = adapter(target, changed_source, num_segments=5)
    # Temporal attention lets one segment's source reach the other segments of its clip, not other clips.
    assert (out_changed[0] - out[0]).abs().max() > 1e-4
    assert torch.allclose(out_changed[5:], out[5:])


def test_tma_insertion_points_switch():
    model = make_model("SMD", tma_after_attention=False)
    assert model.tma.points == ["mlp"]
    assert all("attention" not in key for key in model.tma.adapters)


def test_placement_orders():
    groups = [[0, 1], [3, 4], [5, 6, 7, 8, 9, 10, 11]]
    smd = Placement.from_order("SMD", groups, 12)
    dms = Placement.from_order("DMS", groups, 12)
    dropped = Placement.from_order("S-D", groups, 12)
    assert smd.blocks("S") == (0, 1)
    assert smd.blocks("D") == (5, 6, 7, 8, 9, 10, 11)
    assert dms.blocks("D") == (0, 1)
    assert dms.blocks("S") == (5, 6, 7, 8, 9, 10, 11)
    assert dropped.blocks("M") == ()
    assert smd.stage_at(2) is None


@pytest.mark.parametrize(
    "order, groups, message",
    [
        ("SMX", [[0], [1], [2]], "each of S, M, D"),
        ("SSD", [[0], [1], [2]], "each of S, M, D"),
        ("SM", [[0], [1], [2]], "one letter per group"),
        ("SMD", [[0], [1], [12]], "outside 0..11"),
        ("SMD", [[0], [0], [2]], "two depth groups"),
    ],
)
def test_placement_rejects_bad_orders(order, groups, message):
    with pytest.raises(ValueError, match=message):
        Placement.from_order(order, groups, 12)


def test_dms_puts_prompts_shallow():
    model = make_model("DMS")
    add_ave(model)
    assert model.tma.blocks == [5, 6, 7, 8, 9, 10, 11]
    assert model.tmi["AVE"].blocks == [0, 1]


def test_task_prompts_select_by_identity():
    model = make_model().eval()
    add_ave(model, "first")
    add_ave(model, "second")
    frames, spectrogram = inputs(model)
    with torch.no_grad():
        first, _ = model.encode(frames, spectrogram, "first")
        second, _ = model.encode(frames, spectrogram, "second")
        again, _ = model.encode(frames, spectrogram, "first")
    assert not torch.allclose(first, second, atol=1e-4)
    assert torch.equal(first, again)


def test_unknown_task_is_named():
    model = make_model()
    add_ave(model)
    frames, spectrogram = inputs(model, clips=1)
    with pytest.raises(KeyError, match="unknown task 'LLP'"):
        model.encode(frames, spectrogram, "LLP")
    with pytest.raises(ValueError, match="already added"):
        add_ave(model)


def test_visual_only_variant_has_no_audio_prompts():
    model = make_model(tmi_visual_only=True)
    add_ave(model)
    assert len(model.tmi["AVE"].audio) == 0
    assert len(model.tmi["AVE"].video) == 7
    assert model.tmi["AVE"].prefix(5, "audio") is None


def test_tmdg_weights_are_per_instance_mixtures():
    model = make_model().eval()
    add_ave(model)
    frames, spectrogram = inputs(model, clips=2)
    frames[1] = frames[1].flip(-1)
    with torch.no_grad():
        *_, details = model.encode(frames, spectrogram, "AVE", return_details=True)
    weights = details["tmdg_weights_3"]  # [B*T, bank]
    assert weights.shape == (20, 8)
    assert torch.allclose(weights.sum(-1), torch.ones(20), atol=1e-5)
    assert not torch.allclose(weights[0], weights[10], atol=1e-6)


def test_parameter_report_counts_only_trainable():
    model = make_model()
    add_ave(model, "first")
    add_ave(model, "second")
    report = model.parameter_report("second")
    assert report.backbone_frozen == sum(p.numel() for p in model.visual.parameters()) + sum(
        p.numel() for p in model.audio.parameters()
    )
    assert all(not name.startswith(("visual.", "audio.")) for name in report.trainable_names)
    assert all(".first" not in name for name in report.trainable_names)
    expected = sum(p.numel() for p in model.trainable_parameters("second"))
    assert report.trainable == expected


def test_training_one_task_leaves_other_prompts():
    model = make_model()
    add_ave(model, "first")
    add_ave(model, "second")
    before = {n: p.clone() for n, p in model.named_parameters() if ".first" in n}
    frames, spectrogram = inputs(model)
    optimizer = torch.optim.SGD(model.trainable_parameters("second"), lr=0.1)
    batch = {"label": torch.randint(0, 6, (2, 10))}
    loss = model.heads["second"].loss(model(frames, spectrogram, "second", batch), batch)
    loss.backward()
    optimizer.step()
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters() if ".first" in n)
    assert all(not p.requires_grad or p.grad is None for p in model.visual.parameters())


def test_set_task_selects_modules():
    model = make_model().eval()
    add_ave(model, "first")
    add_ave(model, "second")
    frames, spectrogram = inputs(model, clips=1)
    with pytest.raises(ValueError, match="no task given"):
        model.encode(frames, spectrogram)
    model.set_task("second")
    with torch.no_grad():
        selected, _ = model.encode(frames, spectrogram)
        named, _ = model.encode(frames, spectrogram, "second")
    assert torch.equal(selected, named)
    with pytest.raises(KeyError, match="unknown task 'third'"):
        model.set_task("third")


def test_prefix_right_for_sequence_first_transformer():
    """open_clip can run its blocks sequence-first; phplib's block loop must give the same result."""
    import open_clip

    from phplib.backbones.clip_vision import build_clip_vision, vit_forward_blockwise

    torch.manual_seed(3)
    visual = build_clip_vision("tiny-vit").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        batch_first = visual(images)
    sequence_first = open_clip.transformer.Transformer(64, 12, 4, mlp_ratio=2.0, batch_first=False)
    sequence_first.load_state_dict(visual.transformer.state_dict())
    visual.transformer = sequence_first.eval()
    with torch.no_grad():
        assert torch.allclose(visual(images), batch_first, atol=1e-5)
        assert torch.allclose(vit_forward_blockwise(visual, images), batch_first, atol=1e-5)


def test_tma_maps_are_returned():
    model = make_model().eval()
    add_ave(model)
    frames, spectrogram = inputs(model)
    with torch.no_grad():
        *_, details = model.encode(frames, spectrogram, "AVE", return_details=True)
    maps = details["tma_maps_0_attention"]["video"]
    assert maps["temporal"].shape == (2, 10)
    assert torch.allclose(maps["temporal"].mean(dim=1), torch.ones(2), atol=1e-5)
    assert maps["spatial"].shape == (20, 65)
    assert details["video_tokens"].shape == (2, 10, 64, 64)
    assert set(details["tma_maps_1_mlp"]) == {"video", "audio"}
