"""IMAP4rev1/rev2 compliance (RFC 3501, RFC 9051 and extensions) and the storage quota (RFC 9208, RFC 3463 4.2.2).

Each test drives the in-process IMAP service over real TLS with imaplib, one behaviour per test; the SMTP side
of the quota runs a real gateway process.
"""

from __future__ import annotations

import datetime
import imaplib
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imap.imap_support import ALICE, BOB, ImapHarness, make_harness, message
from support.mail import PRO, PRO2
from support.mail import message as smtp_message
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.smtp_session import add_people, with_limits, with_settings
from support.store import Store

from gateway.config import ConfigError, Limits, parse

QUOTA = 8 * 1024


def raw(client: imaplib.IMAP4, command: bytes | str) -> tuple[bytes, list[bytes]]:
    """Send one tagged command; its tagged line and its untagged lines, each with its literals inlined."""
    if isinstance(command, str):
        command = command.encode()
    tag = client._new_tag()  # type: ignore[attr-defined]
    client.send(tag + b" " + command + b"\r\n")
    lines: list[bytes] = []
    current = b""
    while True:
        line = client.readline()
        assert line, "the server closed the connection"
        current += line
        literal = re.search(rb"~?\{(\d+)\}\r\n$", line)
        if literal:
            current += client.read(int(literal.group(1)))
            continue
        if current.startswith(tag + b" "):
            return current[len(tag) + 1:].rstrip(b"\r\n"), lines
        lines.append(current.rstrip(b"\r\n"))
        current = b""


def ok(client: imaplib.IMAP4, command: bytes | str) -> list[bytes]:
    status, lines = raw(client, command)
    assert status.startswith(b"OK"), (command, status, lines)
    return lines


def numbers(lines: list[bytes], word: bytes = b"SEARCH") -> list[int]:
    found = [line for line in lines if line.startswith(b"* " + word)]
    assert len(found) == 1, lines
    return [int(n) for n in found[0].split()[2:]]


@pytest.fixture
def quota_imap(store_url: str, pki: PKIFiles) -> Iterator[ImapHarness]:
    """The IMAP service of ``imap`` with a quota of 8 KiB per account, on SQLite and on PostgreSQL."""
    harness = make_harness(store_url, pki,
                           Limits(message_size=2 * 1024 * 1024, failed_logins=3, failed_login_window=600.0,
                                  mailbox_quota=QUOTA))
    harness.add_account(ALICE)
    harness.add_account(BOB)
    yield harness
    harness.stop()


# --- QUOTA (RFC 9208) ---------------------------------------------------------------------------------------------
def test_getquotaroot_reports_the_storage_used_and_the_limit_in_kib(quota_imap: ImapHarness) -> None:
    quota_imap.deliver(ALICE, message(body="x" * 3000))
    quota_imap.deliver(ALICE, message(body="y" * 1000), folder="Archive")
    client = quota_imap.imaps()
    lines = ok(client, "GETQUOTAROOT INBOX")
    assert b'* QUOTAROOT INBOX ""' in lines
    used = int(re.search(rb'\* QUOTA "" \(STORAGE (\d+) 8\)', b"\n".join(lines)).group(1))  # type: ignore[union-attr]
    assert used == 5  # about 4.1 KB over both folders, a started KiB counts
    assert b'* QUOTA "" (STORAGE 5 8)' in ok(client, 'GETQUOTA ""')
    client.logout()


def test_without_a_quota_getquota_lists_no_resource(imap: ImapHarness) -> None:
    client = imap.imaps()
    assert b'* QUOTA "" ()' in ok(client, 'GETQUOTA ""')
    client.logout()


def test_quota_roots_name_only_existing_folders_and_setquota_is_the_operators(quota_imap: ImapHarness) -> None:
    client = quota_imap.imaps()
    assert raw(client, "GETQUOTAROOT Nowhere")[0].startswith(b"NO [NONEXISTENT]")
    assert raw(client, 'GETQUOTA "elsewhere"')[0].startswith(b"NO [NONEXISTENT]")
    assert raw(client, 'SETQUOTA "" (STORAGE 1)')[0].startswith(b"NO [NOPERM]")
    assert b'* QUOTA "" (STORAGE 0 8)' in ok(client, 'GETQUOTA ""')
    client.logout()


