"""A three-table export with its own names, vocabulary, outcome values and hours-long journeys, through the config.

The CRM is made here: accounts, touchpoints (an activity plus a lifecycle column) and a deals
table whose outcomes are "Signed" and "Walked away", decided within hours. It trains with
``python -m training train --config`` (in-process, temporary MLflow store) and scores with
``serve.py score``; the reasons use the data's own words.
"""

import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

import serve
from crm.config import load_config
from crm.export import load_tables
from train import main as training_main

T0 = pd.Timestamp("2025-03-03 00:00")
MODEL = "touchpoint-conversion"


def make_crm(n: int = 700, seed: int = 3):
    """Accounts created over five days; a quote completed makes signing within hours likely."""
    rng = np.random.default_rng(seed)
    created = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 5 * 24, n)), unit="h")
    keen = rng.random(n) < 0.45
    accounts = pd.DataFrame({"AccountRef": [f"AC{i:04d}" for i in range(n)], "OpenedAt": created,
                             "Segment": rng.choice(["SMB", "Mid", "Ent"], n)})
    rows, deals = [], []
    for i in range(n):
        at = created[i]
        steps = (["Brochure", "Quote Sent", "Quote Sent", "Callback"] if keen[i]
                 else ["Brochure", "Chat", "Quote Sent", "Callback"])
        for step in steps[: rng.integers(2, 5)]:
            at = at + pd.Timedelta(minutes=int(rng.integers(10, 90)))
            phase = "complete" if (step != "Quote Sent" or keen[i] or rng.random() < 0.2) else "start"
            rows.append((accounts["AccountRef"][i], at, step, phase, float(rng.integers(1, 50))))
        if rng.random() < 0.03:
            rows.append((accounts["AccountRef"][i], at + pd.Timedelta(minutes=5), "Fax", None, 0.0))
        if rng.random() < 0.1:
            continue  # still open
        signed = rng.random() < (0.75 if keen[i] else 0.12)
        closed = at + pd.Timedelta(minutes=int(rng.integers(30, 300)))
        deals.append((accounts["AccountRef"][i], closed, "Signed" if signed else "Walked away", 1000.0))
    touchpoints = pd.DataFrame(rows, columns=["Account", "When", "Step", "Phase", "Spend"])
    outcomes = pd.DataFrame(deals, columns=["Account", "DecidedAt", "Result", "Value"])
    return accounts, touchpoints, outcomes


CONFIG = """
[data]
leads = "accounts.csv"

[columns]
id = "AccountRef"
created_at = "OpenedAt"

[roles]
categorical = ["Segment"]

[events]
file = "touchpoints.csv"
id = "Account"
timestamp = "When"
type = ["Step", "Phase"]
type_separator = "+"
value = "Spend"
windows = ["1h", "6h", "1d"]
half_lives = ["2h", "12h"]
min_count = 30

[events.words]
"Quote Sent+complete" = "completed a quote"
"Callback+complete" = ["callback", "callbacks", "asked for a callback"]

[deals]
file = "outcomes.csv"
id = "Account"
closed_at = "DecidedAt"
outcome = "Result"
won = ["Signed"]
lost = ["Walked away"]
amount = "Value"

[training]
model_name = "touchpoint-conversion"
horizon = "6h"
snapshot_every = "1h"
test_span = "30h"
calibration_span = "18h"
min_positives = 20
min_negatives = 20
min_split_positives = 5
"""


@pytest.fixture
def crm_files(tmp_path):
    accounts, touchpoints, outcomes = make_crm()
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    touchpoints.to_csv(tmp_path / "touchpoints.csv", index=False)
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    (tmp_path / "config.toml").write_text(CONFIG)
    return tmp_path


