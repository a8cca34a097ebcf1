"""Per-task scores checked against small cases worked out by hand."""

import numpy as np
import pytest
import torch

from phplib.metrics.tasks import ave_segment_accuracy, avqa_accuracy, avvp_segment_f1


# --- AVE ----------------------------------------------------------------------


def test_ave_accuracy_by_hand():
    # Two classes, so index 2 is background.
    pred = torch.tensor([[0, 1, 2], [2, 2, 1]])
    target = torch.tensor([[0, 1, 1], [2, 0, 1]])
    expected = (1 + 1 + 0 + 1 + 0 + 1) / 6
    assert ave_segment_accuracy(pred, target) == pytest.approx(expected)
    assert ave_segment_accuracy(pred, target, num_classes=2) == pytest.approx(expected)


def test_ave_accuracy_accepts_numpy():
    pred = np.array([[3, 3]])
    target = np.array([[3, 0]])
    assert ave_segment_accuracy(pred, target) == pytest.approx(1 / 2)


def test_ave_accuracy_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ave_segment_accuracy(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \[N, T\]"):
        ave_segment_accuracy(torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="no segments"):
        ave_segment_accuracy(torch.zeros(0, 10, dtype=torch.long), torch.zeros(0, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class indices"):
        ave_segment_accuracy(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pred contains class indices in \[0, 3\]"):
        ave_segment_accuracy(torch.tensor([[0, 3]]), torch.tensor([[0, 2]]), num_classes=2)
    with pytest.raises(ValueError, match=r"target contains class indices in \[-1, 0\]"):
        ave_segment_accuracy(torch.tensor([[0, 0]]), torch.tensor([[0, -1]]), num_classes=2)


# --- AVVP ---------------------------------------------------------------------


def _video(*class_rows):
    """Build a [T, C] tensor from one row of segment flags per class."""
    return torch.tensor(class_rows).T


def _videos(*videos):
    return torch.stack(videos)  # [N, T, C]


def test_avvp_segment_f1_by_hand():
    silent = _video([0, 0, 0], [0, 0, 0])
    gt_audio = _videos(_video([1, 1, 0], [0, 0, 0]), silent)
    pred_audio = _videos(_video([1, 0, 0], [0, 1, 0]), silent)
    gt_visual = _videos(_video([1, 1, 1], [0, 0, 0]), silent)
    pred_visual = _videos(_video([1, 1, 0], [0, 0, 0]), silent)

    scores = avvp_segment_f1(pred_audio, pred_visual, gt_audio, gt_visual)

    # Video 0, audio: class 0 has TP=1 FP=0 FN=1, class 1 has TP=0 FP=1 FN=0.
    audio_video0 = (2 * 1 / (2 * 1 + 0 + 1) + 0.0) / 2
    # Video 0, visual: class 0 has TP=2 FP=0 FN=1, class 1 is never active.
    visual_video0 = 2 * 2 / (2 * 2 + 0 + 1)
    # Video 0, audio-visual: gt class 0 = [1,1,0], pred class 0 = [1,0,0], TP=1 FN=1.
    av_video0 = 2 * 1 / (2 * 1 + 0 + 1)
    # Video 0, event: class 0 sums TP=1+2 and FN=1+1, and class 1 keeps TP=0 FP=1.
    event_video0 = (2 * 3 / (2 * 3 + 0 + 2) + 0.0) / 2
    # Video 1 has no positive anywhere, so it scores 1.0 for every type.
    expected_audio = (audio_video0 + 1.0) / 2
    expected_visual = (visual_video0 + 1.0) / 2
    expected_av = (av_video0 + 1.0) / 2

    assert scores["audio"] == pytest.approx(expected_audio)
    assert scores["visual"] == pytest.approx(expected_visual)
    assert scores["audio_visual"] == pytest.approx(expected_av)
    assert scores["type@AV"] == pytest.approx((expected_audio + expected_visual + expected_av) / 3)
    assert scores["event@AV"] == pytest.approx((event_video0 + 1.0) / 2)
    assert all(type(value) is float for value in scores.values())


def test_avvp_false_alarm_video_scores_zero():
    empty = _videos(_video([0, 0], [0, 0]))
    false_alarm = _videos(_video([0, 1], [0, 0]))
    scores = avvp_segment_f1(false_alarm, empty, empty, empty)
    assert scores["audio"] == 0.0
    assert scores["visual"] == 1.0
    assert scores["audio_visual"] == 1.0


def test_avvp_perfect_prediction():
    generator = torch.Generator().manual_seed(0)
    gt_audio = torch.randint(0, 2, (3, 10, 4), generator=generator)
    gt_visual = torch.randint(0, 2, (3, 10, 4), generator=generator)
    scores = avvp_segment_f1(gt_audio.bool(), gt_visual.bool(), gt_audio, gt_visual)
    for name, value in scores.items():
        assert value == pytest.approx(1.0), name


def test_avvp_rejects_bad_input():
    good = torch.zeros(2, 10, 5)
    with pytest.raises(ValueError, match=r"gt_visual has \(2, 10, 4\)"):
        avvp_segment_f1(good, good, good, torch.zeros(2, 10, 4))
    with pytest.raises(ValueError, match=r"pred_audio must have shape \[N, T, C\]"):
        avvp_segment_f1(torch.zeros(10, 5), good, good, good)
    with pytest.raises(ValueError, match="pred_visual must be binary"):
        avvp_segment_f1(good, torch.full((2, 10, 5), 0.7), good, good)
    with pytest.raises(ValueError, match="at least one video"):
        empty = torch.zeros(0, 10, 5)
        avvp_segment_f1(empty, empty, empty, empty)


# --- AVQA ---------------------------------------------------------------------


def test_avqa_accuracy_by_hand():
    pred = torch.tensor([1, 2, 3, 4, 5])
    target = torch.tensor([1, 0, 3, 4, 0])
    types = [
        "Audio/Counting",
        "Audio/Counting",
        "Visual/Location",
        "Audio-Visual/Existential",
        "Audio-Visual/Existential",
    ]
    result = avqa_accuracy(pred, target, types)
    assert result["overall"] == pytest.approx(3 / 5)
    assert result["per_type"] == {
        "Audio-Visual/Existential": pytest.approx(1 / 2),
        "Audio/Counting": pytest.approx(1 / 2),
        "Visual/Location": pytest.approx(1 / 1),
    }
    assert list(result["per_type"]) == sorted(types[i] for i in (3, 0, 2))


def test_avqa_accuracy_without_types():
    result = avqa_accuracy([0, 1, 1, 1], [0, 1, 0, 1])
    assert result == {"overall": pytest.approx(3 / 4)}


def test_avqa_rejects_bad_input():
    pred = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="2 questions"):
        avqa_accuracy(pred, pred, ["Audio/Counting"])
    with pytest.raises(ValueError, match="not a string"):
        avqa_accuracy(pred, pred, "Audio/Counting")
    with pytest.raises(ValueError, match=r"question_types\[1\] must be a string"):
        avqa_accuracy(pred, pred, ["Audio/Counting", 3])
    with pytest.raises(ValueError, match="same shape"):
        avqa_accuracy(pred, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer class indices"):
        avqa_accuracy(torch.tensor([0.0, 1.0]), pred)
    with pytest.raises(ValueError, match="no questions"):
        avqa_accuracy(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
