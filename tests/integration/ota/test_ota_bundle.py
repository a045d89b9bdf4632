"""Bundles built and checked by the real ``rauc`` 1.8 CLI: accepted when right, refused with the right code."""
from __future__ import annotations

import json
import struct
import subprocess

import pytest

from endcap_ota.bundle import build_bundle
from endcap_ota.errors import BundleRefused
from endcap_ota.pki import create_pki, issue_signer
from endcap_ota.verify import verify_bundle
from tests.fixtures.ota import COMPATIBLE, make_rootfs


def refused(path, keyring, **kw) -> BundleRefused:
    with pytest.raises(BundleRefused) as ei:
        verify_bundle(path, keyring, **kw)
    return ei.value


@pytest.mark.parametrize("fmt", ["verity", "plain"])
def test_bundle_verifies_and_carries_its_facts(make_bundle, fleet_pki, fmt):
    b = make_bundle("1.4.0-rc.1", fmt=fmt, security_epoch=3)
    info = verify_bundle(b, fleet_pki.keyring, compatible=COMPATIBLE)
    assert (info.version, info.compatible, info.security_epoch, info.fmt) == ("1.4.0-rc.1", COMPATIBLE, 3, fmt)
    assert info.size == b.stat().st_size
    assert info.sha256 == subprocess.run(["sha256sum", str(b)], capture_output=True, text=True).stdout.split()[0]
    # rauc itself agrees, and the rootfs inside is the one we built
    out = subprocess.run(["rauc", "info", f"--keyring={fleet_pki.keyring}", "--output-format=json", str(b)],
                         capture_output=True, text=True, check=True).stdout
    facts = json.loads(out)
    assert facts["version"] == "1.4.0-rc.1" and facts["build"].endswith(" security-epoch=3")


def test_plain_refused_unless_allowed(tmp_path, fleet_pki):
    rootfs = make_rootfs(tmp_path)
    with pytest.raises(BundleRefused) as ei:
        build_bundle(rootfs, tmp_path / "b.raucb", version="1.0.0", compatible=COMPATIBLE, pki=fleet_pki, fmt="plain")
    assert ei.value.code == "format"
    assert not (tmp_path / "b.raucb").exists()


@pytest.mark.parametrize("version", ["1.0", "01.0.0", "1.0.0+build.5", "v1.0.0", ""])
def test_bad_version_refused_at_build(tmp_path, fleet_pki, version):
    with pytest.raises(BundleRefused) as ei:
        build_bundle(make_rootfs(tmp_path), tmp_path / "b.raucb", version=version, compatible=COMPATIBLE, pki=fleet_pki)
    assert ei.value.code == "version"


def test_foreign_ca_refused(tmp_path, make_bundle, fleet_pki):
    other = create_pki(tmp_path / "other", org="Somebody else")
    b = make_bundle(pki=other)
    e = refused(b, fleet_pki.keyring)
    assert e.code == "foreign-ca" and str(b) in str(e)


@pytest.mark.parametrize("code_signing,email", [(False, False), (True, False), (False, True)])
def test_signer_without_both_ekus_refused(tmp_path, make_bundle, fleet_pki, code_signing, email):
    cert, key = issue_signer(fleet_pki, tmp_path / "signers", name="weak", code_signing=code_signing,
                             email_protection=email)
    b = make_bundle(signer_cert=cert, signer_key=key)
    assert refused(b, fleet_pki.keyring).code == "key-usage"


@pytest.mark.parametrize("fmt", ["verity", "plain"])
def test_tampered_payload_refused(make_bundle, fleet_pki, fmt):
    b = make_bundle(fmt=fmt)
    data = bytearray(b.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the squashfs payload
    b.write_bytes(bytes(data))
    assert refused(b, fleet_pki.keyring).code == "tampered"


@pytest.mark.parametrize("cut", [100, 8, 0.5])
def test_truncated_refused(make_bundle, fleet_pki, cut):
    b = make_bundle(fmt="verity")
    data = b.read_bytes()
    keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    b.write_bytes(data[:keep])
    assert refused(b, fleet_pki.keyring).code == "truncated"


def test_unsigned_refused(tmp_path, make_bundle, fleet_pki):
    # a bundle's payload with its CMS signature and size trailer stripped off
    b = make_bundle(fmt="plain")
    data = b.read_bytes()
    (cms_size,) = struct.unpack(">Q", data[-8:])
    b.write_bytes(data[: len(data) - 8 - cms_size])
    assert refused(b, fleet_pki.keyring).code == "unsigned"


def test_wrong_compatible_refused(make_bundle, fleet_pki):
    b = make_bundle(compatible="endcap-other-board")
    e = refused(b, fleet_pki.keyring, compatible=COMPATIBLE)
    assert e.code == "compatible" and "endcap-other-board" in str(e)


def test_not_a_bundle_refused(tmp_path, fleet_pki):
    p = tmp_path / "x.raucb"
    p.write_bytes(b"hello" * 100)
    assert refused(p, fleet_pki.keyring).code == "format"
