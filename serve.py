"""Scoring entry point: ``score`` a whole lead base as of a date, or serve scores over ``http``.

    python serve.py score --model models:/lead-conversion@champion \
        --leads leads.parquet --events events.parquet --deals deals.parquet --out scores.parquet
    python serve.py score --model models:/my-model@champion --config config.toml --leads export.csv --out scores.csv
    python serve.py http --model models:/lead-conversion@champion --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REASON_COLUMNS = tuple(f"{side}_reason_{k}" for side in ("positive", "negative") for k in (1, 2, 3))
SCORE_COLUMNS = ("lead_id", "probability", "score", "tier", "fit_score", "engagement_score", *REASON_COLUMNS,
                 "model_version", "as_of", "scored_at")


def score_lead_base(bundle, leads: pd.DataFrame, events, *, as_of, out, deals: pd.DataFrame | None = None,
                    model_version: str = "", thresholds=None, chunk_size: int = 200_000,
                    explain: bool = True, progress=None) -> pd.Series:
    """Score every lead open at ``as_of`` into ``out`` (.parquet or .csv); return the tier counts.

    Beside probability, score and tier each row carries the fit and engagement sub-scores and up
    to three positive and three negative reasons as text ("requested a demo 3 days ago (+1.20)");
    ``explain=False`` leaves those out, for speed (LightGBM's exact contributions cost about ten
    times its prediction).
    Leads are processed in chunks so memory stays bounded by ``chunk_size``. The output is
    written to a temporary file beside ``out`` and renamed at the end: a failed run leaves the
    previous file untouched and no partial one.
    """
    from features.build import build_features
    from features.contract import utc_now
    from models.reasons import reason_columns
    from training.snapshots import open_leads

    if chunk_size <= 0:
        raise ValueError(f"The 'chunk_size' parameter of score_lead_base must be positive. Got {chunk_size!r}.")
    out = Path(out)
    snapshots = open_leads(leads, deals, as_of)
    scored_at = utc_now().floor("s")
    started = time.perf_counter()
    counts = pd.Series(0, index=["SQL", "MQL", "nurture"], dtype=np.int64)
    with _AtomicWriter(out) as writer:
        for start in range(0, max(len(snapshots), 1), chunk_size):
            chunk = snapshots.iloc[start:start + chunk_size]
            features = build_features(chunk, leads, events, bundle.spec)
            if explain:
                scores, reasons = bundle.score_with_reasons(features, thresholds=thresholds)
                columns = reason_columns(reasons)
            else:
                scores, columns = bundle.score(features, thresholds=thresholds), {}
            frame = pd.DataFrame({
                "lead_id": chunk["lead_id"].to_numpy(),
                **{column: scores[column].to_numpy() for column in scores.columns},
                **columns,
                "model_version": model_version,
                "as_of": chunk["as_of"].to_numpy(),
                "scored_at": scored_at,
            })
            writer.write(frame)
            counts = counts.add(frame["tier"].value_counts(), fill_value=0).astype(np.int64)
            if progress:
                done = start + len(chunk)
                elapsed = time.perf_counter() - started
                progress(f"scored {done:,}/{len(snapshots):,} open leads "
                         f"({done / max(len(snapshots), 1):.0%}, {done / max(elapsed, 1e-9):,.0f} leads/s)")
    return counts


class _AtomicWriter:
    """Chunked Parquet or CSV written to a temp file in the target folder, renamed on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        suffix = self.path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(f"Output {self.path}: expected a .parquet or .csv file name. Got {suffix!r}.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(handle)
        self.temporary = Path(name)
        self.parquet = None
        self.rows = 0
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.path.suffix.lower() == ".csv":
            frame.to_csv(self.temporary, mode="a", header=self.rows == 0, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.temporary, table.schema)
            self.parquet.write_table(table)
        self.rows += len(frame)

    def __exit__(self, kind, error, traceback):
        try:
            if self.parquet is not None:
                self.parquet.close()
            if kind is None:
                # mkstemp makes the file private (0600); the output gets the usual umask instead.
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.temporary, 0o666 & ~umask)
                os.replace(self.temporary, self.path)
        finally:
            self.temporary.unlink(missing_ok=True)  # gone already after a successful rename
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serve.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score every open lead of a lead base")
    score.add_argument("--model", default="models:/lead-conversion@champion",
                       help="MLflow model URI (default: %(default)s)")
    score.add_argument("--config", help="project config (TOML) of your export: reads the leads as it says")
    score.add_argument("--leads", help="leads table (.csv or .parquet); with --config, default: the config's file")
    score.add_argument("--events", help="event log (.csv or .parquet), when the model uses one")
    score.add_argument("--deals", help="closed deals; leads closed before --as-of are not scored")
    score.add_argument("--as-of", help="score as of this time (default: now, UTC)")
    score.add_argument("--out", required=True, help="output file (.parquet or .csv), written atomically")
    score.add_argument("--sql-threshold", type=float, help="override the model's SQL probability threshold")
    score.add_argument("--mql-threshold", type=float, help="override the model's MQL probability threshold")
    score.add_argument("--chunk-size", type=int, default=200_000, help="leads per chunk (default: %(default)s)")
    score.add_argument("--no-reasons", dest="explain", action="store_false",
                       help="leave out fit/engagement sub-scores and reasons (faster)")

    http = commands.add_parser("http", help="serve POST /score, GET /health, GET /model over HTTP",
                               description="Bearer-token auth is on when the environment variable "
                                           "LEAD_SCORING_TOKEN is set.")
    http.add_argument("--model", default="models:/lead-conversion@champion",
                      help="MLflow model URI (default: %(default)s)")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    http.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    http.add_argument("--max-body-bytes", type=int, default=1_000_000,
                      help="larger request bodies get 413 (default: %(default)s)")
    http.add_argument("--max-leads", type=int, default=1_000, help="leads per request (default: %(default)s)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "http":
        return serve_http(args)
    from features.contract import DataContractError, naive_utc, utc_now
    from models.tiers import TierThresholds
    from training.config import load_crm_or_config
    from training.tracking import load_bundle, use_default_store

    use_default_store()
    try:
        as_of = naive_utc(args.as_of) if args.as_of else utc_now()
        if args.config is None and args.leads is None:
            raise ValueError("score needs --leads, or --config with the export it describes.")
        _, leads, _, events, deals = load_crm_or_config(args.config, leads=args.leads, events=args.events,
                                                        deals=args.deals, for_training=False,
                                                        now=max(as_of, utc_now()))
        bundle, identity = load_bundle(args.model)
        thresholds = None
        if args.sql_threshold is not None or args.mql_threshold is not None:
            thresholds = TierThresholds(mql=args.mql_threshold if args.mql_threshold is not None
                                        else bundle.thresholds.mql,
                                        sql=args.sql_threshold if args.sql_threshold is not None
                                        else bundle.thresholds.sql)
        counts = score_lead_base(bundle, leads, events, as_of=as_of, out=args.out, deals=deals,
                                 model_version=identity["model_version"], thresholds=thresholds,
                                 chunk_size=args.chunk_size, explain=args.explain,
                                 progress=lambda line: print(line, file=sys.stderr))
    except (DataContractError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {int(counts.sum()):,} scores as of {as_of} to {args.out} "
          f"(model {identity.get('model_name', '')} version {identity['model_version']})")
    for tier, count in counts.items():
        print(f"  {tier:<8}{count:>10,}")
    return 0


def serve_http(args) -> int:
    """Load the model once, then serve it with uvicorn until interrupted."""
    import uvicorn

    from models.service import TOKEN_ENVIRONMENT_VARIABLE, create_app
    from training.tracking import load_bundle, use_default_store

    use_default_store()
    bundle, identity = load_bundle(args.model)
    app = create_app(bundle, identity, max_body_bytes=args.max_body_bytes, max_leads=args.max_leads,
                     token=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None)
    # The model's objects live as long as the process: keep the garbage collector from rescanning them.
    gc.collect()
    gc.freeze()
    print(f"serving {args.model} (version {identity['model_version']}) on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    # No access log: one line per request costs more than scoring a lead.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
