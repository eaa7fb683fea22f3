"""init-config on frames shaped like real single-table exports: the label, the id, codes, personal data, engagement."""

import numpy as np
import pandas as pd
import pytest

from crm.config import ProjectConfig, load_config
from crm.export import load_tables, parse_labels
from crm.infer_config import guess_project, infer_leads
from crm.readers import read_table


def roles_of(guess):
    return {item.column: item.role for item in guess.roles}


def bank_marketing(n=300, seed=0):
    """Shaped like the UCI bank-marketing export: no id, yes/no flags, `poutcome`, and the label `y`."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 90, n), "job": rng.choice(["admin.", "technician", "services"], n),
        "marital": rng.choice(["married", "single", "divorced"], n), "default": rng.choice(["no", "yes"], n),
        "balance": rng.integers(-2000, 60000, n), "housing": rng.choice(["yes", "no"], n),
        "loan": rng.choice(["no", "yes"], n), "contact": rng.choice(["cellular", "telephone", "unknown"], n),
        "day": rng.integers(1, 32, n), "month": rng.choice(["jan", "feb", "may"], n),
        "campaign": rng.integers(1, 60, n), "pdays": rng.integers(-1, 800, n),
        "poutcome": rng.choice(["failure", "success", "other", "unknown"], n), "y": rng.choice(["no", "yes"], n),
    })


def sessions(n=900, seed=0):
    """Shaped like the online-shoppers export: behaviour columns, integer codes, booleans, label `Revenue`."""
    rng = np.random.default_rng(seed)
    pages = rng.poisson(20, n)
    duration = np.round(pages * rng.gamma(2.0, 30.0, n), 1)
    page_values = np.where(rng.random(n) < 0.3, np.round(rng.gamma(2.0, 15.0, n), 2), 0.0)
    region = rng.integers(1, 10, n)
    logit = -2.2 + 0.08 * page_values + 0.5 * np.log1p(duration) / 3 + np.where(np.isin(region, [2, 7]), 0.9, 0.0)
    return pd.DataFrame({
        "Administrative": rng.poisson(2, n), "Administrative_Duration": np.round(rng.gamma(1.0, 60.0, n), 1),
        "ProductRelated": pages, "ProductRelated_Duration": duration,
        "BounceRates": np.round(rng.beta(1, 30, n), 4), "PageValues": page_values,
        "Month": rng.choice(["Feb", "Mar", "May", "Nov"], n),
        "OperatingSystems": rng.integers(1, 9, n), "Browser": rng.integers(1, 14, n), "Region": region,
        "TrafficType": rng.integers(1, 21, n),
        "VisitorType": rng.choice(["Returning_Visitor", "New_Visitor", "Other"], n, p=[0.8, 0.15, 0.05]),
        "Weekend": rng.random(n) < 0.25, "Revenue": rng.random(n) < 1 / (1 + np.exp(-logit)),
    })


def opportunities(n=200, seed=0):
    """Shaped like a CRM opportunities export: `deal_stage` Won / Lost / Engaging / Prospecting."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "opportunity_id": [f"OPP{i:05d}" for i in range(n)],
        "sales_agent": rng.choice(["Moses Frase", "Darcel Schlecht", "Zane Levy"], n),
        "product": rng.choice(["GTX Basic", "MG Special", "GTK 500"], n),
        "deal_stage": rng.choice(["Won", "Lost", "Engaging", "Prospecting"], n),
        "engage_date": pd.date_range("2017-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "close_value": rng.integers(0, 5000, n),
    })


def test_bank_marketing_label_y_row_numbers_and_features():
    guess = infer_leads(bank_marketing())
    roles = roles_of(guess)
    assert guess.label.column == "y" and guess.label.positive == ("yes",) and guess.label.negative == ("no",)
    assert guess.single("id") is None  # no unique column: row numbers, with a check naming it
    assert any("row_number_id = true" in check for check in guess.checks)
    # Yes/no flags stay features; the previous campaign's outcome is a category, not a second label.
    assert roles["housing"] == roles["loan"] == roles["default"] == "boolean"
    assert roles["poutcome"] == "categorical" and roles["balance"] == "numeric_raw"
    assert roles["age"] == roles["campaign"] == "numeric"


