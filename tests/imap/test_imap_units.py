"""Socket-free pieces of the IMAP side: NOTIFY payloads, folder names, flags, literal detection."""

from __future__ import annotations

import pytest
from pymap.parsing.specials.flag import Deleted, Flag, Seen

from gateway.imap.changes import MAX_NOTIFY_IDS, parse_payload
from gateway.imap.connection import _APPEND, _LITERAL
from gateway.imap.store import FolderSet, format_flags, parse_flags


def test_notify_payload_keeps_only_folder_ids():
    assert parse_payload("3,14, 15") == [3, 14, 15]
    assert parse_payload("1,x,-2,,99999999999999999999999,4") == [1, 4]
    assert len(parse_payload(",".join(["7"] * (MAX_NOTIFY_IDS + 50)))) == MAX_NOTIFY_IDS


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/../b", "..", "a/", "x\x00y", "tab\there", "a*", "b%",
                                  "n" * 401])
def test_folder_names_that_could_confuse_the_hierarchy_are_refused(name: str):
    with pytest.raises(ValueError):
        FolderSet.check_name(name)


@pytest.mark.parametrize("name", ["Patients", "Patients/Dupont", "Résultats 2026", "a.b"])
def test_ordinary_folder_names_are_accepted(name: str):
    FolderSet.check_name(name)


def test_inbox_is_case_insensitive_and_other_names_are_not():
    assert FolderSet.canonical("inbox") == "INBOX" and FolderSet.canonical("Sent") == "Sent"


def test_flags_round_trip_without_recent():
    flags = parse_flags("\\Seen $Label1 \\Deleted")
    assert flags == frozenset({Seen, Deleted, Flag(b"$Label1")})
    assert format_flags(flags | {Flag(b"\\Recent")}) == "$Label1 \\Deleted \\Seen"
    assert parse_flags("") == frozenset()


@pytest.mark.parametrize(("line", "size", "nonsync"), [
    (b"a LOGIN {5}\r\n", 5, False), (b"a LOGIN {268435456+}\r\n", 268435456, True), (b"a APPEND x ~{9}\n", 9, False),
])
def test_literal_announcements_are_recognised_before_reading(line: bytes, size: int, nonsync: bool):
    match = _LITERAL.search(line)
    assert match is not None and int(match.group(1)) == size and (match.group(2) is not None) == nonsync


def test_text_that_only_looks_like_a_literal_is_not_one():
    assert _LITERAL.search(b'a SEARCH SUBJECT "{5}" x\r\n') is None
    assert _APPEND.match(b"a APPEND Drafts {10}\r\n") and _APPEND.match(b"a uid append Drafts {1}\r\n")
    assert not _APPEND.match(b"a SEARCH APPEND {1}\r\n")


def test_header_block_stops_at_the_first_blank_line():
    from gateway.imap.store import header_block

    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore") == b"A: 1\r\nB: 2\r\n\r\n"
    assert header_block(b"A: 1\n\nbody") == b"A: 1\n\n"
    assert header_block(b"A: 1\r\n") == b"A: 1\r\n"
