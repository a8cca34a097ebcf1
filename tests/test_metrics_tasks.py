"""Per-task scores checked against small cases worked out by hand."""

import numpy as np
import pytest
import torch

from phplib.metrics.tasks import (
    ave_segment_accuracy,
    avqa_accuracy,
    avs_fscore,
    avs_miou,
    avvp_event_f1,
    avvp_segment_f1,
    avvp_video_top1_accuracy,
)


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


# --- AVVP, event level ----------------------------------------------------------


def _ten(*ones):
    """Ten segment flags with 1 at the given [start, end) ranges."""
    flags = [0] * 10
    for start, end in ones:
        flags[start:end] = [1] * (end - start)
    return flags


def test_avvp_event_f1_by_hand():
    silent = _video(_ten(), _ten())
    gt_audio = _videos(_video(_ten((0, 4)), _ten((5, 10))), silent)
    pred_audio = _videos(_video(_ten((0, 2), (6, 8)), _ten((8, 10))), silent)
    gt_visual = _videos(_video(_ten((0, 10)), _ten()), silent)
    pred_visual = _videos(_video(_ten((0, 10)), _ten()), silent)

    scores = avvp_event_f1(pred_audio, pred_visual, gt_audio, gt_visual)

    # Video 0, audio, class 0: [0,2) overlaps [0,4) with IoU 2/4 = 0.5, a match (TP); [6,8) matches nothing (FP).
    # Class 1: [8,10) against [5,10) has IoU 2/5 < 0.5, so one FP and one FN.
    audio_video0 = (2 * 1 / (2 * 1 + 1) + 0.0) / 2
    # Visual: one event predicted exactly; class 1 has no event anywhere and is left out.
    visual_video0 = 1.0
    # Audio-visual: gt class 0 = [0,4); pred = pred_audio AND pred_visual = [0,2) and [6,8): TP 1, FP 1.
    av_video0 = 2 * 1 / (2 * 1 + 1)
    # Event@AV sums audio and visual counts: class 0 TP 2, FP 1; class 1 FP 1, FN 1.
    event_video0 = (2 * 2 / (2 * 2 + 1) + 0.0) / 2
    # Video 1 has no event at all and scores 1.0 everywhere.
    assert scores["audio"] == pytest.approx((audio_video0 + 1) / 2)
    assert scores["visual"] == pytest.approx((visual_video0 + 1) / 2)
    assert scores["audio_visual"] == pytest.approx((av_video0 + 1) / 2)
    assert scores["type@AV"] == pytest.approx(((audio_video0 + 1) / 2 + 1.0 + (av_video0 + 1) / 2) / 3)
    assert scores["event@AV"] == pytest.approx((event_video0 + 1) / 2)
    assert all(type(value) is float for value in scores.values())


def test_avvp_event_matching_not_one_to_one():
    gt = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0, 0, 0]]).T[None]  # [1, 10, 1]: one event [0,7)
    pred = torch.tensor([[1, 1, 1, 0, 1, 1, 1, 0, 0, 0]]).T[None]  # [0,3) and [4,7), IoU 3/7 each
    empty = torch.zeros_like(gt)
    # At threshold 0.3 both predicted events match the one ground-truth event: TP 2, FP 0, FN 0.
    assert avvp_event_f1(pred, empty, gt, empty, iou_threshold=0.3)["audio"] == 1.0
    # At 0.5 neither matches: FP 2, FN 1.
    assert avvp_event_f1(pred, empty, gt, empty)["audio"] == 0.0
    wide = torch.tensor([[1, 1, 0, 1, 1, 1, 1, 0, 0, 0]]).T[None]
    # [0,2) has IoU 2/7 < 0.5 (FP); [3,7) has IoU 4/7 (TP); the ground-truth event is found (no FN).
    assert avvp_event_f1(wide, empty, gt, empty)["audio"] == pytest.approx(2 / 3)


def test_avvp_event_threshold_and_errors():
    gt = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]]).T[None]
    pred = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]).T[None]  # IoU 1/4
    empty = torch.zeros_like(gt)
    assert avvp_event_f1(pred, empty, gt, empty)["audio"] == 0.0
    assert avvp_event_f1(pred, empty, gt, empty, iou_threshold=0.25)["audio"] == 1.0
    with pytest.raises(ValueError, match="iou_threshold"):
        avvp_event_f1(pred, empty, gt, empty, iou_threshold=0.0)
    with pytest.raises(ValueError, match="gt_visual has"):
        avvp_event_f1(pred, empty, gt, torch.zeros(1, 10, 2))
    with pytest.raises(ValueError, match="binary"):
        avvp_event_f1(pred.float() * 0.5, empty, gt, empty)


def test_avvp_event_equals_segment_when_events_are_single_segments():
    generator = torch.Generator().manual_seed(1)
    gt = torch.zeros(4, 10, 3)
    gt[:, ::2] = torch.randint(0, 2, (4, 5, 3), generator=generator).float()  # isolated one-second events
    scores = avvp_event_f1(gt, gt, gt, gt)
    for key in ("audio", "visual", "audio_visual", "type@AV", "event@AV"):
        assert scores[key] == pytest.approx(1.0), key


# --- PHP's per-video top-1 variant -------------------------------------------------


