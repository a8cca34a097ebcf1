"""The functions behind notebooks 08 and 09's widgets, called with fixed values and a hand-made sweep table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from phplib.config import load_config  # noqa: E402
from phplib.continual.ablation import groups_from_boundaries, matrix_to_json  # noqa: E402
from phplib.viz.widgets import (  # noqa: E402
    SettingResult,
    build_explorer,
    describe_setting,
    draw_setting,
    find_cached,
    learning_accuracy,
    load_sweep,
    plot_tradeoff,
    result_for_setting,
    tradeoff_table,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "ablation_toy.yaml"
BASE_GROUPS = json.dumps(groups_from_boundaries(2, 5))
WIDE_GROUPS = json.dumps(groups_from_boundaries(4, 8))


def matrix(a: float, b: float, c: float) -> str:
    """A two-task R: a and c on the diagonal, b the first task after the second."""
    return matrix_to_json(np.array([[a, np.nan], [b, c]]))


@pytest.fixture()
def sweep() -> pd.DataFrame:
    """A hand-made prompt sweep: base and TMI 2, two seeds each, one groups variant with one seed."""
    return pd.DataFrame(
        {
            "order": ["SMD"] * 5,
            "task_order": ["AVE>LLP"] * 5,
            "seed": [0, 1, 0, 1, 0],
            "swept": ["base", "base", "stages.tmi_length", "stages.tmi_length", "stages.groups"],
            "stages.tmi_length": [10, 10, 2, 2, 10],
            "stages.tmdg_length": [4] * 5,
            "stages.groups": [BASE_GROUPS] * 4 + [WIDE_GROUPS],
            "A_mean": [0.6, 0.5, 0.4, 0.45, 0.7],
            "A_final": [0.55, 0.5, 0.3, 0.4, 0.7],
            "F_mean": [0.1, 0.0, 0.2, 0.1, 0.0],
            "BWT": [-0.1, 0.0, -0.2, -0.1, 0.0],
            "seconds": [9.5, 9.0, 8.0, 8.5, 10.0],
            "R": [matrix(0.6, 0.5, 0.6), matrix(0.5, 0.5, 0.5), matrix(0.5, 0.3, 0.3), matrix(0.5, 0.4, 0.4),
                  matrix(0.7, 0.7, 0.7)],
        }
    )


def test_find_cached_hit(sweep):
    row = find_cached(sweep, order="SMD", task_order="AVE>LLP", seed=1,
                      settings={"stages.tmi_length": 2, "stages.groups": groups_from_boundaries(2, 5)})
    assert row is not None
    assert row["A_mean"] == 0.45


def test_find_cached_misses(sweep):
    base = {"stages.tmi_length": 10, "stages.tmdg_length": 4, "stages.groups": groups_from_boundaries(2, 5)}
    assert find_cached(sweep, order="SMD", task_order="AVE>LLP", seed=0, settings=base) is not None
    assert find_cached(sweep, order="DMS", task_order="AVE>LLP", seed=0, settings=base) is None
    assert find_cached(sweep, order="SMD", task_order="LLP>AVE", seed=0, settings=base) is None
    assert find_cached(sweep, order="SMD", task_order="AVE>LLP", seed=2, settings=base) is None
    assert find_cached(sweep, order="SMD", task_order="AVE>LLP", seed=0, settings={**base, "stages.tmi_length": 7}) is None
    wide = {**base, "stages.groups": groups_from_boundaries(4, 8)}
    assert find_cached(sweep, order="SMD", task_order="AVE>LLP", seed=0, settings=wide)["A_mean"] == 0.7
    # A key the sweep never varied cannot be matched, so the lookup must not claim a hit.
    assert find_cached(sweep, order="SMD", task_order="AVE>LLP", seed=0, settings={"train.epochs": 9}) is None
    assert find_cached(None, order="SMD", task_order="AVE>LLP", seed=0) is None


def test_result_for_setting_reads_cache(sweep):
    config = load_config(CONFIG)
    result = result_for_setting(config, order="SMD", seed=0, tasks=["AVE", "LLP"],
                                settings={"stages.tmi_length": 2, "stages.groups": groups_from_boundaries(2, 5)},
                                cache=sweep)
    assert result.source == "cached sweep"
    assert result.task_names == ["AVE", "LLP"]
    assert result.metrics == {"A_mean": 0.4, "A_final": 0.3, "F_mean": 0.2, "BWT": -0.2}
    assert result.seconds == 8.0
    assert result.matrix[1, 0] == 0.3
    assert np.isnan(result.matrix[0, 1])


def test_describe_setting():
    text = describe_setting({"order": "DMS", "task_order": "AVE>LLP", "seed": 2, "stages.tmi_length": 5,
                             "stages.groups": WIDE_GROUPS})
    assert text == "DMS, AVE>LLP, seed 2, TMI length 5, groups 0-3 | 4-7 | 8-11"


def test_describe_setting_single_block_group():
    text = describe_setting({"order": "SMD", "task_order": "AVE", "seed": 0, "stages.groups": groups_from_boundaries(1, 6)})
    assert text == "SMD, AVE, seed 0, groups 0 | 1-5 | 6-11"


def test_draw_setting_heatmap_and_metrics():
    result = SettingResult(np.array([[0.8, np.nan], [0.6, 0.9]]), ["AVE", "LLP"],
                           {"A_mean": 0.775, "A_final": 0.75, "F_mean": 0.2, "BWT": -0.2}, "fresh run", 9.25,
                           {"order": "SMD", "task_order": "AVE>LLP", "seed": 0})
    figure = draw_setting(result)
    heatmap, metrics = figure.axes[:2]
    assert heatmap.get_title() == "Accuracy matrix R"
    assert [t.get_text() for t in heatmap.get_xticklabels()] == ["AVE", "LLP"]
    cell_texts = sorted(t.get_text() for t in heatmap.texts)
    assert cell_texts == ["0.60", "0.80", "0.90"]
    assert [round(p.get_height(), 3) for p in metrics.patches] == [0.775, 0.75, 0.2, -0.2]
    assert metrics.get_title() == "fresh run, stream 9.2 s"
    assert figure._suptitle.get_text() == "SMD, AVE>LLP, seed 0"
    assert metrics.get_xlabel()
    assert metrics.get_ylabel()
    # Redrawing into the same figure replaces the panels instead of adding more.
    assert draw_setting(result, figure) is figure
    assert len([ax for ax in figure.axes if ax.get_title()]) == 2
    plt.close(figure)


def test_learning_accuracy():
    assert math.isclose(learning_accuracy(np.array([[0.8, np.nan], [0.6, 0.4]])), 0.6)


def test_tradeoff_table_values(sweep):
    table = tradeoff_table(sweep).set_index("label")
    assert list(table.index) == ["base", "tmi_length 2", "groups 0-3|4-7|8-11"]
    assert math.isclose(table.loc["base", "F_mean mean"], 0.05)
    assert math.isclose(table.loc["base", "learning_accuracy mean"], 0.55)  # diagonals 0.6 and 0.5
    assert math.isclose(table.loc["tmi_length 2", "learning_accuracy mean"], (0.4 + 0.45) / 2)
    assert table.loc["groups 0-3|4-7|8-11", "n"] == 1


def test_tradeoff_table_needs_matrices(sweep):
    with pytest.raises(ValueError, match="R column"):
        tradeoff_table(sweep.drop(columns="R"))


def test_plot_tradeoff_points(sweep):
    ax = plot_tradeoff(sweep)
    points = [container.lines[0].get_xydata()[0] for container in ax.containers]
    assert np.allclose(points, [[0.05, 0.55], [0.15, 0.425], [0.0, 0.7]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "tmi_length 2", "groups 0-3|4-7|8-11"]
    assert "F_mean" in ax.get_xlabel()
    assert "R[i, i]" in ax.get_ylabel()
    assert ax.get_title()
    plt.close(ax.figure)


def test_load_sweep_errors(tmp_path, sweep):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_sweep(tmp_path / "missing.csv")
    path = tmp_path / "old.csv"
    sweep.drop(columns="R").to_csv(path, index=False)
    with pytest.raises(ValueError, match="old.csv lacks the column"):
        load_sweep(path)
    sweep.to_csv(path, index=False)
    assert load_sweep(path)["stages.groups"].tolist() == sweep["stages.groups"].tolist()


def test_explorer_redraws_from_cache(sweep):
    config = load_config(CONFIG, {"tasks": ["AVE", "LLP"]})
    explorer = build_explorer(config, sweep)
    controls = explorer.controls
    assert controls["order"].value == "SMD"
    assert controls["task_order"].value == "AVE>LLP"
    assert controls["tmi_length"].value == 10
    assert controls["boundaries"].value == (2, 5)
    first = explorer.update()
    assert first.source == "cached sweep"
    assert first.metrics["A_mean"] == 0.6
    assert "TMI length 10" in explorer.status.value
    before = explorer.output.outputs[0]["data"]["image/png"]
    controls["tmi_length"].value = 2  # the observer redraws from the cached row of TMI 2
    assert "cached sweep" in explorer.status.value
    assert "TMI length 2" in explorer.status.value
    assert len(explorer.output.outputs) == 1
    assert explorer.output.outputs[0]["data"]["image/png"] != before
    controls["boundaries"].value = (4, 4)
    assert "must differ" in explorer.status.value
    plt.close("all")


def test_ordering_sweep_lookup_without_prompt_columns(sweep):
    """An ordering sweep has no prompt columns: the config's own prompt values match it, others do not."""
    config = load_config(CONFIG, {"tasks": ["AVE", "LLP"]})
    orderings = sweep.drop(columns=["swept", "stages.tmi_length", "stages.tmdg_length", "stages.groups"]).iloc[:2]
    base = {"stages.tmi_length": 10, "stages.tmdg_length": 4, "stages.groups": groups_from_boundaries(2, 5)}
    hit = result_for_setting(config, order="SMD", seed=1, tasks=["AVE", "LLP"], settings=base, cache=orderings)
    assert hit.source == "cached sweep"
    assert hit.metrics["A_mean"] == 0.5
    assert find_cached(orderings, order="SMD", task_order="AVE>LLP", seed=1,
                       settings={"stages.tmi_length": 3}) is None
