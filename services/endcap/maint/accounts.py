"""Technician accounts: Argon2id hashes and the one-time setup code, in ``<state>/accounts.json``.

There is no default account. Provisioning calls ``set_password`` (or ``install_hash`` with a hash made
elsewhere); until then the service makes a one-time setup code at start (``new_setup_code``) that is
shown on the HDMI service screen (never written to the log), works once, expires, and forces a new password.
Only the SHA-256 of the setup code is stored (it is 80 random bits, so a fast hash is enough).
Every write is atomic; the file is readable by the service user only.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Optional

from ..core.atomic import atomic_write
from ..core.errors import EndcapError
from .passwords import RFC9106_LOW_MEMORY, Params, check_policy, dummy_verify, hash_password, parse, verify_password

FILE = "accounts.json"
USER = "technician"
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen
_lock = threading.Lock()


def _check_user(user: str) -> None:
    if not (1 <= len(user) <= 32 and user.isascii() and user.replace("-", "").replace("_", "").isalnum()):
        raise EndcapError(f"user: {user[:40]!r} is not 1-32 letters, digits, - or _", code="bad_user")


def _load(state_dir: Path) -> dict:
    try:
        return json.loads((Path(state_dir) / FILE).read_text())
    except FileNotFoundError:
        return {"users": {}, "setup": None}


def _save(state_dir: Path, data: dict) -> None:
    atomic_write(Path(state_dir) / FILE, json.dumps(data, indent=1).encode(), mode=0o600)


def install_hash(state_dir: str | Path, user: str, phc: str) -> None:
    """Provisioning seam: store an Argon2id PHC string made elsewhere; the setup code is withdrawn."""
    _check_user(user)
    parse(phc)
    with _lock:
        data = _load(Path(state_dir))
        data["users"][user] = {"hash": phc, "changed_at": time.time()}
        data["setup"] = None
        _save(Path(state_dir), data)


def set_password(state_dir: str | Path, user: str, password: str, params: Params = RFC9106_LOW_MEMORY) -> None:
    """Provisioning seam and the page's "change password": policy-checked, hashed, stored atomically.

    Raises:
        EndcapError: ``weak_password`` or ``bad_user`` naming the rule broken.
    """
    check_policy(password)
    install_hash(state_dir, user, hash_password(password, params))


def has_account(state_dir: str | Path) -> bool:
    return bool(_load(Path(state_dir))["users"])


def authenticate(state_dir: str | Path, user: str, password: str) -> bool:
    """True only for a known user with the right password; an unknown user costs the same time."""
    users = _load(Path(state_dir))["users"]
    entry = users.get(user) if len(user) <= 64 else None
    if entry is None or len(password) > 1024:
        # the same work as a real check, with the parameters the real accounts use
        params = parse(next(iter(users.values()))["hash"])[0] if users else RFC9106_LOW_MEMORY
        return dummy_verify(password[:1024], params)
    return verify_password(password, entry["hash"])


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").strip().upper().encode()).hexdigest()


def new_setup_code(state_dir: str | Path, ttl_s: float, now: float) -> Optional[str]:
    """A fresh one-time code when no account exists (replacing any older one); None once an account exists."""
    with _lock:
        data = _load(Path(state_dir))
        if data["users"]:
            return None
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        data["setup"] = {"sha256": _code_hash(raw), "expires_at": now + ttl_s, "used": False}
        _save(Path(state_dir), data)
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def use_setup_code(state_dir: str | Path, code: str, now: float) -> bool:
    """Consume the setup code: True once, if it matches, is unused and unexpired, and no account exists."""
    with _lock:
        data = _load(Path(state_dir))
        setup = data.get("setup")
        if data["users"] or not setup or setup["used"] or now > setup["expires_at"] or len(code) > 64:
            return False
        if not hmac.compare_digest(_code_hash(code), setup["sha256"]):
            return False
        setup["used"] = True
        _save(Path(state_dir), data)
    return True
