"""HTTP input robustness on a real server over loopback: bad text, dates, numbers get 422; nothing breaks a connection."""

import http.client
import json
import logging

import pytest
from fastapi.testclient import TestClient
from loopback import uvicorn_on_loopback

from scoring.service import create_app

AS_OF = "2026-01-01T00:00:00Z"
IDENTITY = {"model_uri": "models:/lead-conversion@champion", "run_id": "abc", "model_name": "lead-conversion",
            "model_version": "7"}
LEAD = {"lead_id": "L-1", "created_at": "2025-10-01T10:00:00Z",
        "attributes": {"job_title": "VP Marketing", "company_size": 500, "email": "ana@acme.io"},
        "events": [{"occurred_at": "2025-12-29T10:00:00Z", "event_type": "demo_request"}]}


@pytest.fixture
def bundle(small_models):
    return small_models["logistic"]


@pytest.fixture
def client(bundle):
    return TestClient(create_app(bundle, IDENTITY))


def with_(path: str, value) -> dict:
    """LEAD with one field replaced, ``path`` like ``attributes.company_size`` or ``events.0.occurred_at``."""
    lead = json.loads(json.dumps(LEAD))
    *parents, last = path.split(".")
    target = lead
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return lead


@pytest.mark.parametrize("path, value, field, problem", [
    ("lead_id", "L-\ud800", "body.lead_id", r"lone surrogates; found U\+D800 at position 2"),
    ("lead_id", "L-\x00-1", "body.lead_id", r"control characters .*U\+0000"),
    ("events.0.event_type", "demo\x1b[31m", "body.events.0.event_type", r"control characters .*U\+001B"),
    ("attributes.job_title", "VP \udfff", "body.attributes.job_title", r"lone surrogates"),
    ("created_at", 12345, "body.created_at", r"ISO 8601 timestamp string .* got the number 12345"),
    ("created_at", "0001-01-01T00:00:00Z", "body.created_at", r"between the years 1900 and 2200, got 0001-01-01"),
    ("events.0.occurred_at", "9999-01-01T00:00:00", "body.events.0.occurred_at", r"between the years 1900 and 2200"),
    ("attributes.company_size", True, "body.attributes.company_size", r"must be a number, got True"),
    ("attributes.company_size", "nan", "body.attributes.company_size", r"must be a number, got 'nan'"),
])
def test_bad_values_are_422_naming_the_field(client, path, value, field, problem):
    response = client.post(f"/score?as_of={AS_OF}", content=json.dumps(with_(path, value)),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    problems = {p["field"]: p["problem"] for p in response.json()["detail"]}
    assert field in problems, problems
    import re
    assert re.search(problem, problems[field]), problems[field]


@pytest.mark.parametrize("literal, field", [("NaN", "body.attributes.company_size"),
                                            ("Infinity", "body.attributes.company_size"),
                                            ("-Infinity", "body.attributes.company_size")])
def test_non_finite_numbers_are_422(client, literal, field):
    body = json.dumps(with_("attributes.company_size", 1)).replace('"company_size": 1', f'"company_size": {literal}')
    response = client.post(f"/score?as_of={AS_OF}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert any(p["field"] == field and "finite number" in p["problem"] for p in response.json()["detail"])


@pytest.mark.parametrize("number", ["20250101", "1735689600", "1.7e9"])
def test_an_as_of_written_as_a_number_is_422_not_read_as_seconds_since_1970(client, number):
    # pydantic alone reads "20250101" as 1970-08-23 and "1735689600" as 2025-01-01: both are refused.
    response = client.post(f"/score?as_of={number}", json=LEAD)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["field"] == "query.as_of"
    assert f"must be an ISO 8601 timestamp such as 2025-10-01T10:00:00Z, got the number '{number}'" in problem["problem"]


def test_an_as_of_in_iso_8601_is_read_in_utc(client):
    answer = client.post("/score?as_of=2026-01-01T02:00:00%2B02:00", json=LEAD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["as_of"] == "2026-01-01T00:00:00+00:00"


def test_an_out_of_range_as_of_is_422(client):
    response = client.post("/score?as_of=1066-10-14T00:00:00Z", json=LEAD)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "query.as_of", "problem": "must lie between the years 1900 and "
                                                                             "2200, got 1066-10-14T00:00:00+00:00"}]


def test_a_lead_idle_long_before_as_of_is_scored_with_a_warning(client):
    fresh = client.post(f"/score?as_of={AS_OF}", json=LEAD).json()
    assert fresh["warnings"] == []
    stale = client.post("/score?as_of=2026-06-01T00:00:00Z", json=LEAD).json()
    assert len(stale["results"]) == 1
    assert stale["warnings"] == ["body.0: the newest event is 153 days before as_of 2026-06-01 00:00:00; the score "
                                 "treats the lead as idle since then (send ?as_of= for historical data)"]


@pytest.fixture
def server(bundle):
    """The app on a real uvicorn server on 127.0.0.1 (a free port), as ``serve.py http`` runs it."""
    with uvicorn_on_loopback(create_app(bundle, IDENTITY)) as port:
        yield port


def post(connection, body: str, as_of=AS_OF):
    connection.request("POST", f"/score?as_of={as_of}", body=body.encode("utf-8", "surrogatepass"),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read()), response


def test_bad_requests_never_break_a_kept_alive_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=20)
    good = json.dumps(LEAD)
    bad = [json.dumps(with_("lead_id", "L-\ud800")),  # escaped lone surrogate: valid JSON, invalid text
           json.dumps(LEAD, ensure_ascii=False).replace("L-1", "L-\ud800"),  # raw surrogate bytes: not UTF-8
           json.dumps(with_("created_at", 12345)), '{"lead_id": ', "[]", json.dumps([LEAD] * 2000)]
    status, _, _ = post(connection, good)
    assert status == 200
    sock = connection.sock
    for body in bad:
        status, answer, response = post(connection, body)
        assert status in (413, 422), (status, answer)
        status, answer, _ = post(connection, good)
        assert status == 200 and answer["results"][0]["lead_id"] == "L-1"
    assert connection.sock is sock  # one connection throughout: none was dropped
    connection.close()


