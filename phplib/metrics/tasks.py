"""Per-task scores: the headline metric of each audio-visual task, as a float in [0, 1].

Every function takes predictions and targets as tensors (numpy arrays and
nested lists are converted) and returns plain Python floats, so the results
can go straight into a row of the accuracy matrix or a JSON file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _as_tensor(values: Any, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(values).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name} cannot be converted to a tensor: {error}") from error


def _check_integer(values: torch.Tensor, name: str) -> None:
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"{name} must contain integer class indices, got dtype {values.dtype}")


def _check_same_shape(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(
            f"{names} must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}"
        )


def ave_segment_accuracy(pred: Any, target: Any, num_classes: int | None = None) -> float:
    """Compute AVE segment accuracy, the fraction of one-second segments labelled correctly.

    accuracy = (1/(N*T)) * sum_{n,t} [pred[n, t] == target[n, t]]

    pred and target are integer tensors of shape [N, T] holding one class index
    per segment, where index C means background (no audio-visual event). Every
    segment counts, background segments included. When ``num_classes`` (C,
    without background) is given, values outside 0..C raise ValueError.
    """
    pred = _as_tensor(pred, "pred")
    target = _as_tensor(target, "target")
    _check_same_shape(pred, target, "pred and target")
    if pred.ndim != 2:
        raise ValueError(f"pred and target must have shape [N, T], got {tuple(pred.shape)}")
    if pred.numel() == 0:
        raise ValueError(f"pred and target contain no segments, shape {tuple(pred.shape)}")
    _check_integer(pred, "pred")
    _check_integer(target, "target")
    if num_classes is not None:
        for name, values in (("pred", pred), ("target", target)):
            low, high = int(values.min()), int(values.max())
            if low < 0 or high > num_classes:
                raise ValueError(
                    f"{name} contains class indices in [{low}, {high}], but with "
                    f"num_classes = {num_classes} the valid range is 0..{num_classes} "
                    f"(index {num_classes} is background)"
                )
    return float((pred == target).double().mean())


def _check_binary(values: torch.Tensor, name: str) -> torch.Tensor:
    if values.ndim != 3:
        raise ValueError(f"{name} must have shape [N, T, C], got {tuple(values.shape)}")
    as_float = values.double()
    if not torch.all((as_float == 0) | (as_float == 1)):
        raise ValueError(f"{name} must be binary (0/1 or bool), got other values")
    return as_float


def _count_per_class(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Count TP, FP and FN over segments for every (video, class) pair: [N, T, C] -> [N, C]."""
    true_positives = (pred * gt).sum(dim=1)
    false_positives = (pred * (1 - gt)).sum(dim=1)
    false_negatives = ((1 - pred) * gt).sum(dim=1)
    return true_positives, false_positives, false_negatives


def _mean_video_f1(
    true_positives: torch.Tensor, false_positives: torch.Tensor, false_negatives: torch.Tensor
) -> float:
    """Average per-class F1 inside each video, then average over videos.

    A class counts in a video only if it is predicted or present in some
    segment. A video with no such class scores 1.0 (all true negatives).
    """
    errors = false_positives + false_negatives
    active = (true_positives + errors) > 0  # [N, C]
    f1 = 2 * true_positives / (2 * true_positives + errors).clamp(min=1)
    per_video = torch.ones(active.shape[0], dtype=torch.float64)
    has_active = active.any(dim=1)
    per_video[has_active] = (f1 * active).sum(dim=1)[has_active] / active.sum(dim=1)[has_active]
    return float(per_video.mean())


def _check_avvp_inputs(function: str, pred_audio, pred_visual, gt_audio, gt_visual) -> tuple[torch.Tensor, ...]:
    """Convert the four AVVP inputs to binary tensors of one shape ``[N, T, C]`` with N >= 1, or raise ``ValueError``."""
    tensors = {"pred_audio": pred_audio, "pred_visual": pred_visual, "gt_audio": gt_audio, "gt_visual": gt_visual}
    checked = {name: _check_binary(_as_tensor(value, name), name) for name, value in tensors.items()}
    shape = checked["pred_audio"].shape
    for name, value in checked.items():
        if value.shape != shape:
            raise ValueError(
                f"all inputs must have the same shape [N, T, C], but pred_audio has "
                f"{tuple(shape)} and {name} has {tuple(value.shape)}"
            )
    if shape[0] == 0:
        raise ValueError(f"{function} needs at least one video, got N = 0")
    return tuple(checked.values())


