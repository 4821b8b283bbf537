"""Comparing identity traits the way RNIV asks: case, accents, hyphens, apostrophes and spaces do not matter."""

from __future__ import annotations

import unicodedata
from typing import Protocol


class HasTraits(Protocol):
    @property
    def birth_name(self) -> str: ...
    @property
    def first_names(self) -> str: ...
    @property
    def birth_date(self) -> str: ...
    @property
    def sex(self) -> str: ...
    @property
    def birth_place(self) -> str: ...


def fold(text: str) -> str:
    """Upper case, no accents, hyphens/apostrophes/spaces collapsed to one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    for mark in "-'’‐‑ʼ`":
        bare = bare.replace(mark, " ")
    return " ".join(bare.split())


def same_traits(a: HasTraits, b: HasTraits) -> bool:
    return (fold(a.birth_name) == fold(b.birth_name)
            and fold(a.first_names).split()[:1] == fold(b.first_names).split()[:1]
            and a.birth_date == b.birth_date and a.sex == b.sex and a.birth_place == b.birth_place)
