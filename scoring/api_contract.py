"""The HTTP service's documented contract: response and error bodies, examples from the loaded model, offline docs.

Kept apart from ``scoring.service`` (routes and scoring) so the schema can be read and tested on
its own: every body the service sends has a model here, and the request examples are built from
the loaded model's own attributes and event types, so "Try it out" in ``/docs`` scores with 200.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, Field

#: Values for the synthetic contract's own columns; any other column gets a value of its kind.
_KNOWN_VALUES = {"job_title": "VP Marketing", "industry": "Software", "company_size": 500, "annual_revenue": 4.0e7,
                 "country": "Germany", "lead_source": "Webinar", "email": "ana@example.com"}
DOCS_ASSETS = "/docs-assets"


class Problem(BaseModel):
    field: str = Field(description="Where the problem is: body.0.events.1.occurred_at, header.Authorization, body.",
                       examples=["body.events.0.occurred_at"])
    problem: str = Field(description="What is wrong with it.", examples=["Input should be a valid datetime"])


class Problems(BaseModel):
    """The body of every 4xx answer: each wrong field and its problem."""

    detail: list[Problem]


class InternalError(BaseModel):
    """The body of a 500: scoring failed inside the service (logged there); the service carries on."""

    detail: str = Field(examples=["internal error (ValueError)"])


class Health(BaseModel):
    """One worker process: with several workers each answers for itself."""
    status: str = Field(examples=["ok"])
    model_version: str = Field(examples=["3"])
    pid: int = Field(description="the worker process that answered", examples=[4242])
    started_at: str = Field(description="when this worker started, ISO 8601 with zone",
                            examples=["2026-01-01T00:00:00+00:00"])
    requests_scored: int = Field(description="score requests this worker answered", examples=[120])
    leads_scored: int = Field(description="leads this worker scored", examples=[480])


class Attribute(BaseModel):
    name: str
    kind: str = Field(description="categorical, numeric, numeric_raw, boolean, job_title or email")


class Thresholds(BaseModel):
    mql: float
    sql: float


class ModelDescription(BaseModel):
    """What ``GET /model`` shows: identity, training window, test metrics, thresholds and accepted input."""

    name: str | None
    version: str
    alias: str | None
    model_uri: str
    run_id: str | None
    estimator: str | None
    calibration: str | None
    horizon_days: float | None = Field(description="Conversion horizon in days (0.25 = 6 hours).")
    training_window: dict[str, str]
    metrics: dict[str, float]
    thresholds: Thresholds
    features: int = Field(description="Number of model features built from a lead.")
    attributes: list[Attribute] = Field(description="Lead attributes the model reads (keys of 'attributes').")
    event_types: list[str] = Field(description="Event types with their own features; any other type counts as "
                                               "'other'.")
    needs_created_at: bool = Field(description="Whether each lead needs 'created_at' (lead age, event windows).")


ERROR_RESPONSES = {
    401: {"model": Problems, "description": "Missing or wrong bearer token (when the service has one)."},
    413: {"model": Problems, "description": "Request body larger than the service's limit."},
    422: {"model": Problems, "description": "Invalid input: every wrong field with its problem."},
    500: {"model": InternalError, "description": "Scoring failed inside the service; it carries on."},
}


def accepted_attributes(spec) -> list[dict]:
    """The lead attributes a model reads, with their kind, in the spec's order."""
    kinds = [("categorical", spec.categorical_columns), ("numeric", spec.numeric_columns),
             ("numeric_raw", spec.raw_numeric_columns), ("boolean", spec.boolean_columns),
             ("job_title", (spec.job_title_column,) if spec.job_title_column else ()),
             ("email", (spec.email_column,) if spec.email_column else ())]
    return [{"name": column, "kind": kind} for kind, columns in kinds for column in columns]


def needs_created_at(spec) -> bool:
    return bool(spec.lead_age or spec.event_log)


