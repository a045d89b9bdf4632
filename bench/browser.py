"""Real headless Chromium for benchmarks and tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Never ``playwright install``: the browser is the distribution's, at ``CHROMIUM``. The flags keep it off
the network (no component updates, sync or background fetches on a closed store network) and make it
run as root in a container (``--no-sandbox``) without a GPU.

``STAMP_SCRIPT`` is injected into pages (``add_init_script``, outside the page's own code and CSP):
a MutationObserver that stamps, inside the page, when any element's ``data-offer-id`` changes —
the moment the offer is in the DOM — as ``performance.timeOrigin + performance.now()`` (ms since the
epoch), plus the time of the next animation frame. ``clock_offset_ms`` measures how that clock
differs from Python's ``time.time()`` so both ends of a latency are read on one clock.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

STAMP_SCRIPT = """
(() => {
  const stamps = [];
  Object.defineProperty(window, '__stamps', {value: stamps});
  new MutationObserver(records => {
    const t = performance.timeOrigin + performance.now();
    for (const r of records) {
      const id = r.target.getAttribute && r.target.getAttribute('data-offer-id');
      if (!id) continue;
      const s = [id, t, null];
      stamps.push(s);
      requestAnimationFrame(() => { s[2] = performance.timeOrigin + performance.now(); });
    }
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-offer-id']});
})();
"""


def launch_chromium(playwright: Any):
    """Launch Debian's Chromium through Playwright.

    Raises:
        RuntimeError: ``/usr/bin/chromium`` is not installed (``apt-get install chromium``).
    """
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium); "
                           "never `playwright install`")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def clock_offset_ms(page: Any, samples: int = 15) -> tuple[float, float]:
    """(page clock − ``time.time()``, ± uncertainty) in ms, from the round trip with the smallest delay.

    NTP-style: a page stamp taken between two Python stamps lies within their interval, so the
    shortest round trip bounds the offset most tightly (±half its length).
    """
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t0 = time.time()
        p = page.evaluate("performance.timeOrigin + performance.now()")
        t1 = time.time()
        half = (t1 - t0) * 500
        offset = p - (t0 + t1) * 500
        if best is None or half < best[1]:
            best = (offset, half)
    assert best is not None
    return best


