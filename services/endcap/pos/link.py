"""The POS/ERP link as the maintenance page shows it: the poller's view (``link_state``) and a fresh probe
of the source (``probe``).

Invariants:
- ``probe`` never touches the poller's adapter or connection (they belong to the poller thread): it
  opens its own connection, runs one read-only query (SQL: ``SELECT 1 FROM ospos_sales LIMIT 1`` in a
  read-only session; REST: one ``GET /v2/catalog/list`` page), bounded by ``PROBE_BUDGET_S``, and closes it.
- No text leaving this module carries a password or token: URLs are shown without their password and
  every message is passed through ``redact`` (``password=`` conninfo values and URL passwords masked).
- Failures are answers (``ok=False`` with the reason in plain words), never exceptions.
"""
from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from typing import Callable, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from ..core import messages as m
from ..core.errors import EndcapError
from ..core.health import HealthState
from .config import PosConfig

PROBE_BUDGET_S = 3.0  # the probe's connect + query limit; the caller's RPC timeout must exceed it
PROBE_WAIT_S = PROBE_BUDGET_S + 1.0  # the longest a ``test_link`` caller waits, whatever the probe does
_CONNINFO_PW = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (conninfo ``password=`` too)."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}:***@" if parts.username else ":***@"
        url = urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
    return _CONNINFO_PW.sub(r"\1***", url)


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (and any ``password=`` value) masked."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return _CONNINFO_PW.sub(r"\1***", text)


def _secrets(cfg: PosConfig) -> list[str]:
    out: list[str] = []
    if cfg.sql is not None:
        pw = urlsplit(cfg.sql.url).password
        if pw:
            out += [pw, quote(pw, safe="")]
        out += [v.strip("'") for _, v in _CONNINFO_PW.findall(cfg.sql.url)]
    if cfg.rest is not None:
        out.append(os.environ.get(cfg.rest.token_env, ""))
    return sorted((s for s in out if s), key=len, reverse=True)


def link_state(cfg: PosConfig, health: HealthState, newest_source_us: Optional[int], quarantined: int,
               now: float) -> m.PosLink:
    """Pure: the link as the poller last saw it. ``last_error`` only while it is current (no successful
    poll since); ``lag_s`` is ``now`` minus the newest committed source timestamp."""
    err = health.last_error
    current = err is not None and (health.last_success is None
                                   or (health.last_error_at is not None and health.last_error_at >= health.last_success))
    shown = m.ErrorInfo(err.code, redact(err.message, _secrets(cfg))) if current and err is not None else None
    lag = None if newest_source_us is None else round(now - newest_source_us / 1e6, 3)
    return m.PosLink(adapter=f"{cfg.adapter}: {describe(cfg)}", last_poll_ok_at=health.last_success, lag_s=lag,
                     quarantined=quarantined, last_error=shown)


def describe(cfg: PosConfig) -> str:
    """Where the source is, without credentials."""
    if cfg.adapter == "sql" and cfg.sql is not None:
        return safe_url(cfg.sql.url)
    if cfg.rest is not None:
        return f"{safe_url(cfg.rest.base_url)} location {cfg.rest.location_id}"
    return cfg.adapter


def probe(cfg: PosConfig, clock: Callable[[], float] = time.perf_counter) -> m.PosLinkTest:
    """One fresh, read-only, time-bounded read against the source, now."""
    t0 = clock()
    try:
        if cfg.adapter == "sql":
            what = _probe_sql(cfg)
        else:
            what = _probe_rest(cfg)
        ok, detail = True, f"{what} at {describe(cfg)}"
    except _ProbeFailed as e:
        ok, detail = False, f"{e} ({describe(cfg)})"
    ms = round((clock() - t0) * 1000.0, 2)
    return m.PosLinkTest(ok=ok, detail=redact(detail, _secrets(cfg)), latency_ms=ms)


class _ProbeFailed(Exception):
    """The reason in plain words."""


def _probe_sql(cfg: PosConfig) -> str:
    assert cfg.sql is not None
    url = cfg.sql.url
    budget = min(cfg.sql.connect_timeout_s, PROBE_BUDGET_S)
    if url.startswith("sqlite:"):
        from .adapters.sql import sqlite_path

        path = sqlite_path(url)
        if not os.path.isfile(path):
            raise _ProbeFailed(f"the source database file {path} does not exist")
        try:
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=budget, isolation_level=None)
        except sqlite3.Error as e:
            raise _ProbeFailed(f"cannot open the source database read-only: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(budget * 1000)}")
            conn.execute("SELECT 1 FROM ospos_sales LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise _ProbeFailed(_sql_reason(str(e))) from e
        finally:
            conn.close()
        return "read the sales table (SQLite, read-only)"
    import psycopg  # platform driver: imported only when the source is PostgreSQL

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=max(2, int(budget)))
    except psycopg.Error as e:
        raise _ProbeFailed(f"cannot connect to PostgreSQL: {_first_line(e)}") from e
    try:
        conn.execute(f"SET statement_timeout = {int(budget * 1000)}")
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SELECT 1 FROM ospos_sales LIMIT 1").fetchall()
    except psycopg.Error as e:
        raise _ProbeFailed(_sql_reason(_first_line(e))) from e
    finally:
        conn.close()
    return "read the sales table (PostgreSQL, read-only session)"


