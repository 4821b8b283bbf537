"""Maildir and Maildir++ trees: reading one to import its mail, writing one to export a mailbox.

A Maildir++ tree holds INBOX in ``cur/`` and ``new/`` at its root and each other folder in a ``.Name.Sub``
directory (one level of the name per ``.``, each level in modified UTF-7). A message's flags are the info part of
its file name, ``:2,`` then letters in ASCII order: ``D`` draft, ``F`` flagged, ``R`` replied, ``S`` seen, ``T``
trashed (deleted), and ``a``-``z`` keywords, which Dovecot names in each folder's ``dovecot-keywords`` file
(``0 $Label1`` gives ``a``). A message's internal date is its file's modification time, as Dovecot reads it.

Every read is bounded: folders per tree, keywords per folder, bytes per message and of the keywords file.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.transfer.names import DELIMITER, canonical, decode_mutf7, encode_mutf7

#: Maildir info letters and the IMAP system flags they stand for (Maildir spec; RFC 9051 2.3.2).
SYSTEM_FLAGS: dict[str, str] = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
LETTER_OF = {flag.lower(): letter for letter, flag in SYSTEM_FLAGS.items()}
#: Keyword letters of a folder (``dovecot-keywords`` indexes 0-25).
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: Most folders read from one tree (the store allows 1,000 per account).
MAX_FOLDERS = 1000
#: Largest ``dovecot-keywords`` file read.
MAX_KEYWORDS_FILE = 64 * 1024
#: The separators of the info part: ``:`` on POSIX, ``!`` or ``;`` where ``:`` cannot be in a file name.
_INFO = re.compile(r"[:!;]2,([A-Za-z]*)$")
#: A keyword the store can hold: an IMAP atom (RFC 9051 9, flag-keyword), not a system flag.
_KEYWORD = re.compile(r"^[^\\\s(){%*\"\]\x00-\x1f\x7f]{1,100}$")
KEYWORDS_FILE = "dovecot-keywords"


def is_keyword(text: str) -> bool:
    return bool(_KEYWORD.match(text))


@dataclass(frozen=True)
class MessageFile:
    """One message of a tree: where it is, its flags (IMAP form) and its internal date."""

    path: Path
    flags: tuple[str, ...]
    date: datetime


@dataclass
class MaildirFolder:
    """One folder of a Maildir tree, with the keyword letters its ``dovecot-keywords`` file names."""

    name: str
    path: Path
    keywords: dict[str, str] = field(default_factory=dict)

    def messages(self) -> Iterator[MessageFile]:
        """The folder's messages, oldest first (then by file name), ``new/`` ones unseen."""
        found: list[tuple[float, str, Path, str]] = []
        for sub in ("cur", "new"):
            directory = self.path / sub
            if not directory.is_dir():
                continue
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                        continue
                    found.append((entry.stat().st_mtime, entry.name, Path(entry.path), sub))
        found.sort()
        for mtime, name, path, sub in found:
            flags = parse_info(name, self.keywords) if sub == "cur" else ()
            yield MessageFile(path, flags, datetime.fromtimestamp(mtime, UTC))


def parse_info(filename: str, keywords: dict[str, str]) -> tuple[str, ...]:
    """The IMAP flags of a Maildir file name's ``:2,`` info; unknown letters are ignored."""
    match = _INFO.search(filename)
    if match is None:
        return ()
    flags: list[str] = []
    for letter in dict.fromkeys(match.group(1)):
        if letter in SYSTEM_FLAGS:
            flags.append(SYSTEM_FLAGS[letter])
        elif letter in keywords:
            flags.append(keywords[letter])
    return tuple(flags)


def read_keywords(folder: Path) -> dict[str, str]:
    """``dovecot-keywords``: letter to keyword; a missing or unreadable file names none."""
    try:
        with (folder / KEYWORDS_FILE).open("rb") as handle:
            text = handle.read(MAX_KEYWORDS_FILE).decode("utf-8", "replace")
    except OSError:
        return {}
    letters: dict[str, str] = {}
    for line in text.splitlines():
        index, _, keyword = line.strip().partition(" ")
        if index.isdigit() and int(index) < len(KEYWORD_LETTERS) and is_keyword(keyword.strip()):
            letters[KEYWORD_LETTERS[int(index)]] = keyword.strip()
    return letters


