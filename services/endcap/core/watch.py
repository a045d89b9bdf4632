"""``endcap bus watch``: every message on the bus as one readable line (a gateway and a dev host alike).

``describe``/``line``/``change_key`` are pure formatting (``endcap run`` uses them too); ``watch`` is the
subscriber loop. Ships in the device wheel: it needs only ``endcap.core`` and the service names.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, TextIO

from .bus import Message, Subscriber
from .errors import BusTimeout
from .messages import TOPICS
from .paths import Paths


def describe(topic: str, body: Any) -> str:
    """One plain-words summary of a message body."""
    if topic == "pos.basket":
        total = sum(ln.qty * ln.price for ln in body.lines)
        return f"basket {body.txn_id} {body.status}: {len(body.lines)} lines, {total:.2f}"
    if topic == "pos.stock":
        known = sum(1 for lv in body.levels if lv.qty is not None)
        return f"stock: {len(body.levels)} SKUs moved ({known} known)"
    if topic == "offers.offer":
        return f"OFFER on zone {body.zone}: {body.title} (sku {body.sku}, relevance {body.relevance:.2f}, {body.ttl_s:.0f} s)"
    if topic == "trust.model":
        return f"active model {body.name} {body.version} (epoch {body.security_epoch})"
    if topic == "vision.zone":
        return (f"{body.camera}/{body.zone}: shopper #{body.track_id} {body.kind} {body.dwell_s:.1f} s "
                f"(focus {body.focus:.2f}, confidence {body.confidence:.2f})")
    if topic == "updater.status":
        note = f" — {body.message}" if body.message else ""
        return f"firmware {body.version or '?'} on slot {body.booted or '?'}: {body.state}{note}"
    if topic.endswith(".health"):
        return f"{body.service} health: {'ok' if body.ok else 'NOT OK'} — {body.status}"
    return repr(body)


def change_key(topic: str, body: Any) -> tuple:
    """What must differ for a repeated (heartbeat-like) message to count as news."""
    if topic.endswith(".health"):
        return (body.ok, body.status)
    if topic == "trust.model":
        return (body.digest,)
    return (body.state, body.message, body.version, body.booted)


def line(msg: Message) -> str:
    """``HH:MM:SS topic source summary``; the time is when the publisher sent it (local time)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(msg.envelope.ts))
    return f"{stamp} {msg.topic} {msg.envelope.source} {describe(msg.topic, msg.body)}"


def unknown_services(names: Iterable[str], known: Iterable[str]) -> list[str]:
    """The names in ``names`` that are not services of the gateway."""
    known = set(known)
    return [n for n in names if n not in known]


def topics_for(services: Iterable[str]) -> list[str]:
    """Every declared topic, plus the health topic of each watched service."""
    return list(TOPICS) + [f"{s}.health" for s in services]


def watch(paths: Paths, services: list[str], count: int = 0, timeout_s: float = 0.0,
          out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print each message published by ``services`` under ``paths`` until ``count`` messages
    (0: no limit) or ``timeout_s`` seconds (0: no limit). Returns the number printed.

    Raises:
        BusError: a socket path is too long for its root, or receiving failed.
    """
    absent = [s for s in services if not (paths.run_dir / f"{s}.pub").exists()]
    print(f"watching {', '.join(services)} on {paths.run_dir}"
          + (f"; not publishing yet (no socket): {', '.join(absent)}" if absent else ""), file=err, flush=True)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    seen = 0
    with Subscriber([paths.pub_address(s) for s in services], topics_for(services), "watch", recv_timeout_ms=200) as sub:
        while deadline is None or time.monotonic() < deadline:
            try:
                msg = sub.recv()
            except BusTimeout:
                continue
            print(line(msg), file=out, flush=True)
            seen += 1
            if count and seen >= count:
                break
    return seen
