"""One lead with 20 events, in process: features and scoring with reasons, plain route against the batch route.

Both routes run in the same process on the same leads, alternating, so a busy machine moves both:
wall-clock p50/p99 and CPU seconds per lead (``time.process_time``) of each, and their ratios. The
batch route is ``lead_features`` forced through ``build_features`` (and ``event_key`` unremembered),
as the service did before ``features/single_lead.py``.

    python benchmarks/bench_lead_route.py [--data bench_data/100000] [--rounds 2000]

Needs ``make bench`` data (``bench_data/<leads>/`` and ``bench_data/bench_model.joblib``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
EVENTS_PER_LEAD = 20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(PROJECT / "bench_data" / "100000"))
    parser.add_argument("--rounds", type=int, default=2000, help="leads scored per route (after warm-up)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT))
    import features.spec
    import scoring.lead_requests
    from models.bundle import ModelBundle
    from scoring.lead_requests import lead_features

    data = Path(args.data)
    bundle = ModelBundle.load(data.parent / "bench_model.joblib")
    as_of = pd.Timestamp(json.loads((data / "bench_end.json").read_text())["end"])
    leads = _sample_leads(data, as_of)

    @contextmanager
    def batch_route():
        few, cached = scoring.lead_requests.FEW_LEADS, features.spec._cached_event_key
        scoring.lead_requests.FEW_LEADS, features.spec._cached_event_key = 0, features.spec._event_key
        try:
            yield
        finally:
            scoring.lead_requests.FEW_LEADS, features.spec._cached_event_key = few, cached

    @contextmanager
    def plain_route():
        yield

    routes = {"batch route (before)": batch_route, "plain route (now)": plain_route}
    wall = {name: {"features": [], "score": []} for name in routes}
    cpu = {name: {"features": 0.0, "score": 0.0} for name in routes}
    for k in range(args.rounds + 100):
        lead = leads[k % len(leads)]
        for name, route in routes.items():
            with route():
                begin, begin_cpu = time.perf_counter(), time.process_time()
                built_rows = lead_features(bundle.spec, [lead], as_of)
                built, built_cpu = time.perf_counter(), time.process_time()
                bundle.score_with_reasons(built_rows)
                done, done_cpu = time.perf_counter(), time.process_time()
            if k >= 100:  # warm-up
                wall[name]["features"].append(built - begin)
                wall[name]["score"].append(done - built)
                cpu[name]["features"] += built_cpu - begin_cpu
                cpu[name]["score"] += done_cpu - built_cpu
    print(f"one lead, {EVENTS_PER_LEAD} events, {args.rounds:,} leads per route, model "
          f"{type(bundle.model).__name__} ({data.parent / 'bench_model.joblib'})")
    print(f"{'':24}{'stage':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/lead':>13}")
    summary = {}
    for name in routes:
        for stage in ("features", "score"):
            times = np.array(wall[name][stage]) * 1e3
            per_lead = cpu[name][stage] / args.rounds * 1e3
            summary[name, stage] = (np.median(times), per_lead)
            print(f"{name:24}{stage:>10}{np.median(times):9.2f}{np.percentile(times, 99):9.2f}{per_lead:13.2f}")
        total = np.add(wall[name]["features"], wall[name]["score"]) * 1e3
        summary[name, "total"] = (np.median(total), (cpu[name]["features"] + cpu[name]["score"]) / args.rounds * 1e3)
        print(f"{name:24}{'total':>10}{np.median(total):9.2f}{np.percentile(total, 99):9.2f}"
              f"{summary[name, 'total'][1]:13.2f}")
    before, now = routes
    print("before / now: " + ", ".join(
        f"{stage} {summary[before, stage][0] / summary[now, stage][0]:.2f}x wall, "
        f"{summary[before, stage][1] / summary[now, stage][1]:.2f}x CPU" for stage in ("features", "score", "total")))
    return 0


def _sample_leads(data: Path, as_of: pd.Timestamp) -> list:
    """200 leads with at least 20 events before ``as_of``, each with its latest 20, as request bodies."""
    import pyarrow.parquet as pq

    from scoring.lead_requests import Lead

    leads = pd.read_parquet(data / "leads.parquet").head(20_000)
    events = pq.read_table(data / "events.parquet", filters=[("lead_id", "in", leads["lead_id"].tolist())],
                           columns=["lead_id", "occurred_at", "event_type"]).to_pandas()
    seen = events[events["occurred_at"] < as_of].sort_values(["lead_id", "occurred_at"], kind="stable")
    counts = seen["lead_id"].value_counts()
    chosen = leads[leads["lead_id"].isin(counts.index[counts >= EVENTS_PER_LEAD])].head(200)
    history = {lead: group for lead, group in seen[seen["lead_id"].isin(chosen["lead_id"])]
               .groupby("lead_id")}
    attributes = [column for column in leads.columns if column not in ("lead_id", "created_at")]
    bodies = []
    for lead in chosen.itertuples(index=False):
        own = history[lead.lead_id].tail(EVENTS_PER_LEAD)
        bodies.append(Lead.model_validate({
            "lead_id": int(lead.lead_id), "created_at": lead.created_at.isoformat(),
            "attributes": {column: _plain(getattr(lead, column)) for column in attributes},
            "events": [{"occurred_at": t.isoformat(), "event_type": str(kind)}
                       for t, kind in zip(own["occurred_at"], own["event_type"])]}))
    return bodies


def _plain(value):
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value if isinstance(value, (str, int, float)) else str(value)


if __name__ == "__main__":
    sys.exit(main())