def request_examples(bundle, *, now: datetime | None = None) -> dict:
    """OpenAPI examples of a ``POST /score`` body for this model: one lead, and two leads in a list.

    Attributes are the model's own columns with a value of their kind (a category the model
    saw in training where it can tell), events of its own event types, times in UTC before now.
    """
    spec = bundle.spec
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    known = _known_categories(bundle)
    attributes = {}
    for item in accepted_attributes(spec):
        column, kind = item["name"], item["kind"]
        if column in _KNOWN_VALUES:
            attributes[column] = _KNOWN_VALUES[column]
        elif kind == "categorical":
            attributes[column] = known.get(column, "other")
        elif kind == "boolean":
            attributes[column] = "no"
        elif kind in ("numeric", "numeric_raw"):
            attributes[column] = 1
        else:
            attributes[column] = "example"
    lead = {"lead_id": "L-1", "attributes": attributes}
    if needs_created_at(spec):
        lead["created_at"] = _utc(now - timedelta(days=60))
    if spec.event_log and spec.event_types:
        types = list(spec.event_types)
        lead["events"] = [{"occurred_at": _utc(now - timedelta(days=days)), "event_type": types[i % len(types)]}
                          for i, days in enumerate((20, 9, 2))]
    second = {**lead, "lead_id": "L-2", "events": lead.get("events", [])[:1]} if "events" in lead else {
        **lead, "lead_id": "L-2"}
    return {
        "one lead": {"summary": "One lead with its attributes (and events)", "value": lead},
        "several leads": {"summary": "A list of leads", "value": [lead, second]},
    }


def offline_docs(app, *, title: str) -> None:
    """Serve ``/docs`` with Swagger UI's assets from the installed ``swagger-ui-bundle``: no CDN, works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{title} - docs",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")


def request_body(leads, examples: dict) -> dict:
    """The ``openapi_extra`` documenting ``POST /score``'s body: ``leads`` (a pydantic ``TypeAdapter`` of
    one lead or a list) and the examples; the route reads the body itself, so FastAPI cannot infer it."""
    schema = leads.json_schema(ref_template=_COMPONENT)
    schema.pop("$defs", None)
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema, "examples": examples}}}}


def model_openapi(app, examples: dict, leads=None, *, documented=()):
    """``app.openapi`` whose Lead schema shows this model's attributes, not a fixed demo's.

    ``leads`` (the ``TypeAdapter`` of ``request_body``) adds the schemas its body refers to.
    ``documented`` are ``APIRoute``s describing plain routes of the app (same path and methods), in
    their place: ``POST /score`` (``scoring.score_route``).
    """
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    def openapi():
        if app.openapi_schema is None:
            described = {(route.path, frozenset(route.methods)): route for route in documented}
            routes = [route if isinstance(route, APIRoute) else described.get(
                (getattr(route, "path", None), frozenset(getattr(route, "methods", None) or ())), route)
                for route in app.routes]
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=routes)
            if leads is not None:
                schemas = schema.setdefault("components", {}).setdefault("schemas", {})
                schemas.update(leads.json_schema(ref_template=_COMPONENT).get("$defs", {}))
            lead = schema.get("components", {}).get("schemas", {}).get("Lead", {}).get("properties", {})
            if "attributes" in lead:
                lead["attributes"]["examples"] = [examples["one lead"]["value"]["attributes"]]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


_COMPONENT = "#/components/schemas/{model}"


def utc_text(moment) -> str:
    """A naive-UTC (or aware) time as ISO 8601 with its zone: ``2026-01-01T00:00:00+00:00``."""
    import pandas as pd

    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:  # naive is UTC: its own text and the zone, without localising a copy (every answer)
        return stamp.isoformat() + "+00:00"
    return stamp.tz_convert("UTC").isoformat()


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _known_categories(bundle) -> dict:
    """Raw column -> a category the model saw in training, when its encoder tells (LightGBM's CategoryEncoder)."""
    from features.spec import feature_name

    try:
        calibrated = bundle.model.calibrated_classifiers_[0].estimator
        encoder = getattr(calibrated, "estimator", calibrated)[0]
        categories = encoder.categories_
    except (AttributeError, IndexError, TypeError, KeyError):
        return {}
    known = {}
    for column in bundle.spec.categorical_columns:
        values = categories.get(feature_name(column)) if isinstance(categories, dict) else None
        if values:
            known[column] = str(values[0])
    return known