def _sql_reason(msg: str) -> str:
    if "ospos_sales" in msg and ("no such table" in msg or "does not exist" in msg):
        return f"connected, but the sales table ospos_sales is missing (wrong database or schema drift): {msg}"
    if "canceling statement" in msg or "locked" in msg:
        return f"connected, but the query did not finish within {PROBE_BUDGET_S:.0f} s: {msg}"
    return f"connected, but the query failed: {msg}"


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _probe_rest(cfg: PosConfig) -> str:
    import requests

    r = cfg.rest
    assert r is not None
    token = os.environ.get(r.token_env, "")
    if not token:
        raise _ProbeFailed(f"the API token variable {r.token_env} is not set in the service's environment")
    url = r.base_url.rstrip("/") + "/v2/catalog/list"
    try:
        resp = requests.get(url, params={"types": "CATEGORY"}, timeout=min(r.timeout_s, PROBE_BUDGET_S),
                            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                     "Square-Version": r.api_version}, allow_redirects=False)
    except requests.Timeout as e:
        raise _ProbeFailed(f"no answer within {min(r.timeout_s, PROBE_BUDGET_S):.0f} s") from e
    except requests.exceptions.SSLError as e:
        raise _ProbeFailed("TLS failure (certificate not trusted or wrong host)") from e
    except requests.ConnectionError as e:
        raise _ProbeFailed(f"cannot connect ({type(e).__name__})") from e
    except requests.RequestException as e:
        raise _ProbeFailed(f"request failed ({type(e).__name__})") from e
    with resp:
        if resp.status_code in (401, 403):
            raise _ProbeFailed(f"the API refused the token (HTTP {resp.status_code})")
        if resp.status_code >= 400:
            raise _ProbeFailed(f"the API answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as e:
            raise _ProbeFailed(f"HTTP {resp.status_code}, but the body is not JSON") from e
    if not isinstance(body, dict):
        raise _ProbeFailed("the API answered, but not with a JSON object")
    return f"the API answered HTTP {resp.status_code} to GET /v2/catalog/list"


class ProbeRunner:
    """Runs ``probe`` on a thread of its own, one at a time, so a slow source never holds up an RPC thread
    for longer than ``wait_s`` and never more than one (the ``stock`` path keeps its own threads).

    A caller waits at most ``wait_s`` for the result; past it the answer is ``ok=False`` ("did not finish")
    while the probe thread runs out its own budget. A request while a probe is still running is refused
    (``EndcapError(code="busy")``): at most one probe thread exists at any time.
    """

    def __init__(self, cfg: PosConfig, *, wait_s: float = PROBE_WAIT_S,
                 run: Optional[Callable[[PosConfig], m.PosLinkTest]] = None) -> None:
        self.cfg, self.wait_s = cfg, wait_s
        self._run = run or probe
        self._lock = threading.Lock()
        self._running = False

    def __call__(self, _req: object = None) -> m.PosLinkTest:
        with self._lock:
            if self._running:
                raise EndcapError("test_link: a link test is still running; try again in a few seconds", code="busy")
            self._running = True
        done, box = threading.Event(), []
        t0 = time.perf_counter()
        try:
            threading.Thread(target=self._probe, args=(done, box), name="pos-probe", daemon=True).start()
        except BaseException:
            with self._lock:
                self._running = False
            raise
        if not done.wait(self.wait_s):
            return m.PosLinkTest(ok=False, detail=f"the link test did not finish within {self.wait_s:g} s ({describe(self.cfg)})",
                                 latency_ms=round((time.perf_counter() - t0) * 1000.0, 2))
        got = box[0]
        if isinstance(got, BaseException):
            raise EndcapError(f"test_link: the probe failed unexpectedly: "
                              f"{redact(f'{type(got).__name__}: {got}', _secrets(self.cfg))}"[:500], code="probe")
        return got

    def _probe(self, done: threading.Event, box: list) -> None:
        try:
            box.append(self._run(self.cfg))
        except BaseException as e:  # handed to the caller as an error reply
            box.append(e)
        finally:
            with self._lock:
                self._running = False
            done.set()
