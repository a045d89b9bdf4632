"""The ``updater`` service: runs the pure state machine (machine.py) and carries out its actions.

One loop: req/rep (``status``, ``check``, ``install_file``), the health gate's subscriber, RAUC over
D-Bus and the poll timer. Slow work (TUF poll, bundle download, bundle verification) runs in one worker
thread whose result comes back to the loop as a machine event; the machine and the loop's RAUC connection
are only touched by the loop (verification opens its own). Actions run in the order the machine gives; a
``Persist`` is written before anything after it runs, so a crash never loses a pending confirm. A failing
action (reboot command, RAUC mark, floor raise) becomes an event or a health failure, never an exception
out of the loop.

``install_file`` only hands a local bundle to the machine and returns (state ``verifying``); the caller
follows ``updater.status``. Nothing of an uploaded file is read before RAUC checked its signature.

Verification before RAUC writes anything: TUF (signed pointer and bundle target agree; length and
hashes of the download); RAUC checks the signature against the keyring (``Info``); then compatible,
the version the offer named, and the floor rule (``floor.check``: newer than running, epoch not below
the floor). The floor is the TPM's firmware counter (trust RPC ``firmware_floor``) or ``floor.json``,
whichever is higher; ``floor.json`` is corrected up to the TPM value because RAUC's pre-install
handler enforces the same rule from it. After mark-good the TPM floor is raised (``raise_firmware_floor``).
"""
from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import msgspec

from ..core import bundlever
from ..core import messages as m
from ..core.atomic import atomic_write
from ..core.bus import Publisher, RpcClient, RpcServer
from ..core.errors import BusError, EndcapError, IntegrityError, RemoteError, UpdateError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from . import floor as fl
from . import machine as mc
from .config import UpdaterConfig
from .fetch import Offer, Repo
from .health import HealthGate
from .history import Store
from .preinstall import read_floor
from .rauc import TRANSIENT_CODES, Rauc, slot_infos

log = logging.getLogger(__name__)

TRANSPORT_CODES = ("[truncated]", "[tampered]", "[length]")  # wrong bytes from the server, not a bad bundle


