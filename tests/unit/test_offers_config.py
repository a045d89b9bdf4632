"""``[offers]`` zone mistakes: each problem names its input path (``offers.zones.A.key``) and the reason."""
import pytest

from endcap.core.config import load
from endcap.core.errors import ConfigError
from endcap.gateway import config_schema

HEAD = '[offers]\nmodel_path = "/var/lib/endcap/trust/active"\n'


def _problems(tmp_path, text: str) -> list[str]:
    p = tmp_path / "endcap.toml"
    p.write_text(HEAD + text)
    with pytest.raises(ConfigError) as e:
        load(p, config_schema())
    return e.value.problems


def test_good_zones_load(tmp_path):
    p = tmp_path / "endcap.toml"
    p.write_text(HEAD + '[offers.zones.A]\ncategories = ["SNACKS"]\n[offers.zones.shelf-7b]\nskus = ["1001", "1002"]\n')
    zones = load(p, config_schema()).offers.zones
    assert zones["A"].categories == ["SNACKS"] and zones["shelf-7b"].skus == ["1001", "1002"]


@pytest.mark.parametrize("zone, expected", [
    ('[offers.zones.A]\ncategoriez = ["SNACKS"]\n', ["offers.zones.A.categoriez: unknown key"]),
    ('[offers.zones.A]\ncategories = "SNACKS"\n', ["offers.zones.A.categories: Expected `array`, got `str`"]),
    ('[offers.zones.A]\ncategories = ["SNACKS", 7]\n', ["offers.zones.A.categories.[1]: Expected `str`, got `int`"]),
    ('[offers.zones.A]\ncategories = []\n',
     ["offers.zones.A: no candidates: give skus or categories (a non-empty list of either)"]),
    ('[offers.zones.A]\ncategories = ["SNACKS", " "]\n', ["offers.zones.A.categories: ['SNACKS', ' '] has an empty name"]),
    ('[offers.zones.A]\nskus = ["1001", "1001"]\n', ["offers.zones.A.skus: ['1001', '1001'] names one twice"]),
    ('[offers.zones."aisle 7"]\ncategories = ["SNACKS"]\n',
     ["offers.zones: zone id 'aisle 7' is not 1-32 letters, digits, '-' or '_' (it must equal a [vision] zone id)"]),
    ('[offers.zones.A]\ncategories = ["SNACKS"]\ndayparts = ["lunch"]\n',
     ["offers.zones.A.dayparts: unknown daypart 'lunch' (not in [[offers.dayparts]])"]),
    ('zones = { A = "SNACKS" }\n', ["offers.zones.A: Expected `object`, got `str`"]),
])
def test_careless_zone_names_path_and_reason(tmp_path, zone, expected):
    assert _problems(tmp_path, zone) == expected


def test_every_bad_zone_is_reported_not_just_the_first(tmp_path):
    problems = _problems(tmp_path, '[offers.zones.A]\ncategoriez = ["X"]\n[offers.zones.B]\nskus = "1001"\n'
                                   '[offers.zones.C]\ncategories = ["Y"]\n')
    assert problems == ["offers.zones.A.categoriez: unknown key", "offers.zones.B.skus: Expected `array`, got `str`"]


def test_catalogue_entries_are_named_by_index(tmp_path):
    problems = _problems(tmp_path, '[[offers.catalogue]]\nsku = "1"\n[[offers.catalogue]]\nskuu = "2"\n')
    assert problems == ["offers.catalogue.[1].skuu: unknown key"]