def test_sessions_revenue_true_false_codes_and_engagement():
    guess = infer_leads(sessions())
    roles = roles_of(guess)
    assert guess.label.column == "Revenue" and guess.label.positive == ("true",)
    assert roles["Weekend"] == "boolean"
    assert {roles[c] for c in ("OperatingSystems", "Browser", "Region", "TrafficType")} == {"categorical"}
    assert {roles[c] for c in ("Administrative_Duration", "ProductRelated", "ProductRelated_Duration",
                               "BounceRates", "PageValues", "Administrative")} == {"engagement"}
    assert roles["VisitorType"] == "categorical" and roles["Month"] == "categorical"
    assert any("integer codes" in check and "'Browser'" in check for check in guess.checks)


def test_stage_column_maps_won_lost_and_open():
    guess = infer_leads(opportunities())
    roles = roles_of(guess)
    label = guess.label
    assert (label.column, label.positive, label.negative, label.open) == (
        "deal_stage", ("won",), ("lost",), ("engaging", "prospecting"))
    assert roles["opportunity_id"] == "id" and roles["engage_date"] == "created_at"
    assert roles["sales_agent"] == "categorical"  # three names repeated: a category, not a lead's own data
    assert any(check.startswith("names: 'sales_agent'") for check in guess.checks)
    # engage_date's name does not say creation: the summary says so, and the reason does not claim it.
    assert any("'engage_date' is the first date column" in check for check in guess.checks)
    assert "name says creation" not in next(item.reason for item in guess.roles if item.column == "engage_date")
    assert any("'close_value'" in check and "post_outcome" in check for check in guess.checks)


def test_three_values_without_an_outcome_name_are_listed_not_chosen():
    frame = opportunities().rename(columns={"deal_stage": "phase"})
    guess = infer_leads(frame)
    assert guess.label is None and roles_of(guess)["phase"] == "categorical"
    assert any(check.startswith("label: none chosen") and "'phase'" in check for check in guess.checks)