def bundle_manifest(path: str) -> bundlever.Manifest:
    """A bundle's manifest (squashfs at offset 0, read with unsquashfs).

    Only called after RAUC verified the signature (``Info``), and its version/compatible are compared
    with RAUC's answer; RAUC's pre-install handler re-reads the mounted, verified copy. Raises:
    IntegrityError(code="manifest") for every way it can fail (no unsquashfs, timeout, bytes, syntax).
    """
    try:
        r = subprocess.run(["unsquashfs", "-cat", path, "manifest.raucm"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise IntegrityError(f"{path}: manifest not readable: {e}", code="manifest") from e
    if r.returncode != 0:
        err = r.stderr.decode("utf-8", "replace").strip()[:200]
        raise IntegrityError(f"{path}: manifest not readable: {err}", code="manifest")
    return bundlever.parse_manifest(r.stdout, f"{path}: manifest")


def read_boot_id(path: str) -> str:
    """The kernel's boot id (changes on every boot); "" when it cannot be read (then a reboot cannot be proven
    and the machine falls back to comparing slots)."""
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        log.warning("boot id not readable from %s (%s): reboots are judged by the booted slot only", path, e)
        return ""


def under(path: str, folder: str) -> bool:
    """Whether ``path`` (resolved) lies inside ``folder`` (resolved); False when ``folder`` is empty."""
    if not folder:
        return False
    p, d = Path(path).resolve(), Path(folder).resolve()
    return p != d and p.is_relative_to(d)


class Updater:
    """State, I/O and RPC handlers around the pure machine."""

    def __init__(self, cfg: UpdaterConfig, ctx: ServiceContext, pub: Optional[Publisher]) -> None:
        self.cfg, self.ctx, self.pub = cfg, ctx, pub
        self.state_dir: Path = ctx.state_dir()
        self.store = Store(self.state_dir)
        self.floor_path = Path(cfg.floor_file) if cfg.floor_file else self.state_dir / "floor.json"
        self.state = self.store.state()
        self.history = self.store.history()
        self.health = HealthState("updater", stale_after_s=max(3 * cfg.status_interval_s, 10.0))
        self.rauc: Optional[Rauc] = None
        self.installing = False
        self.progress = 0
        self.offered: Optional[str] = None
        self.gate = HealthGate(ctx.paths, cfg.health_services, fresh_s=max(3 * cfg.status_interval_s, 10.0))
        self.dirty = True
        self.repo: Optional[Repo] = None
        if cfg.repo_url:
            self.repo = Repo(cfg.repo_url, self.state_dir, Path(cfg.trusted_root), cfg.ring, cfg.compatible,
                             timeout_s=cfg.download_timeout_s)
        self.offer: Optional[Offer] = None
        self.results: "queue.Queue[mc.Event]" = queue.Queue()
        self.worker: Optional[threading.Thread] = None
        self.next_poll = 0.0
        self.upload: Optional[str] = None  # the local bundle being verified/installed (deleted after, if uploaded)

    # --- RAUC and facts -----------------------------------------------------------------------

    def connect(self) -> Rauc:
        if self.rauc is None:
            self.rauc = Rauc(self.cfg.dbus_address)
        return self.rauc

    def drop_rauc(self) -> None:
        """Close the loop's RAUC connection after an error; the next use opens a fresh one."""
        if self.rauc is not None:
            self.rauc.close()
            self.rauc = None

    def running_version(self, r: Optional[Rauc] = None) -> str:
        r = r or self.connect()
        booted = [s for s in slot_infos(r.slots()) if s.state == "booted"]
        if booted and booted[0].version:
            return booted[0].version
        return self.cfg.factory_version

    def floor_epoch(self) -> int:
        try:
            return read_floor(self.floor_path).epoch
        except IntegrityError:
            return 0

    def _trust(self, method: str, req: msgspec.Struct) -> m.FirmwareFloor:
        """One call to the trust service. Raises: UpdateError(code="floor") naming why it failed."""
        try:
            with RpcClient(self.ctx.paths.rpc_address("trust"), "updater", timeout_ms=self.cfg.trust_timeout_ms) as c:
                r = c.call(method, req, m.FirmwareFloor)
        except (BusError, RemoteError) as e:
            raise UpdateError(f"trust {method}: {e}", code="floor") from e
        if r.epoch is None:
            raise UpdateError(f"trust {method}: TPM floor unreadable: {r.reason or r.tpm}", code="floor")
        return r

    def current_floor(self, r: Optional[Rauc] = None) -> int:
        """The floor to enforce: the TPM's (when ``floor_source`` is trust) or the file's, whichever is higher.

        A file below the TPM is corrected (the pre-install handler reads it). Raises: UpdateError(code="floor")
        when trust cannot be asked: fail closed, no install without the TPM's word.
        """
        file_epoch = self.floor_epoch()
        if self.cfg.floor_source == "file":
            return file_epoch
        tpm = self._trust("firmware_floor", m.Empty()).epoch or 0
        if file_epoch < tpm:
            log.info("floor file %s says epoch %d, the TPM %d: correcting the file", self.floor_path, file_epoch, tpm)
            self._write_floor(tpm, r)
        elif file_epoch > tpm:
            log.warning("floor file %s says epoch %d, above the TPM's %d: enforcing the higher", self.floor_path,
                        file_epoch, tpm)
        return max(file_epoch, tpm)

    def _write_floor(self, epoch: int, r: Optional[Rauc] = None) -> None:
        atomic_write(self.floor_path, msgspec.json.encode(fl.FloorFile(self.running_version(r), epoch)))

    def sync_floor(self, epoch: Optional[int] = None) -> None:
        """Write what the pre-install handler enforces: the running version and the epoch floor
        (the higher of the file, the TPM when reachable, and ``epoch``)."""
        try:
            e = self.current_floor()
        except UpdateError as err:
            log.warning("floor not read from the TPM (%s); keeping the file's", err)
            e = self.floor_epoch()
        self._write_floor(max(e, epoch or 0))

    def raise_floor(self, epoch: int) -> None:
        """After mark-good: the file first (the committed record, which trust caps a raise by), then the
        TPM counter (the anchor). Raises: UpdateError when RAUC cannot say the running version."""
        self.sync_floor(epoch)
        if self.cfg.floor_source == "trust":
            try:
                got = self._trust("raise_firmware_floor", m.RaiseFirmwareFloorRequest(epoch)).epoch
                log.info("TPM firmware floor now %s", got)
            except UpdateError as e:  # the file carries the floor meanwhile; the next commit raises the TPM
                log.error("TPM firmware floor not raised to %d: %s", epoch, e)
                self.health.failure(e, time.time())

    def recover_interrupted_install(self, booted: str) -> None:
        """An install this process did not see end (the updater was killed or crashed): wait for RAUC to
        finish it, then, when no pending update was recorded but RAUC switched the primary slot, switch
        it back (``Mark("active", "booted")``) so no unconfirmed slot boots; the next attempt reinstalls."""
        r = self.connect()
        while r.operation() != "idle" and not self.ctx.stop.is_set():
            self.ctx.alive()
            self.ctx.stop.wait(0.2)
        if self.state.pending is not None:
            return
        slots = slot_infos(r.slots())
        prim = r.primary()
        primary = next((s.bootname for s in slots if s.name == prim), None)
        if primary is not None and primary != booted:
            log.warning("slot %s is primary but no install was recorded (updater interrupted): %s", primary,
                        r.mark("active", "booted"))
            self.history = self.store.append(m.UpdateRecord(
                at=time.time(), version=self.state.target or "?", outcome="failed",
                reason=f"install interrupted (updater restarted); slot {primary} dropped, {booted} stays primary"))

    # --- network work (worker thread) ---------------------------------------------------------

    def _start(self, job) -> None:
        def run() -> None:
            try:
                ev = job()
            except Exception as e:  # never lose the machine in a dead thread: report it as a failed step
                log.exception("updater worker failed")
                ev = mc.StepFailed(f"[internal] {type(e).__name__}: {e}")
            self.results.put(ev)
        self.worker = threading.Thread(target=run, name="updater-net", daemon=True)
        self.worker.start()

    def _skip(self, version: str) -> Optional[str]:
        """Why ``version`` is not tried again: it rolled back here or the bundle itself was refused.
        A download refused for wrong bytes (truncated/altered copy) is tried again: the store may fix it."""
        for h in reversed(self.history):
            if h.version != version:
                continue
            if h.outcome == "rolled-back" or (h.outcome == "refused" and not h.reason.startswith(TRANSPORT_CODES)):
                return h.outcome
        return None

    def start_poll(self) -> Optional[mc.Event]:
        if self.repo is None:
            return mc.Offered(None, note="no update repository configured (repo_url): bundles only by hand")
        try:
            repo, running = self.repo, self.running_version()
        except UpdateError as e:
            return mc.StepFailed(f"[{e.code}] {e}")

        def job() -> mc.Event:
            try:
                offer = repo.poll()
            except IntegrityError as e:
                return mc.StepFailed(f"[{e.code}] {e}", refused=True)
            except UpdateError as e:
                return mc.StepFailed(f"[{e.code}] {e}")
            self.offered = offer.version if offer else None
            if offer is None or fl.parse_version(offer.version) <= fl.parse_version(running):
                return mc.Offered(None)
            why = self._skip(offer.version)
            if why is not None:
                note = f"ring offers {offer.version}, which was {why} here: waiting for a newer release"
                log.info("%s", note)
                return mc.Offered(None, note=note)
            self.offer = offer
            return mc.Offered(offer.version, offer.epoch)
        self._start(job)
        return None

    def start_download(self, version: str) -> Optional[mc.Event]:
        offer, repo = self.offer, self.repo
        if offer is None or repo is None or offer.version != version:
            return mc.StepFailed(f"[internal] no offer for {version} to download")
        self.progress = 0

        def progress(got: int, total: int) -> None:
            pct = got * 100 // max(total, 1)
            if pct != self.progress:
                self.progress, self.dirty = pct, True

        def job() -> mc.Event:
            repo.clean(keep=repo.bundle_path(offer))
            try:
                path = repo.download(offer, bandwidth=self.cfg.bandwidth_bytes_s, stop=self.ctx.stop,
                                     progress=progress)
            except IntegrityError as e:
                return mc.StepFailed(f"[{e.code}] {e}", refused=True)
            except UpdateError as e:
                return mc.StepFailed(f"[{e.code}] {e}")
            return mc.Fetched(str(path))
        self._start(job)
        return None

    def drain_results(self) -> None:
        while True:
            try:
                ev = self.results.get_nowait()
            except queue.Empty:
                return
            if isinstance(ev, mc.StepFailed) and not ev.refused:  # network trouble: try again sooner
                self.next_poll = min(self.next_poll, time.time() + self.cfg.retry_interval_s)
            self.feed(ev)

    # --- machine driving ----------------------------------------------------------------------

    def feed(self, ev: mc.Event) -> None:
        queue: list[mc.Event] = [ev]
        while queue:
            e = queue.pop(0)
            self.state, actions = mc.step(self.state, e, confirm_timeout_s=self.cfg.confirm_timeout_s)
            for a in actions:
                nxt = self.run_action(a)
                if nxt is not None:
                    queue.append(nxt)
        if self.upload is not None and self.state.phase not in (mc.VERIFYING, mc.INSTALLING):
            self.release_upload()

    def run_action(self, a: mc.Action) -> Optional[mc.Event]:
        if isinstance(a, mc.Persist):
            self.store.save_state(self.state)
        elif isinstance(a, mc.Publish):
            self.dirty = True
        elif isinstance(a, mc.Record):
            self.history = self.store.append(m.UpdateRecord(at=time.time(), version=a.version, outcome=a.outcome,
                                                            reason=a.reason))
            log.info("update %s: %s%s", a.version, a.outcome, f" ({a.reason})" if a.reason else "")
        elif isinstance(a, mc.Poll):
            return self.start_poll()
        elif isinstance(a, mc.Download):
            return self.start_download(a.version)
        elif isinstance(a, mc.Verify):
            self._start(lambda: self.verify(a))
        elif isinstance(a, mc.Install):
            try:
                self.connect().install(a.path)
                self.installing = True
            except EndcapError as e:
                return mc.StepFailed(f"[{e.code}] {e}")
        elif isinstance(a, mc.Reboot):
            return self.reboot()
        elif isinstance(a, mc.MarkGood):
            return self.mark("good", "booted")
        elif isinstance(a, mc.MarkBad):
            return self.mark("bad", a.slot)
        elif isinstance(a, mc.RaiseFloor):
            try:
                self.raise_floor(a.epoch)
            except EndcapError as e:  # committed already; the floor follows at the next start/commit
                log.error("floor not raised to %d: [%s] %s", a.epoch, e.code, e)
                self.health.failure(e, time.time())
        return None

    def reboot(self) -> Optional[mc.Event]:
        """Run the reboot command; its failure (exit status, missing, hanging) is a RebootFailed event."""
        log.warning("rebooting: %s", self.state.message)
        try:
            r = subprocess.run(self.cfg.reboot_command, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return mc.RebootFailed(f"{self.cfg.reboot_command[0]}: {e}", time.time())
        if r.returncode != 0:
            err = r.stderr.decode("utf-8", "replace").strip()[-200:]
            return mc.RebootFailed(f"{' '.join(self.cfg.reboot_command)} exited {r.returncode}: {err}", time.time())
        return None

    def mark(self, state: str, slot: str) -> mc.Event:
        try:
            msg = self.connect().mark(state, slot)
        except UpdateError as e:
            log.error("mark %s failed: [%s] %s", state, e.code, e)
            self.drop_rauc()
            return mc.MarkDone(state, False, time.time(), f"[{e.code}] {e}")
        log.log(logging.INFO if state == "good" else logging.WARNING, "mark %s %s: %s", slot, state, msg)
        return mc.MarkDone(state, True, time.time())

    def verify(self, a: mc.Verify) -> mc.Event:
        """Worker thread: RAUC checks the signature (``Info``, on a connection of its own), then the signed
        facts are checked: compatible, the offer's version/epoch, the floor. Only a verdict on the bundle is
        a refusal; RAUC or trust not answering is a transient failure."""
        try:
            r = Rauc(self.cfg.dbus_address)
        except UpdateError as e:
            return mc.StepFailed(f"[{e.code}] {e}", version=a.version)
        try:
            return self._verify(r, a)
        finally:
            r.close()

    def _verify(self, r: Rauc, a: mc.Verify) -> mc.Event:
        try:
            floor_now = self.current_floor(r)
        except UpdateError as e:
            return mc.StepFailed(f"[{e.code}] no install without the floor: {e}", version=a.version)
        try:
            compatible, version = r.info(a.path)  # RAUC: signature and chain against the keyring
        except UpdateError as e:
            if e.code in TRANSIENT_CODES:
                return mc.StepFailed(f"[{e.code}] {e}", version=a.version)
            return mc.StepFailed(f"[signature] {e}", refused=True, version=a.version)
        try:
            mf = bundle_manifest(a.path)
            if (mf.version, mf.compatible) != (version, compatible):
                raise IntegrityError(f"bundle changed after RAUC checked it ({mf.version} for {mf.compatible!r}, "
                                     f"RAUC saw {version} for {compatible!r})", code="mismatch")
            if compatible != self.cfg.compatible:
                raise IntegrityError(f"bundle is for {compatible!r}, this device is {self.cfg.compatible!r}",
                                     code="compatible")
            if a.version is not None and (version != a.version or mf.epoch != a.epoch):
                raise IntegrityError(f"bundle says {version} epoch {mf.epoch}, the offer said {a.version} epoch "
                                     f"{a.epoch}", code="mismatch")
            fl.check(version, mf.epoch, running=self.running_version(r), floor=floor_now)
        except IntegrityError as e:
            return mc.StepFailed(f"[{e.code}] {e}", refused=True, version=version)
        except UpdateError as e:  # RAUC went away while we asked for the running version
            return mc.StepFailed(f"[{e.code}] {e}", version=version)
        return mc.Verified(a.path, version, mf.epoch)

    def installed_epoch(self, version: str) -> Optional[int]:
        """The epoch RAUC recorded for the slot it just wrote (its copy of the signed manifest), or None."""
        try:
            builds = self.connect().slot_builds()
        except UpdateError as e:
            log.warning("slot status not read after the install (%s): keeping the verified epoch", e)
            return None
        for bootname, (v, build) in builds.items():
            if bootname != self.state.booted and v == version:
                try:
                    return bundlever.epoch_of_build(build)
                except IntegrityError as e:
                    log.warning("slot %s: %s", bootname, e)
        return None

    def poll_install(self) -> None:
        if not self.installing:
            return
        try:
            p = self.connect().poll()
        except UpdateError as e:
            self.installing = False
            self.drop_rauc()
            self.feed(mc.StepFailed(f"[{e.code}] install interrupted: {e}"))
            return
        if p.percent != self.progress:
            self.progress, self.dirty = p.percent, True
        if not p.running:
            self.installing = False
            if self.repo is not None:
                self.repo.clean()  # RAUC is done with the bundle (installed or not)
            if p.result == 0 and self.state.target is not None:
                self.feed(mc.Installed(self.installed_epoch(self.state.target)))
            else:
                self.feed(mc.StepFailed(f"[rauc] {p.error or 'install failed'}"))

    # --- RPC --------------------------------------------------------------------------------------

    def status(self, _req: m.Empty = m.Empty()) -> m.UpdateStatus:
        slots, primary, version = [], None, None
        try:
            r = self.connect()
            slots = slot_infos(r.slots())
            prim = r.primary()
            primary = next((s.bootname for s in slots if s.name == prim), None)
            version = self.running_version()
            self.health.success(time.time())  # RAUC answered: the updater's work (watching the slots) flows
        except UpdateError as e:
            self.drop_rauc()
            self.health.failure(e, time.time())
        s = self.state
        return m.UpdateStatus(state=s.phase, ring=self.cfg.ring, compatible=self.cfg.compatible, version=version,
                              booted=s.booted, primary=primary, slots=slots, offered=self.offered,
                              progress=self.progress if s.phase in (mc.DOWNLOADING, mc.INSTALLING) else 0,
                              message=s.message,
                              last_result=s.last_result, rollback_reason=s.rollback_reason,
                              history=self.history[-10:], at=time.time())

    def check(self, _req: m.Empty) -> m.UpdateStatus:
        self.feed(mc.CheckNow())
        return self.status()

    def install_file(self, req: m.InstallBundleRequest) -> m.UpdateStatus:
        """Accept a bundle file on this device: returns as soon as the machine took it (state ``verifying``);
        verification and install go on in the worker, follow ``updater.status``. Nothing of the file is read
        here. Raises: UpdateError ``bad_request`` (not an absolute path of a file) or ``busy``."""
        if not os.path.isabs(req.path) or not os.path.isfile(req.path):
            raise UpdateError(f"install_file: {req.path!r} is not an absolute path of an existing file",
                              code="bad_request")
        if self.state.phase not in (mc.IDLE, mc.FAILED) or self.upload is not None:
            raise UpdateError(f"install_file: busy ({self.state.phase}: {self.state.message})", code="busy")
        self.upload = req.path
        self.feed(mc.LocalBundle(req.path))
        return self.status()

    def release_upload(self) -> None:
        """Once the local bundle's verification/install ended: delete it when it lies in ``upload_dir``."""
        path, self.upload = self.upload, None
        if path is None or not under(path, self.cfg.upload_dir):
            return
        try:
            os.unlink(path)
            log.info("uploaded bundle %s removed", path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("uploaded bundle %s not removed: %s", path, e)

    # --- loop -------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.drain_results()
        self.poll_install()
        if self.repo is not None and now >= self.next_poll and self.state.phase in (mc.IDLE, mc.FAILED):
            self.next_poll = now + self.cfg.poll_interval_s
            self.feed(mc.CheckNow())
        lt = time.localtime(now)
        self.feed(mc.Tick(now, mc.in_window(self.cfg.reboot_window, lt.tm_hour * 60 + lt.tm_min)))
        if self.state.phase == mc.CONFIRMING:
            self.gate.drain(now)
            ok, why = self.gate.report(now)
            self.feed(mc.HealthReport(ok, why, now))


def main(ctx: ServiceContext) -> None:
    cfg: UpdaterConfig = ctx.config
    pub = Publisher(ctx.paths.pub_address("updater"), "updater")
    svc = Updater(cfg, ctx, pub)
    health_pub = HealthPublisher(svc.health, pub, cfg.status_interval_s)
    server = RpcServer(ctx.paths.rpc_address("updater"), "updater", {
        "status": (m.Empty, svc.status),
        "check": (m.Empty, svc.check),
        "install_file": (m.InstallBundleRequest, svc.install_file),
    }, recv_timeout_ms=50)
    booted = svc.connect().boot_slot()
    svc.recover_interrupted_install(booted)
    svc.feed(mc.Started(booted, time.time(), read_boot_id(cfg.boot_id_file)))
    if svc.state.phase != mc.CONFIRMING:
        svc.sync_floor()  # only a committed slot's version becomes the floor's "running"
    svc.health.success(time.time())
    ctx.ready(f"booted {booted}, {svc.state.phase}")
    svc.next_poll = time.time()  # poll once at start, then every poll_interval_s
    next_status = 0.0
    try:
        while not ctx.stop.is_set():
            ctx.alive()
            server.serve_one()
            now = time.time()
            svc.tick(now)
            if svc.dirty or now >= next_status:
                try:
                    pub.publish("updater.status", svc.status())
                    svc.dirty = False
                except BusError as e:  # lossy by design: the next period publishes again
                    log.debug("updater.status not published: %s", e)
                next_status = now + cfg.status_interval_s
            health_pub.maybe_publish(now)
    finally:
        ctx.stop.set()  # a running download sees it and stops (its part stays for resume)
        if svc.worker is not None:
            svc.worker.join(10)
        server.close()
        svc.gate.close()
        if svc.rauc is not None:
            svc.rauc.close()
        pub.close()
