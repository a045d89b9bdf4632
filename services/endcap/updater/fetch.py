"""What the fleet's TUF repository offers this device, and the bundle download (resume + bandwidth limit).

Contract with the NOC (ota/endcap_ota/repo.py): for ring R and compatible C the ring role signs the
pointer target ``rings/R/C.json`` = ``{"version", "target", "security_epoch"}``; ``target`` names
``bundles/C/<file>.raucb``, whose custom metadata is ``{"version", "compatible", "security_epoch"}``.
Both must agree (``check_offer``), or the offer is refused.

Metadata: python-tuf's ngclient ``Updater`` (one per poll: a refresh is single-use), metadata dir in
the updater's state dir, bootstrapped from the root installed at provisioning (``trusted_root``)
until a newer root is cached. TUF refuses expired, replayed (older version) and badly signed metadata.

The bundle is downloaded here, not by ngclient, to resume: bytes go to ``<name>.part``; a cut leaves
it, the next attempt asks for ``Range: bytes=<size>-``. Only when length and every TUF hash match is
the file renamed to ``<name>``; a wrong length or hash deletes the part and refuses
(``IntegrityError``), so a truncated or altered download never reaches RAUC. ``TokenBucket`` (pure)
paces the reads; the caller's ``stop`` event doubles as the sleep, so a stopping service is not held.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..core.errors import IntegrityError, UpdateError
from . import floor as fl

log = logging.getLogger(__name__)

CHUNK = 64 << 10
MAX_POINTER_BYTES = 4096


# --- pure parts ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A TUF target as the device needs it: where, how long, which hashes."""

    path: str
    length: int
    hashes: dict[str, str]
    custom: dict


@dataclass(frozen=True)
class Offer:
    version: str
    epoch: int
    bundle: Target


def pointer_path(ring: str, compatible: str) -> str:
    return f"rings/{ring}/{compatible}.json"


def parse_pointer(data: bytes, path: str) -> tuple[str, str, int]:
    """``(version, target, security_epoch)`` of a ring pointer. Raises: IntegrityError(code="pointer")."""
    try:
        obj = json.loads(data)
        version, target, epoch = obj["version"], obj["target"], obj["security_epoch"]
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"ring pointer {path}: not {{version, target, security_epoch}} JSON ({e})",
                             code="pointer") from e
    if not (isinstance(version, str) and isinstance(target, str) and isinstance(epoch, int)) or epoch < 0:
        raise IntegrityError(f"ring pointer {path}: wrong field types {obj!r}", code="pointer")
    return version, target, epoch


def check_offer(pointer: tuple[str, str, int], bundle: Target, compatible: str) -> Offer:
    """Pointer and bundle target must agree on version and epoch, and name this compatible.

    Raises: IntegrityError(code="mismatch" | "compatible" | "bad_version").
    """
    version, target, epoch = pointer
    c = bundle.custom
    if not target.startswith(f"bundles/{compatible}/") or c.get("compatible") != compatible:
        raise IntegrityError(f"ring offers {target} for {c.get('compatible')!r}; this device is {compatible!r}",
                             code="compatible")
    if c.get("version") != version or c.get("security_epoch") != epoch:
        raise IntegrityError(f"ring pointer says {version} epoch {epoch}, bundle {target} says "
                             f"{c.get('version')} epoch {c.get('security_epoch')}", code="mismatch")
    fl.parse_version(version, "offered version")
    return Offer(version, epoch, bundle)


def hashed_url(base: str, t: Target) -> str:
    """Consistent-snapshot target URL: ``<base>/<dir>/<sha256>.<name>``."""
    dirname, _, name = t.path.rpartition("/")
    digest = t.hashes.get("sha256") or next(iter(t.hashes.values()))
    return f"{base.rstrip('/')}/{dirname}/{digest}.{name}"


