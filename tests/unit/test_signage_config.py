"""``[signage]`` config: defaults, and every mistake named as signage.<key>: reason, without I/O."""
import msgspec
import pytest

from endcap.core.config import convert_sections, parse_toml
from endcap.core.errors import ConfigError
from endcap.signage.config import SignageConfig

Schema = msgspec.defstruct("Schema", [("signage", SignageConfig)], forbid_unknown_fields=True, kw_only=True)
DISPLAY = '[[signage.displays]]\nid = "aisle-7"\nzones = ["z7"]\n'


def load(text: str) -> SignageConfig:
    return convert_sections(parse_toml(text, "test"), Schema).signage


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(text)
    return e.value.problems


def test_one_display_is_enough_and_defaults_are_safe():
    cfg = load(DISPLAY)
    assert cfg.bind == "127.0.0.1" and cfg.port == 8470 and cfg.offer_ttl_max_s == 30.0
    assert cfg.display("aisle-7").loop == "default" and cfg.loop("default").items[0].creative.startswith("builtin:")
    assert cfg.display("nope") is None


def test_a_full_example_loads():
    cfg = load(DISPLAY.replace('zones = ["z7"]', 'zones = ["z7"]\nloop = "aisle"') + """
[[signage.dayparts]]
name = "breakfast"
start = "06:00"
end = "11:00"
days = ["mon", "tue"]
[[signage.loops]]
id = "aisle"
items = [
  { id = "coffee", creative = "coffee.html", duration_s = 8, dayparts = ["breakfast"] },
  { id = "late", creative = "night.png", kind = "image", start = "22:00", end = "02:00" },
]
""")
    assert [i.id for i in cfg.loop("aisle").items] == ["coffee", "late"]


@pytest.mark.parametrize("extra, expected", [
    ("[signage]\nport = 70000\n", "signage.port: Expected `int` <= 65535"),
    ("[signage]\ncolour = 1\n", "signage.colour: unknown key"),
    ("[signage]\nheartbeat_s = 20\n", "signage.screen_stale_s: must exceed heartbeat_s"),
    ("[signage]\ncurrency = 'dollars'\n", "signage.currency: Expected `str` matching regex"),
])
def test_scalar_problems_name_their_key(extra, expected):
    text = extra + DISPLAY
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


@pytest.mark.parametrize("body, expected", [
    ('[[signage.displays]]\nid = "Aisle 7"\nzones = ["z"]\n', "Expected `str` matching regex"),
    ('[[signage.displays]]\nid = "static"\nzones = ["z"]\n', "id: 'static' is reserved"),
    ('[[signage.displays]]\nid = "a"\nzones = []\n', "Expected `array` of length >= 1"),
    (DISPLAY + DISPLAY, "duplicate display id(s) aisle-7"),
    ('[[signage.displays]]\nid = "a"\nzones = ["z"]\nloop = "nope"\n', "plays loop 'nope', which is not defined"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "../etc/passwd.html" }]\n', "is not a plain file name"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.exe" }]\n', "neither an image"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.png", kind = "html" }]\n', "kind: 'html' but"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.png", start = "25:00" }]\n', "start: '25:00' is not a time"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.png", start = "06:00", end = "06:00" }]\n', "is empty"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.png", dayparts = ["brunch"] }]\n', "undefined daypart(s) brunch"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.png" }, { id = "x", creative = "y.png" }]\n', "duplicate item id(s) x"),
    (DISPLAY + '[[signage.loops]]\nid = "l"\nitems = [{ id = "x", creative = "x.png", duration_s = 0 }]\n', "Expected `float` >= 1"),
    (DISPLAY + '[[signage.dayparts]]\nname = "d"\nstart = "24:00"\nend = "02:00"\n', "24:00 is the end of a day"),
])
def test_structural_problems_are_explained(body, expected):
    found = problems(body)
    assert any(expected in p and p.startswith("signage") for p in found), found


def test_no_displays_is_an_error():
    assert any("displays" in p for p in problems("[signage]\nport = 1\n"))
