"""``[maint]``: where the maintenance page listens, its certificate, its limits and what it may touch.

Unknown keys are errors; every field has a safe default (no default account exists: the first login
uses a one-time setup code or a password installed at provisioning).
"""
from __future__ import annotations

import ipaddress
from typing import Annotated

from msgspec import Meta, field

from ..core.config import Strict

DEFAULT_SERVICES = ["pos", "vision", "offers", "signage", "trust", "updater"]
DEFAULT_UNITS = [f"endcap-{s}.service" for s in DEFAULT_SERVICES]


class MaintConfig(Strict):
    bind: str = "127.0.0.1"
    """Address the TLS server binds to (the store-LAN interface's address on the device)."""
    port: Annotated[int, Meta(ge=0, le=65535)] = 8443
    """TCP port of the page (0: any free port, tests only)."""
    hostname: str = "endcap.local"
    """Name in the self-signed certificate's SAN (and the page's origin when ``origin`` is empty)."""
    san_ips: list[str] = []
    """Extra IP addresses put into the self-signed certificate's SAN (the bind address is always there)."""
    cert_file: str = ""
    """PEM certificate installed at provisioning; empty: self-signed at first start into the state dir."""
    key_file: str = ""
    """PEM private key matching ``cert_file``."""
    origin: str = ""
    """The exact origin browsers send (``https://host:port``); empty: derived from hostname and port."""
    services: list[str] = field(default_factory=lambda: list(DEFAULT_SERVICES))
    """Services whose ``<svc>.health`` the overview shows."""
    units: list[str] = field(default_factory=lambda: list(DEFAULT_UNITS))
    """systemd units the page may restart; anything else is refused (403) and audited."""
    systemd_bus: str = "system"
    """D-Bus to reach systemd on: ``system`` or a bus address (the private test bus)."""
    journal_directory: str = ""
    """``journalctl --directory`` (tests, copied journals); empty: the system journal."""
    journalctl: str = "journalctl"
    """The journalctl executable."""
    network_dir: str = "/etc/systemd/network"
    """Where the applied ``.network`` file is written."""
    network_reload: bool = True
    """Ask systemd-networkd (``org.freedesktop.network1`` on ``systemd_bus``) to reload after writing the file;
    off only where no networkd runs (tests, dev hosts)."""
    network_interface: str = "eth0"
    """The store-LAN interface the network page configures."""
    network_confirm_s: Annotated[float, Meta(gt=0, le=600)] = 90.0
    """New network settings roll back by themselves unless confirmed within this many seconds."""
    max_upload_bytes: Annotated[int, Meta(gt=0)] = 4 << 30
    """Largest bundle the upload accepts (413 above it)."""
    session_idle_s: Annotated[float, Meta(gt=0)] = 15 * 60
    """A session ends after this long without a request."""
    session_absolute_s: Annotated[float, Meta(gt=0)] = 8 * 3600
    """A session ends this long after login, used or not."""
    reauth_s: Annotated[float, Meta(gt=0)] = 5 * 60
    """Installing, network and credential changes need the password entered within this many seconds."""
    setup_code_ttl_s: Annotated[float, Meta(gt=0)] = 24 * 3600
    """The one-time setup code expires after this long."""
    backoff_base_s: Annotated[float, Meta(gt=0)] = 1.0
    """First delay after a failed login; doubles with each further failure (per user and per address)."""
    backoff_max_s: Annotated[float, Meta(gt=0)] = 15 * 60
    """Longest delay between login attempts."""
    backoff_free: Annotated[int, Meta(ge=0)] = 3
    """Failures allowed before the back-off starts."""
    max_pending_logins: Annotated[int, Meta(ge=1)] = 4
    """Concurrent unauthenticated login attempts; more get 503."""
    max_connections: Annotated[int, Meta(ge=1)] = 64
    """Concurrent TLS connections."""
    rpc_timeout_ms: Annotated[int, Meta(gt=0)] = 1500
    """Timeout of each bus call the pages make."""
    audit_max_bytes: Annotated[int, Meta(ge=4096)] = 1 << 20
    """Size of one audit log segment; a full one moves to ``audit.jsonl.1`` (and so on)."""
    audit_segments: Annotated[int, Meta(ge=1, le=100)] = 4
    """Older audit segments kept besides the current one (the oldest is dropped)."""
    audit_refusals_per_min: Annotated[int, Meta(ge=1)] = 30
    """Audit records a minute that requests without a session may cause (failed logins, cross-site
    refusals); more are counted, not written."""

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            raise ValueError(f"bind: {self.bind!r} is not an IP address") from None
        for ip in self.san_ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(f"san_ips: {ip!r} is not an IP address") from None
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file: cert_file and key_file go together (both or neither)")
        if self.origin and not self.origin.startswith("https://"):
            raise ValueError(f"origin: {self.origin!r} must start with https://")
        for u in self.units:
            if not u.endswith((".service", ".target")) or "/" in u:
                raise ValueError(f"units: {u!r} is not a systemd unit name")
        if self.session_absolute_s < self.session_idle_s:
            raise ValueError("session_absolute_s: shorter than session_idle_s")

    def effective_origin(self, port: int) -> str:
        if self.origin:
            return self.origin
        return f"https://{self.hostname}" + ("" if port == 443 else f":{port}")
