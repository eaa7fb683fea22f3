"""Where a run reads and writes, each named once however it is spelled: files, folders and database tables.

A run must never write over what it reads. Comparing the text of two arguments misses
``./leads.csv`` against ``leads.csv``, a symbolic or hard link, ``"Leads"`` against ``leads``,
``public.leads`` against ``leads``, and one PostgreSQL server reached as ``localhost`` and as
``127.0.0.1:5432``. A :class:`Location` is the one name: a file by its device and inode (its
resolved path while it does not exist), a table by its database (backend, host, port, database
name; a DuckDB or SQLite file by the file) plus schema and table with the database's own case rules.
A query's tables are found by DuckDB's SQL parser (``json_serialize_sql``), not by a regular expression.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

#: Hosts that name the machine the run is on (a PostgreSQL socket folder is one too).
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "[::1]"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
_DEFAULT_SCHEMAS = {"duckdb": "main", "postgresql": "public", "sqlite": "main"}


@dataclass(frozen=True)
class Location:
    """One file, folder or table; equal locations are the same place. ``label`` is how messages name it."""

    key: tuple
    label: str = field(compare=False)
    path: str = field(default="", compare=False)  # a file's or folder's resolved path, for what lies inside a folder

    def contains(self, other: Location) -> bool:
        """Whether ``other`` is this place or, for a folder, lies inside it."""
        if self.key == other.key:
            return True
        return bool(self.key[0] == "folder" and other.path
                    and other.path.startswith(self.path.rstrip(os.sep) + os.sep))


def file_location(path) -> Location:
    """A file or folder: by device and inode when it exists (so links match), else by its resolved path."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    kind = "folder" if resolved.is_dir() else "file"
    if resolved.exists():
        stat = resolved.stat()
        if kind == "file":
            return Location(("file", stat.st_dev, stat.st_ino), str(path), str(resolved))
    return Location((kind, str(resolved)), str(path), str(resolved))


def table_location(url, table: str) -> Location:
    """A table ``name``, ``schema.name`` or ``"Quoted"."Name"`` in the database ``url`` names."""
    database = database_key(url)
    schema, name = _split_name(table, database[0])
    return Location(("table", database, schema, name), f"table {table} of {_display(url)}")


def query_locations(url, query: str) -> list[Location]:
    """The tables a query reads, as DuckDB's parser sees them; every word of it when the parser cannot read it."""
    database = database_key(url)
    names = _query_tables(query)
    if names is None:  # not SQL DuckDB parses (another dialect): every identifier-like word may be a table
        names = [(None, word) for word in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", query)]
    default = _DEFAULT_SCHEMAS.get(database[0], "")
    return [Location(("table", database, _fold(schema, database[0]) if schema else default, _fold(name, database[0])),
                     f"table {name} read by the query of {_display(url)}") for schema, name in names]


def database_key(url) -> tuple:
    """A database as (backend, where): a DuckDB or SQLite file by the file; a server by host, port and name."""
    text = str(url)
    if text.startswith("duckdb://") or ("://" not in text and Path(text).suffix.lower() in (".duckdb", ".ddb")):
        path = text[len("duckdb://"):] if text.startswith("duckdb://") else text
        path = path[1:] if text.startswith("duckdb://") and path.startswith("/") else path
        return ("duckdb", file_location(path).key)
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(text)
    except sqlalchemy.exc.ArgumentError:
        return ("url", text)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return ("sqlite", file_location(parsed.database or ":memory:").key)
    host = parsed.host or parsed.query.get("host") or ""
    host = "localhost" if host in _LOCAL_HOSTS or str(host).startswith("/") else str(host).lower()
    return (backend, host, parsed.port or _DEFAULT_PORTS.get(backend), parsed.database or parsed.username)


def _split_name(table: str, backend: str) -> tuple[str, str]:
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', table.strip())
    names = [_fold(quoted.replace('""', '"'), backend, quoted=True) if quoted else _fold(bare.strip(), backend)
             for quoted, bare in parts]
    if len(names) == 1:
        return _DEFAULT_SCHEMAS.get(backend, ""), names[0]
    return names[-2], names[-1]


def _fold(name: str, backend: str, *, quoted: bool = False) -> str:
    """PostgreSQL folds unquoted names to lower case; DuckDB and SQLite match names regardless of case."""
    if backend in ("duckdb", "sqlite") or not quoted:
        return name.lower()
    return name


def _query_tables(query: str) -> list[tuple[str | None, str]] | None:
    import duckdb

    try:
        with duckdb.connect() as con:
            tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
    except duckdb.Error:
        return None
    if tree.get("error"):
        return None
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and node.get("table_name"):
                found.append((node.get("schema_name") or None, node["table_name"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found


def _display(url) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", str(url))
