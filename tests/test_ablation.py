"""Ablation sweeps: settings, config overrides, summaries and the command line's input checks.

These tests run no stream; ``test_sweep_cache.py`` runs a few and compares them with the cached CSVs.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phplib.cli import main
from phplib.config import load_config
from phplib.continual.ablation import (
    ORDERINGS,
    configure,
    format_summary,
    groups_from_boundaries,
    matrix_from_json,
    matrix_to_json,
    parse_task_order,
    prompt_settings,
    run_sweep,
    summarize,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "ablation_toy.yaml"


def test_orderings_cover_permutations_and_drop_one():
    permutations = {"".join(p) for p in itertools.permutations("SMD")}
    assert set(ORDERINGS[:6]) == permutations
    assert ORDERINGS[6:] == ["-MD", "S-D", "SM-"]
    assert len(set(ORDERINGS)) == 9


def test_every_ordering_is_a_valid_config():
    config = load_config(CONFIG)
    for order in ORDERINGS:
        assert configure(config, order, config.tasks, 0).stages.order == order


def test_configure_sets_values_on_a_copy():
    config = load_config(CONFIG)
    changed = configure(config, "DMS", ["AVQA", "AVE"], 7, {"stages.tmi_length": 3, "train.epochs": 1})
    assert changed.stages.order == "DMS"
    assert changed.tasks == ["AVQA", "AVE"]
    assert changed.train.seed == 7
    assert changed.stages.tmi_length == 3
    assert changed.train.epochs == 1
    assert config.stages.order == "SMD"
    assert config.stages.tmi_length == 10


def test_configure_rejects_unknown_key():
    config = load_config(CONFIG)
    with pytest.raises(ValueError, match="stages.tmi_lenght"):
        configure(config, "SMD", config.tasks, 0, {"stages.tmi_lenght": 3})
    with pytest.raises(ValueError, match="nosection"):
        configure(config, "SMD", config.tasks, 0, {"nosection.value": 3})


def test_configure_rejects_invalid_value():
    config = load_config(CONFIG)
    with pytest.raises(ValueError, match="tmi_length"):
        configure(config, "SMD", config.tasks, 0, {"stages.tmi_length": 0})


def test_run_sweep_checks_input_before_running():
    config = load_config(CONFIG)
    with pytest.raises(ValueError, match="SMX"):
        run_sweep(config, orders=["SMD", "SMX"], seeds=[0], progress=False)
    with pytest.raises(ValueError, match="orders is empty"):
        run_sweep(config, orders=[], seeds=[0], progress=False)
    with pytest.raises(ValueError, match="seeds is empty"):
        run_sweep(config, orders=["SMD"], seeds=[], progress=False)
    with pytest.raises(ValueError, match="non-empty list"):
        run_sweep(config, orders=["SMD"], seeds=[0], overrides={"stages.tmi_length": 5}, progress=False)
    with pytest.raises(ValueError, match="KNOWN|unknown task"):
        run_sweep(config, orders=["SMD"], seeds=[0], task_orders=[["AVE", "XYZ"]], progress=False)


def test_groups_from_boundaries():
    assert groups_from_boundaries(2, 5) == [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9, 10, 11]]
    assert groups_from_boundaries(1, 11) == [[0], list(range(1, 11)), [11]]
    for bad in [(0, 5), (5, 5), (6, 5), (2, 12)]:
        with pytest.raises(ValueError, match="boundaries"):
            groups_from_boundaries(*bad)


def test_parse_task_order():
    assert parse_task_order("AVE,LLP,AVQA") == ["AVE", "LLP", "AVQA"]
    assert parse_task_order("AVQA>LLP>AVE") == ["AVQA", "LLP", "AVE"]
    with pytest.raises(ValueError, match="empty"):
        parse_task_order(" , ")


def test_matrix_json_round_trip():
    matrix = np.array([[0.5, np.nan], [0.25, 1 / 3]])
    back = matrix_from_json(matrix_to_json(matrix))
    assert np.isnan(back[0, 1])
    assert np.allclose(back, matrix, equal_nan=True, rtol=0, atol=1e-10)


def test_prompt_settings_one_factor_at_a_time():
    config = load_config(CONFIG)  # base: TMI 10, TMDG 4, boundaries (2, 5)
    settings = prompt_settings(
        config, seeds=[0, 1], tmi_lengths=[2, 10, 20], tmdg_lengths=[1, 4], boundaries=[(2, 5), (4, 8)]
    )
    swept = [s["swept"] for s in settings]
    # base, TMI 2, TMI 20, TMDG 1, groups (4, 8): the values equal to the base appear once.
    assert len(settings) == 5 * 2
    assert swept.count("base") == 2
    assert swept.count("stages.tmi_length") == 4
    assert swept.count("stages.tmdg_length") == 2
    assert swept.count("stages.groups") == 2
    for setting in settings:
        changed = [key for key, value in setting["overrides"].items() if value != settings[0]["overrides"][key]]
        assert len(changed) <= 1
        assert setting["order"] == "SMD"


def fixed_sweep() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order": ["SMD", "SMD", "DMS", "DMS", "S-D"],
            "task_order": ["AVE>LLP"] * 5,
            "seed": [0, 1, 0, 1, 0],
            "A_mean": [0.5, 0.7, 0.2, 0.4, 0.9],
            "A_final": [0.4, 0.6, 0.1, 0.3, 0.8],
            "F_mean": [0.0, 0.2, 0.1, 0.1, 0.0],
            "BWT": [0.0, -0.2, -0.1, -0.1, 0.0],
            "seconds": [1.0] * 5,
        }
    )


def test_summarize_mean_std_n():
    summary = summarize(fixed_sweep())
    assert list(summary["order"]) == ["SMD", "DMS", "S-D"]
    smd = summary.set_index("order").loc["SMD"]
    assert math.isclose(smd["A_mean mean"], 0.6)
    assert math.isclose(smd["A_mean std"], math.sqrt(0.02))  # ddof=1 over 0.5 and 0.7
    assert smd["n"] == 2
    assert math.isnan(summary.set_index("order").loc["S-D", "A_mean std"])
    assert [c for c in summary.columns if c.endswith(" mean")] == ["A_mean mean", "A_final mean", "F_mean mean", "BWT mean"]


def test_summarize_by_two_columns():
    summary = summarize(fixed_sweep(), by=["order", "seed"])
    assert len(summary) == 5
    assert (summary["n"] == 1).all()


def test_summarize_rejects_missing_column():
    with pytest.raises(ValueError, match="stages.tmi_length"):
        summarize(fixed_sweep(), by=["stages.tmi_length"])
    with pytest.raises(ValueError, match="empty"):
        summarize(fixed_sweep().iloc[:0])


def test_format_summary_text():
    shown = format_summary(summarize(fixed_sweep()))
    assert shown.loc[0, "A_mean"] == "0.600 ± 0.141"
    assert shown.loc[2, "A_mean"] == "0.900"


def test_cli_rejects_bad_ordering(tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    code = main(["ablate", "orderings", "--config", str(CONFIG), "--orders", "SMX", "--out", str(out), "--no-progress"])
    assert code == 2
    assert "SMX" in capsys.readouterr().err
    assert not out.exists()


def test_cli_rejects_bad_boundaries(capsys):
    with pytest.raises(SystemExit):
        main(["ablate", "prompts", "--config", str(CONFIG), "--boundaries", "2-5", "--out", "x.csv"])
    assert "SHALLOW_END,DEEP_START" in capsys.readouterr().err


def test_cli_missing_config(tmp_path, capsys):
    code = main(["ablate", "orderings", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o.csv")])
    assert code == 2
    assert "nope.yaml" in capsys.readouterr().err
