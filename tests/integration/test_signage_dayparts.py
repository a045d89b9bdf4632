"""Dayparts in the real page: the loop switches at a daypart boundary (page clock driven by Playwright),
and the page's JS mirror of the schedule agrees with ``playlist.due`` at thousands of local times."""
from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

from endcap.core.config import convert_sections, parse_toml
from endcap.signage import playlist
from endcap.signage.config import SignageConfig
from tests.fixtures.browser import VIEWPORT, shoot
from tests.fixtures.signage import open_display, wait_attr

CONFIG = """
[[signage.displays]]
id = "cafe"
zones = ["shelf-1"]
loop = "cafe"
[[signage.dayparts]]
name = "breakfast"
start = "06:00"
end = "11:00"
[[signage.dayparts]]
name = "lunch"
start = "11:00"
end = "14:30"
days = ["mon", "tue", "wed", "thu", "fri"]
[[signage.dayparts]]
name = "late"
start = "22:00"
end = "02:00"
[[signage.loops]]
id = "cafe"
items = [
  { id = "croissant", creative = "breakfast.html", duration_s = 7, dayparts = ["breakfast"] },
  { id = "porridge", creative = "breakfast.html", duration_s = 5, dayparts = ["breakfast"] },
  { id = "sandwich", creative = "lunch.html", duration_s = 9, dayparts = ["lunch"] },
  { id = "soup", creative = "lunch.html", duration_s = 11, dayparts = ["lunch"] },
  { id = "weekend", creative = "hero.png", duration_s = 13, days = ["sat", "sun"] },
  { id = "night", creative = "hero.png", duration_s = 17, start = "21:30", end = "01:15" },
  { id = "always", creative = "deal.html", duration_s = 6, start = "00:00", end = "24:00" },
]
"""
Schema = msgspec.defstruct("Schema", [("signage", SignageConfig)], forbid_unknown_fields=True, kw_only=True)


def schedule(cfg_text: str) -> playlist.Schedule:
    cfg = convert_sections(parse_toml(cfg_text, "test"), Schema).signage
    return playlist.build_schedule(cfg.loop("cafe"), cfg.dayparts)


def python_due(s: playlist.Schedule, ms: int, tz: ZoneInfo) -> dict:
    """``playlist.due`` at epoch ``ms`` in ``tz``; seconds computed exactly as the page computes them."""
    dt = datetime.fromtimestamp(ms // 1000, tz)
    sec = dt.hour * 3600 + dt.minute * 60 + dt.second + (ms % 1000) / 1000
    d = playlist.due(s, dt.weekday(), sec)
    return {"id": d.item.id, "daypart": d.daypart, "since": d.since, "until": d.until, "fallback": d.fallback}


def creatives(signage) -> None:
    (signage.creatives / "breakfast.html").write_text('<div class="creative"><h1>Good morning</h1><p>Coffee and croissant</p></div>')
    (signage.creatives / "lunch.html").write_text('<div class="creative"><h1>Lunch deals</h1><p>Soup and a sandwich</p></div>')


def test_a_daypart_boundary_switches_the_loop(signage, chromium, tmp_path):
    tz = ZoneInfo("Asia/Kolkata")  # +05:30: a page reading UTC by mistake would be half an hour off
    creatives(signage)
    signage.configure(CONFIG)
    url = signage.start()
    context = chromium.new_context(viewport=VIEWPORT, timezone_id=tz.key)
    try:
        page = context.new_page()
        start = datetime(2025, 3, 3, 10, 59, 42, tzinfo=tz)  # a Monday, 18 s before breakfast ends
        page.clock.install(time=start)
        page.clock.pause_at(start)  # the page's time stands still until we move it
        open_display(page, url, "cafe", offline_ready=False)
        now_ms = page.evaluate("Date.now()")
        assert python_due(schedule(CONFIG), now_ms, tz) == {"id": "croissant", "daypart": "breakfast",
                                                             "since": 39582.0, "until": 39589.0, "fallback": False}
        assert page.evaluate("document.documentElement.dataset.item") == "croissant"
        assert page.locator("#loop h1").inner_text() == "Good morning"
        shoot(page, "daypart-breakfast", tmp_path)
        page.clock.fast_forward("00:23")  # to 11:00:05: lunch
        wait_attr(page, "item", "sandwich", 5)  # the lunch loop starts at its first item
        now_ms = page.evaluate("Date.now()")
        assert python_due(schedule(CONFIG), now_ms, tz)["id"] == "sandwich"
        assert page.locator("#loop h1").inner_text() == "Lunch deals"
        shoot(page, "daypart-lunch", tmp_path)
    finally:
        context.close()


def test_the_page_schedule_agrees_with_playlist_py(signage, chromium):
    tz = ZoneInfo("Europe/Berlin")  # with summer time: local days of 23 and 25 hours
    creatives(signage)
    signage.configure(CONFIG)
    url = signage.start()
    context = chromium.new_context(viewport=VIEWPORT, timezone_id=tz.key)
    try:
        page = context.new_page()
        open_display(page, url, "cafe", offline_ready=False)
        rng = random.Random(11)
        year = int(datetime(2025, 1, 1, tzinfo=tz).timestamp() * 1000)
        times = [year + rng.randrange(0, 365 * 86_400_000) for _ in range(3000)]
        # every segment edge on a few days, either side of it, and the summer-time change days
        for day in ("2025-03-03", "2025-03-08", "2025-03-30", "2025-10-26"):
            base = datetime.fromisoformat(day).replace(tzinfo=tz)
            for edge in schedule(CONFIG).boundaries[:-1]:
                t = int(base.timestamp() * 1000) + edge * 1000
                times += [t - 1, t, t + 1]
        page_due = page.evaluate("ts => ts.map(t => window.Endcap.dueAt(t))", times)
    finally:
        context.close()
    s = schedule(CONFIG)
    mismatches = [(t, want, got) for t, got in zip(times, page_due)
                  if (want := python_due(s, t, tz)) != got]
    assert not mismatches, mismatches[:5]
    seen = {d["id"] for d in page_due}
    assert {"croissant", "porridge", "sandwich", "soup", "weekend", "night", "always"} <= seen
