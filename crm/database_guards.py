"""What a database run checks before it reads or writes: a read query only reads, an output table can be written.

A query given as ``--leads`` or in the config runs as one ``SELECT`` (or ``WITH ... SELECT``)
statement, checked by DuckDB's SQL parser, on a connection that cannot write: DuckDB opens the
file read-only, PostgreSQL runs it in a ``READ ONLY`` transaction, SQLite with ``query_only``.
A query the parser cannot read (another dialect) runs only where the connection itself is
read-only. Before any scoring, an output table is probed in a transaction that is rolled back:
the connection (driver, password), the right to create a table, a run already writing the same
table (PostgreSQL advisory lock; DuckDB's file lock) and views that depend on the table (which
replacing it would break) are each refused with one line naming the database and the table.
"""

from __future__ import annotations

import re
import zlib

from features.contract import DataContractError

#: Backends whose read connection refuses writes by itself (see ``read_only_statements``).
READ_ONLY_BACKENDS = ("duckdb", "postgresql", "sqlite")


class DatabaseError(DataContractError):
    """A database that cannot be read or written as asked; the message is one line naming it."""


def check_read_query(query: str, *, where: str, backend: str) -> None:
    """Refuse anything but one ``SELECT`` statement (one line naming ``where``)."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        if backend in READ_ONLY_BACKENDS:
            return  # another dialect's SELECT: the read-only connection refuses any write in it
        raise DatabaseError(f"{where}: the query {_short(query)!r} could not be checked as one SELECT statement, "
                            f"and {backend} reads have no read-only mode here; give a table name or a plain SELECT.")
    kinds = [statement.type.name for statement in statements]
    if kinds != ["SELECT"]:
        raise DatabaseError(f"{where}: a query must be one SELECT statement; {_short(query)!r} is "
                            f"{len(kinds)} statement(s): {', '.join(kinds) or 'none'}. Nothing was run.")


def read_only_statements(backend: str) -> list[str]:
    """Statements that make the rest of a connection's transaction read-only on ``backend``."""
    return {"postgresql": ["SET TRANSACTION READ ONLY"], "sqlite": ["PRAGMA query_only = ON"]}.get(backend, [])


def advisory_lock_key(table: str) -> int:
    """A stable 63-bit key for PostgreSQL's advisory lock on one output table."""
    return zlib.crc32(table.lower().encode()) | (0x5C0 << 32)


def dependent_views_sql(backend: str) -> str | None:
    """A query naming the views built on table ``:table`` (PostgreSQL), else None."""
    if backend != "postgresql":
        return None
    return ("SELECT DISTINCT view.oid::regclass::text FROM pg_depend dependency "
            "JOIN pg_rewrite rule ON rule.oid = dependency.objid JOIN pg_class view ON view.oid = rule.ev_class "
            "WHERE dependency.refobjid = to_regclass(:table) AND view.oid <> dependency.refobjid")


def write_error(display: str, table: str, error: Exception) -> DatabaseError:
    """A driver's error while writing ``table``, as one line that says what to do."""
    text = _first_line(error)
    hint = ""
    if re.search(r"password authentication failed|authentication failed|access denied", text, re.IGNORECASE):
        hint = " Check the user and password of the output database URL."
    elif re.search(r"permission denied|read-only|readonly|insufficient privilege", text, re.IGNORECASE):
        hint = " The user may not create or replace tables there: give a user that may, or another schema."
    elif re.search(r"could not set lock|conflicting lock", text, re.IGNORECASE):
        hint = " Another process is writing this DuckDB file; run again when it has finished."
    elif re.search(r"depend", text, re.IGNORECASE):
        hint = " A view or constraint depends on the table: drop it first, or write another table."
    elif isinstance(error, ModuleNotFoundError):
        hint = f" Install the database driver {error.name!r} (pip install {error.name}) or use another URL."
    return DatabaseError(f"{display}: could not write table {table!r}: {text}.{hint}")


def read_error(display: str, what: str, error: Exception) -> DatabaseError:
    """A driver's error while reading, as one line."""
    hint = (f" Install the database driver {error.name!r} (pip install {error.name}) or use another URL."
            if isinstance(error, ModuleNotFoundError) else "")
    return DatabaseError(f"{display}: could not read {what}: {_first_line(error)}{hint}")


def _short(query: str) -> str:
    text = " ".join(str(query).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return re.sub(r"^\((?:[\w.]+)\)\s*", "", line)[:300]  # SQLAlchemy's "(psycopg.errors.X) " prefix