def _avvp_scores(counts_audio, counts_visual, counts_av) -> dict[str, float]:
    """Turn per-video (TP, FP, FN) counts of audio, visual and audio-visual into the AVVP scores."""
    counts_event = tuple(a + v for a, v in zip(counts_audio, counts_visual))
    scores = {
        "audio": _mean_video_f1(*counts_audio),
        "visual": _mean_video_f1(*counts_visual),
        "audio_visual": _mean_video_f1(*counts_av),
    }
    scores["type@AV"] = (scores["audio"] + scores["visual"] + scores["audio_visual"]) / 3
    scores["event@AV"] = _mean_video_f1(*counts_event)
    return scores


def avvp_segment_f1(
    pred_audio: Any, pred_visual: Any, gt_audio: Any, gt_visual: Any
) -> dict[str, float]:
    """Compute segment-level F1 scores of audio-visual video parsing (LLP benchmark).

    Inputs are binary tensors of shape [N, T, C]: N videos, T one-second
    segments, C event classes. Audio-visual events are audio AND visual, for
    predictions and ground truth alike.

    The definition follows ``segment_level`` in ``utils/eval_metrics.py`` of
    the LLP benchmark (YapengTian/AVVP-ECCV20), which ``main_avvp.py`` calls
    once per video and averages over videos:

    1. For video n and class c, count over segments:
       TP = sum_t p*g,  FP = sum_t p*(1-g),  FN = sum_t (1-p)*g.
    2. F1[n, c] = 2*TP / (2*TP + FP + FN), kept only for the classes with
       TP + FP + FN > 0.
    3. The score of video n is the mean of F1[n, c] over its kept classes, or
       1.0 when it has none.
    4. The result is the mean over all N videos.

    Returns a dict with keys:

    * "audio", "visual", "audio_visual": the score for each event type.
    * "type@AV": the mean of those three.
    * "event@AV": the score of step 1-4 applied to the summed counts
      TP_audio + TP_visual (likewise FP, FN), as the benchmark reports it.
    """
    pred_audio, pred_visual, gt_audio, gt_visual = _check_avvp_inputs(
        "avvp_segment_f1", pred_audio, pred_visual, gt_audio, gt_visual
    )
    counts = [
        _count_per_class(pred_audio, gt_audio),
        _count_per_class(pred_visual, gt_visual),
        _count_per_class(pred_audio * pred_visual, gt_audio * gt_visual),
    ]
    return _avvp_scores(*counts)


def avqa_accuracy(
    pred: Any, target: Any, question_types: Sequence[str] | None = None
) -> dict[str, Any]:
    """Compute AVQA answer accuracy, overall and per question type.

    pred and target are integer tensors of shape [N] holding answer indices.
    Returns {"overall": accuracy}. When ``question_types`` is given (one string
    per question, such as "Audio-Visual/Counting"), the dict also has
    "per_type": {type: accuracy over the questions of that type}, with types
    in sorted order.
    """
    pred = _as_tensor(pred, "pred")
    target = _as_tensor(target, "target")
    _check_same_shape(pred, target, "pred and target")
    if pred.ndim != 1:
        raise ValueError(f"pred and target must have shape [N], got {tuple(pred.shape)}")
    if pred.numel() == 0:
        raise ValueError("pred and target contain no questions, shape (0,)")
    _check_integer(pred, "pred")
    _check_integer(target, "target")

    correct = pred == target
    result: dict[str, Any] = {"overall": float(correct.double().mean())}
    if question_types is None:
        return result

    if isinstance(question_types, str):
        raise ValueError("question_types must be a sequence of strings, one per question, not a string")
    types = list(question_types)
    if len(types) != pred.shape[0]:
        raise ValueError(
            f"question_types has {len(types)} entries but there are {pred.shape[0]} questions"
        )
    for index, question_type in enumerate(types):
        if not isinstance(question_type, str):
            raise ValueError(f"question_types[{index}] must be a string, got {question_type!r}")

    per_type = {}
    for question_type in sorted(set(types)):
        members = torch.tensor([t == question_type for t in types])
        per_type[question_type] = float(correct[members].double().mean())
    result["per_type"] = per_type
    return result


# --- AVVP, event level --------------------------------------------------------


