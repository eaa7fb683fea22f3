"""The HTTP scoring service: a FastAPI app around one loaded ModelBundle (``python serve.py http``).

``POST /score`` takes one lead or a list, each with its attributes and recent events (or
already-built feature rows), and returns probability, score, tier, fit and engagement
sub-scores, reasons and the model version. ``GET /health`` and ``GET /model`` describe the
service; ``/docs`` and ``/openapi.json`` describe the API. Bad input gets a 4xx whose
``detail`` lists each wrong field and its problem; a body over the limit gets 413.
"""

from __future__ import annotations

import hmac
import logging
import uuid
import os
import threading
from datetime import datetime

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, TypeAdapter
from starlette.routing import Route

from features.contract import bounded
from features.timing import utc_now
from scoring.api_contract import (ERROR_RESPONSES, Health, ModelDescription, accepted_attributes, model_openapi,
                                 needs_created_at, offline_docs, request_body, request_examples, utc_text)
from scoring.lead_requests import InvalidLeads, Lead, request_models
from models.lead_scorer import lead_scorer
from scoring.operations import RequestTrace, ServiceMetrics, metrics_router, record_tiers, route_paths
from scoring.planner_page import planner_router
from scoring.http_guards import PUBLIC_DOCS_VARIABLE, TokenGate
from scoring.score_route import ScoreEndpoint, answer_body, documented_route, field_problems, lead_results, warm_up

#: Bytes a request body may have before the service answers 413 without reading on.
DEFAULT_MAX_BODY_BYTES = 1_000_000
#: Leads per request: more belongs in batch scoring (``serve.py score``).
DEFAULT_MAX_LEADS = 1_000
TOKEN_ENVIRONMENT_VARIABLE = "LEAD_SCORING_TOKEN"

_log = logging.getLogger(__name__)


class Reason(BaseModel):
    factor: str
    text: str
    impact: float = Field(description="Signed contribution to the log-odds of converting.")
    direction: str


class Reasons(BaseModel):
    positive: list[Reason]
    negative: list[Reason]


class LeadScore(BaseModel):
    """One lead's row in the output shape every path writes (``scoring.output_shape``), then its reasons in full."""

    lead_id: str | None = Field(description="The lead's id as text, as sent (null when none was sent).")
    probability: float
    score: int
    tier: str
    fit_score: int
    engagement_score: int
    positive_reason_1: str = Field(description="'text (+impact)', as batch scoring writes it; '' when none.")
    positive_reason_2: str
    positive_reason_3: str
    negative_reason_1: str
    negative_reason_2: str
    negative_reason_3: str
    model_version: str
    as_of: datetime = Field(description="The moment scored, in UTC with its zone.")
    scored_at: datetime = Field(description="When the service scored it, in UTC with its zone.")
    reasons: Reasons


class ScoreResponse(BaseModel):
    model_version: str
    as_of: datetime = Field(description="The moment scored, in UTC with its zone.")
    results: list[LeadScore]
    warnings: list[str] = Field(default_factory=list,
                                description="Leads scored whose newest event lies long before as_of (stale data).")


def create_app(bundle, identity: dict, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_leads: int = DEFAULT_MAX_LEADS, token: str | None = None, open_base=None,
               access_log: bool = True) -> FastAPI:
    """The app; ``bundle`` is loaded once by the caller and shared by every request.

    ``token``, when set, must arrive as ``Authorization: Bearer <token>`` on ``/score`` and
    ``/model`` (and on saving a tier policy), and on ``/docs`` and ``/openapi.json`` unless
    ``LEAD_SCORING_PUBLIC_DOCS=1``; ``/health`` stays open for load balancers.
    ``open_base`` (:class:`scoring.planner.OpenBase`) is the scored lead base the planner page shows.
    Every answer carries ``X-Request-ID``; ``GET /metrics`` has the Prometheus metrics and, with
    ``access_log``, each request is one JSON line on ``scoring.operations.ACCESS_LOGGER``.
    """
    if max_body_bytes <= 0 or max_leads <= 0:
        raise ValueError(f"create_app needs positive max_body_bytes and max_leads. "
                         f"Got {max_body_bytes!r} and {max_leads!r} instead.")
    version = str(identity.get("model_version", ""))
    description = describe_model(bundle, identity)
    horizon_days = bundle.metadata.get("params", {}).get("horizon_days")
    # Per process: with several workers each answers for itself, so /health names its pid.
    served = {"requests": 0, "leads": 0}
    counting = threading.Lock()
    started_at = utc_text(utc_now())
    app = FastAPI(title="Lead scoring", version=version or "0", docs_url=None, redoc_url=None,
                  description="Calibrated conversion probability, score, tier, sub-scores and reasons per lead. "
                              "GET /model lists the attributes and event types this model reads.")
    offline_docs(app, title="Lead scoring")
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    if token and os.environ.get(PUBLIC_DOCS_VARIABLE, "") != "1":  # the API's description is the token's too
        app.add_middleware(TokenGate, token=token, paths=("/docs", "/openapi.json"))
    app.add_middleware(_ContainFailures)  # outermost of ours: nothing below it can drop the connection
    examples = request_examples(bundle)
    authorised = _bearer_check(token)
    scorer = lead_scorer(bundle)  # None for a model the single-lead route does not cover

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": field_problems(error.errors(), error.body)})

    @app.exception_handler(InvalidLeads)
    async def _invalid_leads(request: Request, error: InvalidLeads):
        return JSONResponse(status_code=422, content={"detail": error.problems})

    @app.get("/health", response_model=Health, responses={500: ERROR_RESPONSES[500]})
    async def health() -> dict:
        """This worker process: its model version, pid, start and what it scored so far."""
        with counting:
            return {"status": "ok", "model_version": version, "pid": os.getpid(), "started_at": started_at,
                    "requests_scored": served["requests"], "leads_scored": served["leads"]}

    @app.get("/model", response_model=ModelDescription, dependencies=[Depends(authorised)],
             responses={status: ERROR_RESPONSES[status] for status in (401, 500)})
    async def model() -> dict:
        return description

    def scored(many: list[Lead], when: pd.Timestamp) -> bytes:
        results = lead_results(scorer, bundle, many, when, model_version=version)
        record_tiers(result["tier"] for result in results)
        with counting:
            served["requests"] += 1
            served["leads"] += len(many)
        return answer_body(version, when, results, many, horizon_days=horizon_days)

    # The request schema names the model's own event types: this model's Lead.
    lead_model = request_models(bundle.spec)
    leads_of = TypeAdapter(lead_model | list[lead_model])
    warm_up(scorer, bundle, leads_of, examples)
    # POST /score is served by a plain ASGI endpoint (scoring.score_route); FastAPI documents it.
    # First among the routes: the router tries them in order, and this one takes nearly every request.
    app.router.routes.insert(0, Route("/score", ScoreEndpoint(scored, leads_of=leads_of, max_leads=max_leads,
                                                              token=token), methods=["POST"]))
    documented = documented_route(ScoreResponse, ERROR_RESPONSES, request_body(leads_of, examples),
                                  [Depends(authorised)] if token else [])
    app.include_router(planner_router(bundle, identity, open_base=open_base, authorised=authorised))
    app.openapi = model_openapi(app, examples, leads_of, documented=[documented])
    metrics = ServiceMetrics(version)
    app.include_router(metrics_router(metrics))
    app.add_middleware(RequestTrace, metrics=metrics, model_version=version,  # outermost: it sees every answer
                       routes=route_paths(app), log=access_log)
    return app


