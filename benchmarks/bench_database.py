"""Writing the same scores to Parquet, a DuckDB file and PostgreSQL (pgserver), atomically in chunks: rows/s.

    .venv/bin/python benchmarks/bench_database.py [--rows 300000] [--chunk-size 100000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm.database import connect  # noqa: E402
from scoring.batch import REASON_COLUMNS  # noqa: E402
from scoring.score_file import AtomicScoreFile  # noqa: E402


def score_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows shaped like serve.py score's output, reasons drawn from a pool of realistic texts."""
    rng = np.random.default_rng(seed)
    probability = rng.beta(1, 6, n)
    pool = np.array([f"{what} {k} days ago (+{rng.uniform(0.1, 2):.2f})"
                     for what in ("requested a demo", "viewed pricing", "opened an e-mail", "attended a webinar")
                     for k in range(1, 60)], dtype=object)
    frame = pd.DataFrame({
        "lead_id": np.arange(1, n + 1, dtype=np.int64),
        "probability": probability,
        "score": np.rint(probability * 100).astype(np.int64),
        "tier": np.where(probability > 0.4, "SQL", np.where(probability > 0.2, "MQL", "nurture")).astype(object),
        "fit_score": rng.integers(0, 100, n),
        "engagement_score": rng.integers(0, 100, n),
        **{column: pool[rng.integers(0, len(pool), n)] for column in REASON_COLUMNS},
        "model_version": "3",
        "as_of": pd.Timestamp("2026-03-01"),
        "scored_at": pd.Timestamp("2026-03-01 02:00:00"),
    })
    return frame


def timed(sink, frame: pd.DataFrame, chunk_size: int) -> float:
    started = time.perf_counter()
    with sink as writer:
        for start in range(0, len(frame), chunk_size):
            writer.write(frame.iloc[start:start + chunk_size])
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args(argv)
    frame = score_rows(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="lead-scoring-bench-db-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(folder / "postgres", cleanup_mode="delete")
    try:
        seconds = {
            "parquet file": timed(AtomicScoreFile(folder / "scores.parquet"), frame, args.chunk_size),
            "duckdb file": timed(connect(folder / "scores.duckdb").write_table("scores"), frame, args.chunk_size),
            "postgresql (COPY)": timed(connect(server.get_uri()).write_table("scores"), frame, args.chunk_size),
        }
        rows = connect(server.get_uri()).read(query="SELECT count(*) AS n FROM scores")["n"].item()
        if rows != len(frame):
            raise SystemExit(f"PostgreSQL holds {rows} rows, expected {len(frame)}")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    base = seconds["parquet file"]
    print(f"{len(frame):,} score rows ({frame.shape[1]} columns, reasons as text) in chunks of {args.chunk_size:,}, "
          "each written atomically:")
    for name, value in seconds.items():
        print(f"  {name:<20}{value:7.2f} s  {len(frame) / value:>10,.0f} rows/s  {value / base:5.1f}x the Parquet time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
