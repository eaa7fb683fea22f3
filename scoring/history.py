"""Score history: each batch run's scores appended to a date-partitioned Parquet dataset or a database table.

Layout: ``<folder>/scored_date=YYYY-MM-DD/run-<scored_at>-<id>.parquet``, one file per run, which
DuckDB, Spark and pandas read as one table (hive partitioning). A run's file is written under a
hidden temporary name carrying the writer's process id and renamed only after the run's own output
was written, so a failed run leaves no history behind; the temp files of killed writers are removed
by the next run. A file that is not readable Parquet (empty, cut short, overwritten) is skipped with
one warning naming it and set aside under ``<folder>/_damaged/``, so one bad file never stops a run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from crm.temporaries import process_alive

#: Score points a lead must move (0-100 scale) to count as rising or falling rather than steady.
STEADY_POINTS = 5
TRENDS = ("rising", "steady", "falling", "new")


class ScoreHistory:
    """A folder of past scoring runs, partitioned by the date they were scored."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def read(self, *, lead_id=None, columns=None) -> pd.DataFrame:
        """Every stored row (or one lead's), oldest run first; an empty frame when nothing is stored yet."""
        import duckdb

        files = self._files()
        if not files:
            return pd.DataFrame(columns=list(columns) if columns else ["lead_id", "scored_at", "score"])
        select = ", ".join(f'"{column}"' for column in columns) if columns else "* EXCLUDE (scored_date)"
        where, parameters = "", []
        if lead_id is not None:
            where, parameters = "WHERE CAST(lead_id AS VARCHAR) = ?", [str(lead_id)]
        with duckdb.connect() as con:
            return con.execute(f"SELECT {select} FROM read_parquet(?, hive_partitioning = true, union_by_name = true) "
                               f"{where} ORDER BY scored_at, as_of, lead_id",
                               [[str(path) for path in files], *parameters]).df()

    def latest(self) -> pd.DataFrame:
        """Each lead's most recent stored score: ``lead_id``, ``previous_score``, ``previous_scored_at``."""
        import duckdb

        files = self._files()
        if not files:
            return _no_previous_scores()
        with duckdb.connect() as con:
            return con.execute(
                "SELECT lead_id, score AS previous_score, scored_at AS previous_scored_at "
                "FROM read_parquet(?, hive_partitioning = true, union_by_name = true) "
                "QUALIFY row_number() OVER (PARTITION BY lead_id ORDER BY scored_at DESC, as_of DESC) = 1",
                [[str(path) for path in files]]).df()

    def writer(self, scored_at) -> HistoryWriter:
        return HistoryWriter(self.folder, pd.Timestamp(scored_at))

    def latest_run_file(self) -> Path | None:
        """The newest run's file (names sort by scored date, then scored time), or None when nothing is stored."""
        files = self._files()
        return files[-1] if files else None

    def _files(self) -> list[Path]:
        """The runs' files that read as Parquet; damaged ones are set aside with a warning, dead writers' temp files removed."""
        if not self.folder.exists():
            return []
        remove_dead_temporaries(self.folder)
        files = []
        for path in sorted(self.folder.glob("scored_date=*/*.parquet")):
            problem = _unreadable(path)
            if problem is None:
                files.append(path)
            else:
                _set_aside(self.folder, path, problem)
        return files


def remove_dead_temporaries(folder: Path) -> list[Path]:
    """Remove the temp files of history writers whose process is gone (``.<run>.<pid>.<random>.tmp``)."""
    removed = []
    for candidate in folder.glob("scored_date=*/.run-*.tmp"):
        pid = candidate.name.rsplit(".", 3)[1]  # an old writer's name has no process id: gone too
        if pid.isdigit() and process_alive(int(pid)):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


