"""Normalising INS traits before comparing them (R10): case, accents, hyphens, apostrophes and spaces.

Pure functions. Two spellings of one person's trait must compare equal ("Pat-Trois" and "PAT TROIS",
"Hélène" and "HELENE", "D'Arc" and "D ARC"); nothing else is forgiven: no phonetic or fuzzy matching,
because a near miss may be another person (R10: never guess a patient).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

#: Hyphens and dashes, apostrophes and quotes that RNIV spellings use interchangeably with a space.
_SEPARATORS = "-‐‑‒–—―'’‘ʼ`´"
_LIGATURES = {"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"}
_TRANSLATE = str.maketrans({**{ch: " " for ch in _SEPARATORS}, **_LIGATURES})
_ISO_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")
_FRENCH_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_SEXES = {"M": "M", "F": "F", "U": "U", "1": "M", "2": "F", "H": "M"}


def fold(text: str | None) -> str:
    """Upper case without accents; hyphens, apostrophes and runs of spaces become one space."""
    if not text:
        return ""
    replaced = text.translate(_TRANSLATE)
    decomposed = unicodedata.normalize("NFKD", replaced)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.upper().split())


def first_of(first_names: str | None) -> str:
    """The first birth first name: the first space-separated name ("MARIE-LOUISE ANNE" gives MARIE-LOUISE)."""
    names = (first_names or "").split()
    return fold(names[0]) if names else ""


def birth_date(value: str | None) -> str | None:
    """A birth date as ``YYYY-MM-DD`` from ISO, HL7 (``YYYYMMDD...``) or French (``DD/MM/YYYY``) forms.

    Unknown day or month stay ``00`` (RNIV allows them for some people born abroad); they compare as given.
    """
    if not value:
        return None
    value = value.strip()
    french = _FRENCH_DATE.match(value)
    if french:
        return f"{french.group(3)}-{french.group(2)}-{french.group(1)}"
    iso = _ISO_DATE.match(value)
    return f"{iso.group(1)}-{iso.group(2)}-{iso.group(3)}" if iso else None


def sex(value: str | None) -> str | None:
    """``M``, ``F`` or ``U`` (also from the NIR's 1/2); None when absent or unknown."""
    return _SEXES.get((value or "").strip().upper()) if value else None


class HasTraits(Protocol):
    @property
    def birth_name(self) -> str | None: ...
    @property
    def first_names(self) -> str | None: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def birth_date(self) -> str | None: ...
    @property
    def sex(self) -> str | None: ...
    @property
    def birth_place(self) -> str | None: ...


@dataclass(frozen=True)
class Traits:
    """The compared traits in normal form; empty strings and None mean absent."""

    birth_name: str
    first_name: str
    birth_date: str | None
    sex: str | None
    birth_place: str

    @property
    def missing(self) -> tuple[str, ...]:
        """The traits R10 compares that are absent (birth place is not one of them)."""
        names = []
        if not self.birth_name:
            names.append("birth name")
        if not self.first_name:
            names.append("first birth first name")
        if not self.birth_date:
            names.append("birth date")
        if not self.sex:
            names.append("sex")
        return tuple(names)

    def differences(self, other: Traits) -> tuple[str, ...]:
        """The R10 traits on which ``self`` and ``other`` disagree."""
        names = []
        if self.birth_name != other.birth_name:
            names.append("birth name")
        if self.first_name != other.first_name:
            names.append("first birth first name")
        if self.birth_date != other.birth_date:
            names.append("birth date")
        if self.sex != other.sex:
            names.append("sex")
        return tuple(names)


def normalise(person: HasTraits) -> Traits:
    """Normal form of a person's traits; the first birth first name falls back on the first of the list."""
    first = fold(person.first_name) if person.first_name else first_of(person.first_names)
    return Traits(birth_name=fold(person.birth_name), first_name=first, birth_date=birth_date(person.birth_date),
                  sex=sex(person.sex), birth_place=(person.birth_place or "").strip().upper())