def test_own_names_vocabulary_and_hours_train_and_score(crm_files, mlflow_store, capsys):
    config = crm_files / "config.toml"
    assert training_main(["train", "--config", str(config)]) == 0
    log = capsys.readouterr().err  # the run's progress lines go to stderr (logging), the result to stdout
    # The vocabulary is the log's own: frequent types get columns, the rare Fax counts as other.
    assert "event types: 5 of 6 get columns of their own" in log and "rarer count as other (Fax)" in log

    client = mlflow.MlflowClient()
    run = client.get_run(client.get_model_version_by_alias(MODEL, "champion").run_id)
    spec = json.loads(client.download_artifacts(run.info.run_id, "feature_spec.json", str(crm_files / "dl")) and
                      (crm_files / "dl" / "feature_spec.json").read_text())
    assert set(spec["event_types"]) == {"Brochure+complete", "Quote Sent+complete", "Chat+complete",
                                        "Callback+complete", "Quote Sent+start"}
    assert spec["windows_days"] == [pytest.approx(1 / 24), 0.25, 1]
    assert run.data.params["horizon_days"] == "0.25" and run.data.params["snapshot_every_days"] == str(1 / 24)
    assert run.data.metrics["test_roc_auc"] > 0.75  # a completed quote is real signal

    scores_path = crm_files / "scores.csv"
    as_of = "2025-03-08 04:00"
    assert serve.main(["score", "--model", f"models:/{MODEL}@champion", "--config", str(config),
                       "--as-of", as_of, "--out", str(scores_path)]) == 0
    scores = pd.read_csv(scores_path)
    leads, _, events, deals = load_tables(load_config(config), for_training=False)
    open_at = leads.loc[(leads["created_at"] < pd.Timestamp(as_of))
                        & ~leads["lead_id"].isin(deals.loc[deals["closed_at"] < pd.Timestamp(as_of), "lead_id"]),
                        "lead_id"]
    assert sorted(scores["lead_id"]) == sorted(open_at)
    reasons = " | ".join(scores.filter(like="_reason_").fillna("").to_numpy().ravel())
    # The config's words, the data's own names, and times in hours.
    assert "completed a quote" in reasons and ("hours ago" in reasons or "minutes ago" in reasons)
    assert "requested a demo" not in reasons and "demo" not in reasons

    # Over HTTP a lead's events carry the log's own types, and its reasons read in the config's words.
    from fastapi.testclient import TestClient

    from scoring.service import create_app
    from registry.loading import load_bundle

    bundle, identity = load_bundle(f"models:/{MODEL}@champion")
    client = TestClient(create_app(bundle, identity))
    lead = {"lead_id": "new", "created_at": "2025-03-08T01:00:00Z", "attributes": {"Segment": "Mid"},
            "events": [{"occurred_at": "2025-03-08T01:20:00Z", "event_type": "Brochure+complete"},
                       {"occurred_at": "2025-03-08T02:10:00Z", "event_type": "Quote Sent+complete"}]}
    answer = client.post("/score", params={"as_of": "2025-03-08T03:10:00Z"}, json=lead)
    assert answer.status_code == 200, answer.text
    texts = [reason["text"] for side in answer.json()["results"][0]["reasons"].values() for reason in side]
    assert "completed a quote 1 hour ago" in texts
    assert client.get("/model").json()["event_types"] == spec["event_types"]

    # The analyst's comparison reads the same config, and the rules name the model's own types.
    rules = crm_files / "rules.toml"
    rules.write_text(RULES)
    assert training_main(["compare", "--config", str(config), "--model", f"models:/{MODEL}@champion",
                          "--rules", str(rules), "--out", str(crm_files / "compare")]) == 0
    out = capsys.readouterr().out
    assert "compared models:/touchpoint-conversion@champion" in out
    assert re.search(r"\(as of .*2025-03-0\d \d\d:00:00", out)  # hourly forecast dates keep their hour
    assert (crm_files / "compare" / "report.html").exists()


RULES = """
[thresholds]
mql = 10
sql = 30

[[behaviour]]
name = "quote completed"
event = "Quote Sent+complete"
points = 20
window = "6h"

[[behaviour]]
name = "chats"
event = "chat_complete"
points = 5
"""