class DamagedHistoryWarning(UserWarning):
    """A file of the score history that is not readable Parquet; it was skipped and set aside."""


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not a readable Parquet file (from its footer and schema), or None."""
    import pyarrow.parquet as pq

    from crm.readers import parquet_problem

    problem = parquet_problem(path)
    if problem is not None:
        return problem.split(": ", 1)[1].rstrip(".")
    if "lead_id" not in pq.ParquetFile(path).metadata.schema.names:
        return "it has no lead_id column"
    return None


def _set_aside(folder: Path, path: Path, problem: str) -> None:
    aside = folder / "_damaged" / path.parent.name / path.name
    try:
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError as error:
        where = f"left in place: it could not be moved ({error.strerror})"
    warnings.warn(f"score history: skipped {path}: {problem}; {where}.", DamagedHistoryWarning, stacklevel=4)


class HistoryWriter:
    """One run's rows, chunk by chunk, into a hidden file; :meth:`commit` gives it its real name."""

    def __init__(self, folder: Path, scored_at: pd.Timestamp):
        self.partition = folder / f"scored_date={scored_at.date()}"
        self.name = f"run-{scored_at.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        self.temporary = None
        self.parquet = None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.parquet is None:
            self.partition.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.partition, prefix=f".{self.name}.{os.getpid()}.", suffix=".tmp")
            os.close(handle)
            self.temporary = Path(name)
            self.parquet = pq.ParquetWriter(self.temporary, table.schema)
        self.parquet.write_table(table.cast(self.parquet.schema))

    def commit(self) -> Path | None:
        if self.parquet is None:
            return None
        self.parquet.close()
        os.chmod(self.temporary, 0o644)
        path = self.partition / self.name
        os.replace(self.temporary, path)
        self.temporary = None
        return path

    def discard(self) -> None:
        """Drop an uncommitted run (a no-op after :meth:`commit`)."""
        if self.temporary is not None:
            if self.parquet is not None:
                self.parquet.close()
            self.temporary.unlink(missing_ok=True)
            self.temporary = None


def _no_previous_scores() -> pd.DataFrame:
    return pd.DataFrame({"lead_id": pd.Series(dtype=object), "previous_score": pd.Series(dtype="Int64"),
                         "previous_scored_at": pd.Series(dtype="datetime64[us]")})


def with_previous(frame: pd.DataFrame, latest: pd.DataFrame, *, steady_points: float = STEADY_POINTS) -> pd.DataFrame:
    """``frame`` with each lead's ``previous_score``, ``previous_scored_at`` and ``trend`` from ``latest``.

    Leads are matched by their id as text, so an id read as a number one day and as text another
    still finds its past. ``trend`` is ``new`` without a previous score, ``rising`` or ``falling``
    when the score moved by ``steady_points`` or more, else ``steady``.
    """
    keys = pd.Index(latest["lead_id"].astype(str))
    if not keys.is_unique:
        raise ValueError("The score history's latest rows must hold one row per lead.")
    position = keys.get_indexer(frame["lead_id"].astype(str))
    found = position >= 0
    previous = pd.array(np.where(found, latest["previous_score"].to_numpy(dtype=float, na_value=np.nan)[position]
                                 if len(latest) else np.nan, np.nan), dtype="Float64").astype("Int64")
    previous_at = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
    if len(latest):
        stamps = pd.to_datetime(latest["previous_scored_at"]).to_numpy(dtype="datetime64[us]")
        previous_at[found] = stamps[position[found]]
    return frame.assign(previous_score=previous, previous_scored_at=previous_at.to_numpy(),
                        trend=trend(frame["score"], previous, steady_points=steady_points))


def trend(score, previous_score, *, steady_points: float = STEADY_POINTS) -> np.ndarray:
    """``rising`` / ``steady`` / ``falling`` from the change in score points; ``new`` without a previous score."""
    score = np.asarray(score, dtype=float)
    previous = pd.array(previous_score, dtype="Float64").to_numpy(dtype=float, na_value=np.nan)
    change = score - previous
    return np.where(np.isnan(previous), "new",
                    np.where(change >= steady_points, "rising",
                             np.where(change <= -steady_points, "falling", "steady"))).astype(object)


class TableHistory:
    """The same history as one table in a database (``serve.py score --db URL --history-table NAME``).

    A run's rows go in inside one transaction that commits only after the run's output is in
    place; columns a later run adds (reasons after a run without them) are added to the table.
    """

    def __init__(self, database, table: str):
        from crm.database import check_table_name

        self.database, self.table = database, check_table_name(table, what="history table")

    def read(self, *, lead_id=None, columns=None) -> pd.DataFrame:
        if not self.database.has_table(self.table):
            return pd.DataFrame(columns=list(columns) if columns else ["lead_id", "scored_at", "score"])
        select = ", ".join(self.database.quote(column) for column in columns) if columns else "*"
        where = ""
        if lead_id is not None:
            where = f"WHERE CAST(lead_id AS VARCHAR(200)) = '{str(lead_id).replace(chr(39), chr(39) * 2)}' "
        return self.database.read(query=f"SELECT {select} FROM {self.database.quote(self.table)} {where}"
                                        "ORDER BY scored_at, as_of, lead_id")

    def latest(self) -> pd.DataFrame:
        if not self.database.has_table(self.table):
            return _no_previous_scores()
        return self.database.read(query=(
            "SELECT lead_id, score AS previous_score, scored_at AS previous_scored_at FROM ("
            "SELECT lead_id, score, scored_at, row_number() OVER (PARTITION BY lead_id ORDER BY scored_at DESC, "
            f"as_of DESC) AS newest FROM {self.database.quote(self.table)}) AS ranked WHERE newest = 1"))

    def writer(self, scored_at) -> TableHistoryWriter:
        return TableHistoryWriter(self.database, self.table)


