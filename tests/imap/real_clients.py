"""Helpers of the real-client tests: snapshots of the server's folders and of a local Maildir.

A snapshot is what a synchronisation must leave unchanged when nothing changed: UIDVALIDITY, UIDNEXT,
HIGHESTMODSEQ and every message's UID, flags and Message-ID on the server; every file name on the Maildir side.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import email
import imaplib
import re
from dataclasses import dataclass
from pathlib import Path

from imap.imap_support import ALICE, ImapHarness

_FETCH = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")
_STATUS = re.compile(rb"(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ|MESSAGES) (\d+)")


@dataclass(frozen=True)
class ServerMessage:
    uid: int
    flags: frozenset[str]
    message_id: str
    subject: str


def _folders(client: imaplib.IMAP4) -> list[str]:
    typ, lines = client.list()
    assert typ == "OK", lines
    names = []
    for line in lines:
        assert isinstance(line, bytes)
        names.append(line.rsplit(b" ", 1)[1].strip(b'"').decode())
    return sorted(names)


def server_folder(imap: ImapHarness, folder: str, user: str = ALICE) -> list[ServerMessage]:
    """The messages of one folder, read with EXAMINE (read-only, so reading changes nothing)."""
    client = imap.imaps(user)
    try:
        return _read_folder(client, folder)
    finally:
        client.logout()


def _read_folder(client: imaplib.IMAP4, folder: str) -> list[ServerMessage]:
    typ, data = client.select(f'"{folder}"', readonly=True)
    assert typ == "OK", data
    if int(data[0] or 0) == 0:
        return []
    typ, rows = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])")
    assert typ == "OK", rows
    messages = []
    for row in rows:
        if not isinstance(row, tuple):
            continue
        match = _FETCH.search(row[0])
        assert match is not None, row[0]
        headers = email.message_from_bytes(row[1])
        messages.append(ServerMessage(int(match[1]), frozenset(match[2].decode().split()),
                                      str(headers.get("Message-ID", "")), str(headers.get("Subject", ""))))
    return sorted(messages, key=lambda m: m.uid)


def server_snapshot(imap: ImapHarness, user: str = ALICE) -> dict[str, tuple[dict[str, int], list[ServerMessage]]]:
    """Every folder's counters (STATUS) and messages."""
    client = imap.imaps(user)
    try:
        snapshot = {}
        for folder in _folders(client):
            typ, data = client.status(f'"{folder}"', "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")
            assert typ == "OK", data
            raw = data[0]
            assert isinstance(raw, bytes)
            counters = {name.decode(): int(value) for name, value in _STATUS.findall(raw)}
            snapshot[folder] = (counters, _read_folder(client, folder))
        return snapshot
    finally:
        client.logout()


def maildir_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under a Maildir tree (relative path → content), state files of the client excluded."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and not path.name.startswith(".")}


def maildir_messages(folder: Path) -> list[Path]:
    """The message files of one Maildir folder (new and cur)."""
    return sorted([*folder.joinpath("new").glob("*"), *folder.joinpath("cur").glob("*")])


def maildir_flags(path: Path) -> str:
    """The Maildir info flags of a message file (``...:2,FS`` → ``FS``)."""
    return path.name.rsplit(":2,", 1)[1] if ":2," in path.name else ""


# A tagged or untagged BAD/NO answer in a client's protocol trace, whichever way the client prints it:
# mbsync -Dn (``5 NO ...``), offlineimap -d imap (``< b'ABCD12 NO ...``), neomutt -d 5 (``4< a0005 NO ...``),
# curl -v (``< A003 NO ...``).
_REFUSAL = re.compile(r"(?m)(?:^|< b'|\d< |^< )((?:[A-Za-z]*\d+|\*) (?:BAD|NO)\b.*)$")


def refusals(trace: str) -> list[str]:
    """The server's BAD and NO answers a client logged; a client on its defaults should never meet one."""
    return _REFUSAL.findall(trace)


def maildir_letter(subject: str, attachment_size: int = 400_000) -> bytes:
    """A message as a local mail program writes it in a Maildir: LF line ends, 8-bit UTF-8 text, a PDF attached
    (base64, ``attachment_size`` bytes before encoding): larger than one literal outside APPEND."""
    import base64

    pdf = base64.encodebytes(bytes(range(256)) * (attachment_size // 256)).decode()
    return (f"From: Alice <alice@pro.gateway.test>\nTo: bob@pro.gateway.test\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@local>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            "Résultats de l'échographie ci-joints, à revoir en décembre.\n--b1\n"
            "Content-Type: application/pdf; name=\"compte-rendu.pdf\"\nContent-Transfer-Encoding: base64\n\n"
            f"{pdf}--b1--\n").encode()
