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
    tensors = {
        "pred_audio": pred_audio,
        "pred_visual": pred_visual,
        "gt_audio": gt_audio,
        "gt_visual": gt_visual,
    }
    checked = {name: _check_binary(_as_tensor(value, name), name) for name, value in tensors.items()}
    shape = checked["pred_audio"].shape
    for name, value in checked.items():
        if value.shape != shape:
            raise ValueError(
                f"all inputs must have the same shape [N, T, C], but pred_audio has "
                f"{tuple(shape)} but {name} has {tuple(value.shape)}"
            )
    if shape[0] == 0:
        raise ValueError("avvp_segment_f1 needs at least one video, got N = 0")

    pred_audio, pred_visual = checked["pred_audio"], checked["pred_visual"]
    gt_audio, gt_visual = checked["gt_audio"], checked["gt_visual"]
    counts_audio = _count_per_class(pred_audio, gt_audio)
    counts_visual = _count_per_class(pred_visual, gt_visual)
    counts_av = _count_per_class(pred_audio * pred_visual, gt_audio * gt_visual)
    counts_event = tuple(a + v for a, v in zip(counts_audio, counts_visual))

    scores = {
        "audio": _mean_video_f1(*counts_audio),
        "visual": _mean_video_f1(*counts_visual),
        "audio_visual": _mean_video_f1(*counts_av),
    }
    scores["type@AV"] = (scores["audio"] + scores["visual"] + scores["audio_visual"]) / 3
    scores["event@AV"] = _mean_video_f1(*counts_event)
    return scores


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
