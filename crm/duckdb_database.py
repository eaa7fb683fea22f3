"""A DuckDB database file through DuckDB's own Python API (bulk ``INSERT ... SELECT * FROM frame``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crm.database_base import Database
from features.contract import DataContractError


class DuckDBDatabase(Database):
    """A DuckDB database file, through DuckDB's own Python API."""

    backend = "duckdb"

    def __init__(self, path):
        self.path = Path(path)
        self.url = f"duckdb:///{self.path}"

    def _connect(self, *, read_only: bool = False):
        import duckdb

        return duckdb.connect(str(self.path), read_only=read_only)

    def _read_sql(self, sql: str, *, read_only: bool = False) -> pd.DataFrame:
        if not self.path.exists():
            raise DataContractError(f"{self.path}: no such DuckDB file.")
        with self._connect(read_only=read_only) as con:
            return con.sql(sql).df()

    def _transaction(self):
        return _DuckDBTransaction(self)

    def _exists(self, con, table: str) -> bool:
        schema, _, name = table.rpartition(".")
        return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                                "AND table_schema = coalesce(?, current_schema())", [name, schema or None])
                    .fetchall()[0][0])

    def _create(self, con, table: str, frame: pd.DataFrame) -> None:
        # Types from a row, not from none: DuckDB reads an empty object column (text ids) as NULL-typed.
        con.register("_frame", frame.head(1))
        con.execute(f"CREATE TABLE {self.quote(table)} AS SELECT * FROM _frame LIMIT 0")
        con.unregister("_frame")

    def _insert(self, con, table: str, frame: pd.DataFrame) -> None:
        con.register("_frame", frame)
        columns = ", ".join(f'"{column}"' for column in frame.columns)
        con.execute(f"INSERT INTO {self.quote(table)} ({columns}) SELECT {columns} FROM _frame")
        con.unregister("_frame")

    def _add_columns(self, con, table: str, frame: pd.DataFrame) -> None:
        """Columns of ``frame`` the table lacks are added (a later run with more columns than the first)."""
        schema, _, name = table.rpartition(".")
        present = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = coalesce(?, current_schema())", [name, schema or None]).fetchall()}
        for column in frame.columns:
            if column not in present:
                con.register("_frame", frame[[column]].head(1))
                kind = con.sql(f'SELECT "{column}" FROM _frame').types[0]
                con.unregister("_frame")
                con.execute(f'ALTER TABLE {self.quote(table)} ADD COLUMN "{column}" {kind}')

    def _swap(self, con, staging: str, table: str) -> None:
        con.execute(f"DROP TABLE IF EXISTS {self.quote(table)}")
        con.execute(f"ALTER TABLE {self.quote(staging)} RENAME TO \"{table.rpartition('.')[2]}\"")


class _DuckDBTransaction:
    def __init__(self, database: DuckDBDatabase):
        self.database = database

    def __enter__(self):
        self.database.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = self.database._connect()
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, kind, error, traceback):
        try:
            self.con.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.con.close()
        return False


def duckdb_path(url: str) -> str:
    """``duckdb:///relative.duckdb`` and ``duckdb:////abs/path.duckdb``, as SQLAlchemy's duckdb-engine reads them."""
    rest = url[len("duckdb://"):]
    return rest[1:] if rest.startswith("/") else rest
