"""Strict TOML config: one section per service, decoded into typed structs.

Unknown keys are errors, defaults live in the structs, and validation never does I/O beyond
reading the one file. Every problem is reported as ``section.key: reason`` so
``endcap check-config`` and a failing service say exactly what to fix.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

T = TypeVar("T")

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]+)`")
_KEYED = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*): (?P<rest>.+)$", re.S)


class Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base for every config struct: unknown keys are errors, values are immutable."""


def _dotted(path: str) -> str:
    # msgspec paths look like ".pos.sql" or ".vision.cameras[0].zones"
    return path.lstrip(".")


def describe(err: msgspec.ValidationError, prefix: str = "") -> str:
    """Turn a msgspec validation message into ``section.key: reason``."""
    text = str(err)
    where = ""
    m = _PATH.search(text)
    if m:
        where = _dotted(m.group("path"))
        text = text[: m.start()]
    key_m = _UNKNOWN.match(text)
    if key_m:
        where = ".".join(p for p in (where, key_m.group("key")) if p)
        text = "unknown key"
    key_m = _MISSING.match(text)
    if key_m:
        where = ".".join(p for p in (where, key_m.group("key")) if p)
        text = "required key is missing"
    key_m = _KEYED.match(text)
    if key_m:  # a __post_init__ check that names its key: "url: unsupported scheme"
        where = ".".join(p for p in (where, key_m.group("key")) if p)
        text = key_m.group("rest")
    where = ".".join(p for p in (prefix, where) if p)
    return f"{where or '<top>'}: {text}"


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}", [f"<file>: not valid TOML: {e}"]) from e


def _struct_type(typ: Any) -> type | None:
    """The Struct class behind ``typ`` (also inside ``Optional[...]``), or None."""
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        return typ
    for arg in getattr(typ, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def problems_of(value: Any, typ: Any, prefix: str) -> list[str]:
    """Every problem in ``value`` against ``typ``, not just the first: recurse into struct tables."""
    struct = _struct_type(typ)
    if struct is not None and isinstance(value, dict):
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        found = [f"{prefix}.{k}: unknown key" if prefix else f"{k}: unknown section" for k in value if k not in fields]
        for k, v in value.items():
            if k in fields:
                found += problems_of(v, fields[k].type, f"{prefix}.{k}" if prefix else k)
        if found:
            return found
    try:
        msgspec.convert(value, typ, strict=True)
    except msgspec.ValidationError as e:
        return [describe(e, prefix=prefix)]
    return []


def convert_sections(data: dict[str, Any], schema: type[T]) -> T:
    """Decode ``data`` into ``schema``; on failure list every problem found, section by section."""
    try:
        return msgspec.convert(data, schema, strict=True)
    except msgspec.ValidationError as e:
        problems = problems_of(data, schema, "") or [describe(e)]
        raise ConfigError("invalid config", problems) from e


def load(path: str | Path, schema: type[T]) -> T:
    """Read and validate a config file. A missing file means "all defaults".

    Raises:
        ConfigError: the file is unreadable, not TOML, or breaks the schema (``problems`` lists each).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}", [f"<file>: cannot read {path}: {e}"]) from e
    return convert_sections(parse_toml(text, str(path)), schema)


def to_toml_defaults(obj: msgspec.Struct) -> dict[str, Any]:
    return msgspec.to_builtins(obj)
