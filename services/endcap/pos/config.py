"""``[pos]``: where the store's POS/ERP is and how the edge reads it. Every field has a default
except the source location; unknown keys are errors (see ``endcap check-config``)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from msgspec import Meta

from ..core.config import Strict

Positive = Annotated[float, Meta(gt=0)]


class SqlSource(Strict):
    url: str
    """``sqlite:///abs/path.db`` or a PostgreSQL URL / conninfo (the OSPOS-shaped schema)."""
    location_id: int = 1
    """OSPOS stock location whose counts and movements this gateway follows."""
    notify_channel: str = "endcap_pos"
    """PostgreSQL LISTEN channel the schema's triggers notify (ADR 0002)."""
    statement_timeout_ms: Annotated[int, Meta(gt=0)] = 10_000
    connect_timeout_s: Positive = 5.0

    def __post_init__(self) -> None:
        scheme = self.url.partition(":")[0] if "://" in self.url else ""
        if scheme not in ("sqlite", "postgresql", "postgres") and not (not scheme and "=" in self.url):
            raise ValueError(f"url: unsupported scheme {scheme or '(none)'!r}; use sqlite:///PATH or postgresql://...")


class RestSource(Strict):
    base_url: str
    """Square-style API root, e.g. ``https://pos.example/`` (``/v2/...`` paths are appended)."""
    location_id: str
    """The POS location (store) whose orders and inventory this gateway follows."""
    token_env: str = "ENDCAP_POS_TOKEN"
    """Name of the environment variable holding the API token (never the token itself)."""
    timeout_s: Positive = 10.0
    """Connect and read timeout of every HTTP call, in seconds."""
    page_limit: Annotated[int, Meta(ge=1, le=1000)] = 500
    """Largest page asked of the API (``limit``); Square allows at most 1000 orders or changes per page."""
    api_version: str = "2024-10-17"
    """Sent as the ``Square-Version`` header, so the response shapes do not change under us."""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError(f"base_url {self.base_url!r} must start with https:// (or http:// on a test bench)")
        if not self.token_env:
            raise ValueError("token_env must name an environment variable")


class PosConfig(Strict):
    adapter: Literal["sql", "rest"] = "sql"
    """Which adapter reads the source: ``sql`` (SQLite/PostgreSQL) or ``rest`` (Square-style API)."""
    store_id: str = "store-1"
    """This store's id as it appears in events."""
    source_name: str = "pos"
    """Name of the source in events and logs."""
    sql: Optional[SqlSource] = None
    rest: Optional[RestSource] = None
    poll_interval_s: Positive = 1.0
    """Longest wait between polls when the source sends no change signal."""
    change_signal: bool = True
    """Wake on the source's change signal (PostgreSQL LISTEN/NOTIFY, SQLite data_version) instead of
    waiting out ``poll_interval_s``. Off: blind polling (for sources whose DBA forbids triggers)."""
    page_size: Annotated[int, Meta(ge=1, le=10_000)] = 500
    lookback_s: Positive = 1200.0
    """Source-time window re-read for late rows and clock skew; must exceed the worst back-dating + skew."""
    sweep_interval_s: Positive = 5.0
    """Wall seconds between lookback sweeps when nothing else triggers one."""
    catalogue_refresh_s: Positive = 300.0
    stock_feed_ttl_s: Positive = 120.0
    """Stock is unknown when no stock poll succeeded for this many wall seconds."""
    stock_count_max_age_s: Positive = 172_800.0
    """Stock is unknown when the SKU's last absolute count is older than this (source time)."""
    reconcile_grace_s: Positive = 3600.0
    """A business day is reconciled once the source clock is this far past its end (plus lookback)."""
    backoff_base_s: Positive = 0.5
    backoff_cap_s: Positive = 60.0
    health_interval_s: Positive = 2.0
    rpc_timeout_ms: Annotated[int, Meta(gt=0)] = 2000

    def __post_init__(self) -> None:
        if self.adapter == "sql" and self.sql is None:
            raise ValueError("adapter is 'sql' but the [pos.sql] table is missing")
        if self.adapter == "rest" and self.rest is None:
            raise ValueError("adapter is 'rest' but the [pos.rest] table is missing")