def test_append_past_the_quota_is_refused_with_overquota_and_traced(quota_imap: ImapHarness) -> None:
    client = quota_imap.imaps()
    assert client.append("INBOX", None, None, message(body="a" * 5000))[0] == "OK"
    status, data = client.append("INBOX", None, None, message(body="b" * 5000))
    assert status == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    assert b"MESSAGES 1" in ok(client, "STATUS INBOX (MESSAGES)")[0]
    events = quota_imap.events("imap.append.over_quota")
    assert [(kind, mailbox) for kind, mailbox, _ in events] == [("imap.append.over_quota",
                                                                 quota_imap.accounts[ALICE])]
    assert events[0][2]["limit"] == QUOTA
    client.logout()


def test_copy_past_the_quota_is_refused_with_overquota(quota_imap: ImapHarness) -> None:
    quota_imap.deliver(ALICE, message(body="c" * 5000))
    client = quota_imap.imaps()
    client.select("INBOX")
    status, _ = raw(client, "COPY 1 Archive")
    assert status.startswith(b"NO [OVERQUOTA]"), status
    client.logout()


def test_mailbox_quota_must_not_be_negative(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    data: dict[str, Any] = {
        "gateway": {"hostname": "mail.gateway.test", "domains": ["pro.gateway.test"],
                    "patient_domain": "patient.gateway.test"},
        "database": {"url": "sqlite+aiosqlite:///g.sqlite3"},
        "tls": {"certificate": "c.pem", "private_key": "c.pem"},
        "smtp": {"submission": "127.0.0.1:2587"},
    }
    assert parse(data, tmp_path).limits.mailbox_quota == 0
    assert parse({**data, "limits": {"mailbox_quota": 1048576}}, tmp_path).limits.mailbox_quota == 1048576
    with pytest.raises(ConfigError) as caught:
        parse({**data, "limits": {"mailbox_quota": -1}}, tmp_path)
    assert str(caught.value).startswith("Configuration key 'limits.mailbox_quota' must be a number of bytes")


@pytest.mark.slow  # starts a process
def test_smtp_to_a_full_mailbox_is_deferred_with_452_and_traced(tmp_path: Path, pki: PKIFiles,
                                                               sqlite_url: str) -> None:
    store = add_people(Store(sqlite_url))
    process = GatewayProcess(tmp_path / "gw", pki, sqlite_url)
    with_settings(with_limits(process, mailbox_quota=2000), "gateway", workers=1)
    process.start()
    try:
        with process.smtp(PRO) as smtp:
            smtp.sendmail(PRO, [PRO2], smtp_message(PRO, PRO2, "Premier", "z\r\n" * 1000))
            with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
                smtp.sendmail(PRO, [PRO2], smtp_message(PRO, PRO2, "Second", "court"))
        assert caught.value.recipients[PRO2] == (452, b"4.2.2 Mailbox full")
        assert len(store.messages_in(PRO2)) == 1
        assert [e.kind for e in store.events("rcpt.refused.mailbox_full")] == ["rcpt.refused.mailbox_full"]
    finally:
        process.stop()


# --- Compliance --------------------------------------------------------------------------------------------------
def test_check_in_an_imap4rev1_session_answers_ok(imap: ImapHarness) -> None:
    client = imap.imaps()
    client.select("INBOX")
    assert client.check()[0] == "OK"
    client.logout()


@pytest.mark.parametrize("key", ["(" * 1000 + "ALL" + ")" * 1000, "OR ALL " * 1000 + "ALL"],
                         ids=["nested-parentheses", "ors"])
def test_search_too_deep_answers_bad_and_the_session_survives(imap: ImapHarness, key: str) -> None:
    imap.deliver(ALICE, message())
    client = imap.imaps()
    client.select("INBOX")
    status, _ = raw(client, "SEARCH " + key)
    assert status.startswith(b"BAD"), status
    assert numbers(ok(client, "SEARCH ALL")) == [1]
    client.logout()


def test_create_with_broken_modified_utf7_is_refused_and_the_session_survives(imap: ImapHarness) -> None:
    client = imap.imaps()
    status, _ = raw(client, 'CREATE "&Jjo-&&&-"')
    assert status.startswith((b"BAD", b"NO")), status
    assert client.noop()[0] == "OK"
    client.logout()


def test_a_new_keyword_is_announced_in_flags_before_fetch_uses_it(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message())
    client = imap.imaps()
    client.select("INBOX")
    lines = ok(client, "STORE 1 +FLAGS ($Urgent)")
    flags = next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS") and b"$Urgent" in line)
    permanent = next(i for i, line in enumerate(lines) if b"[PERMANENTFLAGS" in line and b"$Urgent" in line)
    fetch = next(i for i, line in enumerate(lines) if b"FETCH" in line and b"$Urgent" in line)
    assert flags < fetch and permanent < fetch
    client.logout()


def test_backslash_star_is_in_permanentflags_only(imap: ImapHarness) -> None:
    client = imap.imaps()
    lines = ok(client, "SELECT INBOX")
    flags = [line for line in lines if line.startswith(b"* FLAGS")]
    permanent = [line for line in lines if b"[PERMANENTFLAGS" in line]
    assert len(flags) == 1 and b"\\*" not in flags[0]
    assert len(permanent) == 1 and b"\\*" in permanent[0]
    client.logout()


def test_search_sent_dates_use_the_date_header(imap: ImapHarness) -> None:
    for date in ("Wed, 01 Jan 2020 10:00:00 +0100", "Tue, 15 Jun 2021 23:30:00 +0200", "Fri, 03 Mar 2023 08:00:00 Z"):
        imap.deliver(ALICE, f"Date: {date}\r\n".encode() + message())
    client = imap.imaps()
    client.select("INBOX")
    assert numbers(ok(client, "SEARCH SENTBEFORE 1-Jun-2021")) == [1]
    assert numbers(ok(client, "SEARCH SENTON 15-Jun-2021")) == [2]
    assert numbers(ok(client, "SEARCH SENTSINCE 1-Jan-2022")) == [3]
    assert numbers(ok(client, "SEARCH SENTSINCE 15-Jun-2021")) == [2, 3]
    client.logout()


def test_search_older_and_younger_split_the_folder_at_now_less_the_interval(imap: ImapHarness) -> None:
    """RFC 5032 (WITHIN): OLDER n and YOUNGER n compare the internal date (set here by APPEND) with now less n
    seconds; together they match every message once; an interval of 0 is not a ``nz-number``."""
    client = imap.imaps()
    assert "WITHIN" in client.capabilities
    now = datetime.datetime.now(datetime.UTC)
    for days in (400, 2, 0):
        status, _ = client.append("INBOX", "", imaplib.Time2Internaldate(now - datetime.timedelta(days=days)),
                                  message(f"Il y a {days} jours"))
        assert status == "OK"
    client.select("INBOX")
    assert numbers(ok(client, "SEARCH YOUNGER 3600")) == [3]
    assert numbers(ok(client, "SEARCH OLDER 3600")) == [1, 2]
    assert numbers(ok(client, "SEARCH OLDER 86400 YOUNGER 31536000")) == [2]
    assert numbers(ok(client, "UID SEARCH NOT YOUNGER 86400")) == [1, 2]
    assert numbers(ok(client, "SEARCH OR OLDER 31536000 YOUNGER 60")) == [1, 3]
    status, _ = raw(client, "SEARCH OLDER 0")
    assert status.startswith(b"BAD"), status
    client.logout()


def test_envelope_lists_every_sender_address(imap: ImapHarness) -> None:
    imap.deliver(ALICE, b"Sender: one@a.test, two@b.test\r\n" + message())
    client = imap.imaps()
    client.select("INBOX")
    lines = ok(client, "FETCH 1 ENVELOPE")
    assert b'((NIL NIL "one" "a.test")(NIL NIL "two" "b.test"))' in lines[0], lines
    client.logout()


MULTIPART = (b"From: bob@pro.gateway.test\r\nTo: alice@pro.gateway.test\r\nSubject: Parts\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n"
             b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPremier texte.\r\n"
             b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             b"AAECA/8=\r\n"
             b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
             b"From: carol@x.test\r\nSubject: Inner\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n"
             b"--b2\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n"
             b"--b2\r\nContent-Type: text/html\r\n\r\n<p>Inner</p>\r\n--b2--\r\n"
             b"\r\n--b1\r\nContent-Type: application/x-raw\r\nContent-Transfer-Encoding: binary\r\n\r\n"
             b"\x00\x01raw\xff bytes\r\n--b1--\r\n")


def _fetch_item(client: imaplib.IMAP4, item: str) -> bytes:
    lines = ok(client, f"FETCH 1 ({item})")
    label = item.replace(".PEEK", "").encode()
    line = lines[0]
    start = line.index(label + b" ") + len(label) + 1
    rest = line[start:]
    literal = re.match(rb"~?\{(\d+)\}\r\n", rest)
    if literal:
        return rest[literal.end():literal.end() + int(literal.group(1))]
    return rest.split(b")")[0].split(b" ")[0]


def test_binary_of_a_binary_part_is_its_bytes(imap: ImapHarness) -> None:
    imap.deliver(ALICE, MULTIPART)
    client = imap.imaps()
    client.select("INBOX")
    assert _fetch_item(client, "BINARY.PEEK[4]") == b"\x00\x01raw\xff bytes"
    assert _fetch_item(client, "BINARY.SIZE[4]") == b"12"
    client.logout()


def test_sections_of_mime_and_message_parts_match_the_structure(imap: ImapHarness) -> None:
    imap.deliver(ALICE, MULTIPART)
    client = imap.imaps()
    client.select("INBOX")
    structure = ok(client, "FETCH 1 (BODYSTRUCTURE)")[0]
    assert b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 14 1' in structure.upper().replace(b'"UTF-8"',
                                                                                                   b'"utf-8"')
    assert _fetch_item(client, "BODY.PEEK[1]") == b"Premier texte."
    assert _fetch_item(client, "BODY.PEEK[1.MIME]") == b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    assert _fetch_item(client, "BINARY.PEEK[2]") == b"\x00\x01\x02\x03\xff"
    assert _fetch_item(client, "BINARY.SIZE[2]") == b"5"
    inner = _fetch_item(client, "BODY.PEEK[3]")
    assert inner.startswith(b"From: carol@x.test\r\n") and inner.endswith(b"<p>Inner</p>\r\n--b2--\r\n")
    assert _fetch_item(client, "BODY.PEEK[3.HEADER]") == inner.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert _fetch_item(client, "BODY.PEEK[3.TEXT]") == inner.split(b"\r\n\r\n", 1)[1]
    assert _fetch_item(client, "BODY.PEEK[3.1]") == b"Inner text."
    assert _fetch_item(client, "BODY.PEEK[3.2]") == b"<p>Inner</p>"
    assert _fetch_item(client, "BODY.PEEK[3.1.MIME]") == b"Content-Type: text/plain\r\n\r\n"
    assert b'"MESSAGE" "RFC822"' in structure.upper() and b'"ALTERNATIVE"' in structure.upper()
    sizes = [int(n) for n in re.findall(rb'"(?:7BIT|BASE64|BINARY)" (\d+)', structure.upper())]
    parts = [_fetch_item(client, f"BODY.PEEK[{n}]") for n in ("1", "2", "3", "3.1", "3.2", "4")]
    assert sorted(sizes) == sorted(len(part) for part in parts), (sizes, [len(p) for p in parts])
    assert _fetch_item(client, "BINARY.SIZE[3]") == str(len(inner)).encode()
    assert _fetch_item(client, "BINARY.PEEK[3]") == inner
    client.logout()


