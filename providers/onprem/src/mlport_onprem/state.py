"""The state of a root, in SQLite: jobs, batch jobs, notebooks, endpoints and monitors, shared by
every process using the root.

Each process opens its own connection (WAL mode, a busy timeout), so the submitting process, a
job's supervisor and ``mlport`` commands run elsewhere all see the same rows. Rows hold JSON
documents; the columns are what queries need.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["StateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notebooks (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS monitors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

TABLES = ("jobs", "notebooks", "endpoints", "batches", "monitors")


class StateStore:
    """Rows of documents keyed by name, one table per resource kind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def insert(self, table: str, name: str, doc: dict[str, Any]) -> bool:
        """Insert a new row; False if ``name`` exists already (nothing is changed)."""
        with self._transaction() as db:
            if db.execute(f"SELECT 1 FROM {_t(table)} WHERE name = ?", (name,)).fetchone():
                return False
            row = db.execute(
                "INSERT INTO counters(name, value) VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
                (table,),
            ).fetchone()
            doc = {**doc, "seq": row[0]}
            db.execute(
                f"INSERT INTO {_t(table)}(name, seq, status, doc) VALUES (?, ?, ?, ?)",
                (name, row[0], doc.get("status", ""), json.dumps(doc)),
            )
            return True

    def get(self, table: str, name: str) -> dict[str, Any] | None:
        """The document of ``name``, or None."""
        row = (
            self._connection()
            .execute(f"SELECT doc FROM {_t(table)} WHERE name = ?", (name,))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def update(self, table: str, name: str, **changes: Any) -> dict[str, Any] | None:
        """Merge ``changes`` into the document atomically; returns it, or None if absent."""
        with self._transaction() as db:
            row = db.execute(f"SELECT doc FROM {_t(table)} WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            doc = {**json.loads(row[0]), **changes}
            db.execute(
                f"UPDATE {_t(table)} SET status = ?, doc = ? WHERE name = ?",
                (doc.get("status", ""), json.dumps(doc), name),
            )
            return doc

    def delete(self, table: str, name: str) -> bool:
        """Remove a row; False if it was not there."""
        with self._transaction() as db:
            return db.execute(f"DELETE FROM {_t(table)} WHERE name = ?", (name,)).rowcount > 0

    def page(self, table: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Documents, newest first."""
        rows = (
            self._connection()
            .execute(
                f"SELECT doc FROM {_t(table)} ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)
            )
            .fetchall()
        )
        return [json.loads(r[0]) for r in rows]

    def names(self, table: str) -> list[str]:
        """Every name in ``table``."""
        return [r[0] for r in self._connection().execute(f"SELECT name FROM {_t(table)}")]

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _t(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    return table
