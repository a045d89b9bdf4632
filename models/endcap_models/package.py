"""Write a model package: numpy arrays + ``manifest.json`` (the format ``endcap.trust.manifest`` verifies).

Responsibility: serialise a fitted model and its calibration without pickle (``.npy`` only, loaded
with ``allow_pickle=False``), list every file with its size and SHA-256, and publish the directory
atomically (written beside the target, fsynced, then renamed into place), so a gateway watching the
path never sees half a package.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from endcap.core.atomic import fsync_dir
from endcap.trust.manifest import MANIFEST, Manifest, encode_manifest, file_entries

from .train import Fitted

KIND = "offers-basket"  # endcap.offers.model.KIND
FORMAT = 1  # endcap.offers.model.FORMAT: the array layout the gateway code reads
COMPATIBLE = "endcap-dev"  # default device platform; the trust store refuses a package made for another


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def arrays(f: Fitted) -> dict[str, bytes]:
    jac = f.jac
    return {
        "skus.npy": _npy(np.asarray(f.skus, dtype=str)),
        "prior.npy": _npy(f.prior.astype(np.float64)),
        "jac_indptr.npy": _npy(jac.indptr.astype(np.int64)),
        "jac_indices.npy": _npy(jac.indices.astype(np.int32)),
        "jac_data.npy": _npy(jac.data.astype(np.float32)),
    }


def build_manifest(f: Fitted, files: dict[str, bytes], tables: dict, *, name: str, scorer: str, version: str,
                   security_epoch: int, compatible: str, data_range: dict, metrics: dict) -> Manifest:
    p = f.params
    params: dict[str, Any] = {"format": FORMAT, "scorer": scorer, "half_life_days": p.half_life_days, "shrink_k": p.shrink_k, "lam_history": p.lam_history,
                              "history_limit": p.history_limit, "lam_basket": p.lam_basket, "top_n": p.top_n,
                              "vocab_min_baskets": p.vocab_min_baskets}
    return Manifest(name=name, kind=KIND, version=version, security_epoch=security_epoch, compatible=compatible,
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), data_range=data_range, metrics=metrics,
                    calibration={k: {"x": v["x"], "y": v["y"]} for k, v in tables.items()}, params=params,
                    files=file_entries(files))


def write_package(out: str | Path, f: Fitted, tables: dict, *, name: str = "endcap-offers-blend", scorer: str = "blend",
                  version: Optional[str] = None, security_epoch: int = 0, compatible: str = COMPATIBLE,
                  data_range: Optional[dict] = None, metrics: Optional[dict] = None, replace: bool = False) -> Path:
    """Write the package directory ``out``; with ``replace`` an existing one is swapped out whole.

    Raises:
        FileExistsError: ``out`` exists and ``replace`` is false.
    """
    out = Path(out)
    if out.exists() and not replace:
        raise FileExistsError(f"{out}: exists (use --replace)")
    out.parent.mkdir(parents=True, exist_ok=True)
    files = arrays(f)
    man = build_manifest(f, files, tables, name=name, scorer=scorer, version=version or time.strftime("%Y%m%d.%H%M%S", time.gmtime()),
                         security_epoch=security_epoch, compatible=compatible, data_range=data_range or {}, metrics=metrics or {})
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for fname, data in {**files, MANIFEST: encode_manifest(man)}.items():
            with open(tmp / fname, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        fsync_dir(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def package_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())
