"""The one version/epoch/manifest rule shared by the device updater and the NOC (review item 18)."""
import pytest

from endcap.core import bundlever as bv
from endcap.core.errors import IntegrityError
from endcap.updater import floor
from endcap_ota.errors import OtaError
from endcap_ota.verify import parse_security_epoch
from endcap_ota.version import parse_version


def test_ordering_is_semver_precedence():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
             "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
    keys = [bv.version_key(v) for v in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


@pytest.mark.parametrize("bad", ["", "1", "1.0", "01.0.0", "1.0.0+build", "v1.0.0", "1.0.x", "1.0.0\n",
                                 "1.0.0-", "1.0.0-01", "١.0.0", "1.0.0-rc.٣"])
def test_bad_versions_refused_on_both_sides(bad):
    with pytest.raises(IntegrityError) as e:
        bv.version_key(bad)
    assert e.value.code == "bad_version" and repr(bad) in str(e.value)
    with pytest.raises(OtaError):
        parse_version(bad)


@pytest.mark.parametrize("a,b", [("1.0.0-rc.1", "1.0.0"), ("1.9.9", "1.10.0"), ("1.0.0-2", "1.0.0-10"),
                                 ("1.0.0-9", "1.0.0-a")])
def test_device_and_noc_agree(a, b):
    assert floor.parse_version(a) < floor.parse_version(b)
    assert parse_version(a) < parse_version(b)


@pytest.mark.parametrize("build,epoch", [("", 0), (None, 0), ("20261128T132100Z", 0),
                                         ("20261128T132100Z security-epoch=4", 4), ("security-epoch=0", 0)])
def test_epoch_token(build, epoch):
    assert bv.epoch_of_build(build) == epoch
    assert parse_security_epoch(build) == epoch


@pytest.mark.parametrize("build", ["security-epoch=12x", "security-epoch=²", "security-epoch=", "security-epoch=-1",
                                   "security-epoch=٣", "security-epoch=1 security-epoch=2"])
def test_bad_epoch_refused_on_both_sides(build):
    with pytest.raises(IntegrityError) as e:
        bv.epoch_of_build(build)
    assert e.value.code == "manifest"
    with pytest.raises(OtaError) as e2:
        parse_security_epoch(build)
    assert e2.value.code == "manifest"


def test_manifest_parse():
    text = ("[update]\ncompatible=endcap-x\nversion=1.2.0\nbuild=b security-epoch=3\n\n"
            "[bundle]\nformat=verity\nverity-size=4096\n")
    mf = bv.parse_manifest(text.encode())
    assert (mf.compatible, mf.version, mf.epoch, mf.bundle["format"]) == ("endcap-x", "1.2.0", 3, "verity")


@pytest.mark.parametrize("data,needle", [
    (b"[update]\ncompatible=c\nversion=1.0.0\nbuild=\xff\xfe\n", "not UTF-8"),
    (b"[update]\ncompatible=c\nversion=1.0.0\nbuild=security-epoch=\xc2\xb2\n", "not a number"),
    (b"not an ini file", "does not parse"),
    (b"[update]\nversion=1.0.0\n", "no [update] compatible"),
    (b"[update]\ncompatible=c\n", "no [update] version"),
    (b"[update]\ncompatible=c\nversion=1.0\n", "MAJOR.MINOR.PATCH"),
])
def test_manifest_refusals_name_the_input(data, needle):
    with pytest.raises(IntegrityError) as e:
        bv.parse_manifest(data, "/up/b.raucb")
    assert needle in str(e.value) and "/up/b.raucb" in str(e.value)
