"""Typed configs: dataclasses whose fields carry a docstring, read from YAML plus dotted overrides.

A config is a dataclass of section dataclasses (``model``, ``data``, ``train``, ...). Each field's
one-line doc is the string literal written under it, as in cleanrl; ``field_docs`` reads them
from the source so they are written once and shown by ``rlhf <verb> --help``.

Every key a user writes is checked before any work starts: an unknown key names the nearest valid
ones, a value of the wrong type or outside a ``Literal`` names the key and what it expected.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override a user wrote is wrong; the message names the key."""


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each field of dataclass ``cls`` (empty for fields without one)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for stmt, nxt in zip(body, body[1:]):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (types.UnionType, typing.Union):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if get_origin(tp) is list:
        return f"list[{_type_name(get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; return it (ints widen to float). Raise naming ``key``."""
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads a bare `no` / `yes` as a boolean
            value = {False: "no", True: "yes"}[value] if {"no", "yes"} & set(get_args(tp)) else value
        if value in get_args(tp) and type(value) is type(next(a for a in get_args(tp) if a == value)):
            return value
        raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is list:
        if isinstance(value, str):  # a single override value like `a,b` or `a`
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    else:
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _unknown(key: str, valid: list[str], where: str) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown config key '{key}'{where}{hint}")


def all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of config class ``cls``, sections expanded."""
    keys = []
    for name, tp in _hints(cls).items():
        if _is_section(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _build(default: T, values: dict[str, Any], prefix: str, valid: list[str], where: str) -> T:
    """``default`` (a config instance) with ``values`` set, checked and coerced."""
    cls = type(default)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        key = prefix + name
        if name not in hints:
            raise _unknown(key, valid, where)
        tp = hints[name]
        if _is_section(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a section (mapping) of keys{where}, got {value!r}")
            kwargs[name] = _build(getattr(default, name), value, key + ".", valid, where)
        else:
            kwargs[name] = _coerce(value, tp, key + where)
    return dataclasses.replace(default, **kwargs)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``["train.lr=1e-4", "model.path=x"]`` -> ``[("train.lr", 1e-4), ("model.path", "x")]``."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value))
    return parsed


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build config ``cls`` from defaults, then the YAML file at ``path``, then dotted ``overrides``.

    Raises ConfigError naming the file and key for anything unknown or mistyped.
    """
    valid = all_keys(cls)
    tree: dict[str, Any] = {}
    where = ""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}"
            )
        tree = loaded
        where = f" (in {path})"
        _build(cls(), tree, "", valid, where)  # report file errors against the file
    for key, value in parse_overrides(overrides or []):
        if key not in valid:
            raise _unknown(key, valid, " (command-line override)")
        _set_dotted(tree, key, value)
    return _build(cls(), tree, "", valid, "")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str, str]]:
    """Rows of (key, type, default, doc) for ``--help``.

    Section defaults come from the verb's own config (``defaults``), not the section class, so
    e.g. reward's ``train.lr`` shows its own default rather than TrainConfig's.
    """
    rows = []
    docs = field_docs(cls)
    if defaults is None:
        defaults = cls()
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        if _is_section(tp):
            rows += describe(tp, f"{prefix}{f.name}.", getattr(defaults, f.name))
        else:
            rows.append(
                (prefix + f.name, _type_name(tp), repr(getattr(defaults, f.name)), docs.get(f.name, ""))
            )
    return rows


def help_text(cls: type) -> str:
    lines = ["config keys (set in --config FILE.yaml or as section.key=value):", ""]
    for key, tp, default, doc in describe(cls):
        lines.append(f"  {key} = {default}   [{tp}]")
        if doc:
            lines.append(f"      {doc}")
    return "\n".join(lines)
