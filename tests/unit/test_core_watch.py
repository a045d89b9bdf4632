"""``endcap bus watch`` ships in the device wheel and needs no dev-only code; its lines read well."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from endcap.core import watch as buswatch
from endcap.core import messages as m
from endcap.core.bus import Message

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "image" / "debian"))

from endcap_image import devicewheel  # noqa: E402


def test_device_wheel_keeps_the_watch_module(tmp_path):
    assert not devicewheel.is_dev_only("endcap/core/watch.py")
    staged = devicewheel.stage(REPO, tmp_path / "stage") / "services" / "endcap"
    assert (staged / "core" / "watch.py").is_file() and (staged / "cli.py").is_file()
    assert not (staged / "devrun.py").exists()
    source = (staged / "core" / "watch.py").read_text()
    for lazy in (False, True):
        imports = devicewheel.imported_modules(source, "endcap.core.watch", lazy=lazy)
        assert not [i for i in imports if any(i == d or i.startswith(d + ".") for d in devicewheel.DEV_ONLY_MODULES)]


def test_bus_watch_runs_from_the_device_wheels_tree(tmp_path):
    """The staged tree (what the wheel is built from) lacks devrun/sim/launcher: the command still works."""
    services = devicewheel.stage(REPO, tmp_path / "stage") / "services"
    # -S: no site processing, so the checkout's editable-install finder (a .pth hook) is not loaded and
    # `endcap` comes only from the staged tree; site-packages on PYTHONPATH still gives msgspec, pynng.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(services), sysconfig.get_paths()["purelib"]])}
    code = ("import sys, endcap, endcap.cli as c; assert endcap.__file__.startswith(sys.argv[1]), endcap.__file__; "
            "sys.exit(c.main(['bus', 'watch', '--root', sys.argv[2], '--timeout', '0.3']))")
    r = subprocess.run([sys.executable, "-S", "-c", code, str(services), str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "not publishing yet (no socket): pos, vision" in r.stderr
    dev = subprocess.run([sys.executable, "-S", "-c", "import endcap.devrun"], env=env, capture_output=True, text=True, timeout=60)
    assert dev.returncode != 0 and "No module named 'endcap.devrun'" in dev.stderr  # the tree really lacks dev code


def test_bad_arguments_are_named(tmp_path):
    run = [sys.executable, "-m", "endcap.cli", "bus", "watch", "--root", str(tmp_path)]
    r = subprocess.run(run + ["--service", "pos", "--service", "tills"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--service tills: unknown; known: pos, vision" in r.stderr
    r = subprocess.run(run + ["--count", "-1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must not be negative" in r.stderr


def _msg(topic: str, body, source: str = "pos", ts: float | None = None) -> Message:
    env = m.Envelope(schema="1.0", id="x-1", ts=time.time() if ts is None else ts, source=source, body=b"")
    return Message(topic, env, body)


def test_lines_name_time_topic_source_and_summary():
    ts = time.mktime((2025, 3, 1, 14, 5, 9, 0, 0, -1))
    health = m.Health(service="pos", ok=False, status="no successful poll for 90 s")
    assert buswatch.line(_msg("pos.health", health, ts=ts)) == \
        "14:05:09 pos.health pos pos health: NOT OK — no successful poll for 90 s"
    assert buswatch.change_key("pos.health", health) == (False, "no successful poll for 90 s")


def test_topics_cover_every_declared_topic_and_the_watched_health():
    topics = buswatch.topics_for(["pos", "maint"])
    assert set(m.TOPICS) <= set(topics) and {"pos.health", "maint.health"} <= set(topics)
    assert "vision.health" not in topics
    assert buswatch.unknown_services(["pos", "till", "maint"], ["pos", "maint"]) == ["till"]
