"""The maintenance page's view of signage: what each screen shows (``screens``) and a marked test card
pushed through the same hub and SSE path as real offers (``push_test_offer``).

Served on ``/run/endcap/signage.rpc`` by its own thread (``server`` run by ``core.bus.RpcThread``), so the page server's socket loop
never waits on it. A test card has the offer id prefix ``playlist.TEST_PREFIX`` (refused on real offers),
a short TTL, a "TEST" title and sku, and its proof-of-play records are stored as type ``test``.
"""
from __future__ import annotations

import secrets
import time
from typing import Callable, Optional

from ..core import messages as m
from ..core.bus import RpcServer, contained
from ..core.errors import EndcapError
from . import playlist
from .config import Display
from .hub import Hub
from .web import Showing, WebContext

TEST_TTL_S = 10.0


def screen_states(displays: list[Display], showing: dict[str, Showing], acks: dict[str, float],
                  card_of: Callable[[str, str], Optional[playlist.Card]]) -> list[m.ScreenState]:
    """Pure: one ``ScreenState`` per configured display, as its page last acknowledged.

    A display whose page never acknowledged reports ``fallback`` with ``acked_at`` None (unknown: at
    best it plays its built-in fallback). ``title`` is known while the offer is still in the hub's ring.
    """
    out = []
    for d in displays:
        s = showing.get(d.id)
        title = sku = None
        if s is not None and s.type == "offer":
            sku = s.item
            card = card_of(d.id, s.offer_id) if s.offer_id else None
            if card is not None:
                title, sku = card.title, card.sku
        out.append(m.ScreenState(display=d.id, zone=", ".join(d.zones), showing=s.type if s is not None else "fallback",
                                 title=title, sku=sku, acked_at=acks.get(d.id)))
    return out


class SignageMaint:
    """The RPC handlers (thread-safe: the hub and screens lock themselves)."""

    def __init__(self, web: WebContext, hub: Hub) -> None:
        self.web, self.hub = web, hub

    def screens(self, _req: m.Empty) -> m.ScreensReply:
        w = self.web
        return m.ScreensReply(screen_states(list(w.cfg.displays), w.screens.showing_snapshot(), w.screens.snapshot(),
                                            self.hub.card))

    def push_test_offer(self, req: m.PushTestOfferRequest) -> m.ScreensReply:
        display = self.web.cfg.display(req.display)
        if display is None:
            known = ", ".join(d.id for d in self.web.cfg.displays) or "none"
            raise EndcapError(f"push_test_offer: no display {req.display[:64]!r} (configured: {known})",
                              code="unknown_display")
        ttl = min(TEST_TTL_S, self.web.cfg.offer_ttl_max_s)
        card = playlist.maintenance_card(display, f"{int(time.time())}-{secrets.token_hex(4)}", ttl)
        self.hub.push([display.id], card, time.monotonic())
        self.web.counters.add("test_offers_pushed")
        return self.screens(m.Empty())


def server(address: str, maint: SignageMaint) -> RpcServer:
    """The listening RPC server for ``screens`` and ``push_test_offer`` (run by ``core.bus.RpcThread``);
    an unexpected failure in either is an error reply, never a dead RPC thread."""
    return RpcServer(address, "signage", {
        "screens": (m.Empty, contained("screens", maint.screens)),
        "push_test_offer": (m.PushTestOfferRequest, contained("push_test_offer", maint.push_test_offer)),
    })
