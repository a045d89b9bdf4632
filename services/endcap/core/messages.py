"""Typed bus messages and their versioned envelope.

Every message on the bus is ``topic + b"\\0" + msgpack(Envelope)`` with
``Envelope = {schema, id, ts, source, body}``. ``schema`` is ``"<major>.<minor>"``: a reader accepts any
minor of its own major (new optional fields only) and rejects another major. Bodies are strict
structs; the topic decides the body type (``TOPICS``; ``<svc>.health`` is always ``Health``).

Req/rep uses ``Request``/``Reply`` inside the same envelope: the reply is ``ok`` with a result, or
an ``ErrorInfo{code, message}``; request ids make retries idempotent on the server side.
"""
from __future__ import annotations

from typing import Any, Optional

import msgspec

SCHEMA_MAJOR = 1
SCHEMA_MINOR = 0
SCHEMA = f"{SCHEMA_MAJOR}.{SCHEMA_MINOR}"


class Envelope(msgspec.Struct, frozen=True):
    schema: str
    id: str
    ts: float
    source: str
    body: msgspec.Raw


class ErrorInfo(msgspec.Struct, frozen=True):
    code: str
    message: str


# --- health (every service) -------------------------------------------------------------------

class Health(msgspec.Struct, frozen=True):
    """Published on ``<svc>.health``. ``ok`` means work is flowing, not merely that the process lives."""

    service: str
    ok: bool
    status: str  # one plain-words line for the maintenance page
    last_success: Optional[float] = None
    last_error: Optional[ErrorInfo] = None
    counters: dict[str, float] = {}


# --- pos: baskets and stock -------------------------------------------------------------------

class BasketLine(msgspec.Struct, frozen=True):
    line: int
    sku: str
    qty: float  # signed: returns are negative
    price: float  # unit price in the store's currency
    type: str  # sale | return | void


class Basket(msgspec.Struct, frozen=True):
    """A completed (or later voided) transaction as the edge now knows it."""

    store: str
    txn_id: str
    business_ts: float
    status: str  # completed | cancelled
    lines: list[BasketLine]
    shopper_id: Optional[str] = None


class StockLevel(msgspec.Struct, frozen=True):
    """``qty`` is None when the edge does not know the stock (stale, never counted): fail closed."""

    sku: str
    qty: Optional[float]
    as_of: Optional[float] = None  # source time of the newest fact behind qty


class StockChanged(msgspec.Struct, frozen=True):
    levels: list[StockLevel]


# --- vision → offers: what shoppers do in front of shelf zones ----------------------------------

class ZoneEvent(msgspec.Struct, frozen=True):
    """Published on ``vision.zone``. One track in one zone of one camera.

    ``kind``: ``enter``; ``dwell`` (periodic while present, ``dwell_s`` so far); ``exit`` (``dwell_s`` total).
    ``focus`` in [0, 1]: how much of the dwell the person stood still facing the shelf.
    ``confidence`` in [0, 1]: that this is a real shopper really dwelling (the gate for offers).
    No image data ever travels: frames never leave the vision process.
    """

    camera: str
    zone: str
    track_id: int
    kind: str  # enter | dwell | exit
    dwell_s: float
    focus: float
    confidence: float
    ts: float
    shopper_id: Optional[str] = None  # a loyalty id, only when the shopper identified themselves


# --- offers → signage ---------------------------------------------------------------------------

class Offer(msgspec.Struct, frozen=True):
    """Published on ``offers.offer``: show this on the screens of ``zone`` until ``issued_at + ttl_s``.

    Text fields are plain text (signage escapes them); ``image`` is a creative name, never a URL.
    """

    offer_id: str
    zone: str
    sku: str
    title: str
    ttl_s: float
    issued_at: float
    relevance: float  # calibrated probability that the shopper buys ``sku`` on this trip
    body: str = ""
    price: Optional[float] = None
    discount_pct: Optional[float] = None
    image: Optional[str] = None


# --- trust: model packages, their activation and attestation ------------------------------------

