"""``POST /score`` served as a plain ASGI endpoint: the token, ``as_of``, the body, scoring and the answer.

FastAPI documents the route (:func:`documented_route`: query, body, answers and errors in
``/openapi.json``), but its per-request machinery (dependency solving, query validation, the
``Request`` and ``Response`` objects, exception handlers) was about 220 us of the 860 us one lead with
20 events took in process, a quarter. :class:`ScoreEndpoint` makes the same checks in the same order
with the same answers: the bearer token as ``HTTPBearer`` reads it (401), ``as_of`` through the
validator FastAPI ran (422 at ``query.as_of``), the JSON body through this model's ``Lead`` (422
naming each field), then the leads' own checks, scoring and the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import parse_qsl

import pandas as pd
from fastapi import Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BeforeValidator, TypeAdapter, ValidationError
from pydantic_core import to_json

from features.contract import bounded
from features.single_lead import FEW_LEADS
from features.timing import naive_utc, utc_now
from models.reasons import reason_columns
from scoring.api_contract import utc_text
from scoring.http_guards import bearer_matches
from scoring.lead_requests import (InvalidLeads, Lead, lead_blocks, lead_features, plausible_timestamp,
                                  stale_warnings, written_timestamp)

#: Up to this many leads a request is scored on the event loop, one request per turn; more go to the pool.
INLINE_LEADS = 4

AsOf = Annotated[datetime | None, BeforeValidator(written_timestamp),
                 Query(description="Score as of this time, ISO 8601 (default: now, UTC).")]
_AS_OF = TypeAdapter(AsOf)
_JSON = [(b"content-type", b"application/json")]
_log = logging.getLogger(__name__)
_UNAUTHORISED = json.dumps({"detail": [{"field": "header.Authorization",
                                        "problem": "missing or wrong bearer token"}]}).encode()


class ScoreEndpoint:
    """The ASGI app of ``POST /score`` (a Starlette ``Route`` takes an instance as its endpoint).

    ``score(leads, when) -> bytes`` scores validated leads and gives the answer's body;
    ``leads_of`` is the ``TypeAdapter`` of one lead or a list of this model's ``Lead``.
    """

    def __init__(self, score, *, leads_of: TypeAdapter, max_leads: int, token: str | None):
        self.score, self.leads_of, self.max_leads = score, leads_of, max_leads
        self.token = token.encode() if token else None
        self.inline_turn = asyncio.Lock()  # one request worked on per turn of the event loop (see answer)

    async def __call__(self, scope, receive, send):
        if self.token is not None and not bearer_matches(scope["headers"], self.token):
            return await _send(send, 401, _UNAUTHORISED, [(b"www-authenticate", b"Bearer")])
        try:
            as_of = _as_of(scope["query_string"])
            body = await _body(receive)
            answer = await self.answer(body, as_of)
        except InvalidLeads as error:
            return await _send(send, 422, to_json({"detail": error.problems}))
        await _send(send, 200, answer)

    async def answer(self, body: bytes, as_of: datetime | None) -> bytes:
        # One request's work per turn of the event loop, its parsing and checks included: 30 requests arriving
        # together would otherwise all be parsed and scored in one turn (~100 ms) before the loop reads a socket
        # again, and /health with them. A few leads take a few milliseconds: inline is faster than a hop to the
        # thread pool. Bigger requests are scored in the pool so /health and small requests are not stuck behind.
        async with self.inline_turn:
            many, when, single = self.leads(body, as_of)
            try:
                if len(many) <= INLINE_LEADS:
                    answer = self.score(many, when)
                    await asyncio.sleep(0)
                    return answer
            except InvalidLeads as error:
                raise _as_sent(error, single) from None
        try:
            return await run_in_threadpool(self.score, many, when)
        except InvalidLeads as error:
            raise _as_sent(error, single) from None

    def leads(self, body: bytes, as_of: datetime | None) -> tuple[list[Lead], pd.Timestamp, bool]:
        """The body's leads (whether one was sent alone, not in a list) and the time to score them as of."""
        try:
            parsed = json.loads(body)
        except ValueError as error:  # not JSON, or not text
            raise InvalidLeads([{"field": f"body.{error.pos}" if hasattr(error, "pos") else "body",
                                 "problem": "JSON decode error"}]) from None
        try:
            leads = self.leads_of.validate_python(parsed)
        except ValidationError as error:
            raise InvalidLeads(field_problems(error.errors(), parsed, prefix="body")) from None
        many = leads if isinstance(leads, list) else [leads]
        if not many or len(many) > self.max_leads:
            raise InvalidLeads([{"field": "body", "problem": f"expected 1 to {self.max_leads} leads; got {len(many)}"}])
        if as_of is not None:
            try:
                plausible_timestamp(as_of)
            except ValueError as error:
                raise InvalidLeads([{"field": "query.as_of", "problem": str(error)}]) from None
        return many, naive_utc(as_of) if as_of is not None else utc_now(), not isinstance(leads, list)


