"""Heatmaps of the accuracy and forgetting matrices: masks, labels, titles, files."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from phplib.metrics.incremental import forgetting  # noqa: E402
from phplib.viz.heatmaps import (  # noqa: E402
    forgetting_matrix,
    plot_accuracy_matrix,
    plot_forgetting_matrix,
    plot_runs_side_by_side,
    save_figure,
)

nan = float("nan")
TASKS = ["AVE", "LLP", "AVQA"]
R3 = np.array([
    [0.9, nan, nan],
    [0.8, 0.85, nan],
    [0.7, 0.6, 0.95],
])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _cell_texts(ax):
    """Map (row, column) to annotation text, using that seaborn centres each text in its cell."""
    cells = {}
    for text in ax.texts:
        x, y = text.get_position()
        cells[(int(round(y - 0.5)), int(round(x - 0.5)))] = text.get_text()
    return cells


# --- forgetting matrix --------------------------------------------------------


def test_forgetting_matrix_by_hand():
    F = forgetting_matrix(R3)
    assert F[1, 0] == pytest.approx(0.9 - 0.8)
    assert F[2, 0] == pytest.approx(max(0.9, 0.8) - 0.7)
    assert F[2, 1] == pytest.approx(0.85 - 0.6)
    not_defined = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for cell in not_defined:
        assert np.isnan(F[cell]), cell


def test_forgetting_matrix_last_row_matches_metric():
    F = forgetting_matrix(R3)
    np.testing.assert_allclose(F[2, :2], forgetting(R3, "max"))


def test_forgetting_matrix_partial_run():
    partial = R3.copy()
    partial[2] = nan
    F = forgetting_matrix(partial)
    assert F[1, 0] == pytest.approx(0.9 - 0.8)
    assert np.all(np.isnan(F[2]))


# --- accuracy heatmap ---------------------------------------------------------


def test_accuracy_plot_masks_upper_triangle():
    ax = plot_accuracy_matrix(R3, TASKS)
    cells = _cell_texts(ax)
    assert set(cells) == {(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)}
    assert cells[(1, 0)] == "0.80"
    assert cells[(2, 2)] == "0.95"


def test_accuracy_plot_ignores_values_above_diagonal():
    filled = R3.copy()
    filled[0, 1] = 0.3
    ax = plot_accuracy_matrix(filled, TASKS, fmt=".1f")
    cells = _cell_texts(ax)
    assert (0, 1) not in cells
    assert cells[(1, 0)] == "0.8"


def test_accuracy_plot_masks_unfinished_rows():
    partial = R3.copy()
    partial[2] = nan
    ax = plot_accuracy_matrix(partial, TASKS)
    assert set(_cell_texts(ax)) == {(0, 0), (1, 0), (1, 1)}


def test_accuracy_plot_labels():
    ax = plot_accuracy_matrix(R3, TASKS)
    assert ax.get_xlabel() == "evaluated on task"
    assert ax.get_ylabel() == "after training on task (stream order)"
    assert [label.get_text() for label in ax.get_xticklabels()] == TASKS
    assert [label.get_text() for label in ax.get_yticklabels()] == TASKS
    colorbar = ax.collections[0].colorbar
    assert colorbar.ax.get_ylabel() == "score"
    assert colorbar.vmin == 0.0
    assert colorbar.vmax == 1.0


def test_accuracy_plot_titles():
    assert plot_accuracy_matrix(R3, TASKS).get_title() == "Accuracy matrix"
    ax = plot_accuracy_matrix(R3, TASKS, method="PHP", order="AVE-LLP-AVQA")
    assert ax.get_title() == "Accuracy matrix (PHP, order AVE-LLP-AVQA)"
    ax = plot_accuracy_matrix(R3, TASKS, title="Toy run", method="L2P")
    assert ax.get_title() == "Toy run (L2P)"


def test_accuracy_plot_uses_given_axes():
    fig, axes = plt.subplots(1, 2)
    ax = plot_accuracy_matrix(R3, TASKS, ax=axes[1])
    assert ax is axes[1]
    assert len(axes[0].texts) == 0


def test_accuracy_plot_rejects_bad_input():
    with pytest.raises(ValueError, match="task_names has 2 entries"):
        plot_accuracy_matrix(R3, TASKS[:2])
    with pytest.raises(ValueError, match=r"R\[1, 0\] = 80 is outside"):
        plot_accuracy_matrix([[0.9, nan], [80.0, 0.8]], TASKS[:2])


# --- forgetting heatmap -------------------------------------------------------


def test_forgetting_plot_masks_and_values():
    ax = plot_forgetting_matrix(R3, TASKS, method="PHP")
    cells = _cell_texts(ax)
    assert set(cells) == {(1, 0), (2, 0), (2, 1)}
    assert cells[(2, 1)] == f"{0.85 - 0.6:.2f}"
    assert ax.get_title() == "Forgetting matrix (PHP)"
    colorbar = ax.collections[0].colorbar
    assert colorbar.ax.get_ylabel() == "forgetting (score drop)"
    assert colorbar.vmin == pytest.approx(-(0.85 - 0.6))
    assert colorbar.vmax == pytest.approx(0.85 - 0.6)


def test_forgetting_plot_rejects_bad_limit():
    with pytest.raises(ValueError, match="limit must be a positive number"):
        plot_forgetting_matrix(R3, TASKS, limit=0)


# --- side by side -------------------------------------------------------------


def test_runs_side_by_side_panels():
    other = R3.copy()
    other[2, 0] = 0.2
    fig = plot_runs_side_by_side({"PHP": R3, "finetune": other}, TASKS)
    panels = [ax for ax in fig.axes if ax.get_title() in ("PHP", "finetune")]
    assert [ax.get_title() for ax in panels] == ["PHP", "finetune"]
    assert _cell_texts(panels[1])[(2, 0)] == "0.20"
    for ax in panels:
        assert set(_cell_texts(ax)) == {(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)}
    assert fig.get_suptitle() == "Accuracy matrices"
    assert len(fig.axes) == 3  # two panels and one shared colour bar


def test_runs_side_by_side_forgetting_shares_scale():
    other = R3.copy()
    other[2, 0] = 0.2
    fig = plot_runs_side_by_side({"PHP": R3, "finetune": other}, TASKS, kind="forgetting")
    panels = [ax for ax in fig.axes if ax.get_title() in ("PHP", "finetune")]
    limit = max(0.9, 0.8) - 0.2
    for ax in panels:
        assert set(_cell_texts(ax)) == {(1, 0), (2, 0), (2, 1)}
        assert ax.collections[0].get_clim() == pytest.approx((-limit, limit))


def test_runs_side_by_side_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown kind 'loss'"):
        plot_runs_side_by_side({"PHP": R3}, TASKS, kind="loss")
    with pytest.raises(ValueError, match="matrices is empty"):
        plot_runs_side_by_side({}, TASKS)
    with pytest.raises(ValueError, match="run 'small' has 2 tasks"):
        plot_runs_side_by_side({"PHP": R3, "small": [[0.9, nan], [0.8, 0.7]]}, TASKS)


# --- saving -------------------------------------------------------------------


def test_save_figure_creates_folders(tmp_path):
    ax = plot_accuracy_matrix(R3, TASKS)
    target = tmp_path / "runs" / "toy" / "accuracy.png"
    written = save_figure(ax.figure, target, dpi=50)
    assert written == target
    assert target.is_file()
    assert target.stat().st_size > 0


def test_save_figure_side_by_side_pdf(tmp_path):
    fig = plot_runs_side_by_side({"a": R3, "b": R3}, TASKS, kind="forgetting")
    target = save_figure(fig, str(tmp_path / "nested" / "runs.pdf"))
    assert target.stat().st_size > 0
