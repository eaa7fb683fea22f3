"""Any database SQLAlchemy reaches; PostgreSQL through psycopg 3 and ``COPY``; a batch run's reads and writes
tried again after a dropped connection (a server restart, a failover, an administrator ending the session)."""

from __future__ import annotations

import sys
import time

import pandas as pd

from crm.database_base import Database
from crm.database_guards import DatabaseError, advisory_lock_key, dependent_views_sql, read_only_statements
from crm.sql_types import arrow_csv, naive_timestamps, sql_type

#: A batch run's read or table write is tried again this many times after a dropped connection, waiting 1, 2, 4 s.
RETRIES, BACKOFF_SECONDS = 3, 1.0


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
        return self.retried(lambda: self._read_once(sql, read_only=read_only), doing="reading")

    def retried(self, action, *, doing: str):
        """``action()``, started again on fresh connections after a dropped one (``RETRIES`` times, backing off).

        Only a dropped connection is retried; any other error (a refused password, a bad column) stops at
        once. ``action`` must be whole in itself (one read; one table write in one transaction), so that
        starting it again leaves nothing half-done.
        """
        import sqlalchemy

        for attempt in range(RETRIES + 1):
            try:
                return action()
            except Exception as error:  # noqa: BLE001 - pandas and the writer wrap the driver's error: its chain tells
                dropped = _dropped_connection(error, sqlalchemy.exc)
                if dropped is None or attempt == RETRIES:
                    raise
                wait = BACKOFF_SECONDS * 2 ** attempt
                print(f"{self.display}: the connection dropped ({str(dropped).splitlines()[0][:120]}); "
                      f"{doing} again in {wait:g} s", file=sys.stderr)
                self.engine.dispose()  # the pool's other connections died with it
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
        """A table name, ``schema.table`` or ``table``, quoted for SQL."""
        preparer = self.engine.dialect.identifier_preparer
        return ".".join(preparer.quote(part) for part in name.split("."))

    def quote_column(self, name: str) -> str:
        """A column name quoted whole: a dot in it ("industry.1") is part of the name, not a schema."""
        return self.engine.dialect.identifier_preparer.quote(name)

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
        columns = ", ".join(self.quote_column(str(column)) for column in frame.columns)
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
                    f"ALTER TABLE {self.quote(table)} ADD COLUMN {self.quote_column(str(column))} {kind}"))

    def _swap(self, connection, staging: str, table: str) -> None:
        import sqlalchemy

        connection.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {self.quote(table)}"))
        connection.execute(sqlalchemy.text(
            f"ALTER TABLE {self.quote(staging)} RENAME TO {self.quote(table.rpartition('.')[2])}"))


def _dropped_connection(error: BaseException, exc) -> BaseException | None:
    """The link of an error's chain saying the server dropped the connection, or None.

    SQLAlchemy marks the errors it sees (an invalidated connection); a ``COPY`` runs on the driver's own
    cursor, whose error carries the SQLSTATE alone: class 08 (connection exception) or 57P (the server
    ended the session: an administrator, a shutdown, a crash).
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, exc.PendingRollbackError) or (isinstance(error, exc.DBAPIError)
                                                           and error.connection_invalidated):
            return getattr(error, "orig", None) or error
        if str(getattr(error, "sqlstate", None) or "").startswith(("08", "57P")):
            return error
        error = error.__cause__ or error.__context__
    return None
