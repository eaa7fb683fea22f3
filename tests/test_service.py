"""The HTTP service in-process: happy paths, every 4xx, 413, bearer auth, and survival of bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from features.build import build_features
from scoring.service import create_app

AS_OF = "2026-01-01T00:00:00Z"
IDENTITY = {"model_uri": "models:/lead-conversion@champion", "run_id": "abc", "model_name": "lead-conversion",
            "model_version": "7"}
LEAD = {
    "lead_id": "L-1",
    "created_at": "2025-10-01T10:00:00+02:00",
    "attributes": {"job_title": "VP Marketing", "industry": "Software", "company_size": 500, "annual_revenue": None,
                   "country": "Germany", "lead_source": "Webinar", "email": "ana@acme.io"},
    "events": [{"occurred_at": "2025-12-29T10:00:00Z", "event_type": "demo_request"},
               {"occurred_at": "2025-12-28T10:00:00Z", "event_type": "Pricing Page View"},
               {"occurred_at": "2026-02-01T10:00:00Z", "event_type": "demo_request"}],  # after as_of: unseen
}


@pytest.fixture
def bundle(small_models):
    return small_models["lightgbm"]


@pytest.fixture
def client(bundle):
    return TestClient(create_app(bundle, IDENTITY, max_body_bytes=20_000, max_leads=5))


def score(client, body, **kwargs):
    return client.post(f"/score?as_of={AS_OF}", json=body, **kwargs)


def test_one_lead_with_attributes_and_events(client, bundle):
    response = score(client, LEAD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "7" and body["as_of"].startswith("2026-01-01")
    (result,) = body["results"]
    assert result["lead_id"] == "L-1" and result["tier"] in {"SQL", "MQL", "nurture"}
    assert result["score"] == round(result["probability"] * 100)
    assert 0 <= result["fit_score"] <= 100 and 0 <= result["engagement_score"] <= 100
    for reason in result["reasons"]["positive"]:
        assert reason["impact"] > 0 and reason["direction"] == "up" and reason["text"]
    for reason in result["reasons"]["negative"]:
        assert reason["impact"] < 0 and reason["direction"] == "down"

    # The same lead through the batch builders gives the same probability.
    leads = pd.DataFrame([{"lead_id": 1, "created_at": pd.Timestamp("2025-10-01 08:00"), **LEAD["attributes"]}])
    events = pd.DataFrame({"lead_id": 1, "occurred_at": pd.to_datetime([e["occurred_at"] for e in LEAD["events"]])
                           .tz_localize(None), "event_type": [e["event_type"] for e in LEAD["events"]]})
    snapshots = pd.DataFrame({"lead_id": [1], "as_of": [pd.Timestamp("2026-01-01")]})
    features = build_features(snapshots, leads, events, bundle.spec)
    assert result["probability"] == pytest.approx(bundle.predict_probability(features)[0], abs=1e-12)


def test_a_list_mixing_raw_leads_and_feature_rows_keeps_order(client, bundle, small_models):
    row = small_models["features"].iloc[0]
    features = {name: (None if pd.isna(value) else value) for name, value in row.items()}
    response = score(client, [{**LEAD, "lead_id": 1}, {"lead_id": 2, "features": features},
                              {**LEAD, "lead_id": 3, "events": []}])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["lead_id"] for r in results] == ["1", "2", "3"]  # ids as text, as every path writes them
    assert results[1]["probability"] == pytest.approx(bundle.predict_probability(row.to_frame().T)[0], abs=1e-12)
    assert results[0]["probability"] != results[2]["probability"]  # the events mattered


def test_health_model_and_openapi(client):
    import os

    health = client.get("/health").json()
    assert health.pop("started_at")
    assert health == {"status": "ok", "model_version": "7", "pid": os.getpid(), "requests_scored": 0,
                      "leads_scored": 0}
    assert score(client, [LEAD, LEAD]).status_code == 200
    assert client.get("/health").json()["requests_scored"] == 1 and client.get("/health").json()["leads_scored"] == 2
    model = client.get("/model").json()
    assert model["name"] == "lead-conversion" and model["version"] == "7" and model["alias"] == "champion"
    assert model["thresholds"] == {"mql": 0.05, "sql": 0.2}
    assert model["metrics"] == {"test_roc_auc": 0.8}
    assert model["training_window"] == {"as_of_first": "2025-03-02"} and model["horizon_days"] == 90
    spec = client.get("/openapi.json").json()
    assert {"/score", "/health", "/model"} <= set(spec["paths"])


@pytest.mark.parametrize("body, field, problem", [
    ({**LEAD, "events": [{"occurred_at": "yesterday", "event_type": "demo_request"}]},
     "body.events.0.occurred_at", "datetime"),
    ({**LEAD, "events": [{"occurred_at": AS_OF}]}, "body.events.0.event_type", "Field required"),
    ({**LEAD, "colour": "red"}, "body.colour", "Extra inputs"),
    ({**LEAD, "attributes": {"favourite_colour": "red"}}, "body.attributes.favourite_colour", "unknown attribute"),
    ({**LEAD, "attributes": {"company_size": "big"}}, "body.attributes.company_size", "must be a number"),
    ({k: v for k, v in LEAD.items() if k != "created_at"}, "body.created_at", "required"),
    ({**LEAD, "created_at": "2026-06-01T00:00:00Z"}, "body.created_at", "after as_of"),
    ([{"features": {"industry": "software"}}], "body.0.features", "missing"),
    ([], "body", "expected 1 to 5 leads"),
    ([LEAD] * 6, "body", "expected 1 to 5 leads"),
    ([{**LEAD, "events": "none"}], "body.0.events", "valid list"),
])
def test_bad_input_gets_422_naming_the_field(client, body, field, problem):
    response = score(client, body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(d["field"] == field and problem in d["problem"] for d in details), details
    assert score(client, LEAD).status_code == 200  # and the service carries on


def test_bad_feature_rows_name_each_feature(client, small_models):
    row = {name: (None if pd.isna(v) else v) for name, v in small_models["features"].iloc[0].items()}
    response = score(client, {"features": {**row, "industry": 7, "events_any_total": "lots", "shoe_size": 42}})
    assert response.status_code == 422
    fields = {d["field"]: d["problem"] for d in response.json()["detail"]}
    assert "string" in fields["body.features.industry"]
    assert "number" in fields["body.features.events_any_total"]
    assert fields["body.features.shoe_size"] == "unknown feature"


def test_malformed_json_and_wrong_method(client):
    response = client.post("/score", content=b'{"lead_id": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["detail"][0]["problem"]
    assert client.get("/score").status_code == 405
    assert client.get("/nowhere").status_code == 404


def test_oversized_body_gets_413_declared_or_chunked(client):
    big = {**LEAD, "events": LEAD["events"] * 400}
    response = score(client, big)
    assert response.status_code == 413 and "larger than 20000 bytes" in response.json()["detail"][0]["problem"]

    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(30):
            yield b" " * 1000
    response = client.post("/score", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert score(client, LEAD).status_code == 200


def test_bearer_token_when_configured(bundle):
    client = TestClient(create_app(bundle, IDENTITY, token="s3cret"))
    assert score(client, LEAD).status_code == 401
    assert score(client, LEAD, headers={"Authorization": "Bearer wrong"}).status_code == 401
    denied = client.get("/model")
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert score(client, LEAD, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # load balancers need no token


def test_no_token_configured_means_open(client):
    assert score(client, LEAD).status_code == 200
    assert client.get("/model").status_code == 200


def test_an_internal_failure_is_a_500_and_the_service_lives_on(bundle, monkeypatch):
    client = TestClient(create_app(bundle, IDENTITY), raise_server_exceptions=False)
    from models.lead_scorer import LeadScorer

    original, original_single = bundle.score_with_reasons, LeadScorer.score
    # Both routes fail: the single-lead one (one lead) and the DataFrame one (feature rows as text).
    monkeypatch.setattr(bundle, "score_with_reasons", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(LeadScorer, "score", lambda *a, **k: 1 / 0)
    response = score(client, LEAD)
    assert response.status_code == 500 and "ZeroDivisionError" in response.json()["detail"]
    monkeypatch.setattr(bundle, "score_with_reasons", original)
    monkeypatch.setattr(LeadScorer, "score", original_single)
    assert score(client, LEAD).status_code == 200


def test_many_leads_run_off_the_event_loop(client):
    response = score(client, [{**LEAD, "lead_id": k} for k in range(5)])
    assert response.status_code == 200 and len(response.json()["results"]) == 5


def test_limits_must_be_positive(bundle):
    with pytest.raises(ValueError, match="positive max_body_bytes"):
        create_app(bundle, IDENTITY, max_body_bytes=0)


def test_a_lead_table_model_scores_attributes_alone():
    """A model of a summarised lead table (no event log, no dates) takes attributes only."""
    from features.spec import FeatureSpec
    from models.bundle import ModelBundle
    from models.estimators import make_logistic_regression
    from models.tiers import TierThresholds
    from training.calibrate import calibrate

    spec = FeatureSpec(event_types=(), event_log=False, lead_age=False, categorical_columns=("plan",),
                       numeric_columns=("visits",), boolean_columns=("opted_in",), job_title_column=None,
                       email_column=None)
    rng = np.random.default_rng(0)
    visits = rng.poisson(3, 400).astype(float)
    leads = pd.DataFrame({"lead_id": np.arange(400), "plan": rng.choice(["free", "pro"], 400),
                          "visits": visits, "opted_in": rng.choice(["yes", "no"], 400)})
    labels = (rng.uniform(size=400) < 0.1 + 0.1 * (visits > 3)).astype(int)
    snapshots = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.Timestamp("2026-01-01")})
    features = build_features(snapshots, leads, None, spec)
    model, _ = calibrate(make_logistic_regression(spec).fit(features, labels), features, labels, n_folds=2)
    table_bundle = ModelBundle(spec=spec, model=model, thresholds=TierThresholds(mql=0.15, sql=0.3))
    client = TestClient(create_app(table_bundle, IDENTITY))

    lead = {"lead_id": 9, "attributes": {"plan": "pro", "visits": 8, "opted_in": "yes"}}
    response = score(client, lead)
    assert response.status_code == 200, response.text
    expected = table_bundle.predict_probability(build_features(
        pd.DataFrame({"lead_id": [0], "as_of": [pd.Timestamp("2026-01-01")]}),
        pd.DataFrame({"lead_id": [0], "plan": ["pro"], "visits": [8.0], "opted_in": ["yes"]}), None, spec))[0]
    assert response.json()["results"][0]["probability"] == pytest.approx(expected, abs=1e-12)
    bad = score(client, {"attributes": {"visits": "many"}})
    assert bad.status_code == 422 and "body.attributes.visits" in bad.text


def test_the_app_loads_the_compiled_kernels_before_its_first_request(bundle, tmp_path):
    """In a fresh process the first scoring loaded numba's kernels (0.9-2.3 s holding the event loop, /health
    included): create_app now does it, by scoring the request example, and counts nothing as served."""
    import subprocess
    import sys

    path = bundle.save(tmp_path / "bundle.joblib")
    program = f"""
