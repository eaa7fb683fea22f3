"""CRM tables from a database and score tables into one: any SQLAlchemy URL, a DuckDB file as the embedded default.

A DuckDB file (``duckdb:///crm.duckdb`` or a path ending in ``.duckdb``) is opened with DuckDB
itself rather than through the duckdb-engine SQLAlchemy dialect: DuckDB reads and writes pandas
frames in bulk (``INSERT ... SELECT * FROM frame``), while a SQLAlchemy dialect goes through
row-by-row ``executemany``, and it saves a dependency. Every other URL goes through SQLAlchemy;
PostgreSQL (``postgresql://`` with psycopg 3) is written with ``COPY``, the fastest way in.

A table is written atomically: its rows go to a staging table in one transaction, which at the
end drops the old table and renames the staging table in its place. A run that fails or is
killed half-way rolls back; readers see the old table whole until the new one is complete.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from crm.sql_types import arrow_csv, naive_timestamps, sql_type
from crm.table_writer import TableWriter
from crm.database_guards import (DatabaseError, advisory_lock_key, check_read_query, dependent_views_sql,
                                 read_error, read_only_statements, write_error)
from features.contract import DataContractError, validate_deals, validate_events, validate_leads

DUCKDB_SUFFIXES = (".duckdb", ".ddb")
#: A batch run's read is tried again this many times after a dropped connection, waiting 1 s, 2 s, 4 s.
READ_RETRIES, READ_BACKOFF_SECONDS = 3, 1.0
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


def is_database(target) -> bool:
    """True for a database URL (``scheme://...``) or a DuckDB file path."""
    text = str(target)
    return "://" in text or Path(text).suffix.lower() in DUCKDB_SUFFIXES


def connect(url) -> Database:
    """A :class:`Database` for a SQLAlchemy URL, ``duckdb:///path`` or a ``.duckdb`` file path."""
    text = str(url)
    if text.startswith("duckdb://"):
        return DuckDBDatabase(_duckdb_path(text))
    if "://" not in text:
        if Path(text).suffix.lower() in DUCKDB_SUFFIXES:
            return DuckDBDatabase(text)
        raise ValueError(f"Expected a database URL such as postgresql://user@host/db or duckdb:///crm.duckdb, "
                         f"or a .duckdb file. Got {text!r} instead.")
    return SQLAlchemyDatabase(text)


def load_crm_from_database(url, leads, events=None, deals=None, *, now=None):
    """Read and validate the three tables from a database; returns ``(leads, events, deals)`` like ``load_crm``.

    Each of ``leads``, ``events`` and ``deals`` is a table name (``crm_leads``, ``crm.leads``) or a
    query (``SELECT ... FROM ...``). The event log comes back as a frame; missing optional tables as None.
    """
    database = connect(url)
    lead_table = validate_leads(read_source(database, leads), source=source_name(database, leads), now=now)
    deal_table = None
    if deals is not None:
        deal_table = validate_deals(read_source(database, deals), lead_ids=lead_table["lead_id"],
                                    source=source_name(database, deals), now=now)
    event_table = None
    if events is not None:
        event_table = read_source(database, events)
        validate_events(event_table, lead_ids=lead_table["lead_id"], source=source_name(database, events), now=now)
    return lead_table, event_table, deal_table


def read_source(database: Database, source: str) -> pd.DataFrame:
    """A table name or a query (anything starting with SELECT or WITH) read from ``database``."""
    return database.read(query=source) if is_query(source) else database.read(table=source)


def is_query(source: str) -> bool:
    return bool(re.match(r"^\s*(select|with)\b", str(source), flags=re.IGNORECASE))


def source_name(database: Database, source: str) -> str:
    """How messages name a database source: the URL without password, then the table or the query."""
    return f"{database.display} {'query' if is_query(source) else 'table'} {source!r}"


def check_table_name(name: str, *, what: str = "table") -> str:
    """A table name is ``name`` or ``schema.name`` of letters, digits and underscores; anything else is refused."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"The {what} name must be letters, digits and underscores, optionally schema-qualified "
                         f"(schema.table). Got {name!r} instead.")
    return name


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


def _dropped_connection(error: BaseException, exc) -> BaseException | None:
    """The link of an error's chain saying the server dropped the connection (SQLAlchemy invalidated it), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, exc.PendingRollbackError) or (isinstance(error, exc.DBAPIError)
                                                           and error.connection_invalidated):
            return getattr(error, "orig", None) or error
        error = error.__cause__ or error.__context__
    return None


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
        con.register("_frame", frame.head(0))
        con.execute(f"CREATE TABLE {self.quote(table)} AS SELECT * FROM _frame")
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
                con.register("_frame", frame[[column]].head(0))
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


