"""Pure parts of the maintenance page: passwords, back-off, cross-site rules, redaction, network machine."""
from __future__ import annotations

import pytest

from endcap.core.errors import EndcapError
from endcap.maint import accounts
from endcap.maint.config import MaintConfig
from endcap.maint.network import Pending, Settings
from endcap.maint.passwords import RFC9106_LOW_MEMORY, check_policy, hash_password, parse, verify_password
from endcap.maint.redact import redact
from endcap.maint.security import cross_site_reason
from endcap.maint.store import delay


def test_argon2id_rfc9106_defaults_salted_and_verifiable():
    h1, h2 = hash_password("a long enough secret"), hash_password("a long enough secret")
    assert h1 != h2 and h1.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    params, salt, digest = parse(h1)
    assert params == RFC9106_LOW_MEMORY and len(salt) == 16 and len(digest) == 32
    assert verify_password("a long enough secret", h1) and not verify_password("a long enough secreT", h1)


def test_password_policy_names_the_rule():
    for bad, rule in (("short", "at least 12"), (" leading space x", "spaces"), ("tab\tinside xxxx", "control"),
                      ("x" * 1025, "at most")):
        with pytest.raises(EndcapError, match=rule):
            check_policy(bad)


def test_set_password_is_the_provisioning_seam(tmp_path):
    assert not accounts.has_account(tmp_path)
    assert accounts.new_setup_code(tmp_path, 60, 0.0) is not None
    accounts.set_password(tmp_path, "technician", "provisioned password")
    assert accounts.has_account(tmp_path) and accounts.authenticate(tmp_path, "technician", "provisioned password")
    assert accounts.new_setup_code(tmp_path, 60, 0.0) is None  # an account exists: no setup code any more
    assert (tmp_path / "accounts.json").stat().st_mode & 0o777 == 0o600
    assert "provisioned password" not in (tmp_path / "accounts.json").read_text()
    with pytest.raises(EndcapError, match="user"):
        accounts.set_password(tmp_path, "../root", "provisioned password")


def test_backoff_doubles_after_free_attempts_and_caps():
    d = [delay(n, base_s=1, max_s=60, free=3) for n in range(12)]
    assert d[:3] == [0, 0, 0] and d[3:8] == [1, 2, 4, 8, 16] and d[-1] == 60
    assert delay(10**6, base_s=1, max_s=60, free=3) == 60


def test_cross_site_reason():
    o = "https://gw.local:8443"
    assert cross_site_reason("GET", {}, o) is None
    assert cross_site_reason("POST", {"Origin": o}, o) is None
    assert cross_site_reason("POST", {"Origin": o, "Sec-Fetch-Site": "none"}, o) is None
    assert cross_site_reason("POST", {}, o) == "no Origin header"
    assert cross_site_reason("POST", {"Origin": "null", "Sec-Fetch-Site": "same-origin"}, o) is None  # no-referrer pages
    assert cross_site_reason("POST", {"Origin": "null"}, o) is not None
    assert cross_site_reason("POST", {"Origin": "null", "Sec-Fetch-Site": "cross-site"}, o) is not None
    assert "is not" in cross_site_reason("POST", {"Origin": "https://gw.local:8444"}, o)
    assert "Sec-Fetch-Site" in cross_site_reason("DELETE", {"Origin": o, "Sec-Fetch-Site": "cross-site"}, o)


def test_redaction():
    text = redact('password=hunter2 url="postgresql://u:pw1@h/db" {"api_key": "K-1"} shopper_id: 778 '
                  "Authorization: Bearer eyJabc.def -----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- ok")
    for secret in ("hunter2", "pw1", "K-1", "778", "eyJabc", "MIIB"):
        assert secret not in text
    assert text.endswith(" ok") and "postgresql://" in text