def documented_route(score_response, responses: dict, openapi_extra: dict, dependencies: list):
    """The ``APIRoute`` FastAPI documents ``POST /score`` from (its query, body, answers, security).

    Not mounted: :class:`ScoreEndpoint` serves the path. Its endpoint is the signature only.
    """
    from fastapi.routing import APIRoute

    async def score(as_of: AsOf = None):
        """Score one lead or a list: probability, score, tier, sub-scores and reasons per lead."""

    return APIRoute("/score", score, methods=["POST"], response_model=score_response, responses=responses,
                    openapi_extra=openapi_extra, dependencies=dependencies)


def lead_results(scorer, bundle, many: list[Lead], when: pd.Timestamp, *, model_version: str = "") -> list[dict]:
    """One result per lead, in the order of ``many``: a row of the output shape every path writes
    (``scoring.output_shape``: id as text, scores, reasons as text, model version, times in UTC), then
    the reasons in full (factor, text, impact, direction).

    ``scorer`` (``models.lead_scorer``) takes a few leads as arrays end to end; without one (a model
    it does not cover) or for more leads, the DataFrame route: the same numbers and texts.
    """
    times = {"model_version": model_version, "as_of": utc_text(when), "scored_at": _this_second()}

    def shaped(lead, probability, score, tier, fit, engagement, up, down) -> dict:
        return {"lead_id": None if lead.lead_id is None else str(lead.lead_id), "probability": float(probability),
                "score": int(score), "tier": tier, "fit_score": int(fit), "engagement_score": int(engagement),
                **{column: cells[0] for column, cells in reason_columns([(up, down)]).items()}, **times,
                "reasons": {"positive": [r.as_dict() for r in up], "negative": [r.as_dict() for r in down]}}

    blocks = lead_blocks(bundle.spec, many, when) if scorer is not None else None
    if blocks is not None:
        return [shaped(lead, row["probability"], row["score"], row["tier"], row["fit_score"], row["engagement_score"],
                       *row["reasons"]) for lead, row in zip(many, scorer.score(*blocks))]
    features = lead_features(bundle.spec, many, when)
    scores, reasons = bundle.score_with_reasons(features)
    return [shaped(lead, p, s, t, f, e, up, down) for lead, p, s, t, f, e, (up, down) in zip(
        many, scores["probability"], scores["score"], scores["tier"], scores["fit_score"], scores["engagement_score"],
        reasons)]


