"""``gateway mail import`` and ``gateway mail export``: Maildir++ and mbox trees in, Maildir++ out, on the real
store, checked against the formats (flags, keywords, dates) and against what IMAP clients then see."""

from __future__ import annotations

import imaplib
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli.cli_support import as_sets, config_file, gateway_cli, read_maildir, write_maildir
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

from gateway.store.models import Delivery, Folder, Mailbox, Message

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

ALICE = "alice@pro.gateway.test"
#: Twenty folders: the five every account has, nested archives, and names that need modified UTF-7.
FOLDERS: dict[str, dict[str, str]] = {
    "": {"a": "$Label1", "b": "Important"},
    ".Sent": {},
    ".Drafts": {},
    ".Trash": {},
    ".Archive": {"a": "Important"},
    ".Archive.2024": {"a": "$Forwarded", "b": "$Label1", "c": "Urgent"},
    ".Archive.2023": {},
    ".R&AOk-unions": {"a": "Important"},
    **{f".Patients.Dossier{n:02d}": ({"a": "$Label2"} if n % 2 else {}) for n in range(12)},
}
NAMES = {"": "INBOX", ".Sent": "Sent", ".Drafts": "Drafts", ".Trash": "Trash", ".Archive": "Archive",
         ".Archive.2024": "Archive/2024", ".Archive.2023": "Archive/2023", ".R&AOk-unions": "Réunions",
         **{f".Patients.Dossier{n:02d}": f"Patients/Dossier{n:02d}" for n in range(12)}}


def stored(url: str, address: str) -> dict[str, list[tuple[int, str, bool, datetime, bytes, int]]]:
    """Per folder: (uid, flags, seen, internal date, raw, modseq) in UID order."""
    async def work(session: AsyncSession) -> dict[str, list[tuple[int, str, bool, datetime, bytes, int]]]:
        rows = await session.execute(
            select(Folder.name, Delivery.uid, Delivery.flags, Delivery.seen, Delivery.internal_date, Message.raw,
                   Delivery.modseq)
            .join(Delivery, Delivery.folder_id == Folder.id).join(Message, Message.id == Delivery.message_id)
            .join(Mailbox, Mailbox.id == Folder.mailbox_id).where(Mailbox.address == address)
            .order_by(Folder.name, Delivery.uid))
        out: dict[str, list[tuple[int, str, bool, datetime, bytes, int]]] = {}
        for row in rows:
            out.setdefault(row.name, []).append(
                (row.uid, row.flags, row.seen, row.internal_date, bytes(row.raw), row.modseq))
        return out
    return Store(url).run(work)


def folder_counters(url: str, address: str) -> dict[str, tuple[int, int]]:
    async def work(session: AsyncSession) -> dict[str, tuple[int, int]]:
        rows = await session.execute(select(Folder.name, Folder.uidnext, Folder.highestmodseq)
                                     .join(Mailbox, Mailbox.id == Folder.mailbox_id).where(Mailbox.address == address))
        return {row.name: (row.uidnext, row.highestmodseq) for row in rows}
    return Store(url).run(work)


@pytest.mark.slow
def test_maildir_of_10000_messages_in_20_folders_imported_with_flags_then_exported_the_same(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, sqlite_url)
    Store(sqlite_url).add_mailbox(ALICE)
    source = tmp_path / "Maildir"
    written = write_maildir(source, FOLDERS, {directory: 500 for directory in FOLDERS})
    assert sum(len(mails) for mails in written.values()) == 10_000 and len(FOLDERS) == 20

    result = gateway_cli(config, "mail", "import", "--mailbox", ALICE, str(source))
    assert result.returncode == 0, result.stderr
    assert "10000 message(s) imported" in result.stdout
    assert re.search(r"Importing into alice@pro.gateway.test: 10000 messages", result.stderr)

    mail = stored(sqlite_url, ALICE)
    assert set(mail) == set(NAMES.values())
    counters = folder_counters(sqlite_url, ALICE)
    for directory, name in NAMES.items():
        rows = mail[name]
        assert [row[0] for row in rows] == list(range(1, 501)), name  # fresh UIDs, in date order
        assert counters[name][0] == 501
        expected = {(m.content.replace(b"\n", b"\r\n"), m.flags, m.mtime) for m in written[directory]}
        got = {(raw, frozenset(flags.split()), int(date.replace(tzinfo=UTC).timestamp()))
               for _, flags, _, date, raw, _ in rows}
        assert got == expected, name
        assert all(seen == ("\\Seen" in flags.split()) for _, flags, seen, _, _, _ in rows)
        assert len({modseq for *_, modseq in rows}) == 500

    out = tmp_path / "export"
    exported = gateway_cli(config, "mail", "export", "--mailbox", ALICE, str(out))
    assert exported.returncode == 0, exported.stderr
    # 21: 'Patients' exists too, created as the superior of Patients/Dossier00... (RFC 9051 6.3.4), empty.
    assert "10000 message(s) in 21 folder(s) exported" in exported.stdout
    tree = read_maildir(out)
    assert tree.pop(".Patients") == []
    assert as_sets(tree) == as_sets(written)
    assert (out / ".Archive.2024" / "maildirfolder").exists()