def _runs(flags: list[int]) -> list[tuple[int, int]]:
    """Return the runs of consecutive 1s in ``flags`` as [start, end) pairs."""
    runs, start = [], None
    for index, flag in enumerate(flags + [0]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append((start, index))
            start = None
    return runs


def _overlaps(first: tuple[int, int], second: tuple[int, int], iou_threshold: float) -> bool:
    intersection = max(0, min(first[1], second[1]) - max(first[0], second[0]))
    union = (first[1] - first[0]) + (second[1] - second[0]) - intersection
    return intersection >= iou_threshold * union


def _count_events(pred: torch.Tensor, gt: torch.Tensor, iou_threshold: float) -> tuple[torch.Tensor, ...]:
    """Count event-level TP, FP and FN for every (video, class) pair: [N, T, C] -> three [N, C] tensors."""
    num_videos, _, num_classes = pred.shape
    counts = torch.zeros(3, num_videos, num_classes, dtype=torch.float64)
    pred_flags = pred.to(torch.int64).transpose(1, 2).tolist()  # [N][C][T]
    gt_flags = gt.to(torch.int64).transpose(1, 2).tolist()
    for n in range(num_videos):
        for c in range(num_classes):
            predicted, actual = _runs(pred_flags[n][c]), _runs(gt_flags[n][c])
            matched = sum(any(_overlaps(p, g, iou_threshold) for g in actual) for p in predicted)
            found = sum(any(_overlaps(g, p, iou_threshold) for p in predicted) for g in actual)
            counts[0, n, c] = matched
            counts[1, n, c] = len(predicted) - matched
            counts[2, n, c] = len(actual) - found
    return counts[0], counts[1], counts[2]


def avvp_event_f1(
    pred_audio: Any, pred_visual: Any, gt_audio: Any, gt_visual: Any, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Compute event-level F1 scores of audio-visual video parsing (LLP benchmark).

    Inputs are binary tensors of shape [N, T, C], as for :func:`avvp_segment_f1`;
    audio-visual events are audio AND visual. The definition follows
    ``event_level`` in ``utils/eval_metrics.py`` of YapengTian/AVVP-ECCV20:

    1. An event is a run of consecutive positive segments of one class in one
       video, in the prediction or in the ground truth.
    2. A predicted event is a true positive when its IoU with some ground-truth
       event of the same class is >= ``iou_threshold`` (intersection >=
       threshold * union, in segments), else a false positive. A ground-truth
       event that no predicted event overlaps that much is a false negative.
       Matching is not one-to-one, as in the benchmark: below a threshold of
       0.5, two predicted events may both match one ground-truth event (at 0.5
       and above, two disjoint runs cannot both reach it).
    3. Per video and class, F1 = 2*TP / (2*TP + FP + FN), kept for the classes
       with at least one event; a video's score is the mean over its kept
       classes, 1.0 when it has none; the result is the mean over videos.

    Returns the same keys as :func:`avvp_segment_f1`: "audio", "visual",
    "audio_visual", "type@AV" (their mean) and "event@AV" (step 3 on the summed
    audio and visual counts).
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    pred_audio, pred_visual, gt_audio, gt_visual = _check_avvp_inputs(
        "avvp_event_f1", pred_audio, pred_visual, gt_audio, gt_visual
    )
    counts = [
        _count_events(pred_audio, gt_audio, iou_threshold),
        _count_events(pred_visual, gt_visual, iou_threshold),
        _count_events(pred_audio * pred_visual, gt_audio * gt_visual, iou_threshold),
    ]
    return _avvp_scores(*counts)


def avvp_video_top1_accuracy(segment_scores: Any, video_labels: Any, count_per_label: bool = True) -> float:
    """Compute the per-video top-1 accuracy the reference PHP code reports for LLP.

    This is a variant, not an LLP benchmark metric. The reference PHP code
    (``eval_task`` in ``methods/eval.py`` and ``DataManager`` in
    ``data_manager.py`` of ENJOY-Yin-jiong/PHP) averages a video's per-segment
    class scores over time, takes the arg-max class, and compares it with the
    arg-max of the video's multi-hot label. Its test set lists a video once per
    label, so a video with k labels counts k times. The code logs the result
    under the name "F1 score". For AVE the same code compares per-segment arg-maxes,
    which is :func:`ave_segment_accuracy`.

    correct[n] = [argmax_c mean_t scores[n, t, c] == argmax_c labels[n, c]]
    accuracy = sum_n w[n] * correct[n] / sum_n w[n],  w[n] = number of labels of video n
    (or w[n] = 1 with ``count_per_label=False``)

    segment_scores is a float tensor [N, T, C] of the per-segment scores the
    model outputs. The reference averages sigmoid probabilities, and averaging
    logits instead can change the arg-max. video_labels is a binary tensor
    [N, C]. The arg-max of a multi-hot label is its lowest positive class
    index, so the score depends on the class order: the reference uses the
    order of :data:`phplib.data.llp.PHP_REFERENCE_LLP_ORDER`.
    """
    scores = _as_tensor(segment_scores, "segment_scores")
    labels = _as_tensor(video_labels, "video_labels")
    if scores.ndim != 3:
        raise ValueError(f"segment_scores must have shape [N, T, C], got {tuple(scores.shape)}")
    if labels.ndim != 2 or labels.shape != (scores.shape[0], scores.shape[2]):
        raise ValueError(
            f"video_labels must have shape [N, C] = {(scores.shape[0], scores.shape[2])}, got {tuple(labels.shape)}"
        )
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"segment_scores contains no videos or no segments, shape {tuple(scores.shape)}")
    labels = labels.double()
    if not torch.all((labels == 0) | (labels == 1)):
        raise ValueError("video_labels must be binary (0/1 or bool)")
    if torch.any(labels.sum(dim=1) == 0):
        raise ValueError("every video needs at least one positive label; a video without one has no target class")
    predicted = scores.double().mean(dim=1).argmax(dim=1)  # [N]
    target = labels.argmax(dim=1)  # [N], the lowest positive class index
    weights = labels.sum(dim=1) if count_per_label else torch.ones_like(labels[:, 0])
    correct = (predicted == target).double()
    return float((weights * correct).sum() / weights.sum())


# --- AVS ----------------------------------------------------------------------


def _mask_inputs(
    pred: Any, gt: Any, mask_valid: Any, from_logits: bool, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes and values of predicted and ground-truth masks; return them as [N, T, H, W] and valid [N, T]."""
    pred_t = _as_tensor(pred, "pred_masks").float()
    gt_t = _as_tensor(gt, "gt_masks").double()

    _check_same_shape(pred_t, gt_t, "pred_masks and gt_masks")
    if pred_t.ndim not in (3, 4):
        raise ValueError(f"{name} needs masks of shape [N, H, W] or [N, T, H, W], got {tuple(pred_t.shape)}")
    if pred_t.numel() == 0:
        raise ValueError(f"{name} got no masks, shape {tuple(pred_t.shape)}")
    if not torch.all((gt_t == 0) | (gt_t == 1)):
        raise ValueError("gt_masks must be binary (0/1 or bool)")

    if from_logits:
        pred_t = torch.sigmoid(pred_t)
    elif pred_t.min() < 0 or pred_t.max() > 1:
        raise ValueError(
            f"pred_masks must be probabilities in [0, 1], found values in [{float(pred_t.min()):.3g}, "
            f"{float(pred_t.max()):.3g}]; pass from_logits=True for logits"
        )

    if pred_t.ndim == 3:
        pred_t, gt_t = pred_t.unsqueeze(0), gt_t.unsqueeze(0)  # the frames of one video
    frames = tuple(pred_t.shape[:2])  # [N, T]

    if mask_valid is None:
        valid = torch.ones(frames, dtype=torch.bool)
    else:
        valid = _as_tensor(mask_valid, "mask_valid").bool()
        if valid.numel() != frames[0] * frames[1]:
            raise ValueError(f"mask_valid must hold one flag per frame, {frames[0] * frames[1]} in all, "
                             f"got shape {tuple(valid.shape)}")
        valid = valid.reshape(frames)
    if not valid.any():
        raise ValueError("mask_valid marks no frame as valid")
    return pred_t, gt_t.float(), valid


def avs_miou(
    pred_masks: Any, gt_masks: Any, threshold: float = 0.5, from_logits: bool = False, mask_valid: Any = None
) -> float:
    """Compute AVSBench's mean IoU (the Jaccard index) over frames.

    The definition follows ``mask_iou`` in ``avs_scripts/avs_s4/utils/utility.py``
    of OpenNLPLab/AVSBench:

    1. A pixel is predicted foreground when its probability is > ``threshold``
       (AVSBench applies a sigmoid to logits and uses 0.5; pass
       ``from_logits=True`` to do the same).
    2. Per frame, IoU = |pred AND gt| / |pred OR gt|. A frame whose ground truth
       is empty scores the share of pixels predicted background instead.
    3. The result is the mean over frames (AVSBench averages per batch of five
       frames, then over batches, which is the same for batches of equal size).

    pred_masks are probabilities (or logits) and gt_masks binary, both
    [N, H, W] or [N, T, H, W]. ``mask_valid`` ([N] or [N, T], bool) leaves out
    frames without a ground-truth mask, such as frames 2-5 of S4 train videos.
    AVSBench adds 1e-7 to each union; this function does not, so a perfect
    prediction scores exactly 1.0.
    """
    pred, gt, valid = _mask_inputs(pred_masks, gt_masks, mask_valid, from_logits, "avs_miou")
    predicted = (pred > threshold).float()  # [N, T, H, W]
    intersection = (predicted * gt).sum(dim=(-1, -2))  # [N, T]
    union = torch.maximum(predicted, gt).sum(dim=(-1, -2))
    empty = gt.sum(dim=(-1, -2)) == 0
    background = ((1 - predicted) * (1 - gt)).sum(dim=(-1, -2))
    pixels = gt.shape[-1] * gt.shape[-2]
    iou = torch.where(empty, background / pixels, intersection / union.clamp(min=1))
    return float(iou[valid].double().mean())


def _fscore_curve(pred: torch.Tensor, gt: torch.Tensor, thresholds: torch.Tensor, beta2: float) -> torch.Tensor:
    """F-measure of one frame at every threshold: pred, gt [H, W] -> [K]."""
    flat_pred, flat_gt = pred.reshape(-1), gt.reshape(-1)
    positive = flat_pred[None, :] >= thresholds[:, None]  # [K, H*W]
    true_positives = (positive * flat_gt[None, :]).sum(dim=1)
    precision = true_positives / (positive.sum(dim=1) + 1e-20)
    recall = true_positives / (flat_gt.sum() + 1e-20)
    score = (1 + beta2) * precision * recall / (beta2 * precision + recall)
    return torch.nan_to_num(score, nan=0.0)


def avs_fscore(
    pred_masks: Any,
    gt_masks: Any,
    beta2: float = 0.3,
    num_thresholds: int = 255,
    from_logits: bool = False,
    mask_valid: Any = None,
) -> float:
    """Compute AVSBench's F-measure of predicted masks.

    The definition follows ``Eval_Fmeasure`` in
    ``avs_scripts/avs_s4/utils/utility.py`` of OpenNLPLab/AVSBench, run by its
    test script one video per batch:

    1. Thresholds are ``num_thresholds`` values from 0 to 1 - 1e-10 (float32, so
       the last is 1.0); a pixel is positive at threshold th when its
       probability is >= th.
    2. Per frame with a non-empty ground truth and per threshold:
       precision = TP / (predicted positives + 1e-20), recall = TP / (positives + 1e-20),
       F = (1 + beta2) * P * R / (beta2 * P + R), with 0 where that is 0/0.
    3. Per video, the F curves of its frames are averaged and the video's score
       is the maximum over thresholds of that average curve.
    4. The result is the mean over videos. A video whose ground-truth masks are
       all empty scores 0, as in AVSBench.

    pred_masks are probabilities (or logits with ``from_logits=True``) and
    gt_masks binary, shaped [N, T, H, W] for N videos, or [N, H, W] for the
    frames of one video (one AVSBench batch). Because step 3 takes the maximum
    of an average, the score depends on how frames are grouped into videos.
    ``mask_valid`` leaves out frames as in :func:`avs_miou`.
    """
    if beta2 <= 0:
        raise ValueError(f"beta2 must be positive, got {beta2}")
    if num_thresholds < 2:
        raise ValueError(f"num_thresholds must be at least 2, got {num_thresholds}")
    pred, gt, valid = _mask_inputs(pred_masks, gt_masks, mask_valid, from_logits, "avs_fscore")
    thresholds = torch.linspace(0, 1 - 1e-10, num_thresholds, dtype=torch.float32)
    per_video = []
    for video in range(pred.shape[0]):
        curves = [
            _fscore_curve(pred[video, t], gt[video, t], thresholds, beta2)
            for t in range(pred.shape[1])
            if valid[video, t] and gt[video, t].sum() > 0
        ]
        per_video.append(float(torch.stack(curves).mean(dim=0).max()) if curves else 0.0)
    return sum(per_video) / len(per_video)
