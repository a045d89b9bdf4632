import msgspec
import pytest

from endcap.updater.config import UpdaterConfig


def test_defaults():
    c = UpdaterConfig(compatible="endcap-x")
    assert c.ring == "fleet" and c.reboot_window == "" and "pos" in c.health_services


@pytest.mark.parametrize("kw,needle", [
    ({"ring": "beta"}, "ring"), ({"reboot_window": "2-5"}, "reboot_window"), ({"reboot_window": "25:00-01:00"}, "25:00"),
    ({"factory_version": "1.0"}, "factory_version"), ({"compatible": " "}, "compatible"),
])
def test_bad_values_named(kw, needle):
    args = dict({"compatible": "endcap-x"}, **kw)
    with pytest.raises((ValueError, msgspec.ValidationError), match=needle):
        msgspec.convert(args, UpdaterConfig)


def test_unknown_key_refused():
    with pytest.raises(msgspec.ValidationError, match="bogus"):
        msgspec.convert({"compatible": "x", "bogus": 1}, UpdaterConfig)


@pytest.mark.parametrize("kw,needle", [
    ({"repo_url": "ftp://x"}, "repo_url"), ({"repo_url": "http://noc/repo"}, "trusted_root: required"),
    ({"trusted_root": "root.json"}, "not an absolute path"), ({"floor_source": "tpm"}, "floor_source"),
    ({"bandwidth_bytes_s": -1}, "bandwidth_bytes_s"), ({"poll_interval_s": 0}, "poll_interval_s"),
])
def test_repo_settings_checked(kw, needle):
    with pytest.raises((ValueError, msgspec.ValidationError), match=needle):
        msgspec.convert(dict({"compatible": "endcap-x"}, **kw), UpdaterConfig)


def test_repo_settings_accepted():
    c = UpdaterConfig(compatible="x", repo_url="https://noc/fleet", trusted_root="/etc/endcap/tuf-root.json",
                      ring="canary", bandwidth_bytes_s=1 << 20)
    assert c.floor_source == "trust" and c.poll_interval_s == 3600


def test_boot_id_file_and_upload_dir_must_be_absolute():
    import pytest as _pytest

    from endcap.updater.config import UpdaterConfig

    assert UpdaterConfig(compatible="c").boot_id_file == "/proc/sys/kernel/random/boot_id"
    assert UpdaterConfig(compatible="c").upload_dir == ""
    for key in ("boot_id_file", "upload_dir"):
        with _pytest.raises(ValueError, match=f"{key}: 'rel' is not an absolute path"):
            UpdaterConfig(compatible="c", **{key: "rel"})