def describe_model(bundle, identity: dict) -> dict:
    """What ``GET /model`` shows: identity, training window, test metrics, tier thresholds, accepted input."""
    params = bundle.metadata.get("params", {})
    uri = identity.get("model_uri", "")
    window = {key: str(params[key]) for key in ("as_of_first", "as_of_last") if key in params}
    if "data_end" in params:
        window["data_end"] = utc_text(params["data_end"])
    window.update({key.removeprefix("window_"): str(value) for key, value in params.items()
                   if key.startswith("window_")})
    return {
        "name": identity.get("model_name"),
        "version": str(identity.get("model_version", "")),
        "alias": uri.rsplit("@", 1)[1] if "@" in uri else None,
        "model_uri": uri,
        "run_id": identity.get("run_id"),
        "estimator": params.get("model"),
        "calibration": params.get("calibration"),
        "horizon_days": params.get("horizon_days"),
        "training_window": window,
        "metrics": {key: value for key, value in bundle.metadata.get("metrics", {}).items()},
        "thresholds": bundle.thresholds.as_dict(),
        "features": len(bundle.spec.feature_names),
        "attributes": accepted_attributes(bundle.spec),
        "event_types": list(bundle.spec.event_types) if bundle.spec.event_log else [],
        "needs_created_at": needs_created_at(bundle.spec),
    }


def _bearer_check(token: str | None):
    bearer = HTTPBearer(auto_error=False, description=f"Required when {TOKEN_ENVIRONMENT_VARIABLE} is set.")

    # async: a plain def dependency would hop to the thread pool on every request.
    async def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"}, detail=[
                {"field": "header.Authorization", "problem": "missing or wrong bearer token"}])

    return authorised


class _ContainFailures:
    """ASGI middleware: an unexpected error becomes one 500 answer and one log line with a request id.

    Nothing is re-raised to the server, so the kept-alive connection and later requests carry on;
    the traceback is not printed per request (a bad request repeated would flood the log).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:  # noqa: BLE001 - the boundary: everything becomes a 500
            request_id = scope.get("state", {}).get("request_id") or uuid.uuid4().hex[:12]
            where = error.__traceback__
            while where is not None and where.tb_next is not None:
                where = where.tb_next
            place = f"{where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{where.tb_lineno}" if where else "?"
            _log.error("request %s %s %s failed: %s at %s: %s", request_id, scope.get("method"), scope.get("path"),
                       type(error).__name__, place,
                       bounded(str(error).encode("utf-8", "backslashreplace").decode(), 200))
            if started:  # the answer is under way: nothing more can be said on this connection
                return
            response = JSONResponse(status_code=500, headers={"X-Request-ID": request_id}, content={
                "detail": f"internal error ({type(error).__name__}); request id {request_id}"})
            await response(scope, receive, send)


class _BodyLimit:
    """ASGI middleware: buffer the body up to ``max_bytes`` and answer 413 beyond, chunked or not."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        response = JSONResponse(status_code=413, content={"detail": [
            {"field": "body", "problem": f"request body larger than {self.max_bytes} bytes"}]})
        await response(scope, receive, send)
