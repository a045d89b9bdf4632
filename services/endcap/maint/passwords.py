"""Argon2id password hashes (``cryptography``), stored with their salt and parameters.

Default parameters are RFC 9106's second recommended option (t=3, p=4, m=64 MiB). A stored hash is
``$argon2id$v=19$m=...,t=...,p=...$<salt b64>$<hash b64>`` (the PHC string format), so parameters
can be raised later without invalidating existing hashes. Comparison is constant-time.
"""
from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ..core.errors import EndcapError


@dataclass(frozen=True)
class Params:
    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4
    length: int = 32


RFC9106_LOW_MEMORY = Params()
MIN_LENGTH = 12
MAX_LENGTH = 1024


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def _derive(password: str, salt: bytes, p: Params) -> bytes:
    return Argon2id(salt=salt, length=p.length, iterations=p.iterations, lanes=p.lanes,
                    memory_cost=p.memory_kib).derive(password.encode("utf-8"))


def check_policy(password: str) -> None:
    """Raises EndcapError(code=weak_password) naming the rule a new password breaks."""
    if len(password) < MIN_LENGTH:
        raise EndcapError(f"password: at least {MIN_LENGTH} characters", code="weak_password")
    if len(password) > MAX_LENGTH:
        raise EndcapError(f"password: at most {MAX_LENGTH} characters", code="weak_password")
    if password.strip() != password or not password.isprintable():
        raise EndcapError("password: no leading/trailing spaces or control characters", code="weak_password")


def hash_password(password: str, params: Params = RFC9106_LOW_MEMORY) -> str:
    salt = os.urandom(16)
    digest = _derive(password, salt, params)
    return (f"$argon2id$v=19$m={params.memory_kib},t={params.iterations},p={params.lanes}"
            f"${_b64(salt)}${_b64(digest)}")


def parse(stored: str) -> tuple[Params, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[1] != "argon2id" or parts[2] != "v=19":
        raise EndcapError("stored password hash is not an argon2id v19 PHC string", code="bad_hash")
    kv = dict(item.split("=", 1) for item in parts[3].split(","))
    salt, digest = _unb64(parts[4]), _unb64(parts[5])
    return Params(int(kv["m"]), int(kv["t"]), int(kv["p"]), len(digest)), salt, digest


def verify_password(password: str, stored: str) -> bool:
    params, salt, digest = parse(stored)
    return hmac.compare_digest(_derive(password, salt, params), digest)


# A fixed hash to verify against when the user does not exist, so an unknown user costs the same time.
_DUMMY: dict[Params, str] = {}


def dummy_verify(password: str, params: Params = RFC9106_LOW_MEMORY) -> bool:
    if params not in _DUMMY:
        _DUMMY[params] = hash_password(os.urandom(16).hex(), params)
    verify_password(password, _DUMMY[params])
    return False
