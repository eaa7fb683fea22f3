"""What the HTTP service leaves behind: a request id on every answer, one access-log line per request, Prometheus metrics.

The access log is one JSON object per line on the logger ``lead_scoring.access``: request id,
method, route (the route's template, never the raw path), status, latency, model version, and for
``/score`` how many leads were scored in each tier. Nothing a lead is made of (no id, no e-mail,
no attribute, no client address) is written: the log is safe to ship to any log store.

Metrics use ``prometheus_client`` (the reference client, as Prometheus' instrumentation guide
shows it) in a registry of the app's own: requests and errors by route and status, a latency
histogram by route, leads scored by tier, and the model version as an info metric. Every label
has a bounded set of values (routes of the app, "other" for any unknown path; HTTP status codes;
the three tiers). With several worker processes each answers ``/metrics`` for itself, as
``/health`` does.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time

from fastapi import APIRouter, Response

from models.tiers import TIERS

ACCESS_LOGGER = "lead_scoring.access"
#: A request id the client sends is kept (so a trace crosses services) when it looks like one.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Seconds: a single lead takes about 1-6 ms, a request of a thousand leads about a second.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: The tiers of the leads the current request scored; the route sets it, the access log reads it.
_scored_tiers: contextvars.ContextVar = contextvars.ContextVar("scored_tiers", default=None)


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (two apps in one process do not collide)."""

    def __init__(self, model_version: str):
        from prometheus_client import CollectorRegistry, Counter, Histogram, Info

        self.registry = CollectorRegistry()
        self.requests = Counter("lead_scoring_requests", "HTTP requests answered, by route and status.",
                                ["route", "status"], registry=self.registry)
        self.errors = Counter("lead_scoring_request_errors", "Requests answered with a 4xx or 5xx status.",
                              ["route", "status"], registry=self.registry)
        self.latency = Histogram("lead_scoring_request_seconds", "Time to answer a request, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.leads = Counter("lead_scoring_leads_scored", "Leads scored, by tier.", ["tier"], registry=self.registry)
        # Present at zero from the start, so a rate over them works.
        self._tiers = {tier: self.leads.labels(tier=tier) for tier in TIERS}
        self._children: dict = {}
        Info("lead_scoring_model", "The model this process serves.",
             registry=self.registry).info({"version": str(model_version)})

    def observe(self, route: str, status: int, seconds: float, tiers: dict | None) -> None:
        children = self._children.get((route, status))
        if children is None:  # labels() looks its child up by keyword on every call: once per (route, status)
            children = self._children[route, status] = (
                self.requests.labels(route=route, status=str(status)),
                self.errors.labels(route=route, status=str(status)) if status >= 400 else None,
                self.latency.labels(route=route))
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)
        for tier, count in (tiers or {}).items():
            if count:
                self._tiers[tier].inc(count)


def record_tiers(tiers) -> None:
    """Called by the scoring route with the tiers it gave: counted in the metrics and the access log."""
    counts = dict.fromkeys(TIERS, 0)
    for tier in tiers:
        counts[tier] = counts.get(tier, 0) + 1
    holder = _scored_tiers.get()
    if holder is not None:
        holder.update(counts)


def metrics_router(metrics: ServiceMetrics) -> APIRouter:
    """``GET /metrics`` in Prometheus' text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


class RequestTrace:
    """ASGI middleware: a request id on every response, one access-log line and the metrics of every request.

    ``routes`` are the app's route templates (bounded labels); ``model_version`` goes in every
    log line. It sits outermost, so even a 413 or a contained 500 is counted and carries the id
    (``scope["state"]["request_id"]``, which the failure handler quotes).
    """

    def __init__(self, app, metrics: ServiceMetrics, model_version: str, routes, log: bool = True):
        self.app, self.metrics, self.model_version = app, metrics, str(model_version)
        self.routes, self.log = frozenset(routes), log
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self.version_json = json.dumps(self.model_version)
        self._route_texts: dict = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        sent = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if sent and _CLIENT_REQUEST_ID.fullmatch(sent) else os.urandom(8).hex()  # 16 hex digits
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        tiers: dict = {}
        token = _scored_tiers.set(tiers)

        async def traced(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, traced)
        finally:
            _scored_tiers.reset(token)
            seconds = time.perf_counter() - started
            matched = getattr(scope.get("route"), "path", None)  # a template such as /leads/{id}, when routed
            route = matched if matched in self.routes else scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.observe(route, status, seconds, tiers)
            if self.log and self.logger.isEnabledFor(logging.INFO):
                # The line written by hand and its record made without looking up the caller's frame: json.dumps and
                # logger.info were most of this middleware's time. Its values are JSON-safe as they stand (the id
                # matched _CLIENT_REQUEST_ID or is hex, the route is one of the app's templates, encoded once) or
                # are encoded here.
                method = scope.get("method") or ""
                method = f'"{method}"' if method.isalpha() else json.dumps(method)
                line = (f'{{"event":"request","request_id":"{request_id}","method":{method},'
                        f'"route":{self._route_json(route)},"status":{status},'
                        f'"latency_ms":{round(seconds * 1000, 2)!r},"model_version":{self.version_json}')
                if tiers:
                    line += (f',"leads":{sum(tiers.values())},"tiers":{{'
                             + ",".join(f'"{tier}":{count}' for tier, count in tiers.items()) + "}")
                self.logger.handle(self.logger.makeRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, line + "}",
                                                          None, None))

    def _route_json(self, route: str) -> str:
        text = self._route_texts.get(route)
        if text is None:
            text = self._route_texts[route] = json.dumps(route)
        return text


def route_paths(app) -> set[str]:
    """Every route template of an app, those of included routers too: the metrics' route label values."""
    paths = set()
    for route in app.routes:
        if getattr(route, "path", None):
            paths.add(route.path)
        candidates = getattr(route, "effective_candidates", None)  # FastAPI >= 0.165 wraps included routers
        if callable(candidates):
            paths.update(candidate.path for candidate in candidates() if getattr(candidate, "path", None))
    return paths


def use_access_log(stream=None) -> logging.Logger:
    """Send the access log, one JSON object per line, to ``stream`` (default stderr); once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(getattr(handler, "_access_log", False) for handler in logger.handlers):
        handler = logging.StreamHandler(stream)
        handler._access_log = True
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # its own lines, not also the console's
    return logger