class TokenBucket:
    """Bytes/s pacing (pure: the caller passes the clock and sleeps). ``rate`` 0 = unlimited."""

    def __init__(self, rate: float, burst: Optional[float] = None, now: float = 0.0) -> None:
        if rate < 0:
            raise ValueError(f"bandwidth {rate} bytes/s is negative")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4, CHUNK)
        self.tokens = self.burst
        self.at = now

    def take(self, n: int, now: float) -> float:
        """Spend ``n`` bytes; return how long to wait before using them (0 when within budget)."""
        if self.rate == 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def verify_file(path: Path, t: Target) -> None:
    """Length, then every listed hash. Raises: IntegrityError ``truncated``/``length``/``tampered``."""
    size = path.stat().st_size
    if size != t.length:
        code = "truncated" if size < t.length else "length"
        raise IntegrityError(f"{t.path}: {size} bytes, TUF metadata says {t.length}", code=code)
    hs = {alg: hashlib.new(alg) for alg in t.hashes}
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            for h in hs.values():
                h.update(chunk)
    for alg, h in hs.items():
        if h.hexdigest() != t.hashes[alg]:
            raise IntegrityError(f"{t.path}: {alg} does not match TUF metadata (altered in transit or on the "
                                 "server)", code="tampered")


# --- I/O ---------------------------------------------------------------------------------------------

@dataclass
class DownloadStats:
    fetched: int = 0  # bytes received in this call
    resumed_from: int = 0  # bytes already in the part file


