"""Recognising the kind of card in a reader from its ATR and an application selection, never by guesswork.

A card is reported as a professional card (CPS family: CPS, CPE, CPF... all share the CPS3/CPS4 hardware and
application), a Vitale card, or ``unknown``. The rules are data (one place, below) with their public sources:

* CPS3/CPS4 ATRs and masks, and the CPS application identifier (the PKCS#15 prefix ``E8 28 BD 08 0F``, then the
  ANS issuer number ``80 25 00 00 01``): the ANS's own OpenSC card driver (``card-cps.c``, ``card-cps3.c``).
* Vitale 2 ATRs: the ATRs that Ludovic Rousseau's ``smartcard_list.txt`` (pcsc-tools) lists as Carte Vitale and
  nothing else. Vitale 1 ATRs (``3F 65 25 ...``) are shared with parking and telephone cards of the same chip
  maker and cannot be told apart, so such cards are ``unknown``.

A CPS-family ATR must be confirmed by selecting the CPS application; an unknown ATR may still be recognised by
that selection alone, because the AID carries the ANS's issuer number. Selections use ``P2 = 0x0C`` (no
response data): asking for file control information is not needed and upsets some cards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

#: Longest ATR ISO 7816-3 allows (TS + 32 bytes); longer input is not an ATR.
MAX_ATR_LENGTH = 33


class CardKind(StrEnum):
    CPS = "cps"
    VITALE = "vitale"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AtrPattern:
    """An ATR with a mask: a byte matches when ``atr & mask == value & mask``; lengths must be equal."""

    value: bytes
    mask: bytes

    @classmethod
    def of(cls, value: str, mask: str | None = None) -> AtrPattern:
        v = bytes.fromhex(value)
        m = bytes.fromhex(mask) if mask else b"\xff" * len(v)
        if len(m) != len(v):
            raise ValueError("an ATR pattern and its mask must have the same length")
        return cls(v, m)

    def matches(self, atr: bytes) -> bool:
        return len(atr) == len(self.value) and all(
            (a & m) == (v & m) for a, v, m in zip(atr, self.value, self.mask, strict=True))


@dataclass(frozen=True)
class CardRule:
    """How one family of cards is recognised."""

    kind: CardKind
    model: str
    atrs: tuple[AtrPattern, ...]
    #: Application identifiers, one of which must be selectable to confirm the ATR (empty: the ATR suffices).
    aids: tuple[bytes, ...] = ()
    #: Whether selecting one of ``aids`` is enough evidence on its own (the AID is specific to the issuer).
    aid_alone: bool = False


CPS_AID = bytes.fromhex("E828BD080F8025000001FF0010")

RULES: tuple[CardRule, ...] = (
    CardRule(
        CardKind.CPS, "CPS3/CPS4 (CPS, CPE, CPF, CPA)",
        (
            AtrPattern.of("3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00",
                          "FF 00 00 00 00 FF FF FF FF FF FF 00 00 00 FF FF FF"),  # CPS3, contact
            AtrPattern.of("3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E",
                          "FF FF FF FF FF FF FF FF 00 00 FF C0 FF FF FF FF FF FF FF FF"),  # CPS3, contactless
            AtrPattern.of("3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44"),  # CPS4
            AtrPattern.of("3B 9B 18 80 01 00 12 25 00 64 80 00 04 01 00 90 44"),  # CPS4 release candidate
            AtrPattern.of("3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00"),  # CPS4, T=0 only
        ),
        aids=(CPS_AID,),
        aid_alone=True,
    ),
    CardRule(
        CardKind.VITALE, "Vitale 2",
        tuple(AtrPattern.of(a) for a in (
            "3B 75 13 00 00 43 09 EA 90 00", "3B 75 13 00 00 44 09 EA 90 00", "3B 75 13 00 00 45 09 EA 90 00",
            "3B 75 13 00 00 45 09 FA 90 00", "3B 75 13 00 00 47 09 EA 90 00", "3B 75 13 00 00 48 09 EA 90 00",
            "3B 75 13 00 00 49 09 EA 90 00",
        )),
    ),
)


@dataclass(frozen=True)
class Classification:
    """What the agent reports: the kind, the model, and the evidence it rests on (for the trail, R18)."""

    kind: CardKind
    model: str | None
    evidence: str


#: Sends one SELECT by AID and says whether the card answered 90 00; raises nothing (a failure is False).
Selector = Callable[[bytes], bool]


def select_apdu(aid: bytes) -> list[int]:
    """SELECT by DF name, first occurrence, no response data (P2 = 0x0C)."""
    if not 5 <= len(aid) <= 16:
        raise ValueError("an application identifier has 5 to 16 bytes")
    return [0x00, 0xA4, 0x04, 0x0C, len(aid), *aid]


def matching_rules(atr: bytes, rules: tuple[CardRule, ...] = RULES) -> list[CardRule]:
    """The rules whose ATR patterns match ``atr`` (pure; no card access)."""
    if not 2 <= len(atr) <= MAX_ATR_LENGTH:
        return []
    return [rule for rule in rules if any(p.matches(atr) for p in rule.atrs)]


def classify(atr: bytes, select: Selector | None, rules: tuple[CardRule, ...] = RULES) -> Classification:
    """Recognise a card; ``select`` is None when the card cannot be talked to (then only ATR-only rules apply).

    Anything not positively recognised is :attr:`CardKind.UNKNOWN`, with the reason in ``evidence``.
    """
    candidates = matching_rules(atr, rules)
    if len(candidates) > 1:
        return Classification(CardKind.UNKNOWN, None, "ambiguous-atr")
    if candidates:
        rule = candidates[0]
        if not rule.aids:
            return Classification(rule.kind, rule.model, "atr")
        if select is not None and any(select(aid) for aid in rule.aids):
            return Classification(rule.kind, rule.model, "atr+aid")
        return Classification(CardKind.UNKNOWN, None, f"atr-of-{rule.kind.value}-without-application")
    if select is not None:
        for rule in rules:
            if rule.aid_alone and any(select(aid) for aid in rule.aids):
                return Classification(rule.kind, rule.model, "aid")
    return Classification(CardKind.UNKNOWN, None, "unrecognised-atr")