def test_recent_is_consistent_across_select_status_and_search(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message())
    imap.deliver(ALICE, message("Deux"))
    client = imap.imaps()
    recent = int(next(line for line in ok(client, "SELECT INBOX") if line.endswith(b" RECENT")).split()[1])
    status = ok(client, "STATUS INBOX (RECENT)")[0]
    assert int(re.search(rb"RECENT (\d+)", status).group(1)) == recent  # type: ignore[union-attr]
    assert len(numbers(ok(client, "SEARCH RECENT"))) == recent
    assert len(numbers(ok(client, "SEARCH NEW"))) == recent
    assert len(numbers(ok(client, "SEARCH OLD"))) == 2 - recent
    client.logout()


def test_new_mail_is_recent_to_the_session_that_sees_it_first(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message())
    client = imap.imaps()
    assert b"* 1 RECENT" in ok(client, "SELECT INBOX")
    assert b"\\Recent" in ok(client, "FETCH 1 (FLAGS)")[0]
    imap.deliver(ALICE, message("Deux"))
    lines = ok(client, "NOOP")
    assert lines.index(b"* 2 EXISTS") < lines.index(b"* 2 RECENT"), lines
    other = imap.imaps()
    assert b"* 0 RECENT" in ok(other, "SELECT INBOX")  # the first session took them (RFC 3501 2.3.2)
    assert b"\\Recent" not in ok(other, "FETCH 2 (FLAGS)")[0]
    other.logout()
    client.logout()


