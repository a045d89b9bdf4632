"""Strict TOML config: one section per service, decoded into typed structs.

Unknown keys are errors, defaults live in the structs, and validation never does I/O beyond
reading the one file. Every problem is reported as ``section.key: reason`` so
``endcap check-config`` and a failing service say exactly what to fix.
"""
from __future__ import annotations

import re
import sys
import types
import typing
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
_KEYED = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+|\.\[\d+\])*): (?P<rest>.+)$", re.S)


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
    if key_m:  # a __post_init__ check that names its key: "url: unsupported scheme", "zones.A.dayparts: ..."
        where = _join(where, key_m.group("key"))
        text = key_m.group("rest")
    where = _join(prefix, where)
    return f"{where or '<top>'}: {text}"


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}", [f"<file>: not valid TOML: {e}"]) from e


def _join(prefix: str, where: str) -> str:
    """``prefix`` and a sub-path joined as a dotted input path (``a.b``; array items ``a.[0]``)."""
    return ".".join(p for p in (prefix, where) if p)


def _unwrap(typ: Any) -> Any:
    """``typ`` without ``Annotated[...]`` and ``Optional[...]`` (a union of one type with None)."""
    while True:
        origin = typing.get_origin(typ)
        if origin is typing.Annotated:
            typ = typing.get_args(typ)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            if len(args) != 1:
                return typ
            typ = args[0]
        else:
            return typ


def _struct_type(typ: Any) -> type | None:
    """The Struct class behind ``typ`` (also inside ``Optional[...]``), or None; never a container's item type."""
    typ = _unwrap(typ)
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        return typ
    return None


def _children(value: Any, typ: Any, prefix: str) -> list[str] | None:
    """Problems inside a table of tables (``dict[str, X]``) or an array (``list[X]``), item by item;
    None when ``typ`` is no such container or ``value`` is not one."""
    typ = _unwrap(typ)
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return [p for k, v in value.items() for p in problems_of(v, args[1], _join(prefix, str(k)))]
    if origin in (list, tuple, set, frozenset) and len(args) == 1 and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in problems_of(v, args[0], _join(prefix, f"[{i}]"))]
    return None


def problems_of(value: Any, typ: Any, prefix: str) -> list[str]:
    """Every problem in ``value`` against ``typ``, not just the first: recurse into struct tables,
    tables of tables and arrays, so each problem carries its full input path (``offers.zones.A.skus``)."""
    struct = _struct_type(typ)
    found: list[str] = []
    if struct is not None and isinstance(value, dict):
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        found = [f"{prefix}.{k}: unknown key" if prefix else f"{k}: unknown section" for k in value if k not in fields]
        for k, v in value.items():
            if k in fields:
                found += problems_of(v, fields[k].type, _join(prefix, k))
    elif struct is None:
        found = _children(value, typ, prefix) or []
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
