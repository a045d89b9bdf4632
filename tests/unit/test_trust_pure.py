"""Pure parts of trust: signature files and chains (no TPM), the quote parser, config validation."""
from __future__ import annotations

import base64
import json

import msgspec
import pytest

from endcap.core.config import convert_sections
from endcap.core.errors import ConfigError, IntegrityError
from endcap.trust.attest import Event, parse_quote, replay
from endcap.trust.config import TrustConfig
from endcap.trust.signature import check_chain, decode_signature_file
from endcap_models import sign


@pytest.fixture(scope="module")
def pki():
    rk, root = sign.make_root()
    sk, signer = sign.make_signer(rk, root)
    return rk, root, sk, signer


def test_signature_file_round_trip_and_chain(pki):
    rk, root, sk, signer = pki
    data = sign.signature_file(b"manifest", sk, [signer, root])
    der, certs = decode_signature_file(data, "pkg")
    assert len(certs) == 2 and der
    key = check_chain(certs, sign.root_key_hash(root), "pkg")
    assert key.public_numbers() == sk.public_key().public_numbers()


def test_signing_with_a_key_that_is_not_the_chains_refuses(pki):
    rk, root, sk, signer = pki
    other, _ = sign.make_signer(rk, root)
    with pytest.raises(ValueError):
        sign.signature_file(b"m", other, [signer, root])


@pytest.mark.parametrize("mutate, code", [
    (lambda d: b"not json", "bad_signature_file"),
    (lambda d: json.dumps({**json.loads(d), "alg": "rsa"}).encode(), "bad_signature_file"),
    (lambda d: json.dumps({**json.loads(d), "chain": []}).encode(), "bad_signature_file"),
    (lambda d: json.dumps({**json.loads(d), "signature": "%%"}).encode(), "bad_signature_file"),
    (lambda d: json.dumps({**json.loads(d), "extra": 1}).encode(), "bad_signature_file"),
])
def test_malformed_signature_files(pki, mutate, code):
    rk, root, sk, signer = pki
    with pytest.raises(IntegrityError) as e:
        decode_signature_file(mutate(sign.signature_file(b"m", sk, [signer, root])), "pkg")
    assert e.value.code == code


def test_root_signing_directly_is_refused(pki):
    rk, root, sk, signer = pki
    with pytest.raises(IntegrityError) as e:
        check_chain([root], sign.root_key_hash(root), "pkg")
    assert e.value.code == "bad_chain"


def test_leaf_cannot_act_as_ca(pki):
    rk, root, sk, signer = pki
    sub_key, sub = sign.make_signer(sk, signer, cn="issued by a leaf")
    with pytest.raises(IntegrityError) as e:
        check_chain([sub, signer, root], sign.root_key_hash(root), "pkg")
    assert e.value.code == "bad_chain"


def test_other_root_is_untrusted(pki):
    rk, root, sk, signer = pki
    _, other_root = sign.make_root()
    with pytest.raises(IntegrityError) as e:
        check_chain([signer, root], sign.root_key_hash(other_root), "pkg")
    assert e.value.code == "untrusted_root"


def test_replay_folds_only_its_pcr():
    d = "ab" * 32
    ev = [Event(pcr=16, digest=d, name="n", version="1", security_epoch=0),
          Event(pcr=23, digest=d, name="n", version="1", security_epoch=0)]
    import hashlib

    assert replay(ev, 16) == hashlib.sha256(bytes(32) + bytes.fromhex(d)).digest()
    assert replay([], 16) == bytes(32)


def test_parse_quote_refuses_garbage():
    with pytest.raises(IntegrityError) as e:
        parse_quote(b"\xff\x54\x43\x47\x80\x18\x00")
    assert e.value.code == "bad_quote"
    with pytest.raises(IntegrityError):
        parse_quote(base64.b64decode("AAAA"))


def test_config_requires_compatible_and_checks_ranges():
    cfg = msgspec.convert({"compatible": "endcap-orin-nano"}, TrustConfig)
    assert cfg.tcti == "device:/dev/tpmrm0" and cfg.pcr == 14
    for bad in ({}, {"compatible": " "}, {"compatible": "x", "pcr": 24}, {"compatible": "x", "tcti": "tcp:1"},
                {"compatible": "x", "anchor_index": 0x81000000}, {"compatible": "x", "bogus": 1}):
        with pytest.raises((msgspec.ValidationError, ConfigError)):
            convert_sections(bad, TrustConfig)


def test_endcap_model_sign_command(tmp_path, pki):
    import argparse

    from cryptography.hazmat.primitives import serialization

    from endcap.trust import manifest as mf

    rk, root, sk, signer = pki
    key = tmp_path / "signer.pem"
    key.write_bytes(sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"pass")))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (signer, root)))
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    man = mf.Manifest(name="m", kind="k", version="1", security_epoch=0, compatible="c", created="2026-01-01T00:00:00Z")
    (pkg / mf.MANIFEST).write_bytes(mf.encode_manifest(man))
    parser = argparse.ArgumentParser()
    sign.add_parser(parser.add_subparsers())
    args = parser.parse_args(["sign", str(pkg), "--key", str(key), "--chain", str(chain), "--key-password-env", "K"])
    import os

    os.environ["K"] = "pass"
    try:
        assert args.func(args) == 0
    finally:
        del os.environ["K"]
    der, certs = decode_signature_file((pkg / mf.SIGNATURE).read_bytes(), "pkg")
    assert check_chain(certs, sign.root_key_hash(root), "pkg").public_numbers() == sk.public_key().public_numbers()
