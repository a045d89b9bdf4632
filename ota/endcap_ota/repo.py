"""The fleet's TUF repository on plain static hosting (python-tuf Metadata API, consistent snapshots).

Layout (``repo_dir`` is what the web server/CDN serves)::

    metadata/1.root.json, 2.root.json ...   every root version (clients walk them); root.json = latest copy
    metadata/timestamp.json                 the only unversioned file (online key, refreshed on a schedule)
    metadata/N.snapshot.json N.targets.json N.bundles.json N.canary.json N.pilot.json N.fleet.json
    targets/bundles/<compatible>/<sha256>.<compatible>-<version>.raucb
    targets/rings/<ring>/<sha256>.<compatible>.json

Roles: root (threshold configurable), targets (delegates only), snapshot, timestamp, and delegated
targets roles ``bundles`` (paths ``bundles/*/*``) and one per ring (``rings/<ring>/*``), one key each.
Device contract: ``rings/<ring>/<compatible>.json`` = ``{"version", "target", "security_epoch"}``
pointing at ``bundles/<compatible>/<file>.raucb`` whose custom metadata is ``{"version", "compatible",
"security_epoch"}``. Ring history (for halt) is kept in the ring role's signed ``x-endcap-rings`` field.
Files are written leaves first and ``timestamp.json`` last, each atomically, so a client never sees a
half-published state. NOC settings (expiries, threshold) live in ``<keys_dir>/repo.json``.

Expiry upkeep: :meth:`FleetRepo.refresh` is the scheduled job. It re-signs every role that is near expiry
(less than a quarter of its lifetime left, see ``status``) and whose keys are in ``keys_dir``, then the
snapshot (when anything changed or it would expire first) and always a new timestamp; due roles whose keys
are offline are reported, for ``resign`` on the machine that holds them. The clock is a constructor seam
(``clock=``) so tests can place the NOC's "now" without sleeping.

One writer at a time: every writing operation holds ``<repo_dir>/.lock`` (see :mod:`.lock`) for its whole
read-modify-write and re-reads the metadata from disk once it holds it, so a second writer builds on the
first one's result, never on the copy it loaded earlier. Reading (``status``, ``ring_version``) takes no lock.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (DelegatedRole, Delegations, Metadata, MetaFile, Root, Snapshot, TargetFile, Targets,
                              Timestamp)
from tuf.api.serialization.json import JSONSerializer

from endcap.core.atomic import atomic_write

from . import keys as keystore
from . import rings as ringlogic
from .errors import RepoError
from .lock import DEFAULT_TIMEOUT_S, LOCK_NAME, RepoLock
from .rings import RINGS, RingState
from .status import RepoStatus, RoleStatus, expiry_state, plan_refresh
from .verify import verify_bundle

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
DELEGATED = ("bundles",) + RINGS
TARGETS_FAMILY = ("targets",) + DELEGATED
ALL_ROLES = TOP_ROLES + DELEGATED
DEFAULT_EXPIRY = {"root": 365, "targets": 30, "bundles": 30, "rings": 30, "snapshot": 7, "timestamp": 1}  # days
RING_FIELD = "x-endcap-rings"
CONFIG = "repo.json"


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Refreshed:
    """What :meth:`FleetRepo.refresh` did: roles re-signed (in order), due roles lacking keys, the timestamp."""

    resigned: list[str]
    needs_keys: list[str]
    timestamp_version: int


def _paths_for(role: str) -> list[str]:
    return ["bundles/*/*"] if role == "bundles" else [f"rings/{role}/*"]


def _writer(method):
    """Run ``method`` holding the repository lock, on metadata re-read from disk under it."""

    @functools.wraps(method)
    def locked(self: "FleetRepo", *args, **kwargs):
        with self.writing():
            return method(self, *args, **kwargs)

    return locked


class FleetRepo:
    """Open with :meth:`create` or :meth:`open`; every mutating call writes a complete new repo version."""

    def __init__(self, repo_dir: Path, keys_dir: Path, config: dict,
                 clock: Callable[[], dt.datetime] | None = None, *, lock_timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_lock_wait: Callable[[Path, int | None], None] | None = None) -> None:
        self.repo_dir, self.keys_dir = Path(repo_dir), Path(keys_dir)
        self.clock = clock or _system_clock  # aware UTC "now" of the NOC (test seam)
        self.meta_dir, self.targets_dir = self.repo_dir / "metadata", self.repo_dir / "targets"
        self.expiry: dict[str, float] = {**DEFAULT_EXPIRY, **config.get("expiry", {})}
        self.md: dict[str, Metadata] = {}
        self.lock = RepoLock(self.repo_dir / LOCK_NAME, timeout_s=lock_timeout_s, on_wait=on_lock_wait)

    # ---- creation and loading -------------------------------------------------------------------
    @classmethod
    def create(cls, repo_dir: Path, keys_dir: Path, *, expiry: dict[str, float] | None = None,
               root_threshold: int = 1, root_keys: int | None = None,
               clock: Callable[[], dt.datetime] | None = None, lock_timeout_s: float = DEFAULT_TIMEOUT_S,
               on_lock_wait: Callable[[Path, int | None], None] | None = None) -> "FleetRepo":
        """Create keys and version-1 metadata. Raises: RepoError if a repo or keys already exist there."""
        repo_dir, keys_dir = Path(repo_dir), Path(keys_dir)
        n_root = root_keys or root_threshold
        if root_threshold < 1 or n_root < root_threshold:
            raise RepoError(f"root_threshold {root_threshold}: needs 1 <= threshold <= keys ({n_root})", code="input")
        unknown = set(expiry or {}) - set(DEFAULT_EXPIRY)
        if unknown:
            raise RepoError(f"expiry: unknown roles {sorted(unknown)} (known: {sorted(DEFAULT_EXPIRY)})", code="input")
        with RepoLock(repo_dir / LOCK_NAME, timeout_s=lock_timeout_s, on_wait=on_lock_wait):
            # checked under the lock: two concurrent inits cannot both see an empty directory
            return cls._create(repo_dir, keys_dir, expiry, root_threshold, n_root, clock, lock_timeout_s,
                               on_lock_wait)

    @classmethod
    def _create(cls, repo_dir: Path, keys_dir: Path, expiry: dict[str, float] | None, root_threshold: int,
                n_root: int, clock, lock_timeout_s: float, on_lock_wait) -> "FleetRepo":
        if (repo_dir / "metadata" / "1.root.json").exists():
            raise RepoError(f"{repo_dir}: already holds a TUF repository", code="exists")
        if (keys_dir / CONFIG).exists():
            raise RepoError(f"{keys_dir}: already holds repository keys", code="exists")
        try:
            repo_dir.resolve().relative_to(keys_dir.resolve())
            inside = True
        except ValueError:
            inside = False
        if inside or keys_dir.resolve().is_relative_to(repo_dir.resolve()):
            raise RepoError(f"{keys_dir}: keys must live outside the served repository {repo_dir}", code="input")
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = {"expiry": dict(expiry or {}), "root_threshold": root_threshold}
        self = cls(repo_dir, keys_dir, config, clock, lock_timeout_s=lock_timeout_s, on_lock_wait=on_lock_wait)
        now = self._now()
        root = Root(expires=now + self._lifetime("root"), consistent_snapshot=True)
        for _ in range(n_root):
            root.add_key(keystore.generate(keys_dir, "root").public_key, "root")
        root.roles["root"].threshold = root_threshold
        for role in ("targets", "snapshot", "timestamp"):
            root.add_key(keystore.generate(keys_dir, role).public_key, role)
        targets = Targets(expires=now + self._lifetime("targets"))
        targets.delegations = Delegations(keys={}, roles={})
        for role in DELEGATED:
            key = keystore.generate(keys_dir, role).public_key
            targets.delegations.keys[key.keyid] = key
            targets.delegations.roles[role] = DelegatedRole(role, [key.keyid], 1, True, _paths_for(role))
        self.md = {"root": Metadata(root), "targets": Metadata(targets),
                   "snapshot": Metadata(Snapshot(expires=now + self._lifetime("snapshot"))),
                   "timestamp": Metadata(Timestamp(expires=now + self._lifetime("timestamp")))}
        for role in DELEGATED:
            self.md[role] = Metadata(Targets(expires=now + self._lifetime(role)))
        atomic_write(keys_dir / CONFIG, json.dumps(config, indent=1).encode(), mode=0o600)
        self._write_root()
        self._commit(set(DELEGATED) | {"targets"}, bump=False)
        return self

    @classmethod
    def open(cls, repo_dir: Path, keys_dir: Path, *, clock: Callable[[], dt.datetime] | None = None,
             lock_timeout_s: float = DEFAULT_TIMEOUT_S,
             on_lock_wait: Callable[[Path, int | None], None] | None = None) -> "FleetRepo":
        """Load the newest metadata of an existing repository. Raises: RepoError naming what is missing."""
        repo_dir, keys_dir = Path(repo_dir), Path(keys_dir)
        cfg_path = keys_dir / CONFIG
        try:
            config = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise RepoError(f"{cfg_path}: not a repository keys directory ({e})", code="keys") from e
        self = cls(repo_dir, keys_dir, config, clock, lock_timeout_s=lock_timeout_s, on_lock_wait=on_lock_wait)
        self.reload()
        return self

    def reload(self) -> None:
        """Replace the in-memory metadata with the newest on disk. Raises: RepoError naming what is missing."""
        md: dict[str, Metadata] = {}
        roots = sorted((int(p.name.split(".")[0]), p) for p in self.meta_dir.glob("*.root.json"))
        if not roots:
            raise RepoError(f"{self.meta_dir}: no N.root.json (run 'endcap-ota repo init')", code="missing")
        try:
            md["root"] = Metadata.from_file(str(roots[-1][1]))
            md["timestamp"] = Metadata.from_file(str(self.meta_dir / "timestamp.json"))
            snap_v = md["timestamp"].signed.snapshot_meta.version
            md["snapshot"] = Metadata.from_file(str(self.meta_dir / f"{snap_v}.snapshot.json"))
            for role in ("targets",) + DELEGATED:
                v = md["snapshot"].signed.meta[f"{role}.json"].version
                md[role] = Metadata.from_file(str(self.meta_dir / f"{v}.{role}.json"))
        except (OSError, ValueError, KeyError) as e:
            raise RepoError(f"{self.meta_dir}: incomplete or unreadable metadata ({e})", code="missing") from e
        self.md = md

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the repository lock; on first entry re-read the metadata from disk (another writer may have
        committed since this object loaded it). Nested entries only count."""
        first = not self.lock.held
        with self.lock:
            if first:
                self.reload()
            yield

    # ---- signing and writing -------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return self.clock().astimezone(dt.timezone.utc).replace(microsecond=0)

    def _lifetime(self, role: str) -> dt.timedelta:
        key = "rings" if role in RINGS else role
        return dt.timedelta(days=float(self.expiry[key]))

    def _keyids(self, role: str) -> tuple[list[str], int]:
        if role in TOP_ROLES:
            r = self.md["root"].signed.roles[role]
        else:
            r = self.md["targets"].signed.delegations.roles[role]
        return list(r.keyids), r.threshold

    def _signers(self, role: str, keyids: list[str], threshold: int) -> list[CryptoSigner]:
        have = keystore.load(self.keys_dir, role)
        signers = [have[k] for k in keyids if k in have]
        if len(signers) < threshold:
            raise RepoError(f"role {role}: {len(signers)} of {threshold} required keys in {self.keys_dir / role}",
                            code="keys")
        return signers

    def _has_keys(self, role: str) -> bool:
        """Whether ``keys_dir`` holds enough of ``role``'s keys to sign it."""
        keyids, threshold = self._keyids(role)
        have = keystore.load(self.keys_dir, role)
        return sum(k in have for k in keyids) >= threshold

    def _sign(self, role: str, extra: list[CryptoSigner] = ()) -> None:
        md = self.md[role]
        md.signatures.clear()
        keyids, threshold = self._keyids(role)
        for s in self._signers(role, keyids, threshold) + list(extra):
            md.sign(s, append=True)

    def _write(self, name: str, md: Metadata) -> None:
        atomic_write(self.meta_dir / name, md.to_bytes(JSONSerializer(compact=False)))

    def _write_root(self, extra: list[CryptoSigner] = ()) -> None:
        self._sign("root", extra)
        root = self.md["root"]
        self._write(f"{root.signed.version}.root.json", root)
        self._write("root.json", root)

    def _commit(self, changed: set[str], *, bump: bool = True, ts_expires: dt.datetime | None = None) -> None:
        """Re-sign ``changed`` targets-family roles, then snapshot, then timestamp (written last)."""
        now = self._now()
        snap = self.md["snapshot"].signed
        for role in ["targets", *DELEGATED]:  # leaves and targets before snapshot
            if role not in changed:
                continue
            s = self.md[role].signed
            if bump:
                s.version += 1
            s.expires = now + self._lifetime(role)
            self._sign(role)
            self._write(f"{s.version}.{role}.json", self.md[role])
            snap.meta[f"{role}.json"] = MetaFile(version=s.version)
        if bump:
            snap.version += 1
        snap.expires = now + self._lifetime("snapshot")
        self._sign("snapshot")
        self._write(f"{snap.version}.snapshot.json", self.md["snapshot"])
        self._write_timestamp(ts_expires or now + self._lifetime("timestamp"), bump=bump)

    def _write_timestamp(self, expires: dt.datetime, *, bump: bool = True) -> None:
        ts = self.md["timestamp"].signed
        if bump:
            ts.version += 1
        ts.expires = expires
        ts.snapshot_meta = MetaFile(version=self.md["snapshot"].signed.version)
        self._sign("timestamp")
        self._write("timestamp.json", self.md["timestamp"])

    def _put_target(self, target_path: str, local: Path) -> TargetFile:
        info = TargetFile.from_file(target_path, str(local), ["sha256"])
        dirname, _, base = target_path.rpartition("/")
        dest = self.targets_dir / dirname / f"{info.hashes['sha256']}.{base}"
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{base}.", dir=dest.parent)
            os.close(fd)
            try:
                shutil.copyfile(local, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return info

    # ---- rings ---------------------------------------------------------------------------------
    def _ring_state(self, ring: str, compatible: str) -> RingState:
        field = self.md[ring].signed.unrecognized_fields.get(RING_FIELD, {})
        return RingState.from_json(field.get(compatible, {}))

    def _bundle_target(self, compatible: str, version: str) -> TargetFile:
        t = self.md["bundles"].signed.targets.get(f"bundles/{compatible}/{compatible}-{version}.raucb")
        if t is None:
            raise RepoError(f"version {version} for {compatible}: no such bundle published", code="unknown")
        return t

    def _set_ring(self, ring: str, compatible: str, state: RingState) -> None:
        """Store ``state`` and rewrite the ring's pointer target for ``compatible`` (none when empty)."""
        signed = self.md[ring].signed
        signed.unrecognized_fields.setdefault(RING_FIELD, {})[compatible] = state.to_json()
        path = f"rings/{ring}/{compatible}.json"
        if state.current is None:
            signed.targets.pop(path, None)
            return
        bundle = self._bundle_target(compatible, state.current)
        pointer = {"version": state.current, "target": bundle.path,
                   "security_epoch": int(bundle.custom["security_epoch"])}
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / f"{compatible}.json"
            local.write_text(json.dumps(pointer, sort_keys=True, separators=(",", ":")))
            info = self._put_target(path, local)
        info.unrecognized_fields["custom"] = {"version": state.current}
        signed.targets[path] = info

    # ---- operations ----------------------------------------------------------------------------
    @_writer
    def publish(self, bundle: Path, ring: str = "canary", *, keyring: Path) -> str:
        """Verify ``bundle`` against ``keyring`` and release it to ``ring``; return its version.

        Raises: BundleRefused (bad bundle), RepoError (ring rules, an other bundle with that version).
        """
        ringlogic.check_ring(ring)
        info = verify_bundle(Path(bundle), Path(keyring))
        path = f"bundles/{info.compatible}/{info.compatible}-{info.version}.raucb"
        existing = self.md["bundles"].signed.targets.get(path)
        if existing is not None and existing.hashes.get("sha256") != info.sha256:
            raise RepoError(f"{bundle}: version {info.version} for {info.compatible} is already published with "
                            "different content; bump the version", code="exists")
        new_state = ringlogic.publish(self._ring_state(ring, info.compatible), info.version, ring)
        if existing is None:
            target = self._put_target(path, Path(bundle))
            target.unrecognized_fields["custom"] = {"version": info.version, "compatible": info.compatible,
                                                    "security_epoch": info.security_epoch}
            self.md["bundles"].signed.targets[path] = target
        self._set_ring(ring, info.compatible, new_state)
        self._commit({"bundles", ring})
        return info.version

    @_writer
    def promote(self, version: str, compatible: str, to: str = "pilot") -> None:
        """Point ring ``to`` at ``version`` after it went through the ring below. Raises: RepoError."""
        below = ringlogic.lower_ring(to)
        if below is None:
            raise RepoError("promote --to canary: publish to canary instead", code="ring")
        new_state = ringlogic.promote(self._ring_state(below, compatible), self._ring_state(to, compatible), version, to)
        self._bundle_target(compatible, version)
        self._set_ring(to, compatible, new_state)
        self._commit({to})

    @_writer
    def halt(self, ring: str, compatible: str) -> str | None:
        """Withdraw the current version of ``ring``; return the version it now points to (or None)."""
        new_state = ringlogic.halt(self._ring_state(ringlogic.check_ring(ring), compatible), ring)
        self._set_ring(ring, compatible, new_state)
        self._commit({ring})
        return new_state.current

    @_writer
    def refresh_timestamp(self, *, expires: dt.datetime | None = None) -> int:
        """Only a new timestamp (and snapshot, if it would expire first); returns its version. The scheduled
        job is :meth:`refresh`, which also re-signs near-expiry roles.

        ``expires`` overrides the configured lifetime (tests, emergencies).
        """
        now = self._now()
        expires = expires or now + self._lifetime("timestamp")
        if self.md["snapshot"].signed.expires < expires:
            self._commit(set(), ts_expires=expires)
        else:
            self._write_timestamp(expires)
        return self.md["timestamp"].signed.version

    @_writer
    def resign(self, roles: Iterable[str] | None = None) -> dict[str, int]:
        """Re-sign ``roles`` (default: targets, bundles and the rings) with a new version and a fresh expiry,
        then snapshot and timestamp. ``root`` makes a new root version signed by the same keys. Returns the new
        version of every role written. Raises: RepoError (unknown role, or missing keys; nothing written then).
        """
        wanted = list(TARGETS_FAMILY if roles is None else roles)
        if not wanted:
            raise RepoError(f"resign: name at least one role ({', '.join(ALL_ROLES)})", code="input")
        for role in wanted:
            _check_role(role)
        written = [r for r in ALL_ROLES if r in wanted or r in ("snapshot", "timestamp")]
        for role in written:  # every key first, so a missing one leaves the repository untouched
            self._signers(role, *self._keyids(role))
        if "root" in wanted:
            self._resign_root()
        self._commit({r for r in wanted if r in TARGETS_FAMILY})
        return {r: self.md[r].signed.version for r in written}

    @_writer
    def refresh(self) -> Refreshed:
        """The scheduled job: re-sign every near-expiry role whose keys are here, the snapshot if needed, and
        always a new timestamp. Due roles without keys here come back in ``needs_keys`` (nothing fails).

        Raises: RepoError when the online snapshot/timestamp keys are missing (nothing written then).
        """
        now = self._now()
        for role in ("snapshot", "timestamp"):
            self._signers(role, *self._keyids(role))
        resign, needs_keys = plan_refresh(self.status(now).roles, {r for r in ALL_ROLES if self._has_keys(r)})
        if "root" in resign:
            self._resign_root()
        family = {r for r in resign if r in TARGETS_FAMILY}
        ts_expires = now + self._lifetime("timestamp")
        if family or "snapshot" in resign or self.md["snapshot"].signed.expires < ts_expires:
            self._commit(family, ts_expires=ts_expires)
            resign = sorted(set(resign) | {"snapshot"}, key=ALL_ROLES.index)
        else:
            self._write_timestamp(ts_expires)
        return Refreshed([r for r in resign if r != "timestamp"], needs_keys, self.md["timestamp"].signed.version)

    def _resign_root(self) -> None:
        root = self.md["root"].signed
        root.version += 1
        root.expires = self._now() + self._lifetime("root")
        self._write_root()

    @_writer
    def rotate_key(self, role: str) -> str:
        """Replace ``role``'s key(s) with a new one; re-sign what depends on it. Returns the new keyid."""
        _check_role(role)
        old_ids, threshold = self._keyids(role)
        if role in TOP_ROLES:
            old_root_signers = self._signers("root", *self._keyids("root"))
            root = self.md["root"].signed
            if role == "root" and threshold > 1:
                raise RepoError("rotate-key root: rotate one key of a multi-key root with the offline ceremony "
                                "(docs/noc.md)", code="input")
            new = keystore.generate(self.keys_dir, role)
            for k in old_ids:
                root.revoke_key(k, role)
            root.add_key(new.public_key, role)
            root.version += 1
            root.expires = self._now() + self._lifetime("root")
            # A new root must be signed by the old root keys too, so clients can walk to it.
            self._write_root(extra=old_root_signers if role == "root" else [])
            if role == "root":
                self._commit(set())
            elif role == "timestamp":
                self._write_timestamp(self._now() + self._lifetime("timestamp"))
            elif role == "snapshot":
                self._commit(set())
            else:
                self._commit({"targets"})
        else:
            new = keystore.generate(self.keys_dir, role)
            deleg = self.md["targets"].signed.delegations
            for k in old_ids:
                deleg.keys.pop(k, None)
            deleg.keys[new.public_key.keyid] = new.public_key
            deleg.roles[role].keyids = [new.public_key.keyid]
            self._commit({"targets", role})
        for k in old_ids:
            keystore.retire(self.keys_dir, role, k)
        return new.public_key.keyid

    # ---- reading -------------------------------------------------------------------------------
    def ring_version(self, ring: str, compatible: str) -> str | None:
        return self._ring_state(ringlogic.check_ring(ring), compatible).current

    def status(self, now: dt.datetime | None = None) -> RepoStatus:
        """Per ring and compatible: the version; per role: version, expiry, days left, state."""
        now = now or self._now()
        compatibles = sorted({t.custom["compatible"] for t in self.md["bundles"].signed.targets.values()})
        rings = {r: {c: self._ring_state(r, c).current for c in compatibles} for r in RINGS}
        roles = []
        for role in TOP_ROLES + DELEGATED:
            s = self.md[role].signed
            left, state = expiry_state(s.expires, now, self._lifetime(role).total_seconds() / 86400)
            roles.append(RoleStatus(role, s.version, s.expires, left, state))
        return RepoStatus(rings, roles)


def _check_role(role: str) -> str:
    if role not in ALL_ROLES:
        raise RepoError(f"role {role!r}: must be one of {', '.join(ALL_ROLES)}", code="input")
    return role
