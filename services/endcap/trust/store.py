"""The model store: stage, verify, activate atomically, measure, roll back.

Layout under ``root`` (on the data partition, e.g. ``/var/lib/endcap/trust/models``)::

    versions/<digest[:16]>/   manifest.json, manifest.sig and the listed files, as verified
    staging/<tmp>/            a package being copied in (removed on any failure)
    active -> versions/…      symlink, swapped with os.replace (atomic)
    previous -> versions/…    the model active before, kept for rollback

Invariants:
- Nothing reaches ``versions/`` unverified: the signature (TPM, anchored root), the manifest, the
  device's ``compatible``, the security epoch against the TPM counter and the declared sizes against
  the limits are checked *before* any file is copied; then every file is hashed while it is copied
  (one read, the same bytes hashed and written), so the verified bytes are the stored bytes.
- Every refusal is an ``IntegrityError`` with a reason code and leaves ``active`` untouched.
- ``load`` re-verifies the active package at start-up, including its epoch against the TPM counter,
  so restoring an older store from a backup is refused (``rollback``).
- The counter is raised only after an activated model passed its health check; a failing check
  restores the previous model by itself (``UpdateError(code="health_check_failed")``).
- Each activation (including a rollback) is measured: event log first, then PCR extend.
- ``rollback`` verifies ``previous`` in place with the same checks as ``install`` (the epoch floor refuses a
  previous model older than it) and activates it where it lies, so after it ``previous`` names the model
  that was active. A kept version is never removed to be replaced by an identical copy: a failed
  activation (health check) restores both links and leaves every kept directory on disk.
- Without a TPM nothing is installed or loaded; there is no unverified path.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional


from ..core.atomic import atomic_write, fsync_dir
from ..core.errors import EndcapError, IntegrityError, UpdateError
from ..core.messages import Installed
from . import manifest as mf
from .attest import Event, EventLog, replay
from .signature import MAX_SIG_BYTES, verify_manifest_signature
from .tpm import Tpm

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_package_bytes: int = 1 << 30
    max_file_bytes: int = 1 << 30


@dataclass(frozen=True)
class Staged:
    directory: Path
    manifest: mf.Manifest
    digest: str


HealthCheck = Callable[[Installed], None]


def _installed(man: mf.Manifest, digest: str, path: Path) -> Installed:
    return Installed(name=man.name, kind=man.kind, version=man.version, security_epoch=man.security_epoch,
                     digest=digest, path=str(path))


def _open_regular(path: Path, what: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as e:
        raise IntegrityError(f"{what}: missing", code="missing_file") from e
    except OSError as e:
        raise IntegrityError(f"{what}: cannot open ({e.strerror}); symlinks are refused", code="not_regular") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IntegrityError(f"{what}: not a regular file", code="not_regular")
    return fd


def hash_file(src: Path, entry: mf.FileEntry, what: str, dst_fd: Optional[int] = None) -> None:
    """Stream ``src``, hashing (and writing to ``dst_fd``) the same bytes; refuse any size or hash mismatch."""
    fd = _open_regular(src, what)
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    got = 0
    try:
        while True:
            n = os.readv(fd, [view[:min(CHUNK, entry.size + 1 - got)]])
            if n == 0:
                break
            got += n
            if got > entry.size:
                raise IntegrityError(f"{what}: larger than the {entry.size} bytes the manifest lists", code="size_mismatch")
            h.update(view[:n])
            if dst_fd is not None:
                os.write(dst_fd, view[:n])
    finally:
        os.close(fd)
    if got != entry.size:
        raise IntegrityError(f"{what}: {got} bytes, the manifest lists {entry.size} (truncated)", code="truncated")
    if h.hexdigest() != entry.sha256:
        raise IntegrityError(f"{what}: SHA-256 does not match the manifest (tampered or corrupt)", code="tampered")


class ModelStore:
    """Verified model packages on disk; see the module docstring for the invariants."""

    def __init__(self, root: Path, open_tpm: Callable[[], Tpm], *, compatible: str, pcr: int, event_log: EventLog,
                 limits: Limits = Limits()) -> None:
        self.root = Path(root)
        self._open_tpm = open_tpm
        self.compatible = compatible
        self.pcr = pcr
        self.event_log = event_log
        self.limits = limits
        self.versions = self.root / "versions"
        self.staging = self.root / "staging"
        self._active: Optional[Installed] = None

    @property
    def active(self) -> Optional[Installed]:
        """The model verified and activated in this process (None until ``load``/``install`` succeeds)."""
        return self._active

    # --- verification ---------------------------------------------------------------------------

    def _header(self, tpm: Tpm, d: Path, where: str) -> tuple[mf.Manifest, bytes, bytes, str]:
        """Signature, manifest, hardware, epoch and limits: everything checked before copying a byte."""
        try:
            sig = mf._read_regular(d / mf.SIGNATURE, MAX_SIG_BYTES, f"{where}: {mf.SIGNATURE}")
        except IntegrityError as e:
            if e.code == "missing_file":
                raise IntegrityError(f"{where}: no {mf.SIGNATURE}: the package is unsigned", code="unsigned") from e
            raise
        raw = mf._read_regular(d / mf.MANIFEST, mf.MAX_MANIFEST_BYTES, f"{where}: {mf.MANIFEST}")
        verify_manifest_signature(tpm, raw, sig, where)
        man = mf.decode_manifest(raw, f"{where}: {mf.MANIFEST}")
        if man.compatible != self.compatible:
            raise IntegrityError(f"{where}: made for {man.compatible!r}, this device is {self.compatible!r}", code="wrong_hardware")
        floor = tpm.epoch()
        if man.security_epoch < floor:
            raise IntegrityError(f"{where}: security epoch {man.security_epoch} is older than this device's floor "
                                 f"{floor} (rollback refused)", code="rollback")
        total = sum(f.size for f in man.files)
        big = [f.path for f in man.files if f.size > self.limits.max_file_bytes]
        if big or total > self.limits.max_package_bytes:
            raise IntegrityError(f"{where}: {total} bytes ({', '.join(big) or 'in all'}) exceed the limit of "
                                 f"{self.limits.max_package_bytes} per package / {self.limits.max_file_bytes} per file",
                                 code="too_large")
        listed = {f.path for f in man.files}
        present = set(os.listdir(d))
        extra = sorted(present - listed - mf.RESERVED)
        if extra:
            raise IntegrityError(f"{where}: files not in the manifest: {', '.join(extra)}", code="extra_file")
        missing = sorted(listed - present)
        if missing:
            raise IntegrityError(f"{where}: files listed but missing: {', '.join(missing)}", code="missing_file")
        return man, raw, sig, hashlib.sha256(raw).hexdigest()

    def _verify_in_place(self, tpm: Tpm, d: Path) -> Installed:
        st = self._verified_in_place(tpm, d)
        return _installed(st.manifest, st.digest, d)

    def _verified_in_place(self, tpm: Tpm, d: Path) -> Staged:
        """``d`` fully verified where it lies (signature, header checks, every file's hash), nothing copied."""
        where = f"model package {d}"
        man, _raw, _sig, digest = self._header(tpm, d, where)
        for f in man.files:
            hash_file(d / f.path, f, f"{where}: {f.path}")
        return Staged(d, man, digest)

    def _kept_copy(self, tpm: Tpm, dest: Path, staged: Staged) -> bool:
        """True when ``dest`` (a kept version) already holds exactly ``staged``, verified now: it is used
        as it is, never removed and replaced (it may be the ``previous`` model a failed activation returns to)."""
        if dest.resolve() == staged.directory.resolve():
            return True  # verified in place by the caller (rollback)
        if dest.is_symlink() or not dest.is_dir():
            return False
        try:
            return self._verified_in_place(tpm, dest).digest == staged.digest
        except IntegrityError as e:
            log.info("kept copy %s does not verify ([%s] %s); replacing it", dest, e.code, e)
            return False

    # --- staging --------------------------------------------------------------------------------

    def stage(self, tpm: Tpm, src: Path) -> Staged:
        """Verify ``src`` and copy it into ``staging/`` while hashing. Raises IntegrityError."""
        src = Path(src)
        where = f"model package {src}"
        try:
            st = os.lstat(src)
        except FileNotFoundError as e:
            raise IntegrityError(f"{where}: does not exist", code="missing_file") from e
        if not stat.S_ISDIR(st.st_mode):
            raise IntegrityError(f"{where}: not a directory", code="not_regular")
        man, raw, sig, digest = self._header(tpm, src, where)
        self.staging.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix="pkg-", dir=self.staging))
        os.chmod(out, 0o750)  # mkdtemp makes 0700; the model's readers (offers) are in trust's group
        try:
            for f in man.files:
                dst = os.open(out / f.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    hash_file(src / f.path, f, f"{where}: {f.path}", dst)
                    os.fsync(dst)
                finally:
                    os.close(dst)
            atomic_write(out / mf.SIGNATURE, sig)
            atomic_write(out / mf.MANIFEST, raw)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return Staged(out, man, digest)

    # --- activation -----------------------------------------------------------------------------

    def _link(self, name: str, target: Optional[Path]) -> None:
        link = self.root / name
        if target is None:
            link.unlink(missing_ok=True)
        else:
            tmp = self.root / f".{name}.new"
            tmp.unlink(missing_ok=True)
            os.symlink(os.path.relpath(target, self.root), tmp)
            os.replace(tmp, link)
        fsync_dir(self.root)

    def _target(self, name: str) -> Optional[Path]:
        link = self.root / name
        if not link.is_symlink():
            return None
        target = (self.root / os.readlink(link)).resolve()
        if target.parent != self.versions.resolve():
            raise IntegrityError(f"{link} points outside {self.versions}", code="store")
        return target

    def measure(self, tpm: Tpm, model: Installed) -> None:
        self.event_log.append(Event(pcr=self.pcr, digest=model.digest, name=model.name, version=model.version,
                                    security_epoch=model.security_epoch))
        tpm.extend(self.pcr, bytes.fromhex(model.digest))

    def ensure_measured(self, tpm: Tpm) -> None:
        """Make the PCR and log show the active model (after a reboot the PCR starts at zero again).

        Raises:
            IntegrityError(code="log_mismatch"): the PCR holds measurements the log does not explain.
        """
        events, current = self.event_log.read(), tpm.read_pcr(self.pcr)
        if replay(events, self.pcr) != current:
            if current != bytes(32):
                raise IntegrityError(f"PCR {self.pcr} does not match the event log {self.event_log.path}", code="log_mismatch")
            atomic_write(self.event_log.path, b"[]")  # a log from before the PCR was reset
            events = []
        mine = [e for e in events if e.pcr == self.pcr]
        if self._active is not None and (not mine or mine[-1].digest != self._active.digest):
            self.measure(tpm, self._active)

    def activate(self, tpm: Tpm, staged: Staged, health_check: HealthCheck) -> Installed:
        """Make ``staged`` active; roll back by itself if ``health_check`` fails. Returns the active model."""
        old = self._target("active")
        old_previous = self._target("previous")
        if self._active is not None and self._active.digest == staged.digest:
            if staged.directory.resolve() != (old.resolve() if old is not None else None):
                shutil.rmtree(staged.directory, ignore_errors=True)
            return self._active  # the same package again: nothing to do
        self.versions.mkdir(parents=True, exist_ok=True)
        dest = self.versions / staged.digest[:16]
        kept = self._kept_copy(tpm, dest, staged)
        if kept:
            if staged.directory.resolve() != dest.resolve():
                shutil.rmtree(staged.directory, ignore_errors=True)
        else:
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                dest.unlink()
            elif dest.exists():  # a copy under this name that does not verify
                shutil.rmtree(dest)
            os.rename(staged.directory, dest)
            fsync_dir(self.versions)
        new = _installed(staged.manifest, staged.digest, dest)
        before = self._active
        if old is not None and old != dest:
            self._link("previous", old)
        self._link("active", dest)
        self._active = new
        self.measure(tpm, new)
        try:
            health_check(new)
        except (EndcapError, OSError) as e:
            log.warning("model %s %s failed its health check (%s); rolling back", new.name, new.version, e)
            self._link("active", old if old != dest else None)
            # ``previous`` names what it named before; a kept copy (e.g. the rollback target) stays on disk
            self._link("previous", old_previous if kept or old_previous != dest else None)
            self._active = before
            if before is not None:
                self.measure(tpm, before)
            if not kept:
                shutil.rmtree(dest, ignore_errors=True)
            raise UpdateError(f"model {new.name} {new.version} failed its health check and was rolled back: {e}",
                              code="health_check_failed") from e
        if new.security_epoch > tpm.epoch():
            tpm.raise_epoch(new.security_epoch)
        self._prune(dest, old)
        log.info("model %s %s (epoch %s) active", new.name, new.version, new.security_epoch)
        return new

    def _prune(self, *keep: Optional[Path]) -> None:
        kept = {p.resolve() for p in keep if p is not None}
        for d in self.versions.iterdir():
            if d.resolve() not in kept:
                shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)

    # --- entry points -----------------------------------------------------------------------------

    def install(self, src: Path, health_check: Optional[HealthCheck] = None) -> Installed:
        """Stage, verify and activate the package at ``src``. Refusals leave the active model as it was.

        ``health_check`` defaults to verifying the activated copy again from its final location.
        """
        with self._open_tpm() as tpm:
            staged = self.stage(tpm, src)
            try:
                return self.activate(tpm, staged, health_check or (lambda m: self._reverify(tpm, m)))
            finally:
                shutil.rmtree(staged.directory, ignore_errors=True)

    def load(self) -> Optional[Installed]:
        """Re-verify the active package from disk (signature, epoch, files) and measure it.

        Raises:
            IntegrityError: the stored package no longer verifies (e.g. an older store restored: ``rollback``).
        """
        self._active = None
        with self._open_tpm() as tpm:
            target = self._target("active")
            if target is not None:
                self._active = self._verify_in_place(tpm, target)
            self.ensure_measured(tpm)
        return self._active

    def previous(self) -> Optional[Installed]:
        """The model a rollback would return to, verified in place now (signature, epoch against the
        floor, every file's hash); None when there is none or it no longer verifies."""
        with self._open_tpm() as tpm:
            target = self._target("previous")
            if target is None or target == self._target("active"):
                return None
            try:
                return self._verify_in_place(tpm, target)
            except IntegrityError as e:
                log.info("previous model %s cannot be rolled back to: [%s] %s", target, e.code, e)
                return None

    def rollback(self, health_check: Optional[HealthCheck] = None) -> Installed:
        """Re-activate the previous model after verifying it in place as ``install`` would (signature,
        compatible, epoch against the TPM floor, every file's hash), then health check and measurement.
        Refusals and a failed health check leave the active and previous models as they were.

        Raises:
            UpdateError(code="no_previous"): there is no previous model to return to.
            IntegrityError: the previous model no longer verifies (``rollback``: its epoch is below the floor).
        """
        target = self._target("previous")
        if target is None or not target.is_dir() or target == self._target("active"):
            raise UpdateError("rollback: there is no previous model to return to", code="no_previous")
        with self._open_tpm() as tpm:
            try:
                staged = self._verified_in_place(tpm, target)
            except IntegrityError as e:
                raise IntegrityError(f"rollback refused: {e.message}", code=e.code) from e
            # activated where it lies (no re-staging into its own directory): a failed health check
            # leaves it on disk and still ``previous``
            return self.activate(tpm, staged, health_check or (lambda m: self._reverify(tpm, m)))

    def _reverify(self, tpm: Tpm, model: Installed) -> None:
        again = self._verify_in_place(tpm, Path(model.path))
        if again.digest != model.digest:
            raise IntegrityError(f"{model.path}: manifest changed after activation", code="tampered")
