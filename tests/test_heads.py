"""Task heads: shapes, losses that train, and the AVS head inside the paired model."""

from __future__ import annotations

import pytest
import torch

from phplib.config import BackboneConfig, StageConfig
from phplib.heads.avqa import AVQAHead
from phplib.heads.avs import AVSHead, soft_iou_loss
from phplib.model import PHPModel


def test_soft_iou_loss_by_hand():
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    confident = torch.tensor([[[20.0, -20.0], [-20.0, -20.0]]])
    half = torch.zeros(1, 2, 2)
    assert soft_iou_loss(confident, target).item() == pytest.approx(0.0, abs=1e-6)
    # sigmoid(0) = 0.5 everywhere: intersection 0.5, union 0.5 * 4 + 1 - 0.5 = 2.5; smoothing adds 1 to both.
    assert soft_iou_loss(half, target).item() == pytest.approx(1 - 1.5 / 3.5)


def test_avs_head_learns_a_mask():
    torch.manual_seed(0)
    head = AVSHead(token_dim=16, audio_dim=8, mask_size=32)
    tokens = torch.randn(2, 5, 64, 16)
    audio = torch.randn(2, 5, 8)
    mask = torch.zeros(2, 5, 32, 32)
    mask[:, :, 8:24, 8:24] = 1.0
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[1, 1:] = False  # the real S4 train split annotates only the first frame
    batch = {"mask": mask, "mask_valid": valid}
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = head.loss(head(None, audio, batch, video_tokens=tokens), batch)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    collected = head.collect(head(None, audio, batch, video_tokens=tokens), batch)
    assert collected["pred"].shape == (6, 32, 32)


def test_avs_head_needs_tokens():
    head = AVSHead(token_dim=16, audio_dim=8, mask_size=32)
    with pytest.raises(ValueError, match="patch tokens"):
        head(torch.zeros(1, 5, 4), torch.zeros(1, 5, 8), {})


def test_avs_head_inside_model():
    torch.manual_seed(0)
    model = PHPModel(BackboneConfig(), StageConfig(tma_tokens=4)).eval()
    model.add_task("AVS", AVSHead(model.vision.width, model.audio_dim, mask_size=64))
    video = torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8)
    frames, spectrogram = model.prepare_inputs(video, torch.randn(2, 5, 16000) * 0.1)
    with torch.no_grad():
        logits = model(frames, spectrogram, "AVS", {"video_id": ["a", "b"]})
    assert logits.shape == (2, 5, 64, 64)


def test_avqa_head_uses_question():
    torch.manual_seed(0)
    head = AVQAHead(video_dim=8, audio_dim=8, vocab_size=20, num_answers=3, hidden=16).eval()
    video, audio = torch.randn(1, 10, 8).expand(2, -1, -1), torch.randn(1, 10, 8).expand(2, -1, -1)
    batch = {"question": torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]]), "question_len": torch.tensor([3, 2])}
    with torch.no_grad():
        logits = head(video, audio, batch)
    assert logits.shape == (2, 3)
    assert not torch.allclose(logits[0], logits[1])