def test_a_500_is_one_log_line_with_a_request_id_and_the_connection_lives(server, bundle, monkeypatch, caplog):
    original = bundle.score_with_reasons

    def broken(*args, **kwargs):
        raise RuntimeError("boom for ana@acme.io")

    from models.lead_scorer import LeadScorer

    original_single = LeadScorer.score
    monkeypatch.setattr(bundle, "score_with_reasons", broken)
    monkeypatch.setattr(LeadScorer, "score", broken)  # one lead takes the single-lead route
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=20)
    with caplog.at_level(logging.ERROR, logger="scoring.service"):
        status, answer, response = post(connection, json.dumps(LEAD))
    assert status == 500
    request_id = response.getheader("X-Request-ID")
    assert answer == {"detail": f"internal error (RuntimeError); request id {request_id}"}
    records = [r for r in caplog.records if r.name == "scoring.service"]
    assert len(records) == 1 and records[0].exc_info is None
    line = records[0].getMessage()
    assert request_id in line and "RuntimeError" in line and "\n" not in line and "ana@acme.io" not in line
    monkeypatch.setattr(bundle, "score_with_reasons", original)
    monkeypatch.setattr(LeadScorer, "score", original_single)
    status, answer, _ = post(connection, json.dumps(LEAD))
    assert status == 200
    connection.close()


def test_clean_text_refuses_exactly_control_characters_and_lone_surrogates():
    """Every character of the Basic Multilingual Plane inside ASCII text, against the rule written out by hand
    (clean_text accepts printable ASCII without its pattern, so both of its branches are crossed here)."""
    from scoring.lead_requests import clean_text

    def refused(text):
        try:
            clean_text(text)
        except ValueError:
            return True
        return False

    for code in range(0x10000):
        bad = (code < 0x20 and chr(code) not in "\t\n\r") or code == 0x7F or 0xD800 <= code <= 0xDFFF
        assert refused(f"VP {chr(code)} sales") == bad, hex(code)
    assert not refused("VP Marketing") and not refused("Geschäftsführer") and refused("VP\x00")