def test_video_top1_by_hand():
    scores = torch.tensor([
        [[0.9, 0.1, 0.2], [0.7, 0.3, 0.1]],  # mean [0.8, 0.2, 0.15] -> class 0
        [[0.1, 0.6, 0.2], [0.1, 0.2, 0.7]],  # mean [0.1, 0.4, 0.45] -> class 2
        [[0.2, 0.1, 0.9], [0.2, 0.1, 0.8]],  # -> class 2
    ])
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 1]])
    # Targets are the lowest positive class: 0, 1, 1. Only video 0 is right.
    # Each video counts once per label (2, 1 and 2 times), as the reference's test set lists it.
    assert avvp_video_top1_accuracy(scores, labels) == pytest.approx(2 / 5)
    assert avvp_video_top1_accuracy(scores, labels, count_per_label=False) == pytest.approx(1 / 3)


def test_video_top1_rejects_bad_input():
    scores = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"shape \[N, C\]"):
        avvp_video_top1_accuracy(scores, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least one positive label"):
        avvp_video_top1_accuracy(scores, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="binary"):
        avvp_video_top1_accuracy(scores, torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match=r"\[N, T, C\]"):
        avvp_video_top1_accuracy(torch.zeros(2, 4), torch.ones(2, 4))


# --- AVS --------------------------------------------------------------------------


FRAME_GT = [[1, 1], [0, 0]]
FRAME_PRED = [[0.9, 0.3], [0.6, 0.1]]


def test_avs_miou_by_hand():
    pred = torch.tensor([FRAME_PRED, [[0.7, 0.2], [0.1, 0.1]]])  # [N=2 frames, 2, 2]
    gt = torch.tensor([FRAME_GT, [[0, 0], [0, 0]]])
    # Frame 0: prediction {(0,0), (1,0)} against {(0,0), (0,1)}: intersection 1, union 3.
    # Frame 1 has an empty ground truth: 3 of 4 pixels are predicted background.
    assert avs_miou(pred, gt) == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert avs_miou(pred, gt, mask_valid=[True, False]) == pytest.approx(1 / 3)
    assert avs_miou(torch.logit(pred.double()), gt, from_logits=True) == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert avs_miou(pred[None], gt[None]) == pytest.approx((1 / 3 + 3 / 4) / 2)  # [N, T, H, W] form
    assert avs_miou(gt.bool(), gt) == 1.0


def test_avs_fscore_one_frame_by_hand():
    pred, gt = torch.tensor([FRAME_PRED]), torch.tensor([FRAME_GT])
    # Thresholds in (0.6, 0.9] keep only the 0.9 pixel: P = 1, R = 1/2, F = 1.3 * 0.5 / (0.3 + 0.5) = 0.8125,
    # the best of the curve (0.565 below 0.1, 0.722 up to 0.3, 0.5 up to 0.6, 0 above 0.9).
    assert avs_fscore(pred, gt) == pytest.approx(1.3 * 0.5 / (0.3 + 0.5), rel=1e-6)


def test_avs_fscore_averages_curves_within_a_video():
    pred = torch.tensor([FRAME_PRED, [[0.5, 0.5], [0.5, 0.5]]])
    gt = torch.tensor([FRAME_GT, [[1, 1], [1, 1]]])
    # Frame 1 scores F = 1 up to 0.5 and 0 above. The averaged curve peaks in (0.1, 0.3]:
    # (0.7222 + 1) / 2, where frame 0 has P = 2/3, R = 1, F = 1.3 * (2/3) / (0.2 + 1).
    frame0 = 1.3 * (2 / 3) / (0.3 * (2 / 3) + 1)
    assert avs_fscore(pred, gt) == pytest.approx((frame0 + 1) / 2, rel=1e-6)
    # As two one-frame videos, each takes its own maximum first: (0.8125 + 1) / 2.
    assert avs_fscore(pred[:, None], gt[:, None]) == pytest.approx((0.8125 + 1) / 2, rel=1e-6)


def test_avs_fscore_empty_video_scores_zero():
    pred = torch.tensor([[FRAME_PRED], [[[0.2, 0.2], [0.2, 0.2]]]])  # [2 videos, 1 frame, 2, 2]
    gt = torch.tensor([[FRAME_GT], [[[0, 0], [0, 0]]]])
    assert avs_fscore(pred, gt) == pytest.approx(0.8125 / 2, rel=1e-6)
    assert avs_fscore(pred, gt, mask_valid=[[True], [False]]) == pytest.approx(0.8125 / 2, rel=1e-6)


def test_avs_metrics_reject_bad_input():
    gt = torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        avs_miou(torch.zeros(2, 4, 5), gt)
    with pytest.raises(ValueError, match="from_logits=True"):
        avs_miou(torch.full((2, 4, 4), 3.0), gt)
    with pytest.raises(ValueError, match="binary"):
        avs_fscore(torch.zeros(2, 4, 4), torch.full((2, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\[N, H, W\] or \[N, T, H, W\]"):
        avs_miou(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="one flag per frame"):
        avs_miou(torch.zeros(2, 4, 4), gt, mask_valid=[True])
    with pytest.raises(ValueError, match="no frame as valid"):
        avs_fscore(torch.zeros(2, 4, 4), gt, mask_valid=[False, False])
    with pytest.raises(ValueError, match="beta2"):
        avs_fscore(torch.zeros(2, 4, 4), gt, beta2=0)
