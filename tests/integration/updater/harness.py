"""Test harness for the updater service: run it in a thread (``Running``) or as a real process
(``UpdaterProcess``), and a real bus publisher playing a healthy/unhealthy ``pos`` (``HealthyPos``).

The reboot command only drops a marker file; the test then plays the reboot (stop the updater,
``RaucDevice.reboot()`` runs GRUB's A/B script on the grubenv, start rauc and the updater again).
"""
from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path

from endcap.core import messages as m
from endcap.core.bus import Publisher, RpcClient
from endcap.core.paths import Paths
from endcap.core.runner import ServiceContext
from endcap.launcher import ServiceProcess
from endcap.updater.config import UpdaterConfig
from endcap.updater.service import main
from tests.fixtures.rauc import COMPATIBLE


def boot_id_file(dev) -> Path:
    """The device's "kernel boot id": written once, changed by ``reboot`` (as a real reboot changes it)."""
    f = dev.root / "boot_id"
    if not f.exists():
        f.write_text(f"{uuid.uuid4()}\n")
    return f


def reboot(dev) -> str:
    """Play a reboot: a new boot id, then GRUB's choice and rauc on that slot (``RaucDevice.reboot``)."""
    boot_id_file(dev).write_text(f"{uuid.uuid4()}\n")
    return dev.reboot()


def updater_config(root: Path, dev, **cfg) -> UpdaterConfig:
    base = dict(compatible=COMPATIBLE, dbus_address=dev.bus.address, floor_file=str(dev.floor_file),
                boot_id_file=str(boot_id_file(dev)),
                health_services=("pos",), status_interval_s=0.2, floor_source="file",
                reboot_command=("touch", str(root / "reboot-requested")))
    base.update(cfg)
    return UpdaterConfig(**base)


def wait_status(rpc: RpcClient, pred, timeout_s: float, alive, stop: threading.Event) -> m.UpdateStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        st = rpc.call("status", m.Empty(), m.UpdateStatus)  # blocks on the reply: the loop's pace, not a sleep
        if pred(st):
            return st
        assert alive(), "updater is not running"
        assert time.monotonic() < deadline, f"timed out; last status {st}"
        stop.wait(0.05)


class Running:
    """The service's ``main(ctx)`` in a thread of the test process."""

    def __init__(self, root: Path, dev, **cfg) -> None:
        self.paths = Paths.under(root)
        self.paths.ensure()
        self.marker = root / "reboot-requested"
        self.ctx = ServiceContext("updater", self.paths, updater_config(root, dev, **cfg))
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.rpc = RpcClient(self.paths.rpc_address("updater"), "test", timeout_ms=30_000)
        self._pause = threading.Event()

    def _run(self) -> None:
        try:
            main(self.ctx)
        except BaseException as e:  # surfaced by stop()
            self.error.append(e)

    def status(self) -> m.UpdateStatus:
        return self.rpc.call("status", m.Empty(), m.UpdateStatus)

    def check(self) -> m.UpdateStatus:
        return self.rpc.call("check", m.Empty(), m.UpdateStatus)

    def wait(self, pred, timeout_s: float = 30.0) -> m.UpdateStatus:
        return wait_status(self.rpc, pred, timeout_s, self._alive, self._pause)

    def _alive(self) -> bool:
        assert self.thread.is_alive(), self.error
        return True

    def stop(self) -> None:
        self.ctx.stop.set()
        self.thread.join(15)
        self.rpc.close()
        assert not self.thread.is_alive()
        assert not self.error, self.error


def install_until_done(upd, bundle: Path, timeout_s: float = 60.0) -> m.UpdateStatus:
    """``install_file`` (it returns once the bundle is accepted), then wait until the updater left
    verifying/installing; returns that status (state ``failed`` or ``rebooting``)."""
    st = upd.rpc.call("install_file", m.InstallBundleRequest(str(bundle)), m.UpdateStatus)
    assert st.state == "verifying", st
    return upd.wait(lambda s: s.state not in ("verifying", "installing"), timeout_s=timeout_s)


class UpdaterProcess:
    """The updater as its own process (``run_service`` + ``main``, what ``endcap service updater`` runs),
    so a test can SIGKILL it. Config is passed as JSON; readiness is sd_notify READY=1."""

    def __init__(self, root: Path, dev, **cfg) -> None:
        import msgspec

        self.paths = Paths.under(root)
        self.paths.ensure()
        self.marker = root / "reboot-requested"
        cfg_file = root / f"updater-{time.monotonic_ns()}.json"
        cfg_file.write_bytes(msgspec.json.encode(updater_config(root, dev, **cfg)))
        self.proc = ServiceProcess("updater", [sys.executable, "-m", "tests.integration.updater.updater_proc",
                                               str(root), str(cfg_file)], log_path=root / "updater.log")
        self.proc.start()
        self.proc.wait_ready(30)
        self.rpc = RpcClient(self.paths.rpc_address("updater"), "test", timeout_ms=30_000)
        self._pause = threading.Event()

    def wait(self, pred, timeout_s: float = 30.0) -> m.UpdateStatus:
        return wait_status(self.rpc, pred, timeout_s, self.proc.alive, self._pause)

    def kill(self) -> None:
        self.rpc.close()
        self.proc.kill()

    def stop(self) -> None:
        self.rpc.close()
        assert self.proc.stop() == 0


class HealthyPos:
    """Publishes ``pos.health`` ok from a thread (a real bus publisher, as the pos service would)."""

    def __init__(self, paths: Paths, ok: bool = True) -> None:
        self.pub = Publisher(paths.pub_address("pos"), "pos")
        self.ok = ok
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self.pub.publish("pos.health", m.Health(service="pos", ok=self.ok,
                                                    status="polling" if self.ok else "POS database unreachable"))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.pub.close()


class TrustThread:
    """The trust service's ``main(ctx)`` in a thread, on the same bus root as the updater (real swtpm)."""

    def __init__(self, root: Path, tcti: str, floor_file: Path | None = None) -> None:
        from endcap.trust.config import TrustConfig
        from endcap.trust.service import main as trust_main

        self.paths = Paths.under(root)
        self.paths.ensure()
        cfg = TrustConfig(compatible=COMPATIBLE, tcti=tcti, pcr=16, check_interval_s=0.5, health_interval_s=0.5,
                          firmware_floor_file=str(floor_file or ""))
        self.ctx = ServiceContext("trust", self.paths, cfg)
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(trust_main,), daemon=True)
        self.thread.start()
        self.rpc = RpcClient(self.paths.rpc_address("trust"), "test", timeout_ms=20_000)

    def _run(self, fn) -> None:
        try:
            fn(self.ctx)
        except BaseException as e:  # surfaced by stop()
            self.error.append(e)

    def floor(self) -> m.FirmwareFloor:
        return self.rpc.call("firmware_floor", m.Empty(), m.FirmwareFloor)

    def raise_floor(self, epoch: int) -> m.FirmwareFloor:
        return self.rpc.call("raise_firmware_floor", m.RaiseFirmwareFloorRequest(epoch), m.FirmwareFloor)

    def stop(self) -> None:
        self.ctx.stop.set()
        self.thread.join(15)
        self.rpc.close()
        assert not self.thread.is_alive()
        assert not self.error, self.error
