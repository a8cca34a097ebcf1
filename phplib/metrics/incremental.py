"""Continual-learning metrics as pure functions of the accuracy matrix R.

Layout: ``R[t, i]`` is the score on task ``i`` (stream order) after finishing
training on task ``t``, in [0, 1]. Rows are training steps and columns are
evaluated tasks, so the matrix is lower-triangular::

                 evaluated on task i ->
    after t=0  [ R00   .     .   ]
    after t=1  [ R10   R11   .   ]
    after t=2  [ R20   R21   R22 ]

Rules that every function here applies (see ``validate_accuracy_matrix``):

* Cells above the diagonal (i > t) are treated as not evaluated and ignored,
  whatever they contain. Only ``fwt`` reads them, because forward transfer is
  defined on the score of a task just before training on it.
* A row is finished when its diagonal cell is a number. Finished rows must come
  first, so a run that stopped early is a full-size matrix whose last rows are
  all NaN. Every function uses only the finished rows, and ``T`` in the
  formulas below is their count.
* In a finished row, every cell on or below the diagonal must be a number in
  [0, 1]. A NaN or an out-of-range value there raises ``ValueError`` naming the
  cell.

Inputs may be numpy arrays, nested lists or torch tensors.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

FORGETTING_KINDS = ("max", "first", "max_incl_final", "stepwise")


def _to_float_array(values: Any, name: str) -> np.ndarray:
    """Convert a numpy array, nested list or torch tensor to a float64 copy."""
    if hasattr(values, "detach"):  # torch.Tensor, converted without importing torch
        values = values.detach().cpu().numpy()
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must contain only numbers: {error}") from error


def _convert_matrix(R: Any) -> tuple[np.ndarray, int]:
    """Convert and check R, returning the raw float matrix and the finished-row count."""
    matrix = _to_float_array(R, "accuracy matrix")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"accuracy matrix must be square and 2-D (tasks x tasks), got shape {matrix.shape}"
        )
    n_tasks = matrix.shape[0]
    if n_tasks == 0:
        raise ValueError("accuracy matrix must have at least 1 task, got shape (0, 0)")

    diagonal = np.diag(matrix)
    unfinished = np.flatnonzero(np.isnan(diagonal))
    n_done = int(unfinished[0]) if unfinished.size else n_tasks
    if n_done == 0:
        raise ValueError(
            "accuracy matrix has no finished row: R[0, 0] is NaN, "
            "so no task has been trained and evaluated yet"
        )

    # Rows after the first unfinished one must be entirely NaN on and below the diagonal.
    for t in range(n_done, n_tasks):
        set_columns = np.flatnonzero(~np.isnan(matrix[t, : t + 1]))
        if set_columns.size == 0:
            continue
        i = int(set_columns[0])
        if t == n_done:
            raise ValueError(
                f"R[{t}, {t}] on the diagonal is NaN but R[{t}, {i}] = {matrix[t, i]:g} is set. "
                f"A row with scores must also have the score of its own task."
            )
        raise ValueError(
            f"R[{n_done}, {n_done}] on the diagonal is NaN but a later row has R[{t}, {i}] "
            f"= {matrix[t, i]:g}. Rows must be finished in stream order, so fill row "
            f"{n_done} or clear the rows after it."
        )

    for t in range(n_done):
        for i in range(t + 1):
            value = matrix[t, i]
            if math.isnan(value):
                raise ValueError(
                    f"R[{t}, {i}] is NaN but row {t} is finished because R[{t}, {t}] is set. "
                    f"Every task seen up to step {t} needs a score."
                )
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"R[{t}, {i}] = {value:g} is outside [0, 1]. "
                    f"Scores must be fractions, so divide percentages by 100."
                )
    return matrix, n_done


def validate_accuracy_matrix(R: Any) -> tuple[np.ndarray, int]:
    """Check R against the layout rules in the module docstring.

    Returns a float64 copy of R in which the ignored cells (above the diagonal,
    and every cell of an unfinished row) are NaN, and the number of finished
    rows T. Raises ValueError naming the first offending cell.
    """
    matrix, n_done = _convert_matrix(R)
    seen = np.full_like(matrix, np.nan)
    lower = np.tril(np.ones(matrix.shape, dtype=bool))
    lower[n_done:] = False
    seen[lower] = matrix[lower]
    return seen, n_done


def _check_step(t: Any, n_done: int) -> int:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise ValueError(f"step t must be an integer, got {t!r}")
    if not 0 <= t < n_done:
        raise ValueError(
            f"step t = {t} is not a finished step, expected 0..{n_done - 1}"
        )
    return int(t)


def _check_task_scores(
    scores: Any, n_tasks: int, used: range, name: str
) -> np.ndarray:
    """Convert per-task reference scores and check the entries at the ``used`` indices."""
    values = _to_float_array(scores, name)
    if values.shape != (n_tasks,):
        raise ValueError(
            f"{name} must have one score per task, shape ({n_tasks},), got shape {values.shape}"
        )
    for i in used:
        if not 0.0 <= values[i] <= 1.0:  # also rejects NaN
            raise ValueError(f"{name}[{i}] = {values[i]:g} must be a number in [0, 1]")
    return values


def average_accuracy(R: Any, t: int) -> float:
    """Compute A_t, the mean score over the tasks seen after step t.

    A_t = (1/(t+1)) * sum_{i<=t} R[t, i]

    t must be a finished step, 0 <= t < T. A negative t raises ValueError.
    """
    matrix, n_done = validate_accuracy_matrix(R)
    t = _check_step(t, n_done)
    return float(np.mean(matrix[t, : t + 1]))


def a_mean(R: Any) -> float:
    """Compute A_mean, the mean of A_t over all finished steps.

    A_mean = (1/T) * sum_{t<T} A_t,  with A_t = (1/(t+1)) * sum_{i<=t} R[t, i]
    """
    matrix, n_done = validate_accuracy_matrix(R)
    step_means = [np.mean(matrix[t, : t + 1]) for t in range(n_done)]
    return float(np.mean(step_means))


def a_final(R: Any) -> float:
    """Compute A_final, the average accuracy at the last finished step.

    A_final = A_{T-1} = (1/T) * sum_{i<T} R[T-1, i]
    """
    matrix, n_done = validate_accuracy_matrix(R)
    return float(np.mean(matrix[n_done - 1, :n_done]))


def forgetting(R: Any, kind: str = "max") -> np.ndarray:
    """Compute per-task forgetting F_i for tasks i = 0..T-2 after the last finished step.

    Returns a float array of length T-1, which is empty when only one step is
    finished. Positive values mean the score dropped. The kinds:

    "max", the default (Chaudhry et al. 2018, "Riemannian Walk", ECCV)::

        F_i = max_{i<=l<T-1} R[l, i] - R[T-1, i]

      The best score before the last step minus the last score. Negative when
      the last step raised the task's score above every earlier one.

    "first" (Avalanche's ``evaluation/functional.py``)::

        F_i = R[i, i] - R[T-1, i]

      The score right after learning the task minus the last score. The mean of
      this kind equals -BWT.

    "max_incl_final" (Mammoth's ``utils/metrics.py``, which takes the max over
    every row including the last)::

        F_i = max_{i<=l<=T-1} R[l, i] - R[T-1, i]

      Never negative.

    "stepwise" (CODA-Prompt's ``utils/calc_forgetting.py``, Smith et al. 2023)::

        F_i = sum_{l=i+1}^{T-1} (R[l-1, i] - R[l, i]) / l

      CODA-Prompt reports one number, the mean over steps l = 1..T-1 of the
      mean drop over the l tasks already seen at step l:
      (1/(T-1)) * sum_{l=1}^{T-1} (1/l) * sum_{i<l} (R[l-1, i] - R[l, i]).
      F_i is task i's share of that sum, chosen so that the mean of the array
      (``f_mean``) equals CODA-Prompt's number. Each entry is therefore a
      weighted sum of drops, not the drop of task i alone.
    """
    if kind not in FORGETTING_KINDS:
        raise ValueError(
            f"unknown forgetting kind {kind!r}, expected one of {', '.join(FORGETTING_KINDS)}"
        )
    matrix, n_done = validate_accuracy_matrix(R)
    last = n_done - 1
    per_task = np.empty(last, dtype=np.float64)
    for i in range(last):
        final_score = matrix[last, i]
        if kind == "max":
            per_task[i] = np.max(matrix[i:last, i]) - final_score
        elif kind == "first":
            per_task[i] = matrix[i, i] - final_score
        elif kind == "max_incl_final":
            per_task[i] = np.max(matrix[i : last + 1, i]) - final_score
        else:  # "stepwise"
            drops = [(matrix[l - 1, i] - matrix[l, i]) / l for l in range(i + 1, last + 1)]
            per_task[i] = np.sum(drops)
    return per_task


def f_mean(R: Any, kind: str = "max") -> float:
    """Compute F_mean, the mean of ``forgetting(R, kind)`` over tasks 0..T-2.

    F_mean = (1/(T-1)) * sum_{i<T-1} F_i

    Returns NaN when only one step is finished, because no task can have been
    forgotten yet.
    """
    per_task = forgetting(R, kind)
    if per_task.size == 0:
        return math.nan
    return float(np.mean(per_task))


def bwt(R: Any) -> float:
    """Compute backward transfer (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory").

    BWT = (1/(T-1)) * sum_{i<T-1} (R[T-1, i] - R[i, i])

    Negative values mean forgetting. Returns NaN when only one step is finished.
    """
    matrix, n_done = validate_accuracy_matrix(R)
    last = n_done - 1
    if last == 0:
        return math.nan
    changes = [matrix[last, i] - matrix[i, i] for i in range(last)]
    return float(np.mean(changes))


def fwt(R: Any, reference: Any) -> float:
    """Compute forward transfer (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory").

    FWT = (1/(T-1)) * sum_{i=1}^{T-1} (R[i-1, i] - reference[i])

    R[i-1, i] is the score on task i just before training on it, and
    reference[i] is the score of a model that never trained on any task (GEM
    uses random initialisation). Mammoth's ``utils/metrics.py`` computes the
    same formula. ``reference`` has one entry per task, and reference[0] is not
    used.

    This is the only function that reads cells above the diagonal. A learner
    fills R[i-1, i] only if it also evaluates the next task before training on
    it, and phplib's learner does not, so those cells are NaN. Then this
    function emits a RuntimeWarning that names the first missing cell and
    returns NaN. It also returns NaN when only one step is finished. For the
    gap to a single-task model measured after training, use ``transfer_diff``.
    """
    matrix, n_done = _convert_matrix(R)
    n_tasks = matrix.shape[0]
    if n_done < 2:
        return math.nan
    baseline = _check_task_scores(reference, n_tasks, range(1, n_done), "reference")

    gains = []
    for i in range(1, n_done):
        before = matrix[i - 1, i]
        if math.isnan(before):
            warnings.warn(
                f"FWT needs R[i-1, i], the score on task i just before training on it, "
                f"but R[{i - 1}, {i}] is NaN, so FWT is NaN. These cells are filled only "
                f"when the learner evaluates each task once before training on it.",
                RuntimeWarning,
                stacklevel=2,
            )
            return math.nan
        if not 0.0 <= before <= 1.0:
            raise ValueError(
                f"R[{i - 1}, {i}] = {before:g} is outside [0, 1]. "
                f"Scores must be fractions, so divide percentages by 100."
            )
        gains.append(before - baseline[i])
    return float(np.mean(gains))


def transfer_diff(R: Any, single_task_scores: Any) -> float:
    """Compute Diff, the mean gap between learning a task in the stream and alone.

    Diff = (1/T) * sum_{i<T} (R[i, i] - S[i])

    S[i] (``single_task_scores``) is the score of a model trained on task i
    alone with the same backbone and head. Positive values mean the tasks
    scored higher when learned in the stream than when learned alone. S has one entry per task, and entries of unfinished tasks are
    not read, so they may be NaN.
    """
    matrix, n_done = validate_accuracy_matrix(R)
    single = _check_task_scores(
        single_task_scores, matrix.shape[0], range(n_done), "single_task_scores"
    )
    gaps = [matrix[i, i] - single[i] for i in range(n_done)]
    return float(np.mean(gaps))


def summarize(
    R: Any,
    single_task_scores: Any = None,
    forgetting_kind: str = "max",
) -> dict[str, float]:
    """Compute the headline metrics of one run.

    Returns a dict with keys "A_mean", "A_final", "F_mean" (of
    ``forgetting_kind``), "BWT", and "Diff" when ``single_task_scores`` is
    given. Every value is a plain Python float. F_mean and BWT are NaN when
    only one step is finished. ``json.dumps`` writes NaN as ``NaN``, which
    Python reads back but strict JSON parsers reject.
    """
    summary = {
        "A_mean": a_mean(R),
        "A_final": a_final(R),
        "F_mean": f_mean(R, kind=forgetting_kind),
        "BWT": bwt(R),
    }
    if single_task_scores is not None:
        summary["Diff"] = transfer_diff(R, single_task_scores)
    return summary
