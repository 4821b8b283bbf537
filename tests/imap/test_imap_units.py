"""Socket-free pieces of the IMAP side: NOTIFY payloads and folder names."""

from __future__ import annotations

import pytest

from gateway.imap.changes import MAX_NOTIFY_IDS, parse_payload
from gateway.imap.view.errors import NotAllowed
from gateway.imap.view.folders import check_name
from gateway.imap.view.selected import canonical


def test_notify_payload_keeps_only_folder_ids():
    assert parse_payload("3,14, 15") == [3, 14, 15]
    assert parse_payload("1,x,-2,,99999999999999999999999,4") == [1, 4]
    assert len(parse_payload(",".join(["7"] * (MAX_NOTIFY_IDS + 50)))) == MAX_NOTIFY_IDS


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/../b", "..", "x\x00y", "tab\there", "a*", "b%",
                                  "n" * 401])
def test_folder_names_that_could_confuse_the_hierarchy_are_refused(name: str):
    with pytest.raises(NotAllowed):
        check_name(name)


@pytest.mark.parametrize("name", ["Patients", "Patients/Dupont", "Résultats 2026", "a.b"])
def test_ordinary_folder_names_are_accepted(name: str):
    assert check_name(name) == name


def test_a_trailing_delimiter_names_the_same_folder():
    """RFC 9051 6.3.4: ``CREATE name/`` creates ``name`` (a hint that it will hold children)."""
    assert check_name("Patients/") == "Patients"


def test_inbox_is_case_insensitive_and_other_names_are_not():
    assert canonical("inbox") == "INBOX" and canonical("Sent") == "Sent"
    assert check_name("inbox/Labo") == "INBOX/Labo"
