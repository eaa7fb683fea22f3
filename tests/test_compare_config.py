"""`compare --config` on a single-table export: the model's own test leads, rules on the export's own columns."""

import re

import numpy as np
import pandas as pd
import pytest
from own_export import make_export, write_quirky_csv
from sklearn.metrics import roc_auc_score

from analysis.compare import bootstrap_intervals, disagreements
from train import main as training_main

MODEL = "own-export-conversion"
RULES = """
[thresholds]
mql = 20
sql = 40

[[attribute]]
name = "referral"
column = "Source"
equals = "Referral"
points = 30

[[attribute]]
name = "many visits"
column = "Visits"
range = [1000, inf]
points = 20

[[attribute]]
name = "opted out"
column = "Opted Out"
equals = "Yes"
points = -15
"""


@pytest.fixture
def trained(tmp_path, mlflow_store, capsys):
    export = tmp_path / "export.csv"
    write_quirky_csv(make_export(1200, seed=4), export)
    config = tmp_path / "export.toml"  # the model is named after it: export-conversion
    assert training_main(["init-config", "--leads", str(export), "--out", str(config)]) == 0
    config.write_text(config.read_text().replace('model_name = "export-conversion"', f'model_name = "{MODEL}"'))
    assert training_main(["train", "--config", str(config), "--report-out", str(tmp_path / "training")]) == 0
    capsys.readouterr()
    return config


def test_compare_runs_on_a_single_table_export_through_its_config(trained, tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    out = tmp_path / "compare"
    code = training_main(["compare", "--model", f"models:/{MODEL}@champion", "--config", str(trained),
                          "--rules", str(rules), "--out", str(out), "--bootstrap", "50"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "on 240 test leads" in printed.out  # the stratified split's test leads, as training drew them
    assert re.search(r"model minus rules [+-]0\.\d{3}, 95% interval", printed.out)

    tiers = pd.read_csv(out / "tiers.csv").set_index(["scorer", "tier"])
    assert tiers["leads"].groupby("scorer").sum().eq(240).all()
    # The rules scored by hand on the same export rows agree with the report's rule tiers.
    export = pd.read_csv(tmp_path / "export.csv", sep=None, engine="python")
    assert set(pd.read_csv(out / "intervals.csv")["metric"]) >= {"roc_auc_difference", "sql_conversion_difference"}
    html = (out / "report.html").read_text()
    assert "Is the difference more than noise?" in html and "conversion_rate" not in html
    assert len(export) == 1200


def test_compare_mistakes_are_one_line_errors(trained, tmp_path, capsys):
    # The example rules name the synthetic CRM's columns (seniority, company_size), not this export's.
    code = training_main(["compare", "-q", "--model", f"models:/{MODEL}@champion", "--config", str(trained),
                          "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "--rules" in err, err
    assert "Traceback" not in err and not (tmp_path / "a").exists()

    behaviour = tmp_path / "behaviour.toml"
    behaviour.write_text("[thresholds]\nmql = 1\nsql = 2\n[[behaviour]]\nname = 'demo'\nevent = 'demo_request'\n"
                         "points = 1\n")
    code = training_main(["compare", "-q", "--model", f"models:/{MODEL}@champion", "--config", str(trained),
                          "--rules", str(behaviour), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err

    code = training_main(["compare", "-q", "--model", f"models:/{MODEL}@champion", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "compare needs --config FILE" in err and err.count("\n") == 1


def _scored(n_leads=300, repeats=1, seed=0):
    rng = np.random.default_rng(seed)
    label = (rng.random(n_leads) < 0.2).astype(int)
    frame = pd.DataFrame({"lead_id": np.arange(n_leads), "label": label,
                          "probability": np.clip(0.2 + 0.3 * label + rng.normal(0, 0.2, n_leads), 0, 1),
                          "points": 10 * label + rng.normal(0, 10, n_leads)})
    order = np.argsort(-frame["probability"].to_numpy())
    frame["model_tier_equal_volume"] = "nurture"
    frame.loc[order[:30], "model_tier_equal_volume"] = "SQL"
    frame["rule_tier"] = np.where(frame["points"] >= np.sort(frame["points"])[-30], "SQL", "nurture")
    return pd.concat([frame] * repeats, ignore_index=True)


def test_bootstrap_resamples_leads_not_rows():
    once, twice = _scored(), _scored(repeats=2)
    a = bootstrap_intervals(once, n=60, seed=3).set_index("metric")
    b = bootstrap_intervals(twice, n=60, seed=3).set_index("metric")
    # A lead's duplicated snapshots move together: the same draws, the same intervals.
    pd.testing.assert_frame_equal(a, b)
    expected = (roc_auc_score(once["label"], once["probability"]) - roc_auc_score(once["label"], once["points"]))
    assert a.loc["roc_auc_difference", "estimate"] == pytest.approx(expected)
    sql = once[once["rule_tier"] == "SQL"]["label"].mean()
    assert a.loc["rules_sql_conversion", "estimate"] == pytest.approx(sql)
    for row in a.itertuples():
        assert row.low <= row.estimate <= row.high
    assert bootstrap_intervals(once, n=0)["low"].isna().all()


def test_disagreements_go_both_ways_with_converters(small_models):
    bundle = small_models["lightgbm"]
    features = small_models["features"].reset_index(drop=True).iloc[:300]
    scored = _scored().assign(probability=bundle.predict_probability(features), model_tier="nurture")
    scored["rule_reasons"] = "no rule fired"
    table = disagreements(scored, features, bundle, n=6)
    for direction in ("model higher", "rules higher"):
        part = table[table["direction"] == direction]
        assert len(part) == 6 and part["lead_id"].is_unique
        assert part["label"].sum() == 3  # half converters, half not
        gaps = part["rank_gap"].to_numpy()
        assert (gaps > 0).all() if direction == "model higher" else (gaps < 0).all()
