"""The ``trust`` service: installs verified model packages and answers "what is active, attested?".

One thread: it answers req/rep (``active``, ``install``, ``attest``; for the maintenance page
``models`` and ``rollback``) and, between requests, proves the TPM still answers (the anchor and
counter read back with the right attributes: the service's health work) and publishes ``trust.health``
and ``trust.model``.

Invariants:
- At start the active package is re-verified from disk against the TPM (``ModelStore.load``); if the
  TPM is absent, locked out or the package no longer verifies, no model is active and health says
  why — there is no unverified fallback.
- If the TPM goes away later, the model verified earlier in this process stays active and is still
  reported, health turns not-ok with the TPM's error, and installs are refused until it is back.
- An install is verified, activated, health-checked (the activated copy verifies again from its final
  location) and only then raises the anti-rollback floor; ``trust.model`` is published on change.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Optional

from ..core import messages as m
from ..core.bus import Publisher, RpcServer, contained
from ..core.errors import BusError, EndcapError, IntegrityError, UpdateError
from ..core.health import HealthPublisher, HealthState
from ..core.runner import ServiceContext
from .attest import EventLog, verify_quote
from .config import TrustConfig
from . import firmware_floor as fwf
from .enrol import ak_pem
from .store import Limits, ModelStore
from .tpm import Tpm

log = logging.getLogger(__name__)


class TrustService:
    """The service's state and its RPC handlers (I/O through ``store`` and the TPM only)."""

    def __init__(self, cfg: TrustConfig, state_dir: Path, run_dir: Path, health: HealthState) -> None:
        self.cfg = cfg
        self.health = health
        self.store = ModelStore(state_dir / "models", self.open_tpm, compatible=cfg.compatible, pcr=cfg.pcr,
                                event_log=EventLog(run_dir / "trust-events.json"),
                                limits=Limits(cfg.max_package_bytes, cfg.max_file_bytes))
        self.tpm_state = "unknown"
        self.changed = True
        self.load_error: Optional[IntegrityError] = None

    def open_tpm(self) -> Tpm:
        c = self.cfg
        return Tpm(c.tcti, anchor_index=c.anchor_index, counter_index=c.counter_index, ak_handle=c.ak_handle)

    def _failed(self, e: EndcapError) -> None:
        self.health.failure(e, time.time())
        if e.code.startswith("tpm_") or e.code in ("anchor", "counter"):
            self.tpm_state = e.code

    def load(self) -> None:
        """Verify the stored active model against the TPM; on failure no model is active (unless the
        package verified and only the measurement log disagrees) and health reports why."""
        try:
            model = self.store.load()
            self.load_error = None
            self.changed = True
            log.info("active model: %s", f"{model.name} {model.version}" if model else "none")
        except IntegrityError as e:
            log.error("stored model not loaded: [%s] %s", e.code, e)
            self.load_error = e
            self._failed(e)

    def check(self) -> None:
        """The health work: the TPM answers and anchor/counter read back with the right attributes."""
        try:
            with self.open_tpm() as tpm:
                tpm.epoch()
                if tpm.in_lockout():
                    raise IntegrityError("TPM is in dictionary-attack lockout (someone is guessing TPM "
                                         "secrets); the active model stays, installs still verify", code="tpm_lockout")
        except IntegrityError as e:
            self._failed(e)
            return
        self.tpm_state = "ok"
        if self.load_error is not None and self.load_error.code.startswith("tpm_"):
            self.load()  # the TPM was away at start and is back: verify the stored model now
        if self.load_error is None:
            self.health.success(time.time())

    # --- RPC --------------------------------------------------------------------------------------

    def active(self, _req: m.Empty) -> m.TrustStatus:
        floor: Optional[int] = None
        attested, reason = False, ""
        try:
            with self.open_tpm() as tpm:
                floor = tpm.epoch()
                xy = tpm.ak_public()
                if xy is None:
                    reason = "[anchor] no attestation key: device not enrolled"
                elif self.store.active is not None:
                    nonce = os.urandom(32)
                    last = verify_quote(ak_pem(xy), self._evidence(tpm, nonce), nonce, self.cfg.pcr)
                    attested = last is not None and last.digest == self.store.active.digest
                self.tpm_state = "tpm_lockout" if tpm.in_lockout() else "ok"
        except IntegrityError as e:
            reason = f"[{e.code}] {e}"
            if e.code.startswith("tpm_"):
                self.tpm_state = e.code
        return m.TrustStatus(model=self.store.active, floor_epoch=floor, tpm=self.tpm_state, attested=attested, reason=reason)

    def _evidence(self, tpm: Tpm, nonce: bytes) -> m.Evidence:
        q = tpm.quote(self.cfg.pcr, nonce)
        return m.Evidence(attest=q.attest, signature_r=q.signature_r, signature_s=q.signature_s, pcr=self.cfg.pcr,
                        nonce=nonce, events=self.store.event_log.read())

    def install(self, req: m.InstallRequest) -> m.Installed:
        if not os.path.isabs(req.path):
            raise IntegrityError(f"install: {req.path!r} is not an absolute path", code="bad_request")
        try:
            model = self.store.install(Path(req.path))
        except IntegrityError as e:
            log.warning("package %s refused: [%s] %s", req.path, e.code, e)
            if e.code.startswith("tpm_"):
                self._failed(e)
            raise
        self.changed = True
        self.load_error = None
        self.health.success(time.time())
        return model

    def attest(self, req: m.AttestRequest) -> m.AttestReply:
        with self.open_tpm() as tpm:
            xy = tpm.ak_public()
            if xy is None:
                raise IntegrityError("no attestation key: device not enrolled", code="anchor")
            return m.AttestReply(evidence=self._evidence(tpm, req.nonce), ak_public_pem=ak_pem(xy))

    # --- maintenance queries (the maintenance page's models view) ---------------------------------

    def models(self, req: m.Empty) -> m.ModelsReply:
        """The active model, the one ``rollback`` would return to (verified in place now; None when
        absent, tampered or below the epoch floor) and whether a fresh TPM quote attests the active one."""
        try:
            previous = self.store.previous()
        except IntegrityError as e:  # the TPM is away: nothing can be verified
            log.debug("previous model not verified: [%s] %s", e.code, e)
            previous = None
        return m.ModelsReply(active=self.store.active, previous=previous, attested=self.active(req).attested)

    def rollback(self, _req: m.Empty) -> m.Installed:
        """Re-activate the previous model, verified in place as an install would be (``ModelStore.rollback``);
        publishes ``trust.model``. Refused (active and previous untouched) when there is none, it no longer
        verifies, or it fails its health check."""
        try:
            model = self.store.rollback()
        except IntegrityError as e:
            log.warning("rollback refused: [%s] %s", e.code, e)
            if e.code.startswith("tpm_"):
                self._failed(e)
            raise
        except UpdateError as e:  # no previous model, or it failed its health check: active and previous unchanged
            log.warning("rollback not done: [%s] %s", e.code, e)
            raise
        log.info("rolled back to model %s %s", model.name, model.version)
        self.changed = True
        self.load_error = None
        self.health.success(time.time())
        return model

    # --- firmware security-epoch floor (the updater's anti-downgrade anchor) -----------------------

    def firmware_floor(self, _req: m.Empty) -> m.FirmwareFloor:
        """The firmware floor from its own NV counter (enrolled on first use while owner auth is empty);
        ``epoch`` None with the error code in ``tpm`` when it cannot be read."""
        try:
            with fwf.open_floor(self.cfg.tcti) as tpm:
                return m.FirmwareFloor(epoch=fwf.read(tpm), tpm="ok")
        except IntegrityError as e:
            log.warning("firmware floor not read: [%s] %s", e.code, e)
            return m.FirmwareFloor(epoch=None, tpm=e.code, reason=f"[{e.code}] {e}")

    committed_floor_file: Optional[Path] = None  # the updater's floor file: caps raise_firmware_floor (set by main)

    def raise_firmware_floor(self, req: m.RaiseFirmwareFloorRequest) -> m.FirmwareFloor:
        """Raise the firmware floor to ``req.epoch`` (a no-op at or below it), never above the epoch the updater
        committed in its floor file (``epoch_cap`` otherwise): any bus client may ask, only committed firmware
        sets how far. Errors are error replies."""
        with fwf.open_floor(self.cfg.tcti) as tpm:
            cap = None
            if req.epoch > fwf.read(tpm):
                if self.committed_floor_file is None:
                    raise IntegrityError("no committed floor file configured: no raise", code="epoch_cap")
                cap = fwf.committed_epoch(self.committed_floor_file)
            epoch = fwf.raise_to(tpm, req.epoch, cap=cap)
        log.info("firmware floor now %d", epoch)
        return m.FirmwareFloor(epoch=epoch, tpm="ok")


