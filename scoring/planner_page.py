"""The tier planner's routes: ``GET /planner`` (the page), ``GET /planner/summary``, ``POST /planner/policy``.

An ``APIRouter`` the service's app factory mounts. Reading needs nothing (the page shows bins and
cut-offs, no lead); saving or restoring a policy needs the API's bearer token when one is set.
"""

from __future__ import annotations

import functools
import logging
import threading

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from scoring.api_contract import ERROR_RESPONSES
from scoring.planner import OpenBase, cutoff_from_setting, default_leads_per_week, planner_summary

_log = logging.getLogger(__name__)


class PolicyRequest(BaseModel):
    """Cut-offs to save: each as the setting it was made with (probability, volume or capacity)."""

    sql: dict = Field(description='e.g. {"mode": "per_week", "value": 40} or {"mode": "probability", "value": 0.3}')
    mql: dict = Field(description='e.g. {"mode": "capacity", "reps": 2, "per_rep": 150}')
    leads_per_week: float | None = Field(None, description="leads entering the base a week (default: the page's)")
    by: str = Field(description="who decides")
    reason: str = Field(description="why these cut-offs")


class RestoreRequest(BaseModel):
    entry: int = Field(description="history entry to make current again (0: the thresholds of training)")
    by: str
    reason: str


def planner_router(bundle, identity: dict, *, open_base: OpenBase | None, authorised) -> APIRouter:
    """The planner's routes for the served model; ``authorised`` is the service's bearer-token dependency."""
    from registry.planner_tables import latest_rules_gains, logged_test_bins

    router = APIRouter()
    name, version = identity.get("model_name"), str(identity.get("model_version", ""))
    registered = bool(name) and version.isdigit()
    params = bundle.metadata.get("params", {})
    bins = open_base.bins if open_base is not None else 1_000
    logged = {}  # read from MLflow on the first request, not when the app is built

    def summary() -> dict:
        from registry.tier_policy import tier_policy_history

        if not logged:
            logged.update(test_bins=logged_test_bins(identity.get("run_id")),
                          rules=latest_rules_gains(name, version) if registered else None)
        test_bins, rules = logged["test_bins"], logged["rules"]
        history = tier_policy_history(name, version) if registered else []
        trained = bundle.thresholds.as_dict()
        current = {key: history[-1][key] for key in ("sql", "mql")} if history else trained
        return planner_summary(identity=identity, trained=trained, current=current,
                               open_base=open_base.binned() if open_base is not None else None,
                               test_bins=test_bins, rules=rules, history=history,
                               won_amount=params.get("won_amount_median"), horizon_days=params.get("horizon_days"),
                               bins=bins)

    if open_base is not None:  # a served planner: MLflow's first calls and the template warm up before a visitor
        threading.Thread(target=_warm, args=(summary,), name="planner-warm-up", daemon=True).start()

    @router.get("/planner", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(render_planner(await run_in_threadpool(summary)))

    @router.get("/planner/summary")
    async def summary_route() -> dict:
        """The planner's data: open-base and test-lead probability bins, the rules' gains, the policy history."""
        return await run_in_threadpool(summary)

    @router.post("/planner/policy", dependencies=[Depends(authorised)], responses=ERROR_RESPONSES)
    async def save(request: PolicyRequest) -> JSONResponse:
        """Save cut-offs as this model version's tier policy (used by score, spark-score and /score from their next run)."""
        return await run_in_threadpool(_saved, request)

    @router.post("/planner/policy/restore", dependencies=[Depends(authorised)], responses=ERROR_RESPONSES)
    async def restore(request: RestoreRequest) -> JSONResponse:
        """Make an earlier history entry the current policy again."""
        from registry.tier_policy import PolicyRefused, restore_tier_policy

        if not registered:
            return _refused("This model has no registered version to keep a tier policy on.")
        try:
            entry = await run_in_threadpool(restore_tier_policy, name, version, entry=request.entry, by=request.by,
                                            reason=request.reason)
        except PolicyRefused as error:
            return _refused(str(error))
        return JSONResponse({"saved": entry})

    def _saved(request: PolicyRequest) -> JSONResponse:
        from registry.tier_policy import PolicyRefused, save_tier_policy

        if not registered:
            return _refused("This model has no registered version to keep a tier policy on; serve models:/name@alias.")
        binned = open_base.binned() if open_base is not None else None
        open_bins = binned[0] if binned is not None else None
        per_week = request.leads_per_week
        if per_week is None and binned is not None:
            per_week = default_leads_per_week(binned[1]["leads"], float(params.get("horizon_days") or 90))
        try:
            sql = cutoff_from_setting(request.sql, open_bins, leads_per_week=per_week, bins=bins, what="SQL")
            mql = cutoff_from_setting(request.mql, open_bins, leads_per_week=per_week, bins=bins, what="MQL")
            entry = save_tier_policy(name, version, sql=sql, mql=mql, by=request.by, reason=request.reason,
                                     settings={"sql": request.sql, "mql": request.mql, "leads_per_week": per_week})
        except (ValueError, PolicyRefused) as error:
            return _refused(str(error))
        _log.info("tier policy of %s version %s saved: SQL %.4f, MQL %.4f", name, version, sql, mql)
        return JSONResponse({"saved": entry})

    return router


def render_planner(summary: dict) -> str:
    """The page: one template, the summary inlined as JSON (one request to first paint), script and style inside."""
    return _template().render(summary=summary)


@functools.lru_cache(maxsize=1)
def _template():
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("scoring", "templates"),
                                     autoescape=jinja2.select_autoescape(["html"]))
    return environment.get_template("planner.html")


def _warm(summary) -> None:
    try:
        render_planner(summary())
    except Exception as error:  # noqa: BLE001 - a failed warm-up costs only speed; the request will say why
        _log.info("planner warm-up failed: %s", error)


def _refused(sentence: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"field": "body", "problem": sentence}]})
