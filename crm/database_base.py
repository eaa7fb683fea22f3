"""What every database does for a run: read a table or a query, write a table atomically, append, probe.

The backends (``crm.duckdb_database``, ``crm.sqlalchemy_database``) supply the handful of
primitives (``_transaction``, ``_exists``, ``_create``, ``_insert``, ``_add_columns``, ``_swap``,
``_read_sql``) these are built from.
"""

from __future__ import annotations

import re
import uuid

import pandas as pd

from crm.database_guards import DatabaseError, check_read_query, read_error, write_error
from crm.spooled_writer import SpooledTableWrite
from crm.table_writer import TableWriter
from features.contract import DataContractError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class Database:
    """Read tables or queries into pandas; write a table atomically in chunks; append to a table."""

    url: str

    def read(self, *, table: str | None = None, query: str | None = None) -> pd.DataFrame:
        """One table or the result of one query, timestamps as naive UTC."""
        if (table is None) == (query is None):
            raise ValueError("Read a database table or a query: give exactly one of table= and query=.")
        if query is not None:  # a query reads only: one SELECT, on a connection that cannot write
            check_read_query(query, where=self.display, backend=self.backend)
        sql = f"SELECT * FROM {self.quote(check_table_name(table))}" if table is not None else query
        try:
            frame = self._read_sql(sql, read_only=query is not None)
        except DataContractError:
            raise
        except Exception as error:  # driver errors differ per database; say what was read and from where
            raise read_error(self.display, f"table {table!r}" if table is not None else f"query {query!r}",
                             error) from None
        return _naive_utc_columns(frame)

    def write_table(self, table: str) -> TableWriter:
        """A context manager: ``write(frame)`` chunks into staging, swapped in for ``table`` on success.

        The table is probed first (see :meth:`check_writable`), so a run that cannot write it stops
        before any work.
        """
        self.check_writable(check_table_name(table))
        return TableWriter(self, table)

    def write_table_retried(self, table: str, *, chunk_rows: int = 100_000, progress=None) -> SpooledTableWrite:
        """Like :meth:`write_table` for a batch run: chunks spooled locally, written at the end in one
        transaction, started again after a dropped connection (``crm.spooled_writer``)."""
        self.check_writable(check_table_name(table))
        return SpooledTableWrite(self, table, chunk_rows=chunk_rows, progress=progress)

    def retried(self, action, *, doing: str):
        """``action()``; a backend whose connection can drop tries it again (see ``SQLAlchemyDatabase.retried``)."""
        return action()

    def check_writable(self, table: str) -> None:
        """Refuse, with one line, an output table this run cannot write: connection, rights, a run writing it
        now, views built on it. Probed in a transaction that is rolled back: nothing changes."""
        try:
            with self._transaction() as handle:
                self._lock(handle, table)
                views = self._dependent_views(handle, table)
                if views:
                    raise DatabaseError(f"{self.display}: table {table!r} cannot be replaced: the view(s) "
                                        f"{', '.join(views)} depend on it. Drop them first, or write another table.")
                schema, _, name = table.rpartition(".")
                self._create(handle, f"{schema + '.' if schema else ''}_probe_{name}_{uuid.uuid4().hex[:8]}",
                             pd.DataFrame({"probe": [0]}))
                raise _RolledBack
        except _RolledBack:
            return
        except DataContractError:
            raise
        except Exception as error:
            raise write_error(self.display, table, error) from None

    def _lock(self, handle, table: str) -> None:
        """Refuse when another run is writing ``table`` now (a lock held until this transaction ends)."""

    def _dependent_views(self, handle, table: str) -> list[str]:
        return []

    def append(self, table: str, frame: pd.DataFrame) -> None:
        """Append rows to ``table`` in one transaction, creating it from the frame's columns if absent."""
        check_table_name(table)
        try:
            with self._transaction() as handle:
                if not self._exists(handle, table):
                    self._create(handle, table, frame)
                else:
                    self._add_columns(handle, table, frame)
                self._insert(handle, table, frame)
        except DataContractError:
            raise
        except Exception as error:
            raise write_error(self.display, table, error) from None

    def has_table(self, table: str) -> bool:
        with self._transaction() as handle:
            return self._exists(handle, check_table_name(table))

    @property
    def display(self) -> str:
        """The URL without a password, for messages."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    def quote(self, name: str) -> str:
        return ".".join(f'"{part}"' for part in name.split("."))


def check_table_name(name: str, *, what: str = "table") -> str:
    """A table name is ``name`` or ``schema.name`` of letters, digits and underscores; anything else is refused."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"The {what} name must be letters, digits and underscores, optionally schema-qualified "
                         f"(schema.table). Got {name!r} instead.")
    return name


class _RolledBack(Exception):
    """Raised inside a probe's transaction so that it rolls back."""


def _naive_utc_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Zoned timestamp columns (PostgreSQL ``timestamptz``) become naive UTC, as every builder expects."""
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            frame[column] = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif values.dtype == object and len(values) and _all_zoned_datetimes(values):
            frame[column] = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    return frame


def _all_zoned_datetimes(values: pd.Series) -> bool:
    import datetime

    present = values.dropna()
    return bool(len(present)) and all(isinstance(value, datetime.datetime) and value.tzinfo is not None
                                      for value in present.head(100))
