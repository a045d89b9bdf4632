"""Strict config: every problem named as section.key: reason, defaults from the structs."""
import pytest

from endcap.core.config import load
from endcap.core.errors import ConfigError
from endcap.gateway import config_schema


def _problems(tmp_path, text):
    p = tmp_path / "endcap.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(p, config_schema())
    return e.value.problems


def test_missing_file_means_defaults(tmp_path):
    cfg = load(tmp_path / "absent.toml", config_schema())
    assert cfg.core.log_level == "INFO" and cfg.pos is None


def test_valid_pos_section_fills_defaults(tmp_path):
    p = tmp_path / "endcap.toml"
    p.write_text('[pos.sql]\nurl = "sqlite:///x.db"\n')
    cfg = load(p, config_schema())
    assert cfg.pos.adapter == "sql" and cfg.pos.sql.location_id == 1 and cfg.pos.lookback_s == 1200.0


def test_every_problem_is_reported_with_its_key(tmp_path):
    problems = _problems(tmp_path, '[pos]\ncolour = 1\npoll_interval_s = 0\n[pos.sql]\nurl = "sqlite:///x"\nbogus = 2\n[nope]\n')
    assert "nope: unknown section" in problems
    assert "pos.colour: unknown key" in problems
    assert "pos.sql.bogus: unknown key" in problems
    assert any(p.startswith("pos.poll_interval_s: Expected `float` > 0.0") for p in problems)


def test_wrong_type_names_key(tmp_path):
    assert _problems(tmp_path, '[pos]\npage_size = "many"\n[pos.sql]\nurl = "sqlite:///x"\n') == ["pos.page_size: Expected `int`, got `str`"]


def test_cross_field_rule(tmp_path):
    assert _problems(tmp_path, '[pos]\nadapter = "rest"\n') == ["pos: adapter is 'rest' but the [pos.rest] table is missing"]


def test_not_toml(tmp_path):
    [p] = _problems(tmp_path, "[pos\n")
    assert p.startswith("<file>: not valid TOML")


def test_missing_required_key(tmp_path):
    assert _problems(tmp_path, "[pos.sql]\nlocation_id = 2\n") == ["pos.sql.url: required key is missing"]


def test_source_url_scheme_is_checked_without_io(tmp_path):
    assert _problems(tmp_path, '[pos.sql]\nurl = "mysql://db/ospos"\n') == [
        "pos.sql.url: unsupported scheme 'mysql'; use sqlite:///PATH or postgresql://..."]