def test_close_after_examine_answers_ok_and_expunges_nothing(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message(), flags="\\Deleted")
    client = imap.imaps()
    client.select("INBOX", readonly=True)
    assert client.close()[0] == "OK"
    assert b"MESSAGES 1" in ok(client, "STATUS INBOX (MESSAGES)")[0]
    client.logout()


def test_create_with_a_trailing_delimiter_creates_the_name(imap: ImapHarness) -> None:
    client = imap.imaps()
    ok(client, "CREATE Projets/")
    lines = ok(client, 'LIST "" "Proj*"')
    assert [line.rsplit(b" ", 1)[1] for line in lines] == [b"Projets"]
    client.logout()


def test_lsub_marks_the_unsubscribed_parent_of_a_subscribed_folder_noselect(imap: ImapHarness) -> None:
    client = imap.imaps()
    ok(client, "CREATE Parent/Enfant")
    ok(client, "SUBSCRIBE Parent/Enfant")
    raw(client, "UNSUBSCRIBE Parent")  # whatever CREATE did with the parent, it is not subscribed
    lines = ok(client, 'LSUB "" "%"')
    parent = [line for line in lines if line.endswith(b" Parent")]
    assert len(parent) == 1 and b"\\Noselect" in parent[0], lines
    client.logout()


