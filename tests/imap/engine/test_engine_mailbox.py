"""The engine's mailbox and message commands with real clients (imaplib, imapclient, aioimaplib) over TLS,
on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import socket
import ssl
import time

import imapclient
from imap.engine.engine_support import ALICE, PASSWORD, EngineHarness, message


def client_of(harness: EngineHarness) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient("127.0.0.1", port=harness.imaps_port, ssl=True,
                                   ssl_context=harness.client_context(), timeout=30)
    client.login(ALICE, PASSWORD)
    return client


def raw_session(harness: EngineHarness) -> ssl.SSLSocket:
    sock = harness.client_context().wrap_socket(
        socket.create_connection(("127.0.0.1", harness.imaps_port), timeout=10), server_hostname="127.0.0.1")
    exchange(sock, f'a0 LOGIN {ALICE} "{PASSWORD}"', "a0")
    return sock


def exchange(sock: ssl.SSLSocket, line: str, tag: str) -> bytes:
    """Send one command line and read until its tagged answer."""
    sock.sendall(line.encode() + b"\r\n")
    data = b""
    deadline = time.monotonic() + 10
    while not re.search(rb"(^|\r\n)" + tag.encode() + rb" (OK|NO|BAD)[^\r\n]*\r\n", data):
        assert time.monotonic() < deadline, data
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_select_announces_flags_permanentflags_and_counters(engine: EngineHarness):
    engine.deliver(ALICE, message("Un"), flags="$Label1")
    sock = raw_session(engine)
    reply = exchange(sock, "b SELECT INBOX (CONDSTORE)", "b")
    flags = re.search(rb"\* FLAGS \(([^)]*)\)", reply)
    permanent = re.search(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", reply)
    assert flags and permanent
    assert b"\\*" not in flags.group(1) and b"$Label1" in flags.group(1)  # RFC 9051 7.3.5
    assert b"\\*" in permanent.group(1)
    for needle in (b"* 1 EXISTS", b"* 1 RECENT", b"[UIDVALIDITY ", b"[UIDNEXT 2]", b"[HIGHESTMODSEQ ",
                   b"b OK [READ-WRITE]"):
        assert needle in reply
    reply = exchange(sock, "c EXAMINE INBOX", "c")
    assert b"c OK [READ-ONLY]" in reply and b"[PERMANENTFLAGS ()]" in reply
    reply = exchange(sock, "d STORE 1 +FLAGS (\\Seen)", "d")
    assert b"d NO [CANNOT]" in reply
    reply = exchange(sock, "e CLOSE", "e")  # after EXAMINE: OK and nothing expunged
    assert b"e OK" in reply and b"EXPUNGE" not in reply
    sock.close()


def test_a_new_keyword_is_announced_in_flags_before_fetch_uses_it(engine: EngineHarness):
    engine.deliver(ALICE, message("Un"))
    sock = raw_session(engine)
    exchange(sock, "b SELECT INBOX", "b")
    reply = exchange(sock, "c STORE 1 +FLAGS ($Urgent)", "c")
    announce = reply.find(b"* FLAGS (")
    fetch = reply.find(b"* 1 FETCH (FLAGS ($Urgent \\Recent))")
    assert 0 <= announce < fetch, reply
    sock.close()


def test_condstore_unchangedsince_reports_modified(engine: EngineHarness):
    engine.deliver(ALICE, message("Un"))
    engine.deliver(ALICE, message("Deux"))
    sock = raw_session(engine)
    exchange(sock, "b SELECT INBOX (CONDSTORE)", "b")
    reply = exchange(sock, "c FETCH 1:2 (MODSEQ)", "c")
    modseqs = [int(m) for m in re.findall(rb"MODSEQ \((\d+)\)", reply)]
    exchange(sock, "d STORE 2 +FLAGS (\\Flagged)", "d")
    reply = exchange(sock, f"e STORE 1:2 (UNCHANGEDSINCE {max(modseqs)}) +FLAGS (\\Seen)", "e")
    assert b"e OK [MODIFIED 2]" in reply
    sock.close()


def test_qresync_select_reports_vanished_earlier_and_changes(engine: EngineHarness):
    for n in range(3):
        engine.deliver(ALICE, message(f"M{n}"))
    sock = raw_session(engine)
    exchange(sock, "b ENABLE QRESYNC", "b")
    reply = exchange(sock, "c SELECT INBOX", "c")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", reply).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", reply).group(1))
    exchange(sock, "d STORE 2 +FLAGS (\\Deleted)", "d")
    reply = exchange(sock, "e EXPUNGE", "e")
    assert b"* VANISHED 2" in reply  # QRESYNC: VANISHED replaces EXPUNGE (RFC 7162 3.2.10)
    exchange(sock, "f STORE 1 +FLAGS (\\Seen)", "f")
    exchange(sock, "g UNSELECT", "g")
    reply = exchange(sock, f"h SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))", "h")
    assert b"* VANISHED (EARLIER) 2" in reply
    assert re.search(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", reply), reply
    sock.close()


def test_fetch_items_partial_binary_envelope_and_objectids(engine: EngineHarness):
    raw = message("Objet", "0123456789")
    engine.deliver(ALICE, raw)
    with client_of(engine) as client:
        client.select_folder("INBOX")
        data = client.fetch([1], ["ENVELOPE", "BODYSTRUCTURE", "INTERNALDATE", "RFC822.SIZE", "EMAILID",
                                  "BODY.PEEK[TEXT]<2.5>", "BINARY.PEEK[1]", "BINARY.SIZE[1]", "MODSEQ"])[1]
        assert data[b"ENVELOPE"].subject == b"Objet"
        assert data[b"RFC822.SIZE"] == len(raw)
        assert data[b"BODY[TEXT]<2>"] == b"23456"
        assert data[b"BINARY[1]"] == b"0123456789\r\n" and data[b"BINARY.SIZE[1]"] == 12
        assert data[b"EMAILID"] and data[b"MODSEQ"]
        assert b"\\Seen" not in client.get_flags([1])[1]


def test_search_esearch_searchres_and_sort(engine: EngineHarness):
    for n, subject in enumerate(["Charlie", "alpha", "Bravo"]):
        engine.deliver(ALICE, message(subject, f"corps {n}"))
    sock = raw_session(engine)
    exchange(sock, "b SELECT INBOX", "b")
    reply = exchange(sock, "c SEARCH RETURN (MIN MAX COUNT ALL) ALL", "c")
    assert b'* ESEARCH (TAG "c") MIN 1 MAX 3 ALL 1:3 COUNT 3' in reply
    reply = exchange(sock, "d UID SEARCH RETURN (SAVE) SUBJECT alpha", "d")
    assert b"ESEARCH" not in reply and b"d OK" in reply
    reply = exchange(sock, "e UID FETCH $ (UID)", "e")
    assert b"* 2 FETCH (UID 2)" in reply and b"UID 1)" not in reply
    reply = exchange(sock, "f SORT (SUBJECT) UTF-8 ALL", "f")
    assert b"* SORT 2 3 1" in reply
    # ESORT (RFC 5267): MIN and MAX are the first and last in the sort's order, ALL keeps it
    reply = exchange(sock, "h SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL", "h")
    assert b'* ESEARCH (TAG "h") MIN 2 MAX 1 ALL 2:3,1 COUNT 3' in reply and b"* SORT" not in reply
    reply = exchange(sock, "i UID SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL", "i")
    assert b'* ESEARCH (TAG "i") UID ALL 1,3:2\r\n' in reply
    reply = exchange(sock, "j SORT RETURN (COUNT MIN) (SUBJECT) UTF-8 SUBJECT nowhere", "j")
    assert b'* ESEARCH (TAG "j") COUNT 0\r\n' in reply and b"j OK" in reply
    reply = exchange(sock, "g SEARCH CHARSET KOI8-R ALL", "g")
    assert b"g NO [BADCHARSET" in reply
    sock.close()


def test_move_into_the_selected_folder_and_uid_expunge(engine: EngineHarness):
    engine.deliver(ALICE, message("Un"))
    engine.deliver(ALICE, message("Deux"))
    sock = raw_session(engine)
    exchange(sock, "b SELECT INBOX", "b")
    reply = exchange(sock, "c UID MOVE 1 INBOX", "c")
    assert b"COPYUID" in reply and b"* 1 EXPUNGE" in reply and b"c OK" in reply
    reply = exchange(sock, "d NOOP", "d")
    assert b"d OK" in reply
    reply = exchange(sock, "e UID SEARCH ALL", "e")
    assert b"* SEARCH 2 3" in reply
    exchange(sock, "f UID STORE 2:3 +FLAGS (\\Deleted)", "f")
    reply = exchange(sock, "g UID EXPUNGE 3", "g")
    assert b"* 2 EXPUNGE" in reply and b"* 1 EXPUNGE" not in reply
    sock.close()


def test_multiappend_gives_appenduid_and_missing_folder_trycreate(engine: EngineHarness):
    one, two = message("A1"), message("A2")
    sock = raw_session(engine)
    sock.sendall(b"b APPEND Drafts (\\Draft) {%d+}\r\n" % len(one) + one + b" {%d+}\r\n" % len(two) + two + b"\r\n")
    reply = exchange(sock, "c NOOP", "c")
    assert re.search(rb"b OK \[APPENDUID \d+ 1:2\]", reply), reply
    reply = exchange(sock, "d APPEND Nowhere {1+}\r\nx", "d")
    assert b"d NO [TRYCREATE]" in reply
    sock.close()


def test_folders_with_imapclient(engine: EngineHarness):
    with client_of(engine) as client:
        names = {name: flags for flags, _, name in client.list_folders()}
        assert b"\\Sent" in names["Sent"] and b"\\Trash" in names["Trash"]
        client.create_folder("Patients/Dupont")
        assert client.folder_exists("Patients/Dupont")
        client.rename_folder("Patients", "Dossiers")
        assert client.folder_exists("Dossiers/Dupont") and not client.folder_exists("Patients")
        status = client.folder_status("INBOX", ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE"])
        assert status[b"MESSAGES"] == 0 and status[b"UIDNEXT"] == 1
        client.unsubscribe_folder("Dossiers/Dupont")
        assert "Dossiers/Dupont" not in {name for _, _, name in client.list_sub_folders()}
        client.delete_folder("Dossiers/Dupont")
        assert not client.folder_exists("Dossiers/Dupont")
        assert client.get_quota_root("INBOX")[0].quota_roots == [""]


def test_thread_references_and_orderedsubject(engine: EngineHarness):
    engine.deliver(ALICE, message("Dossier"))
    engine.deliver(ALICE, message("Re: Dossier"))
    engine.deliver(ALICE, message("Autre"))
    sock = raw_session(engine)
    exchange(sock, "b SELECT INBOX", "b")
    reply = exchange(sock, "c THREAD ORDEREDSUBJECT UTF-8 ALL", "c")
    assert b"* THREAD " in reply and b"(1 2)" in reply and b"(3)" in reply and b"c OK" in reply
    reply = exchange(sock, "d UID THREAD REFERENCES UTF-8 ALL", "d")
    assert b"* THREAD " in reply and b"d OK" in reply
    sock.close()
