"""A table written whole or not at all: chunks into a staging table in one transaction, swapped in on success."""

from __future__ import annotations

import contextlib
import uuid

import pandas as pd

from crm.database_guards import write_error
from features.contract import DataContractError


class TableWriter:
    """Chunks into a staging table inside one transaction; on success the staging table replaces the target."""

    def __init__(self, database: Database, table: str):
        self.database, self.table = database, table

    def __enter__(self):
        schema, _, name = self.table.rpartition(".")
        self.staging = f"{schema + '.' if schema else ''}_staging_{name}_{uuid.uuid4().hex[:8]}"
        self.created = False
        self.rows = 0
        with self._driver_errors():
            self._transaction = self.database._transaction()
            self.handle = self._transaction.__enter__()
        try:
            with self._driver_errors():
                self.database._lock(self.handle, self.table)  # held until the swap commits
        except BaseException as failure:
            self._roll_back(failure)
            raise
        return self

    def write(self, frame: pd.DataFrame) -> None:
        with self._driver_errors():
            if not self.created:
                self.database._create(self.handle, self.staging, frame)
                self.created = True
            self.database._insert(self.handle, self.staging, frame)
        self.rows += len(frame)

    def __exit__(self, kind, error, traceback):
        if kind is None:
            try:
                if not self.created:
                    raise ValueError(f"Nothing was written for table {self.table!r}: no columns to create it with.")
                with self._driver_errors():
                    self.database._swap(self.handle, self.staging, self.table)
            except BaseException as failure:
                self._roll_back(failure)
                raise
        if kind is None:
            with self._driver_errors():
                return self._transaction.__exit__(kind, error, traceback)
        self._roll_back(error)
        return False

    def _roll_back(self, failure: BaseException) -> None:
        """Roll back after ``failure``. On a dropped connection the rollback fails as well; the server has
        discarded the transaction already, and ``failure`` is the error to report, so it is not replaced."""
        try:
            self._transaction.__exit__(type(failure), failure, failure.__traceback__)
        except Exception:  # noqa: BLE001
            pass

    @contextlib.contextmanager
    def _driver_errors(self):
        try:
            yield
        except (DataContractError, KeyboardInterrupt):
            raise
        except Exception as error:
            raise write_error(self.database.display, self.table, error) from None