def download(url: str, t: Target, dest: Path, *, bandwidth: float = 0, timeout_s: float = 30.0,
             stop: Optional[threading.Event] = None, progress: Optional[Callable[[int, int], None]] = None,
             stats: Optional[DownloadStats] = None) -> Path:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``), verify against ``t``, rename into place.

    Raises: UpdateError(code="network") on a cut/timeout/stop (the part stays for resume);
    IntegrityError (truncated/length/tampered/server) when the bytes are wrong (the part is deleted).
    """
    stop = stop or threading.Event()
    stats = stats if stats is not None else DownloadStats()
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > t.length:
        part.unlink()
        have = 0
    stats.resumed_from = have
    if have < t.length:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
        except urllib.error.HTTPError as e:
            if e.code == 416:  # our part already covers what the server has: its copy is short
                part.unlink(missing_ok=True)
                raise IntegrityError(f"{t.path}: the server has fewer bytes than the {t.length} TUF lists",
                                     code="truncated") from e
            raise UpdateError(f"{t.path}: HTTP {e.code} from {url}", code="network") from e
        except (OSError, http.client.HTTPException) as e:
            raise UpdateError(f"{t.path}: {url} not reachable: {e}", code="network") from e
        with resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            total = _announced_total(resp, have)
            if total is not None and total < t.length:
                part.unlink(missing_ok=True)
                raise IntegrityError(f"{t.path}: the server offers {total} bytes, TUF metadata says {t.length} "
                                     "(truncated on the server)", code="truncated")
            bucket = TokenBucket(bandwidth, now=time.monotonic())
            with open(part, "r+b" if have else "wb") as f:
                f.seek(have)
                f.truncate()
                got = have
                try:
                    while got <= t.length:
                        chunk = resp.read(min(CHUNK, t.length + 1 - got))
                        if not chunk:
                            break
                        f.write(chunk)
                        got += len(chunk)
                        stats.fetched += len(chunk)
                        if progress is not None:
                            progress(got, t.length)
                        wait = bucket.take(len(chunk), time.monotonic())
                        if stop.is_set() or (wait and stop.wait(wait)):
                            raise UpdateError(f"{t.path}: download stopped at {got} of {t.length} bytes",
                                              code="network")
                except (OSError, ValueError, http.client.HTTPException) as e:  # cut/reset mid-body
                    raise UpdateError(f"{t.path}: download cut at {got} of {t.length} bytes; it resumes on the "
                                      f"next attempt ({e})", code="network") from e
                finally:
                    f.flush()
                    os.fsync(f.fileno())
        if got < t.length:
            raise UpdateError(f"{t.path}: download cut at {got} of {t.length} bytes; it resumes on the next "
                              "attempt", code="network")
    try:
        verify_file(part, t)
    except IntegrityError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _announced_total(resp, have: int) -> Optional[int]:
    cr = resp.headers.get("Content-Range")
    if resp.status == 206 and cr and "/" in cr:
        tail = cr.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    cl = resp.headers.get("Content-Length")
    if cl and cl.isdigit():
        return int(cl) + (have if resp.status == 206 else 0)
    return None


class Repo:
    """The TUF client side for one device: metadata dir, trusted root, ring and compatible."""

    def __init__(self, url: str, state_dir: Path, trusted_root: Path, ring: str, compatible: str, *,
                 timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.meta_dir = state_dir / "tuf" / "metadata"
        self.downloads = state_dir / "downloads"
        self.trusted_root = trusted_root
        self.ring, self.compatible = ring, compatible
        self.timeout_s = timeout_s

    def _updater(self):
        from tuf.ngclient import Updater

        self.meta_dir.mkdir(parents=True, exist_ok=True)
        cached = self.meta_dir / "root.json"
        try:
            bootstrap = None if cached.exists() else self.trusted_root.read_bytes()
        except OSError as e:
            raise IntegrityError(f"trusted_root {self.trusted_root}: not readable ({e}); it is installed at "
                                 "provisioning", code="tuf") from e
        return Updater(str(self.meta_dir), f"{self.url}/metadata/", str(self.downloads / "tuf"),
                       f"{self.url}/targets/", bootstrap=bootstrap)

    def poll(self) -> Optional[Offer]:
        """Refresh TUF metadata and read this ring's pointer; None when the ring has nothing for us.

        Raises: IntegrityError (code ``tuf``/``expired``/``rollback``, or from ``check_offer``) when the
        repository is not trustworthy; UpdateError(code="network") when it is not reachable.
        """
        from tuf.api import exceptions as tx

        try:
            up = self._updater()
            up.refresh()
            pinfo = up.get_targetinfo(pointer_path(self.ring, self.compatible))
            if pinfo is None:
                return None
            if pinfo.length > MAX_POINTER_BYTES:
                raise IntegrityError(f"ring pointer {pinfo.path}: {pinfo.length} bytes is too large", code="pointer")
            local = up.download_target(pinfo)  # ngclient checks length and hashes
            pointer = parse_pointer(Path(local).read_bytes(), pinfo.path)
            binfo = up.get_targetinfo(pointer[1])
            if binfo is None:
                raise IntegrityError(f"ring pointer names {pointer[1]}, which no trusted role lists",
                                     code="mismatch")
        except tx.ExpiredMetadataError as e:
            raise IntegrityError(f"TUF metadata expired: {e} (repository not refreshed, or replayed/frozen)",
                                 code="expired") from e
        except tx.BadVersionNumberError as e:
            raise IntegrityError(f"TUF metadata older than what this device trusts (rollback attack?): {e}",
                                 code="rollback") from e
        except tx.RepositoryError as e:
            raise IntegrityError(f"TUF metadata refused: {type(e).__name__}: {e}", code="tuf") from e
        except tx.DownloadError as e:
            raise UpdateError(f"TUF repository {self.url} not reachable: {type(e).__name__}: {e}",
                              code="network") from e
        except OSError as e:
            raise UpdateError(f"TUF repository {self.url}: {e}", code="network") from e
        bundle = Target(binfo.path, binfo.length, dict(binfo.hashes), dict(binfo.custom or {}))
        return check_offer(pointer, bundle, self.compatible)

    def bundle_path(self, offer: Offer) -> Path:
        return self.downloads / offer.bundle.path.rpartition("/")[2]

    def download(self, offer: Offer, **kw) -> Path:
        """Download the offered bundle (see ``download``); returns its verified local path."""
        return download(hashed_url(f"{self.url}/targets", offer.bundle), offer.bundle, self.bundle_path(offer),
                        timeout_s=self.timeout_s, **kw)

    def clean(self, keep: Optional[Path] = None) -> None:
        """Remove downloaded bundles and parts except ``keep`` (and its part)."""
        if not self.downloads.is_dir():
            return
        for p in self.downloads.iterdir():
            if p.is_file() and (keep is None or p.name not in (keep.name, keep.name + ".part")):
                p.unlink(missing_ok=True)
