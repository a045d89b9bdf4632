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
