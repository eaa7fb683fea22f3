import numpy as np
import pandas as pd
import pytest
from own_export import make_export, write_quirky_csv

from crm.config import ProjectConfig, load_config
from crm.export import load_tables
from crm.infer_config import infer_roles, write_config
from crm.readers import read_table
from features.contract import DataContractError
from features.fit import build_fit_features


def roles_of(frame):
    return {item.column: item.role for item in infer_roles(frame)}


def test_roles_are_inferred_from_the_data():
    frame = make_export(200).assign(**{"Created": pd.date_range("2025-01-01", periods=200, freq="D").astype(str),
                                       "Score Delta": np.tile(np.arange(-50, 50), 2)})
    roles = roles_of(frame)
    assert roles == {
        "Lead Ref": "id", "Source": "categorical", "Visits": "engagement", "Opted Out": "boolean",
        "Contact Email": "email", "Phone": "pii", "Region": "categorical", "Rep Verdict": "ignore",
        "Constant": "ignore", "Deal Won": "label", "Created": "created_at", "Score Delta": "numeric_raw",
    }


def test_reasons_say_why():
    reasons = {item.column: item.reason for item in infer_roles(make_export(100))}
    assert "unique" in reasons["Lead Ref"] and "single value" in reasons["Constant"]
    assert "PII" in reasons["Contact Email"]


def test_written_config_loads_and_maps_the_export(tmp_path):
    path = tmp_path / "export.csv"
    write_quirky_csv(make_export(120), path)
    text = write_config(read_table(path), leads_path=path,
                        out_path=tmp_path / "config.toml")
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml")
    assert config.leads == tmp_path / "export.csv" and config.id == "Lead Ref" and config.label == "Deal Won"
    assert config.positive == ("yes",) and config.email == "Contact Email" and "Phone" in config.pii
    assert "select" in config.feature_spec().missing_tokens

    leads, labels, events, deals = load_tables(config)
    assert "lead_id" in leads and "Phone" not in leads and "Deal Won" not in leads
    assert events is None and deals is None
    assert labels.isin([0, 1]).all() and labels.sum() == (make_export(120)["Deal Won"] == "Yes").sum()
    spec = config.feature_spec()
    assert not spec.event_log and not spec.lead_age
    sources = build_fit_features(leads, spec)["source"]
    assert sources[leads["Source"].eq("Select")].isna().all() and set(sources.dropna()) == {"web", "referral", "ads"}
    assert {"source", "log_visits", "opted_out", "email_domain_type"} <= set(spec.feature_names)


def test_config_errors_name_the_problem(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[data]\nleads = "x.csv"\n[columns]\nid = "id"\nlabel = "won"\nlabell = "x"\n')
    with pytest.raises(ValueError, match=r"config.toml: \[columns\] labell is an unknown key; expected one of \[.created_at.,"):
        load_config(path)
    with pytest.raises(ValueError, match="Column 'a' has two roles in the config: categorical and numeric"):
        ProjectConfig(leads="x.csv", id="id", label="y", categorical=("a",), numeric=("a",))
    with pytest.raises(ValueError, match="must name the outcome"):
        ProjectConfig(leads="x.csv", id="id")
    with pytest.raises(ValueError, match="names two outcomes"):
        ProjectConfig(leads="x.csv", id="id", label="y", deals="deals.csv", created_at="c")


def test_undeclared_columns_are_dropped_with_a_warning(tmp_path):
    make_export(60).to_csv(tmp_path / "export.csv", index=False)
    config = ProjectConfig(leads=tmp_path / "export.csv", id="Lead Ref", label="Deal Won", positive=("yes",),
                           negative=("no",), categorical=("Source",), ignore=("Region", "Constant", "Rep Verdict"))
    with pytest.warns(UserWarning, match=r"\['Visits', 'Opted Out', 'Contact Email', 'Phone'\] have no role"):
        leads, labels, _, _ = load_tables(config)
    assert list(leads.columns) == ["lead_id", "Source"] and len(labels) == 60


def test_declared_columns_missing_from_the_export_are_named(tmp_path):
    make_export(50).drop(columns="Region").to_csv(tmp_path / "export.csv", index=False)
    config = ProjectConfig(leads=tmp_path / "export.csv", id="Lead Ref", label="Deal Won", positive=("yes",),
                           negative=("no",), categorical=("Source", "Region"))
    with pytest.raises(DataContractError, match=r"missing column\(s\) \['Region'\] named in the config"):
        load_tables(config)
    leads, _, _, _ = load_tables(config, for_training=False)  # scoring: optional, treated as missing later
    assert "Region" not in leads


def test_unknown_label_values_are_refused(tmp_path):
    make_export(50).assign(**{"Deal Won": ["Yes", "maybe"] * 25}).to_csv(tmp_path / "export.csv", index=False)
    config = ProjectConfig(leads=tmp_path / "export.csv", id="Lead Ref", label="Deal Won", positive=("yes",),
                           negative=("no",), ignore=tuple(make_export(1).columns[1:-1]))
    with pytest.raises(DataContractError, match=r"column 'Deal Won' must hold one of \['yes'\].*'maybe'"):
        load_tables(config)


def test_a_renamed_crm_with_events_and_deals_maps_onto_the_contract(tmp_path):
    from crm.export import load_crm_or_config
    from crm.synthetic import generate_crm
    from features.build import build_features

    crm = generate_crm(300, months=6, seed=1)
    renamed = {"lead_id": "Record Id", "created_at": "Create Date", "industry": "Sector", "job_title": "Job Title",
               "email": "Email Address"}
    crm.leads.rename(columns=renamed).to_csv(tmp_path / "export.csv", index=False, sep="\t")
    crm.events.to_parquet(tmp_path / "events.parquet")
    crm.deals.to_csv(tmp_path / "deals.csv", index=False)
    text = write_config(read_table(tmp_path / "export.csv"), leads_path=tmp_path / "export.csv",
                        out_path=tmp_path / "config.toml")
    assert 'job_title = "Job Title"' in text and 'created_at = "Create Date"' in text
    text = text.replace('# events = "events.parquet"', 'events = "events.parquet"').replace(
        '# deals = "deals.csv"', 'deals = "deals.csv"')
    (tmp_path / "config.toml").write_text(text)

    config, leads, labels, events, deals = load_crm_or_config(tmp_path / "config.toml")
    assert labels is None and deals["outcome"].isin(["won", "lost"]).all()
    assert leads["created_at"].dtype == "datetime64[ns]" and leads["lead_id"].is_unique
    spec = config.feature_spec()
    assert spec.event_log and spec.lead_age and "events_demo_request_30d" in spec.feature_names
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"].head(20), "as_of": leads["created_at"].max()})
    features = build_features(snapshots, leads, events, spec)
    assert list(features.columns) == spec.feature_names and features["sector"].notna().any()
