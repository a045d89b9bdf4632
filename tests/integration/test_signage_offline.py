"""A screen whose signage service dies keeps playing: killed → the loop within 2 s, never blank or an
error page; restarted → live offers again without a reload; reloaded while down → the service worker's
cache serves the page and its creatives. Health says "screen alive" only while acknowledgements come.
"""
from __future__ import annotations

import time

from bench.browser import clock_offset_ms
from tests.fixtures.browser import new_page, shoot
from tests.fixtures.signage import LOOP_TOML, open_display, wait_attr
from tests.fixtures.waiting import wait_until
from tests.integration.test_signage_page import proof_records

CONFIG = """
[[signage.displays]]
id = "aisle-7"
zones = ["shelf-7a"]
loop = "aisle"
""" + LOOP_TOML

# In-page watch, outside the page's own code: every animation frame, is a layer with content on screen?
# And when did the page change state (page clock, ms since the epoch)?
WATCH = """
(() => {
  const w = {frames: 0, blank: 0, states: []};
  Object.defineProperty(window, '__watch', {value: w});
  const stamp = what => w.states.push([what, performance.timeOrigin + performance.now()]);
  document.addEventListener('endcap:state', e => stamp('state:' + e.detail));
  document.addEventListener('endcap:stream', e => stamp('stream:' + e.detail));
  const frame = () => {
    w.frames++;
    const offer = document.documentElement.dataset.state === 'offer';
    const layer = document.getElementById(offer ? 'offer' : 'loop');
    const box = layer && layer.getBoundingClientRect();
    const content = layer && layer.querySelector('img, h1, p');
    if (!box || box.width < 640 || box.height < 360 || !content || content.getBoundingClientRect().width === 0) w.blank++;
    requestAnimationFrame(frame);
  };
  document.addEventListener('DOMContentLoaded', () => requestAnimationFrame(frame));
})();
"""


def watch(page) -> dict:
    return page.evaluate("({frames: window.__watch.frames, blank: window.__watch.blank, states: window.__watch.states})")


def test_killed_service_leaves_the_loop_playing_and_a_restart_resumes_offers(signage, chromium, tmp_path):
    signage.configure(CONFIG)
    url = signage.start()
    page = new_page(chromium, init_scripts=(WATCH,))
    try:
        open_display(page, url, "aisle-7")  # also waits until the service worker has cached it all
        signage.show(page, signage.offer(ttl_s=30.0))
        page.evaluate("window.__marker = 'same page'")

        t_kill = time.time() * 1000
        signage.kill()
        wait_attr(page, "state", "loop", 2.0)
        wait_attr(page, "stream", "offline", 2.0)
        offset, _ = clock_offset_ms(page)
        w = watch(page)
        t_loop = [t for what, t in w["states"] if what == "state:loop"][-1] - offset
        print(f"\nSIGKILL -> loop on screen: {t_loop - t_kill:.1f} ms")
        assert t_loop - t_kill <= 2000, f"loop {t_loop - t_kill:.0f} ms after the kill"
        assert w["blank"] == 0 and w["frames"] > 10, w
        assert page.locator("#loop img, #loop h1").first.is_visible()
        shoot(page, "offline", tmp_path)

        signage.restart_same_port()
        wait_attr(page, "stream", "live", 10)
        back = signage.offer(title="Back online")
        signage.show(page, back)
        assert page.evaluate("window.__marker") == "same page"  # resumed without a reload
        shoot(page, "resumed", tmp_path)

        signage.kill()
        wait_attr(page, "state", "loop", 2.0)
        t_down = time.time()
        assert watch(page)["blank"] == 0
        resp = page.reload()
        assert resp is not None and resp.from_service_worker and resp.status == 200
        wait_attr(page, "state", "loop", 10)
        assert page.evaluate("window.__marker === undefined")  # a real reload
        assert page.evaluate("document.documentElement.dataset.stream") in ("connecting", "offline")
        assert page.evaluate("document.documentElement.dataset.item") in ("hero", "deal")
        decoded = page.evaluate("""() => [...document.querySelectorAll('#loop img')].every(i => i.naturalWidth > 0)""")
        assert decoded and page.locator("#loop img").first.is_visible()  # creatives came from the cache too
        shoot(page, "offline-reload", tmp_path)
        w = watch(page)
        assert w["blank"] == 0 and w["frames"] > 5, w

        t_up = time.time()
        signage.restart_same_port()
        wait_attr(page, "stream", "live", 10)
        signage.show(page, signage.offer(title="Live again"))
        # what played while the server was down (even across the reload) is delivered once it is back
        late = wait_until(lambda: [r for r in proof_records(signage) if t_down < r["to"] < t_up], what="records of the outage")
        assert all(r["display"] == "aisle-7" and r["received_at"] > t_up for r in late)
    finally:
        page.context.close()


def test_health_is_ok_only_while_the_screen_acknowledges(signage, chromium):
    signage.configure(CONFIG)
    signage.start()
    h = signage.health(lambda h: not h.ok)
    assert h.status == "no acknowledgement yet from aisle-7"
    page = new_page(chromium)
    try:
        open_display(page, signage.url, "aisle-7", offline_ready=False)
        h = signage.health(lambda h: h.ok, timeout_s=10)
        assert h.status.startswith("screen alive") and h.counters["acks"] >= 1
    finally:
        page.context.close()
    t_closed = time.monotonic()
    h = signage.health(lambda h: not h.ok, timeout_s=10)
    assert "screen silent: aisle-7" in h.status
    assert time.monotonic() - t_closed <= 2.0 + 1.5  # screen_stale_s + a health interval and some slack


def test_a_hung_service_is_noticed_by_its_silence_and_the_page_recovers(signage, chromium):
    import os
    import signal

    signage.configure(CONFIG)  # sse_ping_s = 1: silence for 2.5 s means the stream is gone
    signage.start()
    page = new_page(chromium)
    pid = signage.gw.procs["signage"].pid
    try:
        open_display(page, signage.url, "aisle-7", offline_ready=False)
        signage.show(page, signage.offer(ttl_s=30.0))
        os.kill(pid, signal.SIGSTOP)  # alive, sockets open, answering nothing
        wait_attr(page, "stream", "offline", 4.0)
        wait_attr(page, "state", "loop", 0.5)
        os.kill(pid, signal.SIGCONT)
        wait_attr(page, "stream", "live", 10)
        signage.show(page, signage.offer(title="Awake again"))
    finally:
        os.kill(pid, signal.SIGCONT)
        page.context.close()
