"""Implausible leads (negative sizes, created before 1990) are refused by batch scoring as the HTTP service refuses
them: one line per field with its count, nothing written; the same leads get a 422 naming the field."""

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from crm.synthetic import generate_crm
from features.contract import DataContractError
from scoring.batch import score_lead_base
from scoring.service import create_app


def test_batch_refuses_implausible_leads_with_a_count_per_field_as_http_does(small_models, tmp_path):
    bundle = small_models["logistic"]
    crm = generate_crm(400, months=6, seed=3)
    leads = crm.leads.copy()
    leads.loc[[3, 50, 333], "company_size"] = [-5.0, -1.0, -250.0]
    leads.loc[[7], "annual_revenue"] = -1.0
    leads.loc[[11, 12], "created_at"] = pd.Timestamp("1985-06-01")
    out = tmp_path / "scores.parquet"
    with pytest.raises(DataContractError) as refused:
        score_lead_base(bundle, leads, crm.events, deals=crm.deals, as_of=crm.end, out=out, chunk_size=100)
    lines = str(refused.value).splitlines()
    assert len(lines) == 3  # one per field, over all four chunks
    assert lines[0].startswith("leads: column 'company_size' must hold non-negative sizes and amounts; 3 lead(s)")
    assert lines[1].startswith("leads: column 'annual_revenue' must hold non-negative sizes and amounts; 1 lead(s)")
    assert lines[2].startswith("leads: column 'created_at' must hold creation times from 1990 on; 2 lead(s)")
    assert f"lead_id={leads.loc[3, 'lead_id']}" in lines[0] and "-5.0" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))  # nothing written
    # The plausible base scores; zero is a size (an unknown company), not a refusal.
    fine = crm.leads.assign(company_size=crm.leads["company_size"].where(crm.leads.index != 3, 0.0))
    counts = score_lead_base(bundle, fine, crm.events, deals=crm.deals, as_of=crm.end, out=out, chunk_size=100)
    assert out.exists() and counts.sum() == len(pd.read_parquet(out)) > 0

    # The HTTP service refuses the same leads, naming the field.
    client = TestClient(create_app(bundle, {"model_version": "1"}))
    for index, field in ((3, "attributes.company_size"), (7, "attributes.annual_revenue"), (11, "created_at")):
        lead = leads.loc[index]
        body = {"lead_id": str(lead["lead_id"]), "created_at": lead["created_at"].isoformat() + "Z",
                "attributes": {name: None if pd.isna(lead[name]) else lead[name]
                               for name in ("company_size", "annual_revenue", "industry")}}
        answer = client.post(f"/score?as_of={crm.end.isoformat()}Z", json=body)
        assert answer.status_code == 422
        assert [problem["field"] for problem in answer.json()["detail"]] == [f"body.{field}"]
