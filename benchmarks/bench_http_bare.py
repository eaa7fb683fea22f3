"""The floor of ``make bench-http``: a bare FastAPI app that predicts one ready row of the served model.

``POST /predict`` reads the request body and answers the probability of one feature row encoded
once at start (for LightGBM the booster's codes, ``Booster.predict`` on one thread; for the
logistic pipeline its transformed row, the classifier's ``predict_proba``). No parsing of the lead,
no features, no contributions, no reasons, no middleware: what any HTTP service of this model
costs at least. It runs under uvicorn with the service's own settings (httptools, no access log),
one worker, so the two servers' CPU per request compare like for like.

Started by ``bench_http.py`` as ``uvicorn bench_http_bare:bare_app --factory`` with
``BENCH_BARE_SETTINGS`` (JSON: ``model_uri`` and one feature ``row`` as a dict) in the environment.
"""

from __future__ import annotations

import json
import os

# At module level: FastAPI resolves the route's (postponed) annotations in this module's namespace.
from fastapi import Request

SETTINGS_VARIABLE = "BENCH_BARE_SETTINGS"


def bare_app():
    """The app: load the model, encode the row once, predict it on every request."""
    import pandas as pd
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from models.estimators import inner_pipeline
    from registry.loading import load_bundle
    from registry.store import use_default_store

    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    use_default_store()
    bundle, _ = load_bundle(settings["model_uri"])
    pipeline = inner_pipeline(bundle.model)
    frame = bundle.conform(pd.DataFrame([settings["row"]]))
    classifier = pipeline[-1]
    if hasattr(classifier, "booster_"):
        booster, codes = classifier.booster_, pipeline[0].to_codes(frame)

        def predict() -> float:
            return float(booster.predict(codes, num_threads=1)[0])
    else:
        ready = pipeline[:-1].transform(frame)

        def predict() -> float:
            return float(classifier.predict_proba(ready)[0, 1])

    app = FastAPI()

    @app.post("/predict")
    async def predict_route(request: Request):
        await request.body()
        return JSONResponse({"probability": predict()})

    return app
