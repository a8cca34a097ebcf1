"""Accuracy-matrix metrics checked against values worked out by hand."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from phplib.metrics.incremental import (
    FORGETTING_KINDS,
    a_final,
    a_mean,
    average_accuracy,
    bwt,
    f_mean,
    forgetting,
    fwt,
    summarize,
    transfer_diff,
    validate_accuracy_matrix,
)

nan = float("nan")

R2 = [
    [0.9, nan],
    [0.7, 0.8],
]

R3 = [
    [0.9, nan, nan],
    [0.8, 0.85, nan],
    [0.7, 0.6, 0.95],
]

# Task 0 rises after its own step, task 1 ends at its best score, and task 2
# drops, so the four forgetting kinds disagree.
R4 = [
    [0.5, nan, nan, nan],
    [0.8, 0.7, nan, nan],
    [0.7, 0.6, 0.8, nan],
    [0.6, 0.9, 0.4, 0.9],
]


# --- average accuracy ---------------------------------------------------------


def test_average_accuracy_two_tasks():
    assert average_accuracy(R2, 0) == pytest.approx(0.9)
    assert average_accuracy(R2, 1) == pytest.approx((0.7 + 0.8) / 2)
    assert a_mean(R2) == pytest.approx((0.9 + (0.7 + 0.8) / 2) / 2)
    assert a_final(R2) == pytest.approx((0.7 + 0.8) / 2)


def test_average_accuracy_three_tasks():
    a0 = 0.9
    a1 = (0.8 + 0.85) / 2
    a2 = (0.7 + 0.6 + 0.95) / 3
    assert average_accuracy(R3, 1) == pytest.approx(a1)
    assert average_accuracy(R3, 2) == pytest.approx(a2)
    assert a_mean(R3) == pytest.approx((a0 + a1 + a2) / 3)
    assert a_final(R3) == pytest.approx(a2)


def test_average_accuracy_four_tasks():
    a0 = 0.5
    a1 = (0.8 + 0.7) / 2
    a2 = (0.7 + 0.6 + 0.8) / 3
    a3 = (0.6 + 0.9 + 0.4 + 0.9) / 4
    assert a_mean(R4) == pytest.approx((a0 + a1 + a2 + a3) / 4)
    assert a_final(R4) == pytest.approx(a3)


def test_average_accuracy_rejects_bad_step():
    with pytest.raises(ValueError, match="not a finished step"):
        average_accuracy(R2, 2)
    with pytest.raises(ValueError, match="not a finished step"):
        average_accuracy(R2, -1)
    with pytest.raises(ValueError, match="integer"):
        average_accuracy(R2, 1.0)
    with pytest.raises(ValueError, match="integer"):
        average_accuracy(R2, True)


def test_single_task_matrix():
    R1 = [[0.6]]
    assert a_mean(R1) == pytest.approx(0.6)
    assert a_final(R1) == pytest.approx(0.6)
    assert forgetting(R1).shape == (0,)
    assert math.isnan(f_mean(R1))
    assert math.isnan(bwt(R1))


# --- forgetting ---------------------------------------------------------------


def test_forgetting_max_three_tasks():
    expected = [max(0.9, 0.8) - 0.7, 0.85 - 0.6]
    np.testing.assert_allclose(forgetting(R3), expected)
    assert f_mean(R3) == pytest.approx(((0.9 - 0.7) + (0.85 - 0.6)) / 2)


def test_forgetting_kinds_four_tasks():
    expected = {
        "max": [max(0.5, 0.8, 0.7) - 0.6, max(0.7, 0.6) - 0.9, 0.8 - 0.4],
        "first": [0.5 - 0.6, 0.7 - 0.9, 0.8 - 0.4],
        "max_incl_final": [max(0.5, 0.8, 0.7, 0.6) - 0.6, max(0.7, 0.6, 0.9) - 0.9, max(0.8, 0.4) - 0.4],
        "stepwise": [
            (0.5 - 0.8) / 1 + (0.8 - 0.7) / 2 + (0.7 - 0.6) / 3,
            (0.7 - 0.6) / 2 + (0.6 - 0.9) / 3,
            (0.8 - 0.4) / 3,
        ],
    }
    for kind, per_task in expected.items():
        np.testing.assert_allclose(forgetting(R4, kind), per_task, err_msg=kind)
        assert f_mean(R4, kind) == pytest.approx(sum(per_task) / 3), kind


def test_forgetting_kinds_all_differ():
    means = [f_mean(R4, kind) for kind in FORGETTING_KINDS]
    rounded = {round(value, 9) for value in means}
    assert len(rounded) == 4, dict(zip(FORGETTING_KINDS, means))


def test_forgetting_stepwise_matches_step_average():
    # Mean over steps l = 1..3 of the mean drop over the l tasks seen at step l.
    step1 = (0.5 - 0.8) / 1
    step2 = ((0.8 - 0.7) + (0.7 - 0.6)) / 2
    step3 = ((0.7 - 0.6) + (0.6 - 0.9) + (0.8 - 0.4)) / 3
    expected = (step1 + step2 + step3) / 3
    assert f_mean(R4, "stepwise") == pytest.approx(expected)


def test_forgetting_max_incl_final_not_negative():
    assert np.all(forgetting(R4, "max_incl_final") >= 0)
    assert forgetting(R4, "max")[1] == pytest.approx(0.7 - 0.9)


def test_forgetting_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown forgetting kind 'last'"):
        forgetting(R3, kind="last")


# --- BWT, FWT, Diff -----------------------------------------------------------


def test_bwt_by_hand():
    assert bwt(R2) == pytest.approx(0.7 - 0.9)
    assert bwt(R3) == pytest.approx(((0.7 - 0.9) + (0.6 - 0.85)) / 2)
    assert bwt(R4) == pytest.approx(((0.6 - 0.5) + (0.9 - 0.7) + (0.4 - 0.8)) / 3)


def test_bwt_is_minus_first_forgetting():
    assert bwt(R4) == pytest.approx(-f_mean(R4, "first"))


def test_fwt_with_superdiagonal_scores():
    R = [
        [0.9, 0.3, nan],
        [0.8, 0.85, 0.4],
        [0.7, 0.6, 0.95],
    ]
    reference = [nan, 0.2, 0.25]
    expected = ((0.3 - 0.2) + (0.4 - 0.25)) / 2
    assert fwt(R, reference) == pytest.approx(expected)


def test_fwt_warns_when_cells_not_evaluated():
    with pytest.warns(RuntimeWarning, match=r"R\[0, 1\] is NaN"):
        result = fwt(R3, [nan, 0.2, 0.25])
    assert math.isnan(result)


def test_fwt_one_task_returns_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(fwt([[0.5]], [0.1]))


def test_fwt_rejects_bad_reference():
    R = [[0.9, 0.3], [0.8, 0.85]]
    with pytest.raises(ValueError, match="shape"):
        fwt(R, [0.1])
    with pytest.raises(ValueError, match=r"reference\[1\]"):
        fwt(R, [0.1, 1.5])


def test_fwt_rejects_out_of_range_superdiagonal():
    R = [[0.9, 30.0], [0.8, 0.85]]
    with pytest.raises(ValueError, match=r"R\[0, 1\] = 30"):
        fwt(R, [0.1, 0.2])


def test_transfer_diff_by_hand():
    single = [0.85, 0.9, 0.9]
    expected = ((0.9 - 0.85) + (0.85 - 0.9) + (0.95 - 0.9)) / 3
    assert transfer_diff(R3, single) == pytest.approx(expected)


def test_transfer_diff_rejects_bad_scores():
    with pytest.raises(ValueError, match="one score per task"):
        transfer_diff(R3, [0.9, 0.9])
    with pytest.raises(ValueError, match=r"single_task_scores\[1\]"):
        transfer_diff(R3, [0.9, nan, 0.9])


# --- summary ------------------------------------------------------------------


def test_summarize_keys_and_values():
    summary = summarize(R3, single_task_scores=[0.85, 0.9, 0.9])
    assert set(summary) == {"A_mean", "A_final", "F_mean", "BWT", "Diff"}
    assert all(type(value) is float for value in summary.values())
    assert summary["A_mean"] == pytest.approx((0.9 + (0.8 + 0.85) / 2 + (0.7 + 0.6 + 0.95) / 3) / 3)
    assert summary["F_mean"] == pytest.approx(((0.9 - 0.7) + (0.85 - 0.6)) / 2)
    assert summary["BWT"] == pytest.approx(((0.7 - 0.9) + (0.6 - 0.85)) / 2)
    assert summary["Diff"] == pytest.approx(((0.9 - 0.85) + (0.85 - 0.9) + (0.95 - 0.9)) / 3)
    assert json.loads(json.dumps(summary)) == summary


def test_summarize_without_single_task_scores():
    summary = summarize(R4, forgetting_kind="first")
    assert "Diff" not in summary
    assert summary["F_mean"] == pytest.approx(((0.5 - 0.6) + (0.7 - 0.9) + (0.8 - 0.4)) / 3)


# --- input forms and partial runs ---------------------------------------------


def test_accepts_numpy_and_torch():
    expected = a_mean(R3)
    assert a_mean(np.array(R3)) == pytest.approx(expected)
    assert a_mean(torch.tensor(R3, dtype=torch.float32)) == pytest.approx(expected, abs=1e-6)


def test_cells_above_diagonal_ignored():
    filled = [
        [0.9, 0.1, 0.2],
        [0.8, 0.85, 7.0],
        [0.7, 0.6, 0.95],
    ]
    assert summarize(filled) == summarize(R3)
    seen, n_done = validate_accuracy_matrix(filled)
    assert n_done == 3
    assert np.isnan(seen[0, 1])
    assert np.isnan(seen[1, 2])


def test_partial_matrix_uses_finished_rows():
    partial = [
        [0.9, nan, nan, nan],
        [0.7, 0.8, nan, nan],
        [nan, nan, nan, nan],
        [nan, nan, nan, nan],
    ]
    _, n_done = validate_accuracy_matrix(partial)
    assert n_done == 2
    assert a_mean(partial) == pytest.approx((0.9 + (0.7 + 0.8) / 2) / 2)
    assert a_final(partial) == pytest.approx((0.7 + 0.8) / 2)
    np.testing.assert_allclose(forgetting(partial), [0.9 - 0.7])
    assert bwt(partial) == pytest.approx(0.7 - 0.9)
    assert transfer_diff(partial, [0.85, 0.75, nan, nan]) == pytest.approx(
        ((0.9 - 0.85) + (0.8 - 0.75)) / 2
    )
    with pytest.raises(ValueError, match="not a finished step"):
        average_accuracy(partial, 2)


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "R, message",
    [
        ([[0.9, nan]], r"square and 2-D.*\(1, 2\)"),
        ([0.9, 0.8], r"square and 2-D.*\(2,\)"),
        (np.zeros((0, 0)), "at least 1 task"),
        ([[nan, nan], [nan, nan]], r"no finished row: R\[0, 0\]"),
        ([[0.9, nan], [0.8, nan]], r"R\[1, 1\] on the diagonal is NaN but R\[1, 0\] = 0.8"),
        (
            [[0.9, nan, nan], [nan, nan, nan], [0.7, 0.6, 0.5]],
            r"R\[1, 1\] on the diagonal is NaN but a later row has R\[2, 0\]",
        ),
        ([[0.9, nan], [nan, 0.8]], r"R\[1, 0\] is NaN but row 1 is finished"),
        ([[0.9, nan], [1.2, 0.8]], r"R\[1, 0\] = 1.2 is outside \[0, 1\]"),
        ([[90.0, nan], [70.0, 80.0]], r"R\[0, 0\] = 90 is outside \[0, 1\]"),
        ([[0.9, nan], [-0.1, 0.8]], r"R\[1, 0\] = -0.1 is outside"),
        ([[0.9, nan], [float("inf"), 0.8]], r"R\[1, 0\] = inf is outside"),
        ([["a", "b"], ["c", "d"]], "must contain only numbers"),
    ],
)
def test_rejects_bad_matrix(R, message):
    with pytest.raises(ValueError, match=message):
        validate_accuracy_matrix(R)


def test_every_metric_validates():
    bad = [[0.9, nan], [nan, 0.8]]
    for metric in (a_mean, a_final, forgetting, f_mean, bwt, summarize):
        with pytest.raises(ValueError, match=r"R\[1, 0\]"):
            metric(bad)
    with pytest.raises(ValueError, match=r"R\[1, 0\]"):
        fwt(bad, [0.1, 0.2])
    with pytest.raises(ValueError, match=r"R\[1, 0\]"):
        transfer_diff(bad, [0.1, 0.2])


def test_input_not_modified():
    original = np.array(R3)
    copy = original.copy()
    summarize(original)
    validate_accuracy_matrix(original)
    np.testing.assert_array_equal(original, copy)
