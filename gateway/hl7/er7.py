"""HL7 v2 ER7 text split the way the acceptance reads it: segments and fields once, the lower levels on demand.

HL7 v2.5 2.5.4 / 2.6: segments end with CR, fields are separated by MSH-1, repetitions, components and
sub-components by the MSH-2 characters. A document message is a few dozen short segments and one OBX whose ED
value is nearly all of its bytes: splitting every level of every field into objects (as a general parser
does) costs more than everything else done with the message, so here a segment is its list of field strings and
a value is cut out of its field only when asked for, with ``str.split`` bounded by the index wanted.

Bounded: at most :data:`MAX_FIELDS` fields per segment are split (the rest stays in the last one, never read),
and no level is split further than the index asked for; nothing recurses. Escape sequences are left as sent.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

#: Fields split per segment: the acceptance reads none beyond PRT-15 / OBR-32 (HL7 v2.6 defines < 60).
MAX_FIELDS = 64


@dataclass(frozen=True, slots=True)
class Delimiters:
    """MSH-1 and the four MSH-2 characters (HL7 v2.5 2.5.2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    sub_component: str = "&"

    @staticmethod
    def of(separator: str, encoding: str) -> Delimiters:
        return Delimiters(separator, encoding[0], encoding[1], encoding[2], encoding[3])


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: ``fields[0]`` is its name, ``fields[n]`` field n (not for MSH, whose MSH-1 is the separator)."""

    fields: list[str]
    delimiters: Delimiters

    @property
    def name(self) -> str:
        return self.fields[0]


def segments(text: str, delimiters: Delimiters) -> list[Segment]:
    """The segments of ``text`` (CR-separated, empty lines skipped), each split into its fields."""
    separator = delimiters.field
    return [Segment(line.split(separator, MAX_FIELDS), delimiters) for line in text.split("\r") if line]


def _nth(text: str, separator: str, index: int) -> str:
    """Piece ``index`` (1-based) of ``text`` cut at ``separator``, '' when absent; splits no further than it."""
    if index == 1:
        cut = text.find(separator)
        return text if cut < 0 else text[:cut]
    pieces = text.split(separator, index)
    return pieces[index - 1] if len(pieces) >= index else ""


def value(segment: Segment, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """Field ``field``, repetition ``rep``, component ``comp``, sub-component ``sub`` (all 1-based), or ''."""
    fields = segment.fields
    if field < 1 or field >= len(fields) or min(rep, comp, sub) < 1:
        return ""
    marks = segment.delimiters
    text = fields[field] if field < MAX_FIELDS else _nth(fields[field], marks.field, 1)  # the unsplit rest
    return _nth(_nth(_nth(text, marks.repetition, rep), marks.component, comp), marks.sub_component, sub)


def repetitions(segment: Segment, field: int) -> int:
    """How many repetitions field ``field`` holds (0 when absent or empty), counted without splitting."""
    fields = segment.fields
    if field < 1 or field >= len(fields) or not fields[field]:
        return 0
    return fields[field].count(segment.delimiters.repetition) + 1