def warm_up(scorer, bundle, leads_of, examples: dict) -> None:
    """Score the request example before serving: as a few leads (one with a title no rule matches) and as a request of
    more than ``FEW_LEADS``.

    The first scoring in a process loads the compiled kernels (numba's cache: the TreeSHAP walk, the batch
    event pass) and the modules they import: 0.9-2.3 s and about 45 MiB per worker, measured. Done on the
    first request, it held the event loop, ``/health`` included (the crowded run's 2.3 s maximum), and
    the memory rose during serving. A model the example cannot score is left to its first request (a
    warning says so): the service starts as it would have.
    """
    lead = examples["one lead"]["value"]
    when = utc_now()
    title = bundle.spec.job_title_column
    # A title no rule matches tries every title rule: re compiles each pattern at its first use (about 9 ms each,
    # measured on the first requests after start).
    unmatched = {**lead, "attributes": {**lead["attributes"], title: "zz"}} if title in lead["attributes"] else lead
    if lead.get("events"):  # and every event type of the model: each key is worked out (and remembered) at first use
        unmatched["events"] = [{**lead["events"][0], "event_type": kind} for kind in bundle.spec.event_types]
    try:
        lead_results(scorer, bundle, leads_of.validate_python([lead, unmatched]), when)
        many = leads_of.validate_python([{**lead, "lead_id": k} for k in range(FEW_LEADS + 1)])
        lead_results(scorer, bundle, many, when)
    except Exception as error:  # noqa: BLE001 - a warm-up, not a gate: the first request will say what is wrong
        _log.warning("warming up on the request example failed (%s: %s); the first request will load the "
                     "compiled kernels", type(error).__name__, bounded(str(error), 200))


def answer_body(version: str, when: pd.Timestamp, results: list[dict], many: list[Lead], *,
                horizon_days=None) -> bytes:
    """The ``ScoreResponse`` JSON of scored leads, stale-data warnings included.

    Built here, not validated again against ``ScoreResponse`` (which documents it), and written by
    pydantic's serialiser (compiled): 10 us against json.dumps' 43 us on one lead's answer, measured here.
    """
    return to_json({"model_version": version, "as_of": utc_text(when), "results": results,
                    "warnings": stale_warnings(many, when, horizon_days=horizon_days)})


def field_problems(errors: list[dict], body, *, prefix: str | None = None) -> list[dict]:
    """pydantic's errors as {field, problem}, e.g. ``body.0.events.1.occurred_at``.

    The body is "one lead or a list": pydantic reports against both shapes, tagged ``Lead`` and
    ``list[Lead]``; only the shape the client sent is relevant, and the tag is noise. ``body`` is
    the parsed body; ``prefix`` goes before every location (``body``).
    """
    shape = "list[Lead]" if isinstance(body, list) else "Lead"
    problems = []
    for item in errors:
        loc = [prefix, *item["loc"]] if prefix else list(item["loc"])
        if len(loc) > 1 and loc[0] == "body" and loc[1] in ("Lead", "list[Lead]"):
            if loc[1] != shape:
                continue
            del loc[1]
        problems.append({"field": ".".join(str(part) for part in loc), "problem": item["msg"]})
    return problems


def _as_of(query_string: bytes) -> datetime | None:
    """``as_of`` of the query as FastAPI read it: Starlette's parsing (the last value wins), then the validator."""
    values = [value for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
              if name == "as_of"]
    if not values:
        return None
    try:
        return _AS_OF.validate_python(values[-1])
    except ValidationError as error:
        raise InvalidLeads(field_problems(error.errors(), None, prefix="query.as_of")) from None


def _as_sent(error: InvalidLeads, single: bool) -> InvalidLeads:
    """The scoring's problems named as the client sent the body: one lead sent as an object has fields body.<name>."""
    if single:
        error.problems = [{**p, "field": p["field"].replace("body.0", "body", 1)} for p in error.problems]
    return error


def _this_second() -> str:
    """Now in UTC to the second, as ``utc_text`` writes it (``2026-01-01T00:00:00+00:00``), without pandas (20 us)."""
    return datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat() + "+00:00"


async def _body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *_JSON, *(headers or ())]})
    await send({"type": "http.response.body", "body": body})