def test_move_into_the_selected_mailbox_works(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message())
    client = imap.imaps()
    client.select("INBOX")
    lines = ok(client, "UID MOVE 1 INBOX")
    assert any(re.match(rb"\* OK \[COPYUID \d+ 1 2\]", line) for line in lines), lines
    assert numbers(ok(client, "UID SEARCH ALL")) == [2]
    assert numbers(ok(client, "SEARCH ALL")) == [1]
    client.logout()


def test_search_from_and_body_return_exactly_the_matching_messages(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message("Un", "Le scanner est normal.", sender="carol@x.test"))
    imap.deliver(ALICE, message("Deux", "Rendez-vous lundi.", sender=BOB))
    imap.deliver(ALICE, message("Trois scanner", "Compte rendu joint.", sender="dave@carol.test"))
    client = imap.imaps()
    client.select("INBOX")
    assert numbers(ok(client, "SEARCH FROM carol")) == [1, 3]
    assert numbers(ok(client, f"SEARCH FROM {BOB}")) == [2]
    assert numbers(ok(client, "SEARCH BODY scanner")) == [1]  # the third has it in its Subject only
    assert numbers(ok(client, 'SEARCH BODY "rendez-vous"')) == [2]
    client.logout()


def test_select_with_condstore_enables_it(imap: ImapHarness) -> None:
    imap.deliver(ALICE, message())
    client = imap.imaps()
    lines = ok(client, "SELECT INBOX (CONDSTORE)")
    assert any(b"[HIGHESTMODSEQ " in line for line in lines)
    assert re.search(rb"MODSEQ \(\d+\)", ok(client, "FETCH 1 (FLAGS)")[0])
    assert re.search(rb"MODSEQ \(\d+\)", ok(client, "FETCH 1 (MODSEQ)")[0])
    client.logout()