def test_network_settings_render_and_machine():
    s = Settings.parse({"mode": "static", "address": "192.168.7.20/24", "gateway": "192.168.7.1", "dns": "1.1.1.1, 9.9.9.9"})
    assert s.render("eth0") .splitlines()[2:] == ["Name=eth0", "", "[Network]", "Address=192.168.7.20/24",
                                                  "Gateway=192.168.7.1", "DNS=1.1.1.1", "DNS=9.9.9.9"]
    p = Pending()
    p.apply("old", "new", now=100, confirm_s=90)
    assert p.expire(189.9) is None and p.state == "pending"
    assert p.expire(190) == "old" and p.state == "rolled-back"
    assert not p.confirm(191)
    p = Pending()
    p.apply(None, "new", now=0, confirm_s=90)
    assert p.confirm(89) and p.state == "confirmed" and p.expire(1000) is None
    p = Pending()
    p.apply(None, "new", now=0, confirm_s=90)
    assert p.expire(90) == ""  # there was no file: rollback removes ours


def test_config_rejects_bad_values():
    from endcap.core.config import convert_sections
    from endcap.core.errors import ConfigError
    for section, key in (({"bind": "not-an-ip"}, "bind"), ({"units": ["../x"]}, "units"), ({"origin": "http://x"}, "origin"),
                         ({"cert_file": "/x.pem"}, "cert_file"), ({"nope": 1}, "nope")):
        with pytest.raises(ConfigError) as e:
            convert_sections(section, MaintConfig)
        assert key in "".join(e.value.problems)
    assert MaintConfig().effective_origin(8443) == "https://endcap.local:8443"


def test_refusal_limit_is_a_token_bucket_that_counts_what_it_drops():
    from endcap.maint.audit import RefusalLimit
    lim = RefusalLimit(3)
    assert [lim.allow(0.0) for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    assert lim.allow(10.0) == (False, 0)  # half a token back only
    assert lim.allow(40.0) == (True, 3)  # the next one through reports the three dropped


def test_audit_log_rotates_in_capped_segments_and_tails_across_them(tmp_path):
    from endcap.maint.audit import AuditLog
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4096, keep=2)
    for i in range(400):
        log.record(user="technician", remote="192.0.2.1", action="restart", target=f"n{i}", result="ok", now=float(i))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all((tmp_path / n).stat().st_size <= 4096 for n in names)
    newest = log.tail(5)
    assert [r["target"] for r in newest] == ["n399", "n398", "n397", "n396", "n395"]
    kept = log.tail(10_000)
    nums = [int(r["target"][1:]) for r in kept]
    assert nums == list(range(399, 399 - len(nums), -1)) and 40 < len(nums) < 400  # contiguous, oldest dropped
    # a big segment: the tail is read from the end (a record cut by a block edge is not returned torn)
    big = AuditLog(tmp_path / "big" / "audit.jsonl", max_bytes=1 << 30)
    for i in range(3000):
        big.record(user="u", remote="r", action="a", target=f"t{i}", result="x" * (i % 50), now=0.0)
    assert [r["target"] for r in big.tail(3)] == ["t2999", "t2998", "t2997"]
    assert len(big.tail(2000)) == 2000 and big.tail(2000)[-1]["target"] == "t1000"


def test_request_head_rules_of_the_tls_front_end():
    from endcap.maint.gate import HeadError, decide, parse_head
    h = parse_head(b"POST /update/upload?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000000\r\n"
                   b"Cookie: a=1\r\nCookie: __Host-endcap_session=abc; b=2\r\nX-CSRF-Token: t")
    assert (h.method, h.path, h.length, h.chunked) == ("POST", "/update/upload", 5_000_000, False)
    assert h.cookie("__Host-endcap_session") == "abc" and h.headers["x-csrf-token"] == "t"
    assert decide(h, limit=10 << 20) == "ask" and decide(h, limit=1 << 20) == "too-large"
    assert decide(parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1048576"), limit=10 << 20) == "relay"
    assert decide(parse_head(b"GET / HTTP/1.1\r\nHost: gw"), limit=10) == "relay"
    assert decide(parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked"), limit=10 << 20) == "ask"
    for bad in (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1",
                b"POST / HTTP/1.1\r\nContent-Length: 0x10", b"POST / HTTP/1.1\r\nContent-Length: -1",
                b"POST / HTTP/1.1\r\nContent-Length : 1", b"POST / HTTP/1.1\r\nA: b\r\n c: d",
                b"POST / HTTP/1.1\nContent-Length: 1", b"POST / HTTP/1.1\r\nA: b\rContent-Length: 9",
                b"POST /\r\nHost: x", b"POST / HTTP/2\r\nHost: x"):
        with pytest.raises(HeadError):
            parse_head(bad)
