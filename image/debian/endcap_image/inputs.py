"""The content hash of an image's inputs: a change to any of them gives a new cache directory."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

VERSION = "1"  # bump when the build's output changes for reasons the inputs do not show


def tree_files(root: Path, skip_parts: Iterable[str] = ("__pycache__",)) -> list[Path]:
    """Every regular file under ``root``, sorted, skipping paths with a part in ``skip_parts``."""
    skip = set(skip_parts)
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and not (skip & set(p.parts)) and p.suffix != ".pyc")


def content_hash(named: dict[str, Path | bytes | str]) -> str:
    """sha256 over (name, content) pairs in name order; a directory contributes each file with its mode."""
    h = hashlib.sha256(f"endcap-image-v{VERSION}\n".encode())
    for name in sorted(named):
        item = named[name]
        if isinstance(item, (bytes, str)):
            data = item.encode() if isinstance(item, str) else item
            h.update(f"{name}\0{len(data)}\0".encode() + data)
            continue
        path = Path(item)
        files = tree_files(path) if path.is_dir() else [path]
        for f in files:
            rel = f.relative_to(path).as_posix() if path.is_dir() else path.name
            data = f.read_bytes()
            h.update(f"{name}/{rel}\0{f.stat().st_mode & 0o777:o}\0{len(data)}\0".encode() + data)
    return h.hexdigest()[:16]
