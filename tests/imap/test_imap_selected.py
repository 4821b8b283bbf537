"""The selected-folder state: sequence numbers, and what a session is told of other sessions' changes (RFC 9051 7).

The behaviour seen by real clients over TLS on SQLite and PostgreSQL (the view's own unit tests are in
tests/imap/view).
"""

from __future__ import annotations

import re

import pytest
from imap.imap_support import ALICE, ImapHarness, message


def untagged_of(client: object, kind: str) -> list[bytes]:
    return [item for item in client.response(kind)[1] if item is not None]  # type: ignore[attr-defined]


def test_other_sessions_changes_reach_a_selected_client_at_the_right_time(imap: ImapHarness):
    """RFC 9051 7.5.1: no EXPUNGE during FETCH/STORE/SEARCH; EXPUNGE, EXISTS and FLAGS at the next NOOP."""
    for n in range(3):
        imap.deliver(ALICE, message(f"Message {n}"))
    with imap.imaps() as reader, imap.imaps() as writer:
        reader.select("INBOX")
        untagged_of(reader, "EXISTS")  # imaplib keeps SELECT's
        writer.select("INBOX")
        writer.uid("STORE", "2", "+FLAGS.SILENT", "(\\Deleted)")
        writer.expunge()
        _typ, fetched = reader.fetch("1:3", "(UID)")  # sequence numbers still as the reader knows them
        # The expunged message is left out (RFC 2180 4.1.3); message 3 keeps its number until the reader is told.
        assert [re.match(rb"(\d+) \(UID (\d+)\)", f).groups() for f in fetched] == [  # type: ignore[union-attr,arg-type]
            (b"1", b"1"), (b"3", b"3")]
        assert untagged_of(reader, "EXPUNGE") == []
        reader.noop()
        assert untagged_of(reader, "EXPUNGE") == [b"2"]
        imap.deliver_elsewhere(ALICE, message("Nouveau"))
        writer.uid("STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
        reader.noop()
        assert untagged_of(reader, "EXISTS") == [b"3"]
        assert any(b"\\Flagged" in line for line in untagged_of(reader, "FETCH"))
        _typ, stored = reader.store("1", "+FLAGS", "(\\Answered)")
        assert len(stored) == 1  # our own change is answered once, not repeated by the next update
        reader.noop()
        assert untagged_of(reader, "FETCH") == []


def test_select_reports_the_first_unseen_and_status_counts_unseen(imap: ImapHarness):
    imap.deliver(ALICE, message("Lu"), flags="\\Seen")
    imap.deliver(ALICE, message("Non lu"))
    imap.deliver(ALICE, message("Non lu 2"))
    with imap.imaps() as client:
        client.select("INBOX")
        assert untagged_of(client, "UNSEEN") == [b"2"]
        client.store("2", "+FLAGS", "(\\Seen)")
        client.store("1", "-FLAGS", "(\\Seen)")
        _typ, status = client.status("INBOX", "(MESSAGES UNSEEN)")
        assert b"UNSEEN 2" in status[0]  # type: ignore[operator]
        client.close()
        client.select("INBOX")
        assert untagged_of(client, "UNSEEN") == [b"1"]


@pytest.mark.parametrize("big", [3000])
def test_paging_a_large_folder_reads_the_right_messages(imap: ImapHarness, big: int, monkeypatch):
    """The last page of a folder larger than the cache threshold: sequence numbers map to the right UIDs."""
    monkeypatch.setattr("gateway.imap.view.store.CACHE_MIN_MESSAGES", 100)
    imap.deliver_many(ALICE, [message(f"Page {n}") for n in range(big)])
    with imap.imaps() as client:
        assert client.select("INBOX")[1] == [str(big).encode()]
        _typ, page = client.fetch(f"{big - 1}:{big}", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [part[1] for part in page if isinstance(part, tuple)]
        assert [s.strip() for s in subjects] == [f"Subject: Page {n}".encode() for n in (big - 2, big - 1)]
        _typ, found = client.uid("SEARCH", None, f"UID {big - 10}:*")
        assert len(found[0].split()) == 11  # type: ignore[union-attr]


def test_header_search_decodes_encoded_words_and_utf8(imap: ImapHarness):
    encoded = message("x").replace(b"Subject: x", b"Subject: =?utf-8?q?R=C3=A9sultat_de_biologie?=")
    raw = message("x").replace(b"Subject: x", "Subject: Résultat d'imagerie".encode())
    imap.deliver(ALICE, encoded)
    imap.deliver(ALICE, raw)
    imap.deliver(ALICE, message("Autre chose"))
    with imap.imaps() as client:
        client.select("INBOX")
        client.literal = "résultat".encode()  # type: ignore[attr-defined]
        _typ, found = client.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")
        assert found[0].split() == [b"1", b"2"]  # type: ignore[union-attr]
        _typ, found = client.uid("SEARCH", None, "FROM", "bob@pro")
        assert found[0].split() == [b"1", b"2", b"3"]  # type: ignore[union-attr]


def test_flag_searches_answered_by_the_store_match_the_flags(imap: ImapHarness):
    """UNSEEN/SEEN (indexed column), FLAGGED and keywords (SQL prefilter) give exactly the messages with them."""
    flags = ["\\Seen", "", "\\Seen \\Flagged", "$Label1", "\\Flagged", "\\Seen $Label1_x"]
    for n, flag in enumerate(flags):
        imap.deliver(ALICE, message(f"Message {n}"), flags=flag)
    with imap.imaps() as client:
        client.select("INBOX")

        def search(*criteria: str) -> list[int]:
            _typ, found = client.uid("SEARCH", None, *criteria)
            return [int(uid) for uid in found[0].split()]  # type: ignore[union-attr]

        assert search("UNSEEN") == [2, 4, 5]
        assert search("NOT", "SEEN") == [2, 4, 5]
        assert search("SEEN") == [1, 3, 6]
        assert search("NOT", "UNSEEN") == [1, 3, 6]
        assert search("FLAGGED") == [3, 5]
        assert search("UNFLAGGED") == [1, 2, 4, 6]
        assert search("KEYWORD", "$Label1") == [4]  # not $Label1_x
        assert search("UNSEEN", "FLAGGED") == [5]
        assert search("UID", "3:5", "UNSEEN") == [4, 5]
        assert client.search(None, "2:3", "SEEN")[1][0].split() == [b"3"]
        assert client.search(None, "NOT", "2:3", "SEEN")[1][0].split() == [b"1", b"6"]
        assert client.search(None, "1:4", "2:6", "UNSEEN")[1][0].split() == [b"2", b"4"]
        client.store("2", "+FLAGS", "(\\Seen)")
        assert search("UNSEEN") == [4, 5]


def test_pruned_expunge_records_never_hide_an_expunge_from_a_late_session(imap: ImapHarness, monkeypatch):
    """After pruning (floor raised), a session and the large-folder cache older than it compare UID lists."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from gateway.imap.housekeeping import prune_expunged
    from gateway.imap.models import ExpungedUid

    monkeypatch.setattr("gateway.imap.view.store.CACHE_MIN_MESSAGES", 2)
    imap.deliver_many(ALICE, [message(f"Message {n}") for n in range(5)])
    with imap.imaps() as late, imap.imaps() as writer:
        late.select("INBOX")  # also caches the folder's UID list at this MODSEQ
        untagged_of(late, "EXISTS")
        writer.select("INBOX")
        writer.uid("STORE", "2,4", "+FLAGS.SILENT", "(\\Deleted)")
        writer.expunge()
        pruned = imap.run(lambda session: prune_expunged(session, datetime.now(UTC) + timedelta(seconds=1)))
        assert pruned == 2
        assert imap.run(lambda session: _scalar(session, select(func.count()).select_from(ExpungedUid))) == 0
        late.noop()
        assert untagged_of(late, "EXPUNGE") == [b"4", b"2"]
        with imap.imaps() as fresh:  # the cached UID list is older than the floor too
            assert fresh.select("INBOX")[1] == [b"3"]
            assert [int(u) for u in fresh.uid("SEARCH", None, "ALL")[1][0].split()] == [1, 3, 5]  # type: ignore[union-attr]


async def _scalar(session: object, query: object) -> object:
    return (await session.execute(query)).scalar_one()  # type: ignore[attr-defined]
