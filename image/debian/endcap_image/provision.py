"""What staging does to a fresh gateway, done to a dev-image guest by the system tests.

- ``enrol_tpm``: enrol the guest's swtpm (its state directory, before QEMU attaches it) under a
  throwaway model-signing root, as provisioning does on the staging bench.
- ``model_media``: the dev offers model signed by that root, on a small ext4 disk attached read-only
  (vdb): the "USB stick" a technician would bring; the guest installs it through the trust service.
- ``store_activity``: one sale rung up at the dev image's POS (its SQLite source on /data), so pos
  publishes a basket and stock changes, as a shop does all day.
- ``attest``: a TPM quote made inside the guest by its trust service, for a verifier on the host (the NOC)
  that holds the attestation key recorded at enrolment.
"""
from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from endcap.sim.swtpm import start_swtpm
from endcap.trust.enrol import Enrolment, enrol
from endcap.trust.tpm import Tpm
from endcap_models import devmodel, sign

from .config import REPO

MODEL_CACHE = REPO / ".cache" / "endcap" / "models"
MEDIA_MOUNT = "/run/endcap-media"


@dataclass(frozen=True)
class ModelSigner:
    key: object
    chain: list


def make_signer() -> ModelSigner:
    root_key, root = sign.make_root(cn="Endcap system-test model root (throwaway)")
    key, cert = sign.make_signer(root_key, root, cn="Endcap system-test model signer (throwaway)")
    return ModelSigner(key, [cert, root])


def enrol_tpm(state_dir: Path, signer: ModelSigner) -> Enrolment:
    """Enrol the swtpm whose state lives in ``state_dir`` (QEMU's swtpm later runs on the same state); the
    enrolment record staging keeps (its attestation key verifies the device's quotes)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tpm = start_swtpm(state_dir=state_dir)
    try:
        with Tpm(tpm.tcti) as t:
            enrolment = enrol(t, sign.root_key_hash(signer.chain[-1]))
    finally:
        tpm.stop()
    for stale in ("s", "c", "swtpm.log"):  # the socket-mode files; QEMU's swtpm makes its own
        p = state_dir / stale
        if p.is_socket() or stale == "swtpm.log":
            p.unlink(missing_ok=True)
    return enrolment


def model_media(workdir: Path, signer: ModelSigner) -> Path:
    """An ext4 image holding ``model/`` (the dev offers model, signed); returns the image's path."""
    from cryptography.hazmat.primitives import serialization

    tree = workdir / "media"
    package = devmodel.ensure(MODEL_CACHE)
    keyfile, chainfile = workdir / "signer.key.pem", workdir / "chain.pem"
    keyfile.write_bytes(signer.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    os.chmod(keyfile, 0o600)
    chainfile.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in signer.chain))
    devmodel.signed_copy(package, tree / "model", keyfile, chainfile)
    used = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file())
    image = workdir / "media.ext4"
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-L", "media", "-d", str(tree),
                        str(image), f"{int(used * 1.1) // (1 << 20) + 32}M"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mkfs.ext4 of the model media failed: {r.stderr}")
    return image


INSTALL_PY = """
from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.paths import Paths
with RpcClient(Paths.under("/").rpc_address("trust"), "provision", timeout_ms=600_000) as rpc:
    r = rpc.call("install", m.InstallRequest("{path}"), m.Installed)
print("installed", r.name, r.version)
"""

SALE_PY = """
import datetime as dt, sqlite3
db = sqlite3.connect("/var/lib/endcap/pos/source/pos.db", timeout=30)
now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
with db:
    db.execute("INSERT OR IGNORE INTO ospos_items (item_id, name, category, item_number, unit_price) "
               "VALUES (1001, 'Whole milk 1l', 'FLUID MILK PRODUCTS', '1001', 1.29)")
    db.execute("INSERT INTO ospos_item_quantities (item_id, location_id, quantity, updated_at) VALUES (1001, 1, 50, ?) "
               "ON CONFLICT (item_id, location_id) DO UPDATE SET quantity = quantity - 1, updated_at = excluded.updated_at",
               (now,))
    sale = db.execute("INSERT INTO ospos_sales (sale_time, updated_at) VALUES (?, ?)", (now, now)).lastrowid
    db.execute("INSERT INTO ospos_sales_items (sale_id, item_id, line, quantity_purchased, item_unit_price) "
               "VALUES (?, 1001, 1, 1, 1.29)", (sale,))
print("sale", sale)
"""


