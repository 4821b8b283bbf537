"""Reading the TOML tables: typed values, the dotted key of each error, and the shared checks.

Every section's parser (here and in hl7, psc, directory, ins_matching) reads through :class:`_Reader`, so an
unknown or ill-typed key is refused with one sentence naming it (:class:`ConfigError`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: How a section resolves a file setting: ``path(reader, name, required=True)``, relative to the file's folder.
PathOf = Callable[..., Path | None]


class ConfigError(Exception):
    """A configuration problem, as one sentence naming the key."""



class _Reader:
    """Typed access to a TOML table that remembers the dotted path for error messages."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self._data = data
        self._path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def table(self, name: str, required: bool = False) -> _Reader | None:
        value = self._data.get(name)
        self._seen.add(name)
        if value is None:
            if required:
                raise ConfigError(f"Configuration key '{self.key(name)}' is missing; add a [{self.key(name)}] table.")
            return None
        if not isinstance(value, dict):
            raise ConfigError(f"Configuration key '{self.key(name)}' must be a table.")
        return _Reader(value, self.key(name))

    def get(self, name: str, kind: type[T], default: T | None = None, required: bool = False) -> T:
        self._seen.add(name)
        if name not in self._data:
            if required or default is None:
                raise ConfigError(f"Configuration key '{self.key(name)}' is missing.")
            return default
        value = self._data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                f"Configuration key '{self.key(name)}' must be a {kind.__name__}, not {type(value).__name__}."
            )
        return value

    def check(self, name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigError(f"Configuration key '{self.key(name)}' {expected}.")

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise ConfigError(f"Configuration key '{self.key(unknown[0])}' is not a known setting.")



def _array_of_tables(reader: _Reader, name: str) -> list[_Reader]:
    """The tables of ``[[name]]`` (none when absent), each read with its own key prefix (``name[0]``)."""
    raw = reader._data.get(name, [])
    reader._seen.add(name)
    key = reader.key(name)
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"Configuration key '{key}' must be an array of tables ([[{key}]]).")
    return [_Reader(table, f"{key}[{index}]") for index, table in enumerate(raw)]


def _positive(reader: _Reader, name: str, default: T, convert: Callable[[Any], T]) -> T:
    value = reader.get(name, type(default), default)
    reader.check(name, value > 0, "must be greater than zero")  # type: ignore[operator]
    return convert(value)


def _rate(reader: _Reader, name: str, default: int) -> int:
    """A per-minute ceiling; 0 means none (Postfix's anvil rate limits are off by default too)."""
    value = reader.get(name, int, default)
    reader.check(name, value >= 0, "must be a number per minute, or 0 for no limit")
    return value


def _domain(reader: _Reader, name: str, value: str) -> str:
    value = value.strip().lower().rstrip(".")
    labels = value.split(".")
    ok = len(labels) >= 2 and all(lbl and len(lbl) < 64 and lbl.replace("-", "").isalnum() for lbl in labels)
    reader.check(name, ok, f"must hold domain names, and {value!r} is not one")
    return value



def _readable(reader: _Reader, name: str, p: Path | None) -> None:
    if p is not None:
        reader.check(name, p.is_file(), f"names {str(p)!r}, which is not a readable file")
