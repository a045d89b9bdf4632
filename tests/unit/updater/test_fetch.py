import hashlib
import json

import pytest

from endcap.core.errors import IntegrityError
from endcap.updater.fetch import Target, TokenBucket, check_offer, hashed_url, parse_pointer, pointer_path, verify_file

C = "endcap-x"


def target(version="1.1.0", epoch=2, compatible=C, path=None):
    return Target(path or f"bundles/{compatible}/{compatible}-{version}.raucb", 10, {"sha256": "ab" * 32},
                  {"version": version, "compatible": compatible, "security_epoch": epoch})


def test_pointer_path_and_parse():
    assert pointer_path("canary", C) == f"rings/canary/{C}.json"
    data = json.dumps({"version": "1.1.0", "target": "bundles/x/y.raucb", "security_epoch": 2}).encode()
    assert parse_pointer(data, "p") == ("1.1.0", "bundles/x/y.raucb", 2)


@pytest.mark.parametrize("data", [b"nope", b"{}", b'{"version": 1, "target": "t", "security_epoch": 0}',
                                  b'{"version": "1.0.0", "target": "t", "security_epoch": -1}'])
def test_bad_pointer_named(data):
    with pytest.raises(IntegrityError, match="ring pointer p") as e:
        parse_pointer(data, "p")
    assert e.value.code == "pointer"


def test_offer_must_agree_with_bundle_target():
    t = target()
    assert check_offer(("1.1.0", t.path, 2), t, C).version == "1.1.0"
    for pointer, code in ((("1.2.0", t.path, 2), "mismatch"), (("1.1.0", t.path, 1), "mismatch")):
        with pytest.raises(IntegrityError) as e:
            check_offer(pointer, t, C)
        assert e.value.code == code
    other = target(compatible="other")
    with pytest.raises(IntegrityError, match="this device is 'endcap-x'"):
        check_offer(("1.1.0", other.path, 2), other, C)


def test_hashed_url():
    assert hashed_url("http://h/targets/", target()) == f"http://h/targets/bundles/{C}/{'ab' * 32}.{C}-1.1.0.raucb"


def test_token_bucket_paces_to_rate():
    b = TokenBucket(1000, burst=100, now=0.0)
    assert b.take(100, 0.0) == 0.0  # the burst
    assert b.take(500, 0.0) == pytest.approx(0.5)  # 500 bytes over budget at 1000 B/s
    assert b.take(100, 1.0) == 0.0  # refilled by then (capped at the burst)
    assert TokenBucket(0).take(10**9, 0.0) == 0.0  # unlimited
    with pytest.raises(ValueError, match="negative"):
        TokenBucket(-1)


def test_verify_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"0123456789")
    good = Target("x/f", 10, {"sha256": hashlib.sha256(b"0123456789").hexdigest()}, {})
    verify_file(p, good)
    for t, code in ((Target("x/f", 11, good.hashes, {}), "truncated"), (Target("x/f", 9, good.hashes, {}), "length"),
                    (Target("x/f", 10, {"sha256": "00" * 32}, {}), "tampered")):
        with pytest.raises(IntegrityError) as e:
            verify_file(p, t)
        assert e.value.code == code