ATTEST_PY = """
import base64, msgspec
from endcap.core import messages as m
from endcap.core.bus import RpcClient
from endcap.core.paths import Paths
with RpcClient(Paths.under("/").rpc_address("trust"), "system-test", timeout_ms=60_000) as rpc:
    r = rpc.call("attest", m.AttestRequest(base64.b64decode("{nonce}")), m.AttestReply)
print("@@ATTEST " + base64.b64encode(msgspec.msgpack.encode(r)).decode())
"""


def py_command(source: str, user: str | None = None) -> str:
    """A console line that runs ``source`` with the image's Python (base64: no quoting, one line)."""
    b64 = base64.b64encode(source.encode()).decode()
    run_as = f"runuser -u {user} -- " if user else ""
    return f"echo {b64} | base64 -d | {run_as}/opt/endcap/bin/python3 -"


def wait_running(guest, timeout_s: float) -> None:
    """Block until systemd says the boot finished (every unit started, so the pages answer); AssertionError
    naming the failed units and the boot's last warnings when it ends otherwise."""
    state = guest.sh("systemctl is-system-running --wait", timeout_s=timeout_s).out.strip().splitlines()[-1]
    if state != "running":
        failed = guest.sh("systemctl --failed --no-legend --plain; journalctl -b -p warning --no-pager | tail -50",
                          timeout_s=60).out
        raise AssertionError(f"system state {state!r}; failed units and warnings:\n{failed}")


def install_model(guest, timeout_s: float = 600) -> str:
    """Mount the media (vdb) and install its model through the guest's trust service."""
    guest.check(f"mkdir -p {MEDIA_MOUNT} && mount -o ro /dev/vdb {MEDIA_MOUNT}")
    return guest.check(py_command(INSTALL_PY.replace("{path}", f"{MEDIA_MOUNT}/model")), timeout_s=timeout_s)


def store_activity(guest) -> str:
    return guest.check(py_command(SALE_PY, user="endcap-pos"), timeout_s=120)


def services(info: dict) -> list[str]:
    """The Endcap services a built image enables (``pos``, ``offers``, …), from its build info."""
    return [u[len("endcap-"):-len(".service")] for u in info["units"] if u.startswith("endcap-") and u.endswith(".service")]


def wait_healthy(guest, names: list[str], timeout_s: float):
    """Ring a sale (offers is healthy only while stock flows), then wait until every service in ``names``
    reports healthy (``endcap-health --wait``); the guest's result (``rc``, ``out``: one line a service)."""
    store_activity(guest)
    return guest.sh(f"/usr/libexec/endcap/endcap-health --wait {timeout_s} " + " ".join(names), timeout_s=timeout_s + 60)


def open_screen(context, guest):
    """The dev display's page opened in ``context`` (a browser context) through the forwarded signage port:
    the store's screen, without which signage is not healthy. It reconnects by itself across reboots."""
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{guest.ports['signage']}/display/endcap-dev", timeout=120_000)
    return page


def attest(guest, nonce: bytes):
    """The guest trust service's ``attest`` reply for ``nonce`` (an ``AttestReply``)."""
    import msgspec

    from endcap.core import messages as m

    out = guest.check(py_command(ATTEST_PY.replace("{nonce}", base64.b64encode(nonce).decode())), timeout_s=120)
    found = [line for line in out.splitlines() if line.startswith("@@ATTEST ")]
    if not found:
        raise AssertionError(f"attest gave no reply:\n{out}")
    return msgspec.msgpack.decode(base64.b64decode(found[-1].split(" ", 1)[1]), type=m.AttestReply)
