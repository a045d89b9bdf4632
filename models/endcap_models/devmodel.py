"""The model ``endcap run`` uses on a dev host: trained once from Complete Journey, cached, reused.

``ensure(cache_dir)`` returns a verified package directory, training it (about 25 s on 2 cores) only
when no package for this data, these parameters and this code is in the cache. The cache key hashes
the parameters, the protocol, the data file's size and mtime, and the source of the training code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path


def _key() -> str:
    from . import calibrate, data, evaluate, package, scoring, train

    h = hashlib.sha256()
    h.update(json.dumps([asdict(train.Params()), asdict(evaluate.Protocol())], sort_keys=True).encode())
    st = (data.complete_journey_path() / "transactions.parquet").stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    for mod in (calibrate, data, evaluate, package, scoring, train):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


def ensure(cache_dir: str | Path) -> Path:
    """A verified package in ``cache_dir`` (trained on weeks 1-44 of every store when missing).

    Raises:
        DataError: Complete Journey is not installed.
    """
    from endcap.core.errors import IntegrityError
    from endcap.trust.manifest import verify_package

    from .data import load_complete_journey
    from .evaluate import Protocol, train_calibrated
    from .package import write_package
    from .train import Params

    out = Path(cache_dir) / f"offers-{_key()}"
    if out.is_dir():
        try:
            verify_package(out)
            return out
        except IntegrityError:
            pass  # a damaged cache entry is rebuilt
    f, tables, _ = train_calibrated(load_complete_journey(), Params(), Protocol())
    return write_package(out, f, tables, version=f"dev-{out.name[7:]}", replace=True)


def signed_copy(package: str | Path, out: str | Path, key_path: str | Path, chain_path: str | Path) -> Path:
    """A copy of ``package`` in ``out`` signed with the (throwaway, dev) signer: ready for trust ``install``."""
    import shutil

    from . import sign

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(package, out, ignore=shutil.ignore_patterns("manifest.sig"))
    sign.sign_package(out, sign.load_key(key_path), sign.load_chain(chain_path))
    return out