import json
from features import event_pass
from models import treeshap
from models.bundle import ModelBundle
from scoring.service import create_app
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
kernels = (treeshap._walk_trees, event_pass._fill_rows)
before = [len(kernel.signatures) for kernel in kernels]
client = TestClient(create_app(ModelBundle.load({str(path)!r}), {IDENTITY!r}))
after = [len(kernel.signatures) for kernel in kernels]
print(json.dumps({{"before": before, "after": after, "health": client.get("/health").json()}}))
"""
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["before"] == [0, 0] and all(count >= 1 for count in seen["after"]), seen
    assert seen["health"]["requests_scored"] == 0 and seen["health"]["leads_scored"] == 0


def test_score_reads_the_token_and_as_of_as_fastapi_reads_them(bundle):
    """POST /score is a plain ASGI endpoint (scoring.score_route): its token and as_of must be read as FastAPI's
    HTTPBearer and query validation read them, here a FastAPI app of its own is the reference."""
    from fastapi import Depends, FastAPI
    from fastapi.security import HTTPBearer

    from scoring.score_route import AsOf, field_problems

    reference = FastAPI()

    @reference.post("/check")
    async def check(as_of: AsOf = None, credentials=Depends(HTTPBearer(auto_error=False))):
        return {"token": None if credentials is None else credentials.credentials,
                "as_of": None if as_of is None else as_of.isoformat()}

    @reference.exception_handler(RequestValidationError)
    async def invalid(request, error):
        return JSONResponse(status_code=422, content={"detail": field_problems(error.errors(), None)})

    ours, theirs = TestClient(create_app(bundle, IDENTITY, token="s3cret")), TestClient(reference)
    for headers in ({}, {"Authorization": "Bearer s3cret"}, {"Authorization": "bearer   s3cret  "},
                    {"Authorization": "Basic s3cret"}, {"Authorization": "Bearer"}, {"Authorization": "Bearers3cret"},
                    {"Authorization": "Bearer s3cre"}):
        expected = theirs.post("/check", headers=headers).json()["token"] == "s3cret"
        answer = ours.post(f"/score?as_of={AS_OF}", json=LEAD, headers=headers)
        assert answer.status_code == (200 if expected else 401), (headers, answer.text)
        if not expected:
            assert answer.headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": "Bearer s3cret"}
    for query in ("as_of=2026-01-01T00:00:00Z", "as_of=2026-01-01T02:00:00%2B02:00", "as_of=2026-01-01",
                  "as_of=bad&as_of=2026-01-01T00:00:00Z", "as_of=2026-01-01&as_of=bad", "as_of=", "as_of=20250101",
                  "as_of=1735689600", "as_of=2026-13-01"):
        expected = theirs.post(f"/check?{query}")
        answer = ours.post(f"/score?{query}", json=LEAD, headers=auth)
        assert answer.status_code == expected.status_code, (query, answer.text)
        if expected.status_code == 422:
            assert answer.json() == expected.json(), query
        else:
            as_of = pd.Timestamp(expected.json()["as_of"])
            as_of = as_of.tz_convert("UTC") if as_of.tzinfo else as_of.tz_localize("UTC")
            assert pd.Timestamp(answer.json()["as_of"]) == as_of, query