def test_small_maildir_import_on_both_stores_records_the_trail_and_refuses_a_second_export_target(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, store_url)
    Store(store_url).add_mailbox(ALICE)
    folders = {"": {"a": "$Label1"}, ".Archive.2024": {"a": "Urgent"}, ".Nouveau.Dossier": {}}
    written = write_maildir(tmp_path / "md", folders, {"": 30, ".Archive.2024": 20, ".Nouveau.Dossier": 5})

    result = gateway_cli(config, "mail", "import", "--mailbox", ALICE, str(tmp_path / "md"), "--batch", "7")
    assert result.returncode == 0, result.stderr
    # The superior 'Nouveau' is created too, as IMAP CREATE does (RFC 9051 6.3.4).
    assert "folders created: Archive/2024, Nouveau, Nouveau/Dossier." in result.stdout
    mail = stored(store_url, ALICE)
    assert [len(mail[n]) for n in ("INBOX", "Archive/2024", "Nouveau/Dossier")] == [30, 20, 5]
    events = [e for e in Store(store_url).events("mail.imported")]
    assert sum(int(e.detail["count"]) for e in events) == 55 and all(e.rule == "R18" for e in events)
    assert len(events) == 8  # 55 messages, 7 per transaction

    out = tmp_path / "out"
    assert gateway_cli(config, "mail", "export", "--mailbox", ALICE, str(out)).returncode == 0
    exported = read_maildir(out)
    assert as_sets({k: v for k, v in exported.items() if v}) == as_sets(written)
    again = gateway_cli(config, "mail", "export", "--mailbox", ALICE, str(out))
    assert again.returncode == 1 and "not an empty folder" in again.stderr

    nobody = gateway_cli(config, "mail", "import", "--mailbox", "nobody@pro.gateway.test", str(tmp_path / "md"))
    assert nobody.returncode == 1 and "No mailbox has the address" in nobody.stderr


MBOX_INBOX = b"""From MAILER-DAEMON Mon Jan  1 00:00:00 2024
Date: 01 Jan 2024 00:00:00 +0000
From: Mail System Internal Data <MAILER-DAEMON@old>
Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA
X-IMAP: 1700000000 0000000002

This text is part of the internal format of your mail folder.

From dr.who@pro.gateway.test Tue Jan  2 03:04:05 2024
From: dr.who@pro.gateway.test
To: alice@pro.gateway.test
Subject: Premier
Message-ID: <first@test>
Status: RO
X-Status: AF
X-Keywords: $Label1 Important

Bonjour,
>From the lab: results attached.
>>From quoted twice.

From dr.who@pro.gateway.test Wed Feb 14 10:20:30 2024 +0100
From: dr.who@pro.gateway.test
To: alice@pro.gateway.test
Subject: Second
Message-ID: <second@test>
Status: O

Second body.
"""

MBOX_ARCHIVE = b"""From someone@else.test Fri Mar  1 08:00:00 2024
From: someone@else.test
Subject: Archived
X-Status: T

Archived body.
"""


def test_mbox_tree_imported_with_from_line_dates_status_flags_and_unescaped_bodies_read_over_imap(
        gateway: GatewayProcess, tmp_path: Path) -> None:
    Store(gateway.store_url).add_mailbox(ALICE)
    tree = tmp_path / "mail"
    (tree / "Archive.sbd").mkdir(parents=True)
    (tree / "inbox").write_bytes(MBOX_INBOX)
    (tree / "Archive.sbd" / "2024").write_bytes(MBOX_ARCHIVE)
    (tree / "Archive.msf").write_bytes(b"// Thunderbird index, not mail")

    result = gateway_cli(gateway.config_path, "mail", "import", "--mailbox", ALICE, str(tree))
    assert result.returncode == 0, result.stderr
    assert "3 message(s) imported" in result.stdout

    context = ssl.create_default_context(cafile=str(gateway.pki.ca_bundle))
    with imaplib.IMAP4_SSL("127.0.0.1", gateway.imaps_port, ssl_context=context, timeout=30) as client:
        client.login(ALICE, "secret-password")
        assert client.select("INBOX", readonly=True)[1] == [b"2"]
        _, data = client.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        first_meta, first_body = data[0]
        assert b"\\Seen" in first_meta and b"\\Answered" in first_meta and b"\\Flagged" in first_meta
        assert b"$Label1" in first_meta and b"Important" in first_meta
        assert b'"02-Jan-2024 03:04:05 +0000"' in first_meta
        assert b"\r\nFrom the lab: results attached.\r\n>From quoted twice.\r\n" in first_body
        assert b"Status:" not in first_body and b"X-Keywords" not in first_body
        assert first_body.endswith(b"quoted twice.\r\n")
        second_meta = data[2][0]
        assert b"\\Seen" not in second_meta and b'"14-Feb-2024 09:20:30 +0000"' in second_meta
        assert client.select('"Archive/2024"', readonly=True)[1] == [b"1"]
        _, data = client.uid("FETCH", "1", "(FLAGS)")
        assert b"\\Draft" in data[0]
        client.logout()


def test_import_of_a_path_that_is_no_mail_tree_is_refused_in_one_sentence(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, sqlite_url)
    Store(sqlite_url).add_mailbox(ALICE)
    (tmp_path / "empty").mkdir()
    result = gateway_cli(config, "mail", "import", "--mailbox", ALICE, str(tmp_path / "empty"))
    assert result.returncode == 1 and "holds no mbox file" in result.stderr
    assert "Traceback" not in result.stderr
    assert Store(sqlite_url).events("mail.imported") == []
