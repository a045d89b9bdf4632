"""``endcap bus watch`` against real publishers (pynng over unix sockets): it prints what they publish
and stops on --count or Ctrl-C."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from endcap.core import messages as m
from endcap.core.bus import Publisher
from endcap.core.paths import Paths


class Watch:
    """``endcap bus watch`` as a child process; its stdout lines collected by a reader thread."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "endcap.cli", "bus", "watch", "--root", str(root), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def publish_until(self, pub: Publisher, topic: str, body, wanted: str, timeout_s: float = 30.0) -> str:
        """Publish ``body`` again and again (the subscriber dials in the background; early messages are lost
        by design) until a printed line contains ``wanted``; return that line."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while time.monotonic() < deadline and self.proc.poll() is None:
                pub.publish(topic, body)
                found = [ln for ln in self.lines if wanted in ln]
                if found:
                    return found[0]
                self.changed.wait(0.05)  # woken by the next printed line
            found = [ln for ln in self.lines if wanted in ln]
        assert found, f"no line with {wanted!r}; printed {self.lines}; stderr {self.stop_and_stderr()}"
        return found[0]

    def stop_and_stderr(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return self.proc.stderr.read()


@pytest.fixture
def root():
    d = Path(tempfile.mkdtemp(prefix="ecw-"))  # short: unix socket paths are limited to 107 bytes
    Paths.under(d).ensure()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_prints_what_a_real_publisher_sends_and_stops_after_count(root):
    paths = Paths.under(root)
    offer = m.Offer(offer_id="o-1", zone="shelf-7a", sku="1001", title="Crisps today", ttl_s=12.0,
                    issued_at=time.time(), relevance=0.42)
    with Publisher(paths.pub_address("offers"), "offers") as pub:
        watch = Watch(root, "--service", "offers", "--count", "3")
        try:
            line = watch.publish_until(pub, "offers.offer", offer, "Crisps today")
            for _ in range(3):  # connected now: these arrive; the watch stops after its third line
                pub.publish("offers.offer", offer)
            assert watch.proc.wait(timeout=30) == 0
        finally:
            stderr = watch.stop_and_stderr()
    watch._reader.join(timeout=30)
    assert line.split(" ", 1)[1] == "offers.offer offers OFFER on zone shelf-7a: Crisps today (sku 1001, relevance 0.42, 12 s)"
    assert len(watch.lines) == 3 and all(ln.split(" ", 1)[1].startswith("offers.offer offers ") for ln in watch.lines)
    assert f"watching offers on {paths.run_dir}" in stderr and "not publishing yet" not in stderr


def test_watches_only_the_named_services_and_ctrl_c_stops_it(root):
    paths = Paths.under(root)
    pos_health = m.Health(service="pos", ok=False, status="no successful poll for 90 s")
    vision_health = m.Health(service="vision", ok=True, status="2 cameras streaming")
    with Publisher(paths.pub_address("pos"), "pos") as pos, Publisher(paths.pub_address("vision"), "vision") as vision:
        watch = Watch(root, "--service", "pos", "--service", "signage")
        try:
            vision.publish("vision.health", vision_health)  # not watched: never printed
            line = watch.publish_until(pos, "pos.health", pos_health, "pos.health")
            os.killpg(watch.proc.pid, signal.SIGINT)  # what Ctrl-C does
            assert watch.proc.wait(timeout=30) == 0
        finally:
            stderr = watch.stop_and_stderr()
    assert line.split(" ", 1)[1] == "pos.health pos pos health: NOT OK — no successful poll for 90 s"
    assert not [ln for ln in watch.lines if "vision" in ln]
    assert "not publishing yet (no socket): signage" in stderr and "Traceback" not in stderr
