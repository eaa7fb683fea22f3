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
from pathlib import Path

from crm.readers import read_contract_numbers
from crm.database_base import Database, check_table_name
from crm.duckdb_database import DuckDBDatabase, duckdb_path
from crm.sqlalchemy_database import SQLAlchemyDatabase
from crm.table_writer import TableWriter
from features.contract import validate_deals, validate_events, validate_leads

__all__ = ["Database", "DuckDBDatabase", "SQLAlchemyDatabase", "TableWriter", "check_table_name", "connect",
           "is_database", "is_query", "load_crm_from_database", "read_source", "source_name"]

DUCKDB_SUFFIXES = (".duckdb", ".ddb")


def is_database(target) -> bool:
    """True for a database URL (``scheme://...``) or a DuckDB file path."""
    text = str(target)
    return "://" in text or Path(text).suffix.lower() in DUCKDB_SUFFIXES


def connect(url) -> Database:
    """A :class:`Database` for a SQLAlchemy URL, ``duckdb:///path`` or a ``.duckdb`` file path."""
    text = str(url)
    if text.startswith("duckdb://"):
        return DuckDBDatabase(duckdb_path(text))
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
    # A table of text columns (as many CRMs hold an export) has its numbers read as a file's are.
    lead_table = read_contract_numbers(lead_table, source=source_name(database, leads))
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
