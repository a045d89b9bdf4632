"""dm-verity hash tree as RAUC builds it for ``verity`` bundles, recomputed in user space (pure).

RAUC appends to the squashfs a dm-verity (format 1) SHA-256 tree over 4096-byte blocks with a salt
*prepended* to every hashed block; each tree block packs 128 digests, zero padded; levels are stored
top (closest to the root) first; the root hash is the digest of the single top block. The signed manifest
carries ``verity-hash`` (the root), ``verity-salt`` and ``verity-size`` (bytes of tree). A device checks this
lazily through device-mapper; the NOC (and hosts without device-mapper) check it here.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

BLOCK = 4096
DIGESTS_PER_BLOCK = BLOCK // 32


def _pack(digests: list[bytes]) -> list[bytes]:
    blocks = []
    for i in range(0, len(digests), DIGESTS_PER_BLOCK):
        blk = b"".join(digests[i:i + DIGESTS_PER_BLOCK])
        blocks.append(blk + b"\0" * (BLOCK - len(blk)))
    return blocks


def level0(blocks: Iterable[bytes], salt: bytes) -> list[bytes]:
    """Digests of the data blocks (each exactly ``BLOCK`` bytes)."""
    return [hashlib.sha256(salt + b).digest() for b in blocks]


def tree_from_digests(digests: list[bytes], salt: bytes) -> tuple[bytes, bytes]:
    """(root hash, stored tree bytes, top level first) from the level-0 digests."""
    levels: list[list[bytes]] = []
    cur = _pack(digests)
    levels.append(cur)
    while len(cur) > 1:
        cur = _pack([hashlib.sha256(salt + b).digest() for b in cur])
        levels.append(cur)
    root = hashlib.sha256(salt + cur[0]).digest()
    return root, b"".join(b"".join(lv) for lv in reversed(levels))