def test_text_with_doubled_spaces_is_profiled_whole():
    # The synthetic CRM's messy job titles ("Sales  Intern", "VP  Sales") once made init-config fail on a 2,000-row
    # sample of fewer rows than it counted.
    n = 2_100
    frame = pd.DataFrame({"lead_ref": [f"L{i:05d}" for i in range(n)],
                          "job_title": [("Sales  Intern", "VP Sales", "Head of  Growth")[i % 3] for i in range(n)],
                          "converted": ["yes", "no", "no"] * (n // 3)})
    roles = roles_of(infer_leads(frame))
    assert roles["job_title"] == "categorical" and roles["lead_ref"] == "id"


def test_a_unique_phone_column_is_never_the_id():
    n = 120
    frame = pd.DataFrame({
        "Mobile": [f"07700 9{i:05d}" for i in range(n)],
        "Full Name": [f"{first} {last}" for first, last in zip(["Anna", "Brian", "Chloe", "David"] * 30,
                                                               [f"Smith{chr(97 + i % 26)}" for i in range(n)])],
        "Contact": [f"+44 20 7946 {i:04d}" for i in range(n)],
        "Customer Ref": [f"C{i:04d}" for i in range(n)],
        "Converted": ["yes", "no", "no"] * 40,
    })
    roles = roles_of(infer_leads(frame))
    assert roles["Customer Ref"] == "id"
    assert roles["Mobile"] == roles["Full Name"] == roles["Contact"] == "pii"
    # Without the real id there is none: row numbers, never the phone.
    guess = infer_leads(frame.drop(columns="Customer Ref"))
    assert guess.single("id") is None and roles_of(guess)["Contact"] == "pii"


def test_an_export_without_a_label_lists_the_candidates(tmp_path):
    n = 100
    frame = pd.DataFrame({"Lead Ref": [f"L{i}" for i in range(n)], "Source": ["Web", "Ads"] * 50,
                          "Opted In": ["Yes", "No", "No", "No"] * 25, "Visits": np.arange(n) % 7})
    guess = guess_project(frame, leads_path=tmp_path / "leads.csv", out_path=tmp_path / "config.toml")
    assert guess.leads.label is None
    assert any(line.startswith("label: none chosen. Candidates: 'Opted In'") for line in guess.summary)
    assert "# label = \"...\"  # no outcome column chosen" in guess.text and "candidates: Opted In" in guess.text
    assert roles_of(guess.leads)["Opted In"] == "boolean"  # a yes/no column stays a feature until named


def test_true_false_labels_read_alike_as_booleans_or_text(tmp_path):
    config = ProjectConfig(leads=tmp_path / "x.csv", id="id", label="Revenue", positive=("true",),
                           negative=("false",))
    for values in ([True, False, True, None], ["TRUE", "FALSE", "TRUE", None], [1, 0, 1, None],
                   [1.0, 0.0, 1.0, np.nan]):
        labels = parse_labels(pd.Series(values, dtype=object), config, source="x.csv")
        assert labels.iloc[:3].tolist() == [1.0, 0.0, 1.0] and np.isnan(labels.iloc[3])
    flipped = ProjectConfig(leads=tmp_path / "x.csv", id="id", label="Converted", positive=("1",), negative=("0",))
    assert parse_labels(pd.Series([True, False]), flipped, source="x.csv").tolist() == [1.0, 0.0]


def test_open_values_are_left_out_and_others_refused(tmp_path):
    opportunities(40).to_csv(tmp_path / "opps.csv", index=False)
    text = guess_project(read_table(tmp_path / "opps.csv"), leads_path=tmp_path / "opps.csv",
                         out_path=tmp_path / "config.toml").text
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml")
    assert config.open == ("engaging", "prospecting")
    frame = opportunities(40)
    _, labels, _, _ = load_tables(config)
    stage = frame["deal_stage"].str.lower()
    assert labels[stage.eq("won")].eq(1).all() and labels[stage.eq("lost")].eq(0).all()
    assert labels[stage.isin(["engaging", "prospecting"])].isna().all()


def test_row_number_ids_are_stable_and_warned(tmp_path):
    bank_marketing(60).to_csv(tmp_path / "bank.csv", index=False)
    text = guess_project(read_table(tmp_path / "bank.csv"), leads_path=tmp_path / "bank.csv",
                         out_path=tmp_path / "config.toml").text
    assert "row_number_id = true" in text
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml")
    with pytest.warns(UserWarning, match="no id column, so each lead's id is its row number"):
        first, labels, _, _ = load_tables(config)
    with pytest.warns(UserWarning, match="row number"):
        again, _, _, _ = load_tables(config)
    assert first["lead_id"].tolist() == list(range(1, 61)) == again["lead_id"].tolist()
    assert labels.tolist() == bank_marketing(60)["y"].eq("yes").astype(float).tolist()
    with pytest.raises(ValueError, match="identify leads one way"):
        ProjectConfig(leads="x.csv", id="id", row_number_id=True, label="y")


def test_an_id_less_true_false_export_trains_as_inferred_and_scores_with_both_sub_scores(tmp_path, mlflow_store,
                                                                                          capsys):
    import mlflow

    import serve
    from train import main as training_main

    frame = sessions()
    path = tmp_path / "online_shoppers.csv"
    frame.replace({True: "TRUE", False: "FALSE"}).to_csv(path, index=False)
    config = tmp_path / "online_shoppers.toml"  # the model is named after it: online-shoppers-conversion
    assert training_main(["init-config", "--leads", str(path), "--out", str(config)]) == 0
    console = capsys.readouterr().out
    assert "label: 'Revenue'" in console and "converted = ['true']" in console and "row_number_id = true" in console
    assert training_main(["train", "--config", str(config)]) == 0  # as written: no edit
    run = mlflow.MlflowClient().search_runs(mlflow.search_experiments()[0].experiment_id)[0]
    assert run.data.metrics["test_roc_auc"] > 0.7  # page values and two regions drive the label
    assert run.data.params["model"] in ("logistic", "lightgbm")

    out = tmp_path / "scores.csv"
    with pytest.warns(UserWarning, match="row number"):
        assert serve.main(["score", "--model", "models:/online-shoppers-conversion@champion", "--config",
                           str(config), "--out", str(out)]) == 0
    scores = pd.read_csv(out)
    assert scores["lead_id"].tolist() == list(range(1, len(frame) + 1))
    assert scores["fit_score"].nunique() > 5 and scores["engagement_score"].nunique() > 5
    # Engagement is behaviour: it rises with page values; reasons tell behaviour in the data's numbers.
    assert np.corrcoef(scores["engagement_score"], frame["PageValues"])[0, 1] > 0.3
    reasons = scores.filter(like="_reason_").to_numpy().ravel().astype(str)
    assert any(text.startswith("page values: ") for text in reasons)
    assert any(text.startswith("region: ") for text in reasons) or any(text.startswith("product related duration")
                                                                       for text in reasons)


def hourly_crm(n=120, seed=0, *, won_only=False):
    """Leads, an activity + lifecycle log and decisions within hours, all under the company's own names."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-03-01 08:00")
    created = start + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 24, n)), unit="h")
    leads = pd.DataFrame({"Contact Ref": [f"C{i:04d}" for i in range(n)],
                          "Signed Up": created.strftime("%Y-%m-%d %H:%M"),
                          "Plan": rng.choice(["basic", "pro"], n)})
    rows = []
    for ref, at in zip(leads["Contact Ref"], created):
        for step in range(int(rng.integers(1, 4))):
            when = at + pd.Timedelta(minutes=int(rng.integers(5, 300)))
            activity = rng.choice(["Quote Sent", "Call Back", "Docs Uploaded"])
            rows += [(ref, when, activity, "start"), (ref, when + pd.Timedelta(minutes=3), activity, "complete")]
    events = pd.DataFrame(rows, columns=["ContactRef", "When", "Activity", "Lifecycle"])
    events["When"] = events["When"].dt.strftime("%Y-%m-%d %H:%M")
    decided = leads.sample(frac=0.8, random_state=seed)
    deals = pd.DataFrame({"ContactRef": decided["Contact Ref"].to_numpy(),
                          "Decided At": (pd.to_datetime(decided["Signed Up"])
                                         + pd.to_timedelta(rng.uniform(1, 10, len(decided)), unit="h")
                                         ).dt.strftime("%Y-%m-%d %H:%M"),
                          "Result": rng.choice(["Accepted", "Declined"], len(decided))})
    if won_only:
        deals = deals[deals["Result"].eq("Accepted")]
    return leads, events, deals


def test_events_and_deals_under_their_own_names_are_mapped(tmp_path):
    leads, events, deals = hourly_crm()
    for name, table in (("contacts", leads), ("activity_log", events), ("decisions", deals)):
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    guess = guess_project(leads, leads_path=tmp_path / "contacts.csv", out_path=tmp_path / "config.toml",
                          events=events, deals=deals, events_path=tmp_path / "activity_log.csv",
                          deals_path=tmp_path / "decisions.csv")
    found = guess.tables
    assert (found.events.id, found.events.timestamp, found.events.type) == (
        "ContactRef", "When", ("Activity", "Lifecycle"))
    assert (found.deals.id, found.deals.closed_at, found.deals.outcome) == ("ContactRef", "Decided At", "Result")
    assert (found.deals.won, found.deals.lost, found.deals.won_only) == (("accepted",), ("declined",), False)
    assert guess.leads.label is None and roles_of(guess.leads)["Signed Up"] == "created_at"
    # Decisions come 1-10 hours after sign-up: the horizon is in hours, 90 % of them inside it.
    horizon = found.timing["horizon"][0]
    assert horizon.endswith("h") and 9 <= int(horizon[:-1]) <= 10
    assert "Quote Sent+complete" in guess.text and "Call Back+start" in guess.text  # the vocabulary, counted
    (tmp_path / "config.toml").write_text(guess.text)
    config = load_config(tmp_path / "config.toml")
    loaded, labels, read_events, read_deals = load_tables(config)
    assert labels is None and len(read_deals) == len(deals)
    assert read_deals["outcome"].eq("won").sum() == deals["Result"].eq("Accepted").sum()
    assert set(read_events["event_type"]) == {f"{a}+{b}" for a in ("Quote Sent", "Call Back", "Docs Uploaded")
                                              for b in ("start", "complete")}


def test_a_won_only_deals_table_is_detected_and_a_choice_proposed(tmp_path):
    leads, events, deals = hourly_crm(won_only=True)
    guess = guess_project(leads, leads_path=tmp_path / "contacts.csv", out_path=tmp_path / "config.toml",
                          events=events, deals=deals, events_path=tmp_path / "log.csv",
                          deals_path=tmp_path / "won.csv")
    assert guess.tables.deals.won_only and guess.tables.deals.won == ("accepted",)
    assert "won_only = true" in guess.text and "lost_after = " in guess.text and "\nlost = " not in guess.text
    assert any(line.startswith("deals: won deals only") and "lost_after" in line for line in guess.summary)


def test_summarised_behaviour_counts_as_engagement_and_reads_as_behaviour():
    from features.spec import FeatureSpec
    from models.explain import ENGAGEMENT, FIT, feature_groups
    from models.factor_words import describe_factor, feature_families

    spec = FeatureSpec(categorical_columns=("Lead Source", "Last Activity"),
                       numeric_columns=("TotalVisits", "Total Time Spent on Website", "Company Size"),
                       job_title_column=None, email_column=None, event_log=False, lead_age=False,
                       engagement_columns=("TotalVisits", "Total Time Spent on Website", "Last Activity"))
    groups = feature_groups(spec)
    assert [name for name, group in groups.items() if group == ENGAGEMENT] == [
        "last_activity", "log_totalvisits", "log_total_time_spent_on_website"]
    assert groups["lead_source"] == groups["log_company_size"] == FIT
    values = {"log_totalvisits": np.log1p(7), "log_total_time_spent_on_website": np.log1p(1234),
              "last_activity": "email opened", "log_company_size": np.log1p(50)}
    families = feature_families(spec)
    texts = {families[name]: describe_factor(families[name], values.get, spec) for name in values}
    assert texts == {"totalvisits": "7 visits", "total_time_spent_on_website": "total time spent on website: 1,234",
                     "last_activity": "last activity: email opened", "company_size": "company size: 50 employees"}
    with pytest.raises(ValueError, match="engagement_columns must be categorical, numeric"):
        FeatureSpec(engagement_columns=("Visits",))


def test_a_mostly_blank_column_is_never_the_outcome(tmp_path):
    leads, events, deals = hourly_crm(won_only=True)
    # A won-only table without an outcome column, beside a seller's note written on one deal in ten.
    deals = deals.drop(columns="Result").assign(Seller=np.where(np.arange(len(deals)) % 10 == 0, "Anna", None))
    guess = guess_project(leads, leads_path=tmp_path / "contacts.csv", out_path=tmp_path / "config.toml",
                          events=events, deals=deals, events_path=tmp_path / "log.csv", deals_path=tmp_path / "won.csv")
    assert guess.tables.deals.outcome is None and guess.tables.deals.won_only
    assert "Seller" not in guess.text.split("[deals]")[1].split("\n[")[0]
    # In a lead table too: a two-valued column filled on a quarter of the rows is not the label.
    frame = opportunities().drop(columns="deal_stage")
    frame["converted"] = np.where(np.arange(len(frame)) % 4 == 0, np.where(np.arange(len(frame)) % 8 == 0, "yes", "no"),
                                  None)
    assert infer_leads(frame).label is None


def test_blanks_in_a_chosen_date_are_counted_and_said(tmp_path):
    frame = opportunities()
    frame.loc[frame.index[:37], "engage_date"] = None
    guess = infer_leads(frame)
    assert roles_of(guess)["engage_date"] == "created_at"
    assert any("'engage_date' is blank in 37 of 200 rows" in line for line in guess.checks)
    leads, events, deals = hourly_crm()
    deals.loc[deals.index[:5], "Decided At"] = None
    tables = guess_project(leads, leads_path=tmp_path / "c.csv", out_path=tmp_path / "config.toml", events=events,
                           deals=deals, events_path=tmp_path / "e.csv", deals_path=tmp_path / "d.csv")
    assert any(f"'Decided At' is blank in 5 of {len(deals)} rows" in line for line in tables.summary)


def test_the_model_is_named_after_the_project_never_after_the_lead_file(tmp_path):
    """Three exports whose lead table is leads.csv get three model names; a config's own name wins over its folder."""
    frame = pd.DataFrame({"Lead Ref": [f"L{i}" for i in range(40)], "Converted": ["yes", "no"] * 20})
    names = []
    for out in (tmp_path / "acme" / "config.toml", tmp_path / "globex" / "data" / "config.toml",
                tmp_path / "initech" / "Spring Campaign.toml"):
        out.parent.mkdir(parents=True)
        guess = guess_project(frame, leads_path=out.parent / "leads.csv", out_path=out)
        assert f'model_name = "{guess.model_name}"' in guess.text
        names.append(guess.model_name)
    # 'config' and 'data' say nothing about the project: the nearest folder that does names it.
    assert names == ["acme-conversion", "globex-conversion", "spring-campaign-conversion"]
    assert load_config(_written(tmp_path / "acme" / "config.toml", frame)).model_name == "acme-conversion"


def _written(out, frame):
    out.write_text(guess_project(frame, leads_path=out.parent / "leads.csv", out_path=out).text)
    frame.to_csv(out.parent / "leads.csv", index=False)
    return out