def test_mapping_reads_own_columns_and_outcome_values(crm_files):
    config = load_config(crm_files / "config.toml")
    leads, labels, events, deals = load_tables(config)
    assert labels is None and list(events.columns) == ["lead_id", "occurred_at", "event_type", "value"]
    touchpoints = pd.read_csv(crm_files / "touchpoints.csv")
    first = touchpoints.iloc[0]
    assert events["event_type"].iloc[0] == f"{first['Step']}+{first['Phase']}"
    assert set(events.loc[touchpoints["Step"].eq("Fax").to_numpy(), "event_type"]) == {"Fax"}  # no lifecycle part
    outcomes = pd.read_csv(crm_files / "outcomes.csv")
    assert (deals["outcome"] == np.where(outcomes["Result"].eq("Signed"), "won", "lost")).all()
    assert deals["amount"].eq(1000.0).all()


def test_unknown_outcome_value_names_file_section_and_values(crm_files):
    outcomes = pd.read_csv(crm_files / "outcomes.csv")
    outcomes.loc[3, "Result"] = "Pending"
    outcomes.to_csv(crm_files / "outcomes.csv", index=False)
    with pytest.raises(ValueError, match=r"outcomes.csv: column 'Result' must hold one of the won values "
                                         r"\['signed'\] or lost values \['walked away'\] listed under \[deals\] "
                                         r"won / lost in .*config.toml; 1 rows hold others such as \['pending'\]"):
        load_tables(load_config(crm_files / "config.toml"))


@pytest.mark.parametrize("old, new, message", [
    ("[events]\n", '[events]\ncolour = "red"\n',
     r"\[events\] colour is an unknown key; expected one of \['file', 'half_lives',"),
    ("[deals]\n", '[deals]\nlost_after = "8h"\n', r"\[deals\] lost_after applies to a table of won deals only"),
    ('horizon = "6h"', 'horizon = "6 parsecs"', r"\[training\] horizon must be a duration such as '6h'"),
    ('windows = ["1h", "6h", "1d"]', 'windows = ["1h", "soon"]',
     r"\[events\] windows\[2\] must be a duration such as '6h'.*Got 'soon' instead"),
    ("[data]\n", '[data]\nevents = "touchpoints.csv"\n', r"the events table is named twice, as \[data\] events "
                                                            r"and \[events\] file; keep \[events\]"),
    ('"Quote Sent+complete" = "completed a quote"', '"Quote Sent+complete" = 3',
     r"\[events\] words 'Quote Sent\+complete' must be what the lead did"),
    ("min_count = 30", 'types = ["Quote Sent", "quote-sent"]',
     r"\[events\] types: FeatureSpec event types 'Quote Sent' and 'quote-sent' give the same column name"),
    ('won = ["Signed"]', 'won = ["Walked away"]', r"\[deals\] won and lost share the value\(s\) \['walked away'\]"),
])
def test_config_errors_name_file_section_and_key(crm_files, old, new, message):
    assert old in CONFIG
    (crm_files / "config.toml").write_text(CONFIG.replace(old, new, 1))
    with pytest.raises(ValueError, match=r"config.toml.*" + message):
        load_config(crm_files / "config.toml")


def test_a_missing_mapped_column_names_the_config_key(crm_files):
    (crm_files / "config.toml").write_text(CONFIG.replace('timestamp = "When"', 'timestamp = "Time"'))
    with pytest.raises(ValueError, match=r"touchpoints.csv: missing column\(s\) \['Time'\] named by \[events\] "
                                         r"timestamp"):
        load_tables(load_config(crm_files / "config.toml"))


WON_ONLY = """
[data]
leads = "accounts.csv"

[columns]
id = "AccountRef"
created_at = "OpenedAt"

[roles]
categorical = ["Segment"]

[events]
file = "touchpoints.csv"
id = "Account"
timestamp = "When"
type = "Step"

[deals]
file = "wins.csv"
id = "Account"
closed_at = "SignedAt"
won_only = true
"""


