"""The HTTP service leaves a trace: a request id on every answer, an access log without personal data, /metrics."""

import copy
import io
import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from scoring.operations import ACCESS_LOGGER
from scoring.service import create_app

AS_OF = "2026-01-01T00:00:00Z"
IDENTITY = {"model_uri": "models:/lead-conversion@champion", "run_id": "abc", "model_name": "lead-conversion",
            "model_version": "7"}
SECRET_EMAIL = "ana.kowalska@acme-secret.io"
LEAD = {
    "lead_id": "LEAD-4711-PRIVATE",
    "created_at": "2025-10-01T10:00:00+02:00",
    "attributes": {"job_title": "VP Marketing", "industry": "Software", "company_size": 500, "annual_revenue": 4.0e7,
                   "country": "Liechtenstein", "lead_source": "Webinar", "email": SECRET_EMAIL},
    "events": [{"occurred_at": "2025-12-29T10:00:00Z", "event_type": "demo_request"}],
}


@pytest.fixture
def traced(small_models):
    """A client and the access log it writes, captured line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield TestClient(create_app(small_models["lightgbm"], IDENTITY, max_body_bytes=5_000, max_leads=5)), stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _lead(**changes):
    lead = copy.deepcopy(LEAD)
    for key, value in changes.items():
        if key in lead["attributes"]:
            lead["attributes"][key] = value
        else:
            lead[key] = value
    return lead


def test_every_answer_carries_a_request_id_and_the_log_has_no_personal_data(traced):
    client, stream = traced
    answers = [client.post(f"/score?as_of={AS_OF}", json=[LEAD, LEAD]),
               client.post(f"/score?as_of={AS_OF}", json={**LEAD, "shoe_size": 44}),  # 422
               client.get("/health"), client.get("/no-such-page"),  # 404
               client.post("/score", content=b"x" * 6_000, headers={"content-type": "application/json"})]  # 413
    assert [answer.status_code for answer in answers] == [200, 422, 200, 404, 413]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert all(re.fullmatch(r"[0-9a-f]{16}", value) for value in ids) and len(set(ids)) == len(ids)
    # A client's own id is kept, so one trace crosses services; one that is not an id is replaced.
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert client.get("/health", headers={"X-Request-ID": "<b>x</b>"}).headers["x-request-id"] != "<b>x</b>"

    text = stream.getvalue()
    for private in (SECRET_EMAIL, "acme-secret", "LEAD-4711-PRIVATE", "Liechtenstein", "VP Marketing", "Software",
                    "shoe_size", "testclient", "no-such-page"):
        assert private not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert [entry["request_id"] for entry in entries[:5]] == ids
    first = entries[0]
    tiers = [result["tier"] for result in answers[0].json()["results"]]
    assert first["route"] == "/score" and first["status"] == 200 and first["model_version"] == "7"
    assert first["leads"] == 2 and first["tiers"] == {tier: tiers.count(tier) for tier in ("SQL", "MQL", "nurture")}
    assert first["latency_ms"] > 0
    assert [entry["route"] for entry in entries[:5]] == ["/score", "/score", "/health", "other", "/score"]
    assert set(first) == {"event", "request_id", "method", "route", "status", "latency_ms", "model_version", "leads",
                          "tiers"}


def _sample(metrics: str, name: str, **labels) -> float:
    """A sample's value from Prometheus' text format."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{name} (\S+)$", metrics, re.M)
    assert match, f"{name} {labels} not in the metrics"
    return float(match.group(1))


def test_metrics_count_requests_errors_latency_and_tiers(traced):
    client, _ = traced
    scored = [client.post(f"/score?as_of={AS_OF}", json=LEAD) for _ in range(3)]
    client.post(f"/score?as_of={AS_OF}", json=_lead(company_size=-5))
    client.get("/health")
    for path in ("/a", "/b", "/c"):  # unknown paths share one label value
        client.get(path)
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    metrics = answer.text
    assert _sample(metrics, "lead_scoring_requests_total", route="/score", status="200") == 3
    assert _sample(metrics, "lead_scoring_requests_total", route="/score", status="422") == 1
    assert _sample(metrics, "lead_scoring_request_errors_total", route="/score", status="422") == 1
    assert _sample(metrics, "lead_scoring_requests_total", route="other", status="404") == 3
    assert _sample(metrics, "lead_scoring_request_seconds_count", route="/score") == 4
    tier = scored[0].json()["results"][0]["tier"]
    assert _sample(metrics, "lead_scoring_leads_scored_total", tier=tier) == 3
    assert sum(_sample(metrics, "lead_scoring_leads_scored_total", tier=name) for name in ("SQL", "MQL", "nurture")) == 3
    assert _sample(metrics, "lead_scoring_model_info", version="7") == 1
    assert "/a" not in metrics and "/b" not in metrics


@pytest.mark.parametrize("changes, field, problem", [
    ({"company_size": -5}, "body.attributes.company_size", "must not be negative"),
    ({"annual_revenue": -1.0}, "body.attributes.annual_revenue", "must not be negative"),
    ({"created_at": "1900-05-01T00:00:00Z"}, "body.created_at", "must not be before 1990"),
    ({"created_at": "2026-03-01T00:00:00Z"}, "body.created_at", "must not be after as_of"),
])
def test_implausible_leads_are_refused_naming_the_field(traced, changes, field, problem):
    client, _ = traced
    answer = client.post(f"/score?as_of={AS_OF}", json=_lead(**changes))
    assert answer.status_code == 422
    (detail,) = answer.json()["detail"]
    assert detail["field"] == field and problem in detail["problem"]
    assert client.post(f"/score?as_of={AS_OF}", json=_lead(company_size=0)).status_code == 200
