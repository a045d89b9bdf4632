"""Model package verification (endcap.trust.manifest) and the offers model's structural checks:
a package whose files or manifest were altered in any way is refused with a reason naming it."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from endcap.core.errors import IntegrityError
from endcap.offers.model import KIND, load_model
from endcap.trust.manifest import MANIFEST, Manifest, encode_manifest, file_entries, verify_package


def _npy(a) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=False)
    return b.getvalue()


def arrays(n: int = 3) -> dict[str, bytes]:
    return {"skus.npy": _npy(np.array([str(i) for i in range(n)])), "prior.npy": _npy(np.linspace(0.1, 0.3, n)),
            "jac_indptr.npy": _npy(np.array([0, 1] + [1] * (n - 1), np.int64)), "jac_indices.npy": _npy(np.array([1], np.int32)),
            "jac_data.npy": _npy(np.array([0.5], np.float32))}


def write(d, files=None, **over) -> None:
    files = arrays() if files is None else files
    d.mkdir(exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    fields = dict(name="t", kind=KIND, version="1", security_epoch=0, compatible="endcap-dev", created="2025-01-01T00:00:00Z",
                  calibration={"history": {"x": [0.0, 1.0], "y": [0.0, 0.9]}, "anonymous": {"x": [0.0, 1.0], "y": [0.0, 0.5]}},
                  params={"format": 1, "scorer": "blend", "half_life_days": 60, "shrink_k": 2, "lam_history": 0, "history_limit": 200},
                  files=file_entries(files))
    fields.update(over)
    (d / MANIFEST).write_bytes(encode_manifest(Manifest(**fields)))


def test_a_good_package_verifies_and_loads(tmp_path):
    write(tmp_path / "p")
    pkg = verify_package(tmp_path / "p", compatible="endcap-dev")
    assert set(pkg.blobs) == set(arrays()) and len(pkg.digest) == 64
    model = load_model(tmp_path / "p")
    assert model.skus == ("0", "1", "2") and model.relevance(["1", "x"], None) == [pytest.approx(0.1), None]


def _refused(path, needle: str, compatible=None) -> None:
    with pytest.raises(IntegrityError) as e:
        load_model(path, compatible)
    assert needle in str(e.value), str(e.value)


@pytest.mark.parametrize("damage,needle", [
    (lambda d: (d / "prior.npy").write_bytes((d / "prior.npy").read_bytes()[:-1] + b"\x01"), "SHA-256"),
    (lambda d: (d / "prior.npy").write_bytes((d / "prior.npy").read_bytes()[:-8]), "truncated"),
    (lambda d: (d / "prior.npy").write_bytes((d / "prior.npy").read_bytes() + b"x"), "larger than"),
    (lambda d: (d / "jac_data.npy").unlink(), "missing"),
    (lambda d: (d / "extra.bin").write_bytes(b"x"), "not in the manifest"),
    (lambda d: (d / MANIFEST).write_bytes(b"{not json"), "not a valid manifest"),
    (lambda d: (d / MANIFEST).write_text(json.dumps({**json.loads((d / MANIFEST).read_text()), "surprise": 1})), "not a valid manifest"),
])
def test_tampering_is_refused(tmp_path, damage, needle):
    d = tmp_path / "p"
    write(d)
    damage(d)
    _refused(d, needle)


def test_a_symlinked_file_is_refused_even_with_the_right_content(tmp_path):
    d = tmp_path / "p"
    write(d)
    real = tmp_path / "elsewhere.npy"
    os.replace(d / "prior.npy", real)
    os.symlink(real, d / "prior.npy")
    _refused(d, "symlinks are refused")


@pytest.mark.parametrize("name", ["../escape.npy", "/etc/passwd", "sub/dir.npy", ".hidden", MANIFEST, "a\\b"])
def test_path_traversal_and_reserved_names_are_refused(tmp_path, name):
    d = tmp_path / "p"
    files = arrays()
    write(d, files)
    man = json.loads((d / MANIFEST).read_text())
    man["files"][0]["path"] = name
    (d / MANIFEST).write_text(json.dumps(man))
    _refused(d, "not allowed")


def test_mismatched_packages_are_refused(tmp_path):
    write(tmp_path / "a", compatible="endcap-jetson-orin")
    _refused(tmp_path / "a", "wrong kind of model", compatible="endcap-dev")
    write(tmp_path / "a2", kind="vision-detector")
    _refused(tmp_path / "a2", "not an offers model")
    write(tmp_path / "a3", params={"format": 2, "half_life_days": 60, "shrink_k": 2, "lam_history": 0, "history_limit": 200})
    _refused(tmp_path / "a3", "other gateway code")
    bad = arrays()
    bad["prior.npy"] = _npy(np.array([0.1, 0.2]))  # 3 SKUs, 2 priors
    write(tmp_path / "b", bad)
    _refused(tmp_path / "b", "priors")
    bad = arrays()
    bad["jac_indices.npy"] = _npy(np.array([7], np.int32))  # neighbour outside the vocabulary
    write(tmp_path / "c", bad)
    _refused(tmp_path / "c", "out of range")
    write(tmp_path / "d", calibration={"history": {"x": [0.0, 1.0], "y": [0.9, 0.1]}, "anonymous": {"x": [0, 1], "y": [0, 1]}})
    _refused(tmp_path / "d", "calibration.history")
    obj = arrays()
    obj["skus.npy"] = b"\x93NUMPY garbage"
    write(tmp_path / "e", obj)
    _refused(tmp_path / "e", "skus.npy")
    write(tmp_path / "f", params={"format": 1, "half_life_days": -1, "shrink_k": 2, "lam_history": 0, "history_limit": 200})
    _refused(tmp_path / "f", "params")


def test_pickled_arrays_are_never_loaded(tmp_path):
    files = arrays()
    b = io.BytesIO()
    np.save(b, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    files["skus.npy"] = b.getvalue()
    write(tmp_path / "p", files)
    _refused(tmp_path / "p", "skus.npy")


def test_a_signature_file_is_allowed_but_not_yet_required(tmp_path):
    write(tmp_path / "p")
    (tmp_path / "p" / "manifest.sig").write_bytes(b"reserved for the trust issue")
    assert load_model(tmp_path / "p").version == "1"
