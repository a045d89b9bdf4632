"""Pure OTA logic: the version rule, ring rules, expiry classification, the verity tree, PKI extensions."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from endcap_ota import rings, verity
from endcap_ota.bundle import build_string, render_manifest
from endcap_ota.errors import OtaError, PkiError, RepoError
from endcap_ota.pki import create_pki, issue_signer, load_cert, load_pki
from endcap_ota.status import expiry_state
from endcap_ota.verify import parse_security_epoch
from endcap_ota.version import check_compatible, parse_version


@pytest.mark.parametrize("lo,hi", [("1.0.0-alpha", "1.0.0-alpha.1"), ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
                                   ("1.0.0-beta.2", "1.0.0-beta.11"), ("1.0.0-rc.1", "1.0.0"), ("1.0.0", "1.0.1"),
                                   ("1.9.0", "1.10.0"), ("2.0.0", "10.0.0")])
def test_semver_precedence(lo, hi):
    assert parse_version(lo) < parse_version(hi)
    assert not parse_version(hi) < parse_version(lo)


@pytest.mark.parametrize("bad", ["1", "1.0", "1.0.0.0", "01.0.0", "1.0.0+b1", "1.0.0-", "1.0.0-01", "v1.0.0", ""])
def test_version_rule_refuses(bad):
    with pytest.raises(OtaError) as ei:
        parse_version(bad)
    assert ei.value.code == "version" and repr(bad) in str(ei.value)


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "x" * 65, "../x"])
def test_compatible_rule(bad):
    assert check_compatible("endcap-orin_nano.v2") == "endcap-orin_nano.v2"
    with pytest.raises(OtaError):
        check_compatible(bad)


def test_manifest_and_epoch_token():
    b = build_string(7, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    assert b == "20260102T030405Z security-epoch=7"
    assert parse_security_epoch(b) == 7 and parse_security_epoch("whatever") == 0
    with pytest.raises(OtaError) as ei:  # the device refuses it; the NOC must not read it as 0
        parse_security_epoch("x security-epoch=12x")
    assert ei.value.code == "manifest"
    m = render_manifest(version="1.0.0", compatible="c", build=b, fmt="verity")
    assert "[bundle]\nformat=verity" in m and "filename=rootfs.ext4" in m


def test_ring_publish_promote_halt():
    canary = rings.publish(rings.RingState(), "1.0.0", "canary")
    pilot = rings.promote(canary, rings.RingState(), "1.0.0", "pilot")
    assert pilot.current == "1.0.0"
    assert rings.promote(canary, pilot, "1.0.0", "pilot").current == "1.0.0"  # idempotent
    with pytest.raises(RepoError) as ei:
        rings.promote(canary, rings.RingState(), "2.0.0", "pilot")
    assert ei.value.code == "order"
    with pytest.raises(RepoError) as ei:
        rings.publish(canary, "0.9.0", "canary")
    assert ei.value.code == "downgrade"
    canary = rings.publish(canary, "1.1.0", "canary")
    halted = rings.halt(canary, "canary")
    assert halted.current == "1.0.0" and halted.halted == ["1.1.0"]
    with pytest.raises(RepoError) as ei:
        rings.publish(halted, "1.1.0", "canary")
    assert ei.value.code == "halted"
    assert rings.halt(halted, "canary").current is None
    with pytest.raises(RepoError):
        rings.halt(rings.RingState(), "canary")
    assert rings.lower_ring("fleet") == "pilot" and rings.lower_ring("canary") is None
    with pytest.raises(RepoError):
        rings.check_ring("beta")
    assert rings.RingState.from_json(halted.to_json()) == halted


def test_expiry_state():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert expiry_state(now + dt.timedelta(days=20), now, 30)[1] == "ok"
    assert expiry_state(now + dt.timedelta(days=5), now, 30)[1] == "near-expiry"
    left, state = expiry_state(now - dt.timedelta(hours=12), now, 1)
    assert state == "expired" and left == pytest.approx(-0.5)


def test_verity_tree_shapes():
    salt = b"s" * 32
    blocks = [i.to_bytes(2, "big") * (verity.BLOCK // 2) for i in range(300)]  # > 128 digests: two levels
    digests = verity.level0(blocks, salt)
    root, tree = verity.tree_from_digests(digests, salt)
    # level 0: 300 digests -> 3 blocks; level 1: 3 digests -> 1 block; stored top level first
    assert len(tree) == 4 * verity.BLOCK
    top, lvl0 = tree[: verity.BLOCK], tree[verity.BLOCK:]
    assert lvl0.startswith(b"".join(digests)) and lvl0[len(digests) * 32:] == b"\0" * (3 * verity.BLOCK - 300 * 32)
    assert top[:32] == hashlib.sha256(salt + lvl0[: verity.BLOCK]).digest()
    assert root == hashlib.sha256(salt + top).digest()
    one_root, one_tree = verity.tree_from_digests(digests[:1], salt)
    assert len(one_tree) == verity.BLOCK and one_root == hashlib.sha256(salt + one_tree).digest()


def test_pki_extensions(tmp_path):
    pki = create_pki(tmp_path / "pki")
    root, inter, signer = (load_cert(p) for p in (pki.root_cert, pki.intermediate_cert, pki.signer_cert))
    bc = lambda c: c.extensions.get_extension_for_class(x509.BasicConstraints).value  # noqa: E731
    assert bc(root).ca and bc(root).path_length == 1
    assert bc(inter).ca and bc(inter).path_length == 0
    assert not bc(signer).ca
    ku = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    eku = list(signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert set(eku) == {ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    assert signer.issuer == inter.subject and inter.issuer == root.subject
    assert pki.keyring.read_bytes() == pki.root_cert.read_bytes()
    assert (pki.root_key.stat().st_mode & 0o777) == 0o600
    inter.verify_directly_issued_by(root)
    signer.verify_directly_issued_by(inter)
    assert load_pki(tmp_path / "pki") == pki
    with pytest.raises(PkiError):
        create_pki(tmp_path / "pki")  # never overwrite
    with pytest.raises(PkiError):
        load_pki(tmp_path / "nothing")
    cert, _ = issue_signer(pki, tmp_path / "s", name="nocode", code_signing=False)
    eku = list(load_cert(cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    with pytest.raises(PkiError):
        issue_signer(pki, tmp_path / "s", name="../evil")
