"""Recognising cards from their ATR and an application selection, without a reader: unknown is never guessed."""

from __future__ import annotations

import pytest

from gateway.card.atr import (
    CPS_AID,
    RULES,
    AtrPattern,
    CardKind,
    CardRule,
    classify,
    matching_rules,
    select_apdu,
)

CPS3 = bytes.fromhex("3BAC00402A001225006480000310009000")
CPS3_OTHER_VERSION = bytes.fromhex("3BAC00402A001225006480820212009000")  # masked bytes differ
CPS4 = bytes.fromhex("3B9B18800100122500648004010000 9044".replace(" ", ""))
VITALE2 = bytes.fromhex("3B751300004509EA9000")
VITALE1_OR_PARKING_CARD = bytes.fromhex("3F6525002C0969 9000".replace(" ", ""))
BANK_CARD = bytes.fromhex("3B6800000073C84013009000")


class Card:
    """A card that answers 90 00 to the selection of the applications it has, and records what it was sent."""

    def __init__(self, *aids: bytes) -> None:
        self.aids = set(aids)
        self.selected: list[bytes] = []

    def __call__(self, aid: bytes) -> bool:
        self.selected.append(aid)
        return aid in self.aids


def test_cps3_atr_confirmed_by_the_cps_application_is_a_professional_card():
    result = classify(CPS3, Card(CPS_AID))
    assert (result.kind, result.evidence) == (CardKind.CPS, "atr+aid")


def test_cps3_mask_accepts_other_card_versions():
    assert classify(CPS3_OTHER_VERSION, Card(CPS_AID)).kind is CardKind.CPS


def test_cps4_atr_confirmed_is_a_professional_card():
    assert classify(CPS4, Card(CPS_AID)).kind is CardKind.CPS


def test_cps_atr_without_the_application_is_unknown_not_guessed():
    result = classify(CPS3, Card())
    assert result.kind is CardKind.UNKNOWN
    assert result.evidence == "atr-of-cps-without-application"


def test_cps_atr_when_the_card_cannot_be_talked_to_is_unknown():
    assert classify(CPS3, None).kind is CardKind.UNKNOWN


def test_unknown_atr_with_the_ans_cps_application_is_a_professional_card():
    """The AID carries the ANS issuer number: a future CPS with a new ATR is still recognised."""
    result = classify(bytes.fromhex("3B8800000000000000000000"), Card(CPS_AID))
    assert (result.kind, result.evidence) == (CardKind.CPS, "aid")


@pytest.mark.parametrize("hist", ["43", "44", "45", "47", "48", "49"])
def test_vitale2_atrs_are_vitale_without_talking_to_the_card(hist: str):
    card = Card()
    atr = bytes.fromhex(f"3B75130000{hist}09EA9000")
    result = classify(atr, card)
    assert (result.kind, result.model, result.evidence) == (CardKind.VITALE, "Vitale 2", "atr")
    assert card.selected == []


def test_vitale_like_atr_not_in_the_list_is_unknown():
    assert classify(bytes.fromhex("3B751300004A09EA9000"), Card()).kind is CardKind.UNKNOWN


def test_vitale1_atr_shared_with_parking_cards_is_unknown():
    assert classify(VITALE1_OR_PARKING_CARD, Card()).kind is CardKind.UNKNOWN


def test_bank_card_is_unknown_after_trying_the_cps_application_only():
    card = Card()
    result = classify(BANK_CARD, card)
    assert (result.kind, result.evidence) == (CardKind.UNKNOWN, "unrecognised-atr")
    assert card.selected == [CPS_AID]


@pytest.mark.parametrize("atr", [b"", b"\x3b", bytes(34), CPS3 + b"\x00", CPS3[:-1]])
def test_atr_of_wrong_length_matches_no_rule(atr: bytes):
    assert matching_rules(atr) == []


def test_two_rules_matching_one_atr_is_ambiguous_and_unknown():
    twice = (*RULES, CardRule(CardKind.VITALE, "clash", (AtrPattern.of(VITALE2.hex()),)),
             CardRule(CardKind.CPS, "clash", (AtrPattern.of(VITALE2.hex()),)))
    assert classify(VITALE2, Card(), twice).evidence == "ambiguous-atr"


def test_selection_asks_for_no_response_data():
    apdu = select_apdu(CPS_AID)
    assert apdu[:4] == [0x00, 0xA4, 0x04, 0x0C]
    assert apdu[4] == len(CPS_AID) and bytes(apdu[5:]) == CPS_AID


@pytest.mark.parametrize("aid", [b"\x01" * 4, b"\x01" * 17])
def test_selection_refuses_malformed_aid(aid: bytes):
    with pytest.raises(ValueError):
        select_apdu(aid)


def test_pattern_and_mask_lengths_must_agree():
    with pytest.raises(ValueError):
        AtrPattern.of("3B00", "FF")