class Installed(msgspec.Struct, frozen=True, kw_only=True):
    """A verified, activated model package. Published on ``trust.model`` when the active model changes."""

    name: str
    kind: str
    version: str
    security_epoch: int
    digest: str  # hex SHA-256 of manifest.json
    path: str  # the version directory the services load from


class MeasuredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the measurement event log: a manifest digest extended into ``pcr``."""

    pcr: int
    digest: str  # hex SHA-256 of manifest.json: what was extended
    name: str
    version: str
    security_epoch: int


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """What a device hands a verifier: the quote, its signature and the event log."""

    attest: bytes
    signature_r: bytes
    signature_s: bytes
    pcr: int
    nonce: bytes
    events: list[MeasuredEvent]


class TrustStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Reply of ``active``: the verified active model (None: none), the floor, and the TPM's state."""

    model: Optional[Installed]
    floor_epoch: Optional[int]  # None when the TPM could not be read
    tpm: str  # "ok" or the error code (tpm_unavailable, tpm_lockout, anchor, counter, …)
    attested: bool  # a fresh quote by this device's AK verified against its event log, naming ``model``
    reason: str = ""


class InstallRequest(msgspec.Struct, frozen=True):
    path: str  # absolute path of a package directory the updater or maintenance page unpacked


class AttestRequest(msgspec.Struct, frozen=True):
    nonce: bytes  # the verifier's fresh nonce, at most 32 bytes


class AttestReply(msgspec.Struct, frozen=True, kw_only=True):
    evidence: Evidence
    ak_public_pem: str  # as the TPM reports it; the NOC verifies with the key recorded at enrolment


class FirmwareFloor(msgspec.Struct, frozen=True, kw_only=True):
    """Reply of ``firmware_floor``/``raise_firmware_floor``: the firmware security-epoch floor in the TPM."""

    epoch: Optional[int]  # None when the TPM could not be read (then ``tpm`` names why)
    tpm: str  # "ok" or the error code (tpm_unavailable, anchor, counter, …)
    reason: str = ""


class RaiseFirmwareFloorRequest(msgspec.Struct, frozen=True):
    epoch: int  # the committed firmware's security epoch; the floor never goes down


# --- pos: req/rep -----------------------------------------------------------------------------

class StockQuery(msgspec.Struct, frozen=True):
    skus: list[str]


class StockReply(msgspec.Struct, frozen=True):
    levels: list[StockLevel]


class BasketQuery(msgspec.Struct, frozen=True):
    shopper_id: str
    limit: int = 20


class BasketsReply(msgspec.Struct, frozen=True):
    baskets: list[Basket]


class CatalogQuery(msgspec.Struct, frozen=True):
    """Items of these categories (all items when empty), at most ``limit``."""

    categories: list[str] = []
    limit: int = 10_000


class CatalogEntry(msgspec.Struct, frozen=True):
    sku: str
    name: str
    category: str
    price: float


class CatalogReply(msgspec.Struct, frozen=True):
    items: list[CatalogEntry]


class Empty(msgspec.Struct, frozen=True):
    pass



# --- updater: A/B firmware state (topic ``updater.status``; RPCs ``status``, ``check``, ``install_file``) --

class SlotInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One RAUC rootfs slot as the updater sees it."""

    name: str  # RAUC's slot name, e.g. "rootfs.0"
    bootname: str  # "A" or "B"
    state: str  # RAUC's: "booted", "active" or "inactive"
    boot_status: str  # "good", "bad" or "unknown"
    version: Optional[str] = None  # bundle version installed there, when RAUC recorded one
    installed_at: Optional[str] = None


class UpdateRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the update history: what happened to which version, and why."""

    at: float  # UTC epoch seconds
    version: str
    outcome: str  # "installed", "committed", "rolled-back", "refused", "failed"
    reason: str = ""


class UpdateStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Published on ``updater.status`` on every change and periodically; reply of ``status`` and ``check``."""

    state: str  # "idle", "checking", "downloading", "verifying", "installing", "rebooting", "confirming", "failed"
    ring: str
    compatible: str
    version: Optional[str]  # the running firmware
    booted: Optional[str]  # bootname of the booted slot
    primary: Optional[str]  # bootname the boot loader will try next
    slots: list[SlotInfo] = []
    offered: Optional[str] = None  # newest version the ring offers this device
    progress: int = 0  # percent of the current operation
    message: str = ""  # one plain-words line for the maintenance page
    last_result: Optional[str] = None
    rollback_reason: Optional[str] = None
    history: list[UpdateRecord] = []
    at: float = 0.0


class InstallBundleRequest(msgspec.Struct, frozen=True):
    path: str  # absolute path of a bundle file already on this device (e.g. uploaded on the maintenance page)


# --- maintenance queries answered by the services (for the maintenance page) --------------------

class ScreenState(msgspec.Struct, frozen=True, kw_only=True):
    """What one signage display shows now, as its page last acknowledged."""

    display: str
    zone: str
    showing: str  # "offer", "loop" or "fallback"
    title: Optional[str] = None
    sku: Optional[str] = None
    acked_at: Optional[float] = None  # None: the page never acknowledged


class ScreensReply(msgspec.Struct, frozen=True):
    screens: list[ScreenState]


class PushTestOfferRequest(msgspec.Struct, frozen=True):
    display: str  # the display to show a test offer on (a marked test card, not a real promotion)


class PosLink(msgspec.Struct, frozen=True, kw_only=True):
    """Reply of pos ``link``: the POS/ERP link as the poller sees it."""

    adapter: str
    last_poll_ok_at: Optional[float]
    lag_s: Optional[float]  # now minus the newest source timestamp committed
    quarantined: int
    last_error: Optional[ErrorInfo] = None


class PosLinkTest(msgspec.Struct, frozen=True, kw_only=True):
    """Reply of pos ``test_link``: one fresh read against the source, now."""

    ok: bool
    detail: str
    latency_ms: float


class ZoneShape(msgspec.Struct, frozen=True):
    name: str
    polygon: list[tuple[float, float]]  # pixel coordinates of the camera's frame


class CameraState(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    ok: bool
    fps: float
    frames: int
    last_frame_at: Optional[float]
    width: int = 0
    height: int = 0
    zones: list[ZoneShape] = []


class CamerasReply(msgspec.Struct, frozen=True):
    cameras: list[CameraState]


class SnapshotRequest(msgspec.Struct, frozen=True):
    camera: str


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A privacy-blurred JPEG of the camera's latest frame with its zones drawn (people never recognisable)."""

    camera: str
    jpeg: bytes
    taken_at: float


class ModelsReply(msgspec.Struct, frozen=True, kw_only=True):
    """Reply of trust ``models``: the active model and the one a rollback would return to."""

    active: Optional[Installed]
    previous: Optional[Installed]
    attested: bool


# --- req/rep framing --------------------------------------------------------------------------

class Request(msgspec.Struct, frozen=True):
    method: str
    params: msgspec.Raw


NIL = msgspec.Raw(b"\xc0")  # msgpack nil: the result of an error reply


class Reply(msgspec.Struct, frozen=True):
    ok: bool
    result: msgspec.Raw = NIL
    error: Optional[ErrorInfo] = None


TOPICS: dict[str, type] = {
    "pos.basket": Basket,
    "pos.stock": StockChanged,
    "vision.zone": ZoneEvent,
    "offers.offer": Offer,
    "trust.model": Installed,
    "updater.status": UpdateStatus,
}


def body_type(topic: str) -> type:
    """The body struct for ``topic``. Raises KeyError for a topic nobody declared."""
    if topic.endswith(".health"):
        return Health
    return TOPICS[topic]


def check_schema(schema: str) -> None:
    """Raise ValueError unless ``schema`` is ``<our major>.<any minor>``."""
    major, _, minor = schema.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError(f"malformed schema version {schema!r}")
    if int(major) != SCHEMA_MAJOR:
        raise ValueError(f"schema major {major} is not ours ({SCHEMA_MAJOR})")


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
