import pytest

from endcap.core.errors import IntegrityError
from endcap.updater import floor


def test_semver_order():
    keys = [floor.parse_version(v) for v in ("1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0")]
    assert keys == sorted(keys)


@pytest.mark.parametrize("bad", ["", "1", "1.0", "01.0.0", "1.0.0+build", "v1.0.0", "1.0.x"])
def test_bad_version_named(bad):
    with pytest.raises(IntegrityError, match="bad|MAJOR") as e:
        floor.parse_version(bad, "bundle version")
    assert e.value.code == "bad_version"


def test_check_refuses_older_same_and_below_floor():
    floor.check("1.1.0", 2, running="1.0.0", floor=2)
    with pytest.raises(IntegrityError, match="older than the running version 1.0.0"):
        floor.check("0.9.0", 5, running="1.0.0", floor=0)
    with pytest.raises(IntegrityError, match="the same as"):
        floor.check("1.0.0", 5, running="1.0.0", floor=0)
    with pytest.raises(IntegrityError, match="below this device's floor 3") as e:
        floor.check("2.0.0", 2, running="1.0.0", floor=3)
    assert e.value.code == "epoch"


def test_epoch_of_build():
    assert floor.epoch_of_build("20261128T132100Z security-epoch=4") == 4
    assert floor.epoch_of_build("") == 0
    with pytest.raises(IntegrityError, match="security-epoch 'x'"):
        floor.epoch_of_build("security-epoch=x")