def test_won_only_deals_stay_open_or_are_lost_after_inactivity(tmp_path, capsys):
    """Worked by hand: A won; B last active 10:00, lost at 18:00; C active 20:00, inside 8 h of the end; D never active."""
    pd.DataFrame({"AccountRef": ["A", "B", "C", "D"],
                  "OpenedAt": ["2025-03-03 08:00", "2025-03-03 08:00", "2025-03-03 09:00", "2025-03-03 07:00"],
                  "Segment": ["SMB"] * 4}).to_csv(tmp_path / "accounts.csv", index=False)
    pd.DataFrame({"Account": ["A", "B", "B", "C"],
                  "When": ["2025-03-03 09:00", "2025-03-03 09:30", "2025-03-03 10:00", "2025-03-03 20:00"],
                  "Step": ["Quote Sent", "Chat", "Chat", "Chat"]}).to_csv(tmp_path / "touchpoints.csv", index=False)
    pd.DataFrame({"Account": ["A"], "SignedAt": ["2025-03-04 02:00"]}).to_csv(tmp_path / "wins.csv", index=False)
    (tmp_path / "config.toml").write_text(WON_ONLY)
    _, _, _, deals = load_tables(load_config(tmp_path / "config.toml"))
    assert deals[["lead_id", "outcome"]].values.tolist() == [["A", "won"]]  # the others stay open
    assert "leads without a deal stay open" in capsys.readouterr().out

    (tmp_path / "config.toml").write_text(WON_ONLY + 'lost_after = "8h"\n')
    _, _, _, deals = load_tables(load_config(tmp_path / "config.toml"))
    # Data ends 2025-03-04 02:00 (A's win). B: 10:00 + 8 h = 18:00; D: created 07:00 + 8 h = 15:00;
    # C: 20:00 + 8 h = 04:00 next day, after the end: still open.
    got = deals.set_index("lead_id").sort_index()
    assert got["outcome"].to_dict() == {"A": "won", "B": "lost", "D": "lost"}
    assert got.loc["B", "closed_at"] == pd.Timestamp("2025-03-03 18:00")
    assert got.loc["D", "closed_at"] == pd.Timestamp("2025-03-03 15:00")
    assert "2 leads without a deal and without activity for 0.333333 days" in capsys.readouterr().out


def test_spans_that_do_not_fit_the_data_say_which_would(crm_files, mlflow_store, capsys):
    (crm_files / "config.toml").write_text(CONFIG.replace('horizon = "6h"', 'horizon = "90d"')
                                           .replace('snapshot_every = "1h"', 'snapshot_every = "15d"'))
    assert training_main(["train", "--config", str(crm_files / "config.toml")]) == 2
    err = capsys.readouterr().err
    assert "gives 0 snapshot times" in err
    # The data spans about five days: a quarter for the horizon, a fortieth for the spacing.
    assert "values that fit it: --horizon 31h --every 3h --test-span 31h --calibration-span 20h" in err


def test_won_only_export_trains_with_lost_after_inactivity(crm_files, mlflow_store, capsys):
    """The same CRM exported as won deals only: silent leads count as lost 5 h after their last activity."""
    outcomes = pd.read_csv(crm_files / "outcomes.csv")
    outcomes.loc[outcomes["Result"].eq("Signed"), ["Account", "DecidedAt"]].to_csv(crm_files / "wins.csv", index=False)
    deals = CONFIG[CONFIG.index("[deals]"):CONFIG.index("[training]")]
    text = CONFIG.replace(deals, '[deals]\nfile = "wins.csv"\nid = "Account"\nclosed_at = "DecidedAt"\n'
                                 'won_only = true\nlost_after = "5h"\n\n')
    (crm_files / "config.toml").write_text(text.replace('model_name = "touchpoint-conversion"',
                                                        'model_name = "won-only"'))
    _, _, _, got = load_tables(load_config(crm_files / "config.toml"))
    assert got["outcome"].eq("won").sum() == outcomes["Result"].eq("Signed").sum()
    assert got["outcome"].eq("lost").sum() > 0
    capsys.readouterr()
    assert training_main(["train", "--config", str(crm_files / "config.toml")]) == 0
    out = capsys.readouterr().out
    assert "won deals only (won_only = true)" in out and "count as lost (lost_after)" in out
    client = mlflow.MlflowClient()
    run = client.get_run(client.get_model_version_by_alias("won-only", "champion").run_id)
    # Above chance, below the full export's: with every silent lead closed exactly 5 h after its last
    # touch, how long a lead has been waiting no longer tells lost from won (the full export's
    # strongest signal); the completed quote still does (alone about 0.58 on this test window).
    assert run.data.metrics["test_roc_auc"] > 0.6
