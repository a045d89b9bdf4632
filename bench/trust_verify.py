"""Model package verification throughput vs ``sha256sum``, and TPM operation latency (real swtpm).

Ours: ``ModelStore`` verifying a signed, enrolled-device package in place (signature checked by the
TPM against the anchored root, epoch against the TPM counter, every file streamed and hashed) — the
path ``load`` takes at every start. Also recorded per run: ``stage`` (verify + copy-while-hashing
into the store, with fsync) and the full ``install`` (stage, activate, re-verify, measure).
Anchor, same run, same files, page cache warm for both: ``sha256sum FILES`` (coreutils) wall time.
Throughput = package bytes ÷ seconds. Target: ours ≥ 80 % of sha256sum's throughput.

Results: ``trust_verify_500mb`` (returned), plus ``trust_verify_50mb`` and ``trust_tpm_ops`` (median
latency of LoadExternal+VerifySignature+flush; anchor: TPM2_GetRandom, the transport's floor; the
other operations are in each run's details), written by ``run`` itself.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import make_result, write_result
from endcap.trust.attest import EventLog
from endcap.trust.enrol import enrol
from endcap.trust.store import ModelStore
from endcap.trust.tpm import Tpm
from endcap_models import sign
from tests.fixtures.swtpm import start_swtpm
from tests.fixtures.trust import COMPATIBLE, make_pki

MB = 1 << 20
PART = 200 * MB
TPM_SAMPLES = 50


def _package(d: Path, size: int, pki) -> Path:
    """A signed package of ``size`` random bytes in files of at most ``PART`` bytes (the format's per-file cap
    is 256 MiB), written and hashed in chunks so the bench never holds it in memory."""
    import hashlib

    from endcap.trust import manifest as mf

    d.mkdir(parents=True)
    entries, left, i = [], size, 0
    while left:
        part, h = min(left, PART), hashlib.sha256()
        with open(d / f"model{i}.bin", "wb") as f:
            for off in range(0, part, 16 * MB):
                chunk = os.urandom(min(16 * MB, part - off))
                h.update(chunk)
                f.write(chunk)
        entries.append(mf.FileEntry(f"model{i}.bin", part, h.hexdigest()))
        left, i = left - part, i + 1
    man = mf.Manifest(name="bench", kind="offers-basket", version="1", security_epoch=0, compatible=COMPATIBLE,
                      created="2026-11-28T12:00:00Z", files=entries)
    (d / mf.MANIFEST).write_bytes(mf.encode_manifest(man))
    sign.sign_package(d, pki.signer_key, pki.chain)
    return d


def _sha256sum(pkg: Path) -> float:
    """``sha256sum`` over the package's data files (the same bytes ours hashes)."""
    files = sorted(str(p) for p in pkg.glob("model*.bin"))
    t = time.perf_counter()
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def _throughput(tcti: str, work: Path, pki, size_mb: int, runs: int) -> dict:
    pkg = _package(work / f"pkg{size_mb}", size_mb * MB, pki)
    size = size_mb * MB
    store = ModelStore(work / f"store{size_mb}", lambda: Tpm(tcti), compatible=COMPATIBLE, pcr=16,
                       event_log=EventLog(work / f"events{size_mb}.json"))
    _sha256sum(pkg)  # warm the page cache for both sides
    per_run = []
    for _ in range(runs):
        anchor_s = _sha256sum(pkg)
        with Tpm(tcti) as tpm:
            t = time.perf_counter()
            store._verify_in_place(tpm, pkg)
            verify_s = time.perf_counter() - t
            t = time.perf_counter()
            staged = store.stage(tpm, pkg)
            stage_s = time.perf_counter() - t
        shutil.rmtree(staged.directory)
        per_run.append({"value": size / MB / verify_s, "anchor": size / MB / anchor_s,
                        "verify_s": verify_s, "stage_s": stage_s, "stage_mb_s": size / MB / stage_s, "sha256sum_s": anchor_s})
    t = time.perf_counter()
    store.install(pkg)
    per_run[-1]["install_s"] = time.perf_counter() - t
    shutil.rmtree(pkg)
    shutil.rmtree(store.root)
    return make_result(name=f"trust_verify_{size_mb}mb", metric=f"verify a {size_mb} MB signed model package (TPM signature + streamed SHA-256)",
                       unit="MB/s", target="ratio >= 0.8", anchor_name=f"sha256sum of the same {size_mb} MB of files", runs=per_run)


def _ms(fn, n: int = TPM_SAMPLES) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def _tpm_ops(tcti: str) -> dict:
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.generate_private_key(ec.SECP256R1())
    n = key.public_key().public_numbers()
    xy = (n.x.to_bytes(32, "big"), n.y.to_bytes(32, "big"))
    r, s = decode_dss_signature(key.sign(b"m", ec.ECDSA(hashes.SHA256())))
    d, rb, sb = hashlib.sha256(b"m").digest(), r.to_bytes(32, "big"), s.to_bytes(32, "big")
    runs = []
    for _ in range(3):
        open_ms = _ms(lambda: Tpm(tcti).open().close(), 20)
        with Tpm(tcti) as tpm:
            run = {
                "value": _ms(lambda: tpm.verify_ecdsa_p256(xy, d, rb, sb)),
                "anchor": _ms(lambda: tpm.esys.get_random(8)),
                "open_close_ms": open_ms,
                "epoch_read_ms": _ms(tpm.epoch),
                "pcr_extend_ms": _ms(lambda: tpm.extend(16, d)),
                "quote_ms": _ms(lambda: tpm.quote(16, b"nonce"), 20),
            }
        runs.append(run)
    return make_result(name="trust_tpm_ops", metric="TPM LoadExternal + VerifySignature + flush (ECDSA P-256), median",
                       unit="ms", target="value <= 50", anchor_name="TPM2_GetRandom(8) round trip (swtpm)", runs=runs)


def run() -> dict:
    tpm = start_swtpm("swtpm-bench-")
    work = Path(tempfile.mkdtemp(prefix="trust-bench-", dir=os.environ.get("ENDCAP_BENCH_TMP", "/var/tmp")))
    try:
        pki = make_pki()
        with Tpm(tpm.tcti) as t:
            enrol(t, sign.root_key_hash(pki.root))
        write_result(_tpm_ops(tpm.tcti))
        write_result(_throughput(tpm.tcti, work, pki, 50, 5))
        return _throughput(tpm.tcti, work, pki, 500, 3)
    finally:
        tpm.stop()
        shutil.rmtree(tpm.state_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