def test_mailboxid_only_when_objectid_is_advertised(imap: ImapHarness) -> None:
    client = imap.imaps()
    advertised = b"OBJECTID" in ok(client, "CAPABILITY")[0].split()
    select = ok(client, "SELECT INBOX")
    status, lines = raw(client, "STATUS INBOX (MAILBOXID)")
    assert any(b"[MAILBOXID (" in line for line in select) == advertised
    assert status.startswith(b"OK" if advertised else b"BAD") or (not advertised and status.startswith(b"NO"))
    if advertised:
        assert re.search(rb"MAILBOXID \([A-Za-z0-9_-]+\)", lines[0])
    client.logout()


THREAD = [
    b"Message-ID: <root@t>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\nSubject: Bilan\r\n\r\nA\r\n",
    b"Message-ID: <other@t>\r\nDate: Mon, 01 Jan 2024 10:30:00 +0000\r\nSubject: Autre\r\n\r\nB\r\n",
    b"Message-ID: <reply@t>\r\nIn-Reply-To: <root@t>\r\nReferences: <root@t>\r\nDate: Mon, 01 Jan 2024 11:00:00 "
    b"+0000\r\nSubject: Re: Bilan\r\n\r\nC\r\n",
    b"Message-ID: <reply2@t>\r\nIn-Reply-To: <reply@t>\r\nReferences: <root@t> <reply@t>\r\nDate: Mon, 01 Jan "
    b"2024 12:00:00 +0000\r\nSubject: Re: Re: Bilan\r\n\r\nD\r\n",
]


def test_every_rfc_9051_command_answers(imap: ImapHarness) -> None:
    for raw_message in THREAD:
        imap.deliver(ALICE, b"From: bob@pro.gateway.test\r\nTo: alice@pro.gateway.test\r\n" + raw_message)
    client = imap.imaps()
    assert b"* ENABLED CONDSTORE" in ok(client, "ENABLE CONDSTORE")
    assert b'* NAMESPACE (("" "/")) NIL NIL' in ok(client, "NAMESPACE")
    assert any(line.startswith(b"* ID (") for line in ok(client, 'ID ("name" "test")'))
    assert b"SIZE " in ok(client, "STATUS INBOX (MESSAGES SIZE)")[0]
    listed = ok(client, 'LIST "" "INBOX" RETURN (STATUS (MESSAGES UIDNEXT))')
    assert any(line.startswith(b"* STATUS INBOX (MESSAGES 4 UIDNEXT 5)") for line in listed), listed
    ok(client, "SELECT INBOX")
    assert any(re.search(rb"\* ESEARCH \(TAG \"[^\"]+\"\) MIN 1 MAX 4 COUNT 4", line)
               for line in ok(client, "SEARCH RETURN (MIN MAX COUNT) ALL"))
    assert numbers(ok(client, "SORT (DATE) UTF-8 ALL"), b"SORT") == [1, 2, 3, 4]
    assert numbers(ok(client, "SORT (REVERSE DATE) UTF-8 ALL"), b"SORT") == [4, 3, 2, 1]
    assert b"* THREAD (1 3 4)(2)" in ok(client, "THREAD REFERENCES UTF-8 ALL")
    ok(client, "UNSELECT")
    client.logout()


def test_mailbox_names_with_an_ampersand_round_trip(imap: ImapHarness) -> None:
    client = imap.imaps()
    ok(client, 'CREATE "R&-D"')
    lines = ok(client, 'LIST "" "R*"')
    assert any(line.endswith(b' "R&-D"') or line.endswith(b" R&-D") for line in lines), lines
    assert ok(client, 'SELECT "R&-D"')
    assert b"MESSAGES 0" in ok(client, 'STATUS "R&-D" (MESSAGES)')[0]
    client.logout()