class SQLAlchemyDatabase(Database):
    """Any database SQLAlchemy reaches; PostgreSQL through psycopg 3 and COPY."""

    def __init__(self, url: str):
        # postgres:// is what Heroku, Render and many tools print; SQLAlchemy 2 knows only postgresql://.
        self.url = "postgresql://" + url[len("postgres://"):] if url.startswith("postgres://") else url
        self._engine = None

    @property
    def backend(self) -> str:
        import sqlalchemy

        try:
            return sqlalchemy.engine.make_url(self.url).get_backend_name()
        except sqlalchemy.exc.ArgumentError:
            raise DatabaseError(f"{self.display}: not a database URL SQLAlchemy reads "
                                "(expected dialect://user@host/database).") from None

    @property
    def engine(self):
        if self._engine is None:
            import sqlalchemy

            url = sqlalchemy.engine.make_url(self.url)
            if url.drivername == "postgresql":  # psycopg 3 is the driver we install, not psycopg2
                url = url.set(drivername="postgresql+psycopg")
            self._engine = sqlalchemy.create_engine(url)
        return self._engine

    def _read_sql(self, sql: str, *, read_only: bool = False) -> pd.DataFrame:
        """One read, tried again with a fresh connection after a dropped one (``READ_RETRIES``, backing off)."""
        import sqlalchemy

        for attempt in range(READ_RETRIES + 1):
            try:
                return self._read_once(sql, read_only=read_only)
            except Exception as error:  # noqa: BLE001 - pandas wraps the driver's error: its chain tells
                dropped = _dropped_connection(error, sqlalchemy.exc)
                if dropped is None or attempt == READ_RETRIES:
                    raise
                wait = READ_BACKOFF_SECONDS * 2 ** attempt
                print(f"{self.display}: the connection dropped ({str(dropped).splitlines()[0][:120]}); "
                      f"reading again in {wait:g} s", file=sys.stderr)
                time.sleep(wait)

    def _read_once(self, sql: str, *, read_only: bool) -> pd.DataFrame:
        import sqlalchemy

        guards = read_only_statements(self.backend) if read_only else []
        with self.engine.connect() as connection:  # closing rolls the transaction back: a read changes nothing
            for statement in guards:
                connection.execute(sqlalchemy.text(statement))
            try:
                return pd.read_sql(sqlalchemy.text(sql), connection)
            finally:
                if self.backend == "sqlite" and guards:
                    connection.execute(sqlalchemy.text("PRAGMA query_only = OFF"))  # pooled: reset

    def _lock(self, connection, table: str) -> None:
        if self.backend != "postgresql":
            return
        import sqlalchemy

        free = connection.execute(sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:key)"),
                                  {"key": advisory_lock_key(table)}).scalar()
        if not free:
            raise DatabaseError(f"{self.display}: another run is writing table {table!r} now; run again when it "
                                "has finished (two runs never replace one table at once).")

    def _dependent_views(self, connection, table: str) -> list[str]:
        sql = dependent_views_sql(self.backend)
        if sql is None:
            return []
        import sqlalchemy

        return [row[0] for row in connection.execute(sqlalchemy.text(sql), {"table": table})]

    def _transaction(self):
        return self.engine.begin()

    def quote(self, name: str) -> str:
        preparer = self.engine.dialect.identifier_preparer
        return ".".join(preparer.quote(part) for part in name.split("."))

    @property
    def _copies(self) -> bool:
        return self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "psycopg"

    def _exists(self, connection, table: str) -> bool:
        import sqlalchemy

        schema, _, name = table.rpartition(".")
        return sqlalchemy.inspect(connection).has_table(name, schema=schema or None)

    def _create(self, connection, table: str, frame: pd.DataFrame) -> None:
        import sqlalchemy

        schema, _, name = table.rpartition(".")
        columns = [sqlalchemy.Column(str(column), sql_type(frame[column])) for column in frame.columns]
        sqlalchemy.Table(name, sqlalchemy.MetaData(), *columns, schema=schema or None).create(connection)

    def _insert(self, connection, table: str, frame: pd.DataFrame) -> None:
        if len(frame) == 0:
            return
        columns = ", ".join(self.quote(str(column)) for column in frame.columns)
        if self._copies:
            cursor = connection.connection.driver_connection.cursor()
            # Arrow's CSV writer is about seven times faster than pandas' here; every present value is
            # quoted, so an empty string stays a string and only an unquoted empty field is NULL.
            with cursor.copy(f"COPY {self.quote(table)} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(arrow_csv(frame))
            return
        import sqlalchemy

        schema, _, name = table.rpartition(".")
        target = sqlalchemy.Table(name, sqlalchemy.MetaData(), schema=schema or None, autoload_with=connection)
        plain = naive_timestamps(frame)
        records = plain.astype(object).where(plain.notna(), None).to_dict("records")
        connection.execute(target.insert(), records)

    def _add_columns(self, connection, table: str, frame: pd.DataFrame) -> None:
        """Columns of ``frame`` the table lacks are added (a later run with more columns than the first)."""
        import sqlalchemy

        schema, _, name = table.rpartition(".")
        present = {column["name"] for column in sqlalchemy.inspect(connection).get_columns(name, schema=schema or None)}
        for column in frame.columns:
            if column not in present:
                kind = sql_type(frame[column]).compile(dialect=self.engine.dialect)
                connection.execute(sqlalchemy.text(
                    f"ALTER TABLE {self.quote(table)} ADD COLUMN {self.quote(str(column))} {kind}"))

    def _swap(self, connection, staging: str, table: str) -> None:
        import sqlalchemy

        connection.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {self.quote(table)}"))
        connection.execute(sqlalchemy.text(
            f"ALTER TABLE {self.quote(staging)} RENAME TO {self.quote(table.rpartition('.')[2])}"))


class _RolledBack(Exception):
    """Raised inside a probe's transaction so that it rolls back."""


def _duckdb_path(url: str) -> str:
    """``duckdb:///relative.duckdb`` and ``duckdb:////abs/path.duckdb``, as SQLAlchemy's duckdb-engine reads them."""
    rest = url[len("duckdb://"):]
    return rest[1:] if rest.startswith("/") else rest


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