def main(ctx: ServiceContext) -> None:
    cfg: TrustConfig = ctx.config
    health = HealthState("trust", stale_after_s=max(3 * cfg.check_interval_s, 10.0))
    svc = TrustService(cfg, ctx.state_dir(), ctx.paths.run_dir, health)
    svc.committed_floor_file = (Path(cfg.firmware_floor_file) if cfg.firmware_floor_file
                                else ctx.paths.service_state("updater") / "floor.json")
    pub = Publisher(ctx.paths.pub_address("trust"), "trust")
    health_pub = HealthPublisher(health, pub, cfg.health_interval_s)
    server = RpcServer(ctx.paths.rpc_address("trust"), "trust", {
        "active": (m.Empty, svc.active),
        "install": (m.InstallRequest, svc.install),
        "attest": (m.AttestRequest, svc.attest),
        # the maintenance page's: a failure there is an error reply, never a crashed trust service
        "models": (m.Empty, contained("models", svc.models)),
        "rollback": (m.Empty, contained("rollback", svc.rollback)),
        "firmware_floor": (m.Empty, svc.firmware_floor),
        "raise_firmware_floor": (m.RaiseFirmwareFloorRequest, svc.raise_firmware_floor),
    })
    svc.load()
    svc.check()
    ctx.ready(f"model {svc.store.active.name} {svc.store.active.version}" if svc.store.active else "no verified model")
    next_check = next_model = time.monotonic() + cfg.check_interval_s
    try:
        while not ctx.stop.is_set():
            ctx.alive()
            server.serve_one()
            now = time.monotonic()
            if now >= next_check:
                svc.check()
                next_check = now + cfg.check_interval_s
            if svc.store.active is not None and (svc.changed or now >= next_model):
                try:
                    pub.publish("trust.model", svc.store.active)
                    svc.changed = False
                except BusError as e:  # lossy by design: the next period publishes it again
                    log.debug("trust.model not published: %s", e)
                next_model = now + cfg.health_interval_s
            health_pub.maybe_publish(time.time())
    finally:
        server.close()
        pub.close()
