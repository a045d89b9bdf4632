"""The offers service's own record: every decision (with its arm) and the baskets it heard, in SQLite (WAL).

This is what the lift report is computed from (``lift.attribute`` / ``lift.kpis``), so it keeps the
would-be SKU of held-out triggers too. One connection per thread; decisions are written after the
offer is published (the decision path never waits for the disk).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..core.sqlite import open_db
from .lift import BasketSeen, Exposure

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
  id TEXT PRIMARY KEY, ts REAL NOT NULL, zone TEXT NOT NULL, camera TEXT NOT NULL, track_id INTEGER NOT NULL,
  shopper_id TEXT, trip TEXT NOT NULL, reason TEXT NOT NULL, arm TEXT, sku TEXT, relevance REAL,
  context TEXT NOT NULL, offer_id TEXT, model_version TEXT, latency_ms REAL);
CREATE INDEX IF NOT EXISTS decisions_arm ON decisions (arm, ts);
CREATE TABLE IF NOT EXISTS baskets (
  txn_id TEXT PRIMARY KEY, shopper_id TEXT NOT NULL, received_at REAL NOT NULL, business_ts REAL NOT NULL,
  status TEXT NOT NULL, items REAL NOT NULL, value REAL NOT NULL, skus TEXT NOT NULL);
"""


class OffersStore:
    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        # synchronous=NORMAL: a lost last decision costs a KPI sample, not money
        self._db = open_db(self.path, readonly=readonly, schema=SCHEMA, synchronous="NORMAL")

    def close(self) -> None:
        self._db.close()

    def record_decision(self, did: str, ts: float, zone: str, camera: str, track_id: int, shopper_id: Optional[str], trip: str,
                        reason: str, arm: Optional[str], sku: Optional[str], relevance: Optional[float], context: str,
                        offer_id: Optional[str], model_version: Optional[str], latency_ms: Optional[float] = None) -> None:
        """``latency_ms``: from the event's time stamp (vision's clock = ours, one host) to the decision
        published, so it includes the bus hop and the receive."""
        self._db.execute("INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (did, ts, zone, camera, track_id, shopper_id, trip, reason, arm, sku, relevance, context, offer_id,
                          model_version, latency_ms))

    def record_basket(self, txn_id: str, shopper_id: str, received_at: float, business_ts: float, status: str,
                      lines: list[tuple[str, float, float]]) -> None:
        """``lines``: (sku, qty, price) of sale lines. A later version of the same txn replaces it, keeping
        the first received time (when the shopper checked out)."""
        items = sum(q for _, q, _ in lines)
        value = round(sum(q * p for _, q, p in lines), 2)
        skus = sorted({s for s, q, _ in lines if q > 0})
        self._db.execute(
            "INSERT INTO baskets VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (txn_id) DO UPDATE SET status = excluded.status, "
            "items = excluded.items, value = excluded.value, skus = excluded.skus",
            (txn_id, shopper_id, received_at, business_ts, status, items, value, json.dumps(skus)))

    def exposures(self) -> tuple[list[Exposure], int, int]:
        """(linkable exposures, anonymous eligible triggers, all dwell decisions)."""
        rows = self._db.execute("SELECT id, shopper_id, arm, sku, ts FROM decisions WHERE arm IS NOT NULL ORDER BY ts").fetchall()
        linkable = [Exposure(i, s, a, k, t) for i, s, a, k, t in rows if s]
        decisions = self._db.execute("SELECT COUNT(*) FROM decisions WHERE reason != 'not_dwell'").fetchone()[0]
        return linkable, len(rows) - len(linkable), int(decisions)

    def baskets(self) -> list[BasketSeen]:
        rows = self._db.execute("SELECT txn_id, shopper_id, received_at, skus, items, value FROM baskets WHERE status = 'completed'")
        return [BasketSeen(t, s, r, frozenset(json.loads(k)), i, v) for t, s, r, k, i, v in rows]

    def reasons(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT reason, COUNT(*) FROM decisions GROUP BY reason").fetchall())

    def offers(self) -> list[tuple[str, str, str, float]]:
        """(offer_id, zone, sku, relevance) of offers made, in time order."""
        return [tuple(r) for r in self._db.execute(
            "SELECT offer_id, zone, sku, relevance FROM decisions WHERE offer_id IS NOT NULL ORDER BY ts")]


def lift_report(path: str | Path, window_s: float) -> dict:
    """The lift KPIs from a store file (read-only)."""
    from . import lift

    st = OffersStore(path, readonly=True)
    try:
        exposures, anonymous, decisions = st.exposures()
        outcomes = lift.attribute(exposures, st.baskets(), window_s)
        report = lift.kpis(outcomes, decisions=decisions, anonymous_exposures=anonymous)
        report["reasons"] = st.reasons()
        return report
    finally:
        st.close()


class RecordWriter:
    """Records decisions and baskets from a thread of its own, so the decision path never waits on the
    disk (a WAL checkpoint can take milliseconds). Whatever is queued is written in one transaction;
    ``close`` drains the queue. Each record is written exactly once, in the order it was queued."""

    def __init__(self, path: str | Path) -> None:
        import queue
        import threading

        self._q: "queue.Queue" = queue.Queue()
        self._path = Path(path)
        OffersStore(self._path).close()  # the schema exists before the first event
        self.failed: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="offers-record", daemon=True)
        self._thread.start()

    def decision(self, *args, **kw) -> None:
        self._q.put(("decision", args, kw))

    def basket(self, *args, **kw) -> None:
        self._q.put(("basket", args, kw))

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop(OffersStore(self._path))  # the connection belongs to this thread
        except BaseException as e:  # the service checks ``alive`` and fails loudly
            self.failed = e
            raise

    def _loop(self, st: OffersStore) -> None:
        import queue

        while True:
            batch = [self._q.get()]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = any(kind == "stop" for kind, _, _ in batch)
            st._db.execute("BEGIN")
            try:
                for kind, args, kw in batch:
                    if kind == "decision":
                        st.record_decision(*args, **kw)
                    elif kind == "basket":
                        st.record_basket(*args, **kw)
                st._db.execute("COMMIT")
            except BaseException:
                st._db.execute("ROLLBACK")
                raise
            if stop:
                st.close()
                return

    def close(self) -> None:
        self._q.put(("stop", (), {}))
        self._thread.join(timeout=10)
