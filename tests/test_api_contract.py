"""The documented HTTP contract is the real one: error bodies, statuses, examples that score, offline docs."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features.spec import FeatureSpec
from scoring.api_contract import Health, InternalError, ModelDescription, Problems, request_examples
from scoring.service import create_app

IDENTITY = {"model_uri": "models:/lead-conversion@champion", "run_id": "abc", "model_name": "lead-conversion",
            "model_version": "7"}


@pytest.fixture
def client(small_models):
    return TestClient(create_app(small_models["lightgbm"], IDENTITY, max_body_bytes=5_000, token="secret"))


AUTH = {"Authorization": "Bearer secret"}


def _documented(schema, path, method, status):
    ref = schema["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_every_status_the_service_sends_is_documented_with_its_real_body(client):
    schema = client.get("/openapi.json", headers=AUTH).json()
    models = {"Problems": Problems, "InternalError": InternalError}
    examples = schema["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    lead = examples["one lead"]["value"]

    sent = {
        401: client.post("/score", json=lead),
        413: client.post("/score", json=[lead] * 40, headers=AUTH),
        422: client.post("/score", json={"attributes": {"company_size": "many"}}, headers=AUTH),
    }
    for status, response in sent.items():
        assert response.status_code == status, response.text
        model = models[_documented(schema, "/score", "post", status)]
        model.model_validate(response.json())  # the documented shape is what arrives
        assert response.json()["detail"][0]["field"]
    assert _documented(schema, "/score", "post", 500) == "InternalError"
    assert _documented(schema, "/model", "get", 401) == "Problems"
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's default 422 is not what we send


def test_a_failure_inside_scoring_answers_the_documented_500(small_models):
    from models.bundle import ModelBundle

    good = small_models["lightgbm"]
    broken = ModelBundle(spec=good.spec, model=object(), thresholds=good.thresholds, metadata=good.metadata)
    client = TestClient(create_app(broken, IDENTITY), raise_server_exceptions=False)
    lead = request_examples(good)["one lead"]["value"]
    response = client.post("/score", json=lead)
    assert response.status_code == 500
    InternalError.model_validate(response.json())
    assert client.get("/health").status_code == 200  # and the service carries on


def test_examples_are_built_from_the_loaded_model_and_score_200(client, small_models):
    schema = client.get("/openapi.json", headers=AUTH).json()
    examples = schema["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for example in examples.values():
        response = client.post("/score", json=example["value"], headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["as_of"].endswith("+00:00")  # times carry their zone
    lead = examples["one lead"]["value"]
    spec = small_models["lightgbm"].spec
    assert {event["event_type"] for event in lead["events"]} <= set(spec.event_types)


def test_the_score_body_is_documented_as_one_lead_or_a_list(client):
    schema = client.get("/openapi.json", headers=AUTH).json()
    body = schema["paths"]["/score"]["post"]["requestBody"]
    shapes = body["content"]["application/json"]["schema"]["anyOf"]
    assert body["required"] and {"$ref": "#/components/schemas/Lead"} in shapes
    assert {"type": "array", "items": {"$ref": "#/components/schemas/Lead"}} in shapes
    lead = schema["components"]["schemas"]["Lead"]
    assert lead["properties"]["events"]["items"] == {"$ref": "#/components/schemas/Event"}
    assert "occurred_at" in schema["components"]["schemas"]["Event"]["properties"]


def test_examples_follow_a_model_of_another_export():
    spec = FeatureSpec(categorical_columns=("Source",), numeric_columns=("Visits",), boolean_columns=("Opted Out",),
                       job_title_column=None, email_column=None, event_log=False, lead_age=False)
    bundle = type("Bundle", (), {"spec": spec, "model": None})()
    lead = request_examples(bundle)["one lead"]["value"]
    assert set(lead["attributes"]) == {"Source", "Visits", "Opted Out"} and "events" not in lead
    assert "created_at" not in lead and "job_title" not in lead["attributes"]


def test_health_and_model_are_typed_and_model_lists_accepted_input(client, small_models):
    schema = client.get("/openapi.json", headers=AUTH).json()
    for path, name in (("/health", "Health"), ("/model", "ModelDescription")):
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith(name)
    Health.model_validate(client.get("/health").json())
    described = ModelDescription.model_validate(client.get("/model", headers=AUTH).json())
    spec = small_models["lightgbm"].spec
    assert [a.name for a in described.attributes if a.kind == "categorical"] == list(spec.categorical_columns)
    assert described.event_types == list(spec.event_types) and described.needs_created_at


def test_docs_render_from_the_service_without_a_cdn(client):
    assert client.get("/docs").status_code == 401  # a token is set: the API's description is behind it too
    page = client.get("/docs", headers=AUTH)
    assert page.status_code == 200 and "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = client.get(f"/docs-assets/{asset}", headers=AUTH)
        assert response.status_code == 200 and len(response.content) > 10_000 and f"/docs-assets/{asset}" in page.text
    assert np.isclose(float(client.get("/openapi.json", headers=AUTH).json()["openapi"][:3]), 3.1)  # Swagger UI 5 reads 3.1