class TableHistoryWriter:
    """A run's chunks spooled locally; :meth:`commit` appends them in one transaction, started again after a dropped
    connection (``Database.retried``: 1, 2, 4 s), :meth:`discard` drops the spool. Nothing half-appended either way.

    The spool (``crm.spooled_writer.ParquetChunks``) keeps memory bounded by the chunk; it is named with this
    process's id, so the next run removes the spool of a killed one (``crm.temporaries``).
    """

    def __init__(self, database, table: str):
        self.database, self.table = database, table
        self.spool = self.parquet = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet is None:
            import re

            from crm.spooled_writer import ParquetChunks
            from crm.temporaries import temporary_for

            name = re.sub(r"[^\w.-]", "_", self.table)
            self.spool = temporary_for(Path(tempfile.gettempdir()) / f"lead-scoring-history-{name}",
                                       suffix=".tmp.parquet")
            self.parquet = ParquetChunks(self.spool)
        self.parquet.write(frame)

    def commit(self):
        if self.parquet is not None:
            try:
                self.parquet.close()
                self.database.retried(self._append, doing=f"appending to history table {self.table!r}")
            finally:
                self.discard()
        return self.table

    def discard(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
            self.spool.unlink(missing_ok=True)
            self.spool = self.parquet = None

    def _append(self) -> None:
        """The spooled rows into the table, in one transaction (whole, so starting it again leaves nothing half-done)."""
        import pyarrow.parquet as pq

        from crm.database_guards import write_error
        from features.contract import DataContractError

        try:
            with self.database._transaction() as handle:
                for number, batch in enumerate(pq.ParquetFile(self.spool).iter_batches(batch_size=100_000)):
                    frame = batch.to_pandas()
                    if number == 0:
                        if not self.database._exists(handle, self.table):
                            self.database._create(handle, self.table, frame)
                        else:
                            self.database._add_columns(handle, self.table, frame)
                    self.database._insert(handle, self.table, frame)
        except DataContractError:
            raise
        except Exception as error:
            raise write_error(self.database.display, self.table, error) from None  # the chain stays in __context__


def open_history(folder=None, table=None, *, url=None):
    """The score history a run names: a Parquet ``folder``, a ``table`` in the database at ``url``, or None."""
    if folder and table:
        raise ValueError("Give one score history: --history FOLDER or --history-table TABLE.")
    if folder:
        return ScoreHistory(folder)
    if not table:
        return None
    if url is None:
        raise ValueError("--history-table needs the database it lives in: --db (or --out-db).")
    from crm.database import connect

    return TableHistory(connect(url), table)


#: The columns of a lead's trajectory, as ``lead-serve history --lead`` prints them.
TRAJECTORY_COLUMNS = ("scored_at", "as_of", "model_name", "model_version", "score", "tier", "trend", "fit_score",
                      "engagement_score", "positive_reason_1", "negative_reason_1")


def lead_trajectory(history, lead_id) -> pd.DataFrame:
    """One lead's stored scores, oldest first, in the columns a person reads (empty when it has none)."""
    rows = history.read(lead_id=lead_id)
    return rows[[column for column in TRAJECTORY_COLUMNS if column in rows.columns]]


def read_outcomes(deals, *, db=None) -> pd.DataFrame:
    """The closed deals stored scores are evaluated against: a file, or a table / query in the database ``db``."""
    if not deals:
        raise ValueError("history --evaluate needs --deals (a file, or a table / query with --db).")
    if db:
        from crm.database import connect, read_source

        return read_source(connect(db), deals)
    from crm.readers import read_table

    return read_table(deals, text_columns=("lead_id",), table="deals")  # ids as text, as stored
