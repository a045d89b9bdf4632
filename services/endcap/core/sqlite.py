"""Opening the services' SQLite files the one way they are all opened: WAL, a busy timeout, autocommit
(explicit ``BEGIN IMMEDIATE`` where a unit of work must be atomic), schema created by the writer."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def open_db(path: str | Path, *, readonly: bool = False, schema: str = "", synchronous: str = "FULL") -> sqlite3.Connection:
    """The writer (``readonly=False``) creates the file, switches it to WAL and applies ``schema``; readers
    open it read-only so they can never take the write lock."""
    path = Path(path)
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=5)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, timeout=5)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        if schema:
            db.executescript(schema)
    db.execute("PRAGMA busy_timeout = 5000")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception (including KeyboardInterrupt)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