def folder_name(directory: str) -> str | None:
    """The store's name of a Maildir++ folder directory (``.Archive.2024`` is ``Archive/2024``)."""
    if not directory.startswith(".") or directory in {".", ".."}:
        return None
    levels = [decode_mutf7(level) for level in directory[1:].split(".")]
    if any(DELIMITER in level for level in levels):
        return None
    return canonical(DELIMITER.join(levels))


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


class TooManyFolders(ValueError):
    """The tree holds more folders than one account may have."""


def scan(root: Path) -> list[MaildirFolder]:
    """The folders of a Maildir++ tree rooted at ``root`` (INBOX first, then by name)."""
    folders: list[MaildirFolder] = []
    if is_maildir(root):
        folders.append(MaildirFolder("INBOX", root, read_keywords(root)))
    with os.scandir(root) as entries:
        names = sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
    for directory in names:
        name = folder_name(directory)
        path = root / directory
        if name is None or not is_maildir(path):
            continue
        if len(folders) >= MAX_FOLDERS:
            raise TooManyFolders(f"{root} holds more than {MAX_FOLDERS} folders, more than one account may have.")
        folders.append(MaildirFolder(name, path, read_keywords(path)))
    return folders


def directory_of(name: str) -> str:
    """The Maildir++ directory of a store folder name (``Archive/2024`` is ``.Archive.2024``); INBOX is the root."""
    if name == "INBOX":
        return ""
    return "." + ".".join(encode_mutf7(level, extra=".") for level in name.split(DELIMITER))


def to_lf(raw: bytes) -> bytes:
    """Maildir files end lines with LF, as local delivery writes them."""
    return raw.replace(b"\r\n", b"\n")


def to_crlf(raw: bytes) -> bytes:
    """Stored mail ends lines with CRLF, as IMAP serves it (RFC 9051 2.2.1)."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


class FolderWriter:
    """Writes one folder's messages into ``cur/`` through ``tmp/``, and its keyword letters when closed."""

    def __init__(self, path: Path, hostname: str) -> None:
        self.path = path
        self.hostname = hostname.replace("/", "\\057").replace(":", "\\072")
        self.letters: dict[str, str] = {}
        self.dropped_keywords: set[str] = set()
        self.count = 0
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)

    def info(self, flags: Iterable[str]) -> str:
        letters: list[str] = []
        for flag in flags:
            letter = LETTER_OF.get(flag.lower())
            if letter is None and not flag.startswith("\\") and is_keyword(flag):
                letter = self.letters.get(flag)
                if letter is None:
                    if len(self.letters) >= len(KEYWORD_LETTERS):
                        self.dropped_keywords.add(flag)
                        continue
                    letter = self.letters[flag] = KEYWORD_LETTERS[len(self.letters)]
            if letter is not None:
                letters.append(letter)
        return "2," + "".join(sorted(set(letters)))

    def add(self, raw: bytes, flags: Sequence[str], date: datetime, uid: int) -> Path:
        """Write one message (LF line ends) with its flags in the name and its date as the file's mtime."""
        data = to_lf(raw)
        stamp = int(date.timestamp())
        base = f"{stamp}.M{uid}P{os.getpid()}.{self.hostname},S={len(data)}"
        temporary = self.path / "tmp" / base
        with temporary.open("wb") as out:
            out.write(data)
        os.utime(temporary, (date.timestamp(), date.timestamp()))
        final = self.path / "cur" / f"{base}:{self.info(flags)}"
        os.replace(temporary, final)
        self.count += 1
        return final

    def close(self) -> None:
        if self.letters:
            lines = [f"{index} {keyword}\n" for index, keyword in enumerate(self.letters)]
            (self.path / KEYWORDS_FILE).write_text("".join(lines), encoding="utf-8")
        if self.path.name.startswith("."):
            (self.path / "maildirfolder").touch()


class MaildirWriter:
    """A Maildir++ tree being written: one :class:`FolderWriter` per folder."""

    def __init__(self, root: Path, hostname: str | None = None) -> None:
        self.root = root
        self.hostname = hostname or socket.gethostname()
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, name: str) -> FolderWriter:
        return FolderWriter(self.root / directory_of(name) if name != "INBOX" else self.root, self.hostname)
