"""mbox files and trees: reading them, one message at a time, to import their mail.

A message starts at a ``From `` line at the start of the file or after an empty line (the From_ line, which
carries the date the message was delivered: its internal date). Body lines that began with ``From `` were
written as ``>From `` and every ``>``-quoted one with one more ``>`` (mboxrd); one ``>`` is taken off again.
The flags are in the headers mail readers keep there: ``Status`` (``R`` seen), ``X-Status`` (``A`` answered,
``F`` flagged, ``T`` draft, ``D`` deleted) and ``X-Keywords``; these bookkeeping headers are not part of the
message and are left out of what is stored, and UW IMAP's folder-data pseudo message is skipped.

A tree is a folder of mbox files: ``Archive/2024`` (or Thunderbird's ``Archive.sbd/2024``) is the folder
``Archive/2024``; ``inbox`` is INBOX. Reads are bounded: bytes per message, per header block, folder depth.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from gateway.transfer.maildir import MAX_FOLDERS, TooManyFolders, is_keyword
from gateway.transfer.names import DELIMITER, canonical

#: Headers of mbox bookkeeping, not of the message: read for the flags, then left out.
BOOKKEEPING = frozenset({b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imap", b"x-imapbase",
                         b"content-length"})
#: Bytes of a message's header block searched for the bookkeeping headers.
MAX_HEADER = 256 * 1024
#: Deepest folder of a tree read.
MAX_DEPTH = 32
#: Longest line kept whole when looking for From_ lines (longer ones are body data, read in pieces).
_LINE = 64 * 1024
_DAYS = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), start=1)}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_ZONE = re.compile(r"^[+-]\d{4}$")


class MessageTooLarge(ValueError):
    """A message of the file is larger than the limit given."""


@dataclass(frozen=True)
class MboxMessage:
    """One message of an mbox file: its bytes (CRLF line ends), flags, internal date and where it began."""

    raw: bytes
    flags: tuple[str, ...]
    date: datetime | None
    line: int


def from_line_date(line: bytes) -> datetime | None:
    """The date of a From_ line (``From sender Tue Jan  2 03:04:05 2024``, optionally with a zone), or None."""
    tokens = line.decode("latin-1").split()[2:]
    day = month = year = None
    clock: re.Match[str] | None = None
    offset = timedelta(0)
    for token in tokens[:8]:
        if token in _DAYS:
            continue
        if token in _MONTHS and month is None:
            month = _MONTHS[token]
        elif (m := _TIME.match(token)) is not None and clock is None:
            clock = m
        elif _ZONE.match(token):
            sign = -1 if token[0] == "-" else 1
            offset = sign * timedelta(hours=int(token[1:3]), minutes=int(token[3:5]))
        elif token.isdigit() and len(token) == 4:
            year = int(token)
        elif token.isdigit() and len(token) <= 2 and day is None and month is not None:
            day = int(token)
    if None in (day, month, year) or clock is None:
        return None
    try:
        local = datetime(year, month, day, int(clock.group(1)), int(clock.group(2)),  # type: ignore[arg-type]
                         int(clock.group(3) or 0), tzinfo=timezone(offset))
    except ValueError:
        return None
    return local.astimezone(UTC)


def _flags_and_head(head: bytes) -> tuple[tuple[str, ...], bytes, bool]:
    """The flags of a header block's bookkeeping headers, the block without them, and whether it is UW IMAP's
    folder-data pseudo message."""
    kept: list[bytes] = []
    flags: list[str] = []
    pseudo = False
    current: bytes | None = None
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and current is not None:
            if current not in BOOKKEEPING:
                kept.append(line)
            continue
        name, colon, value = line.partition(b":")
        current = name.strip().lower() if colon else None
        if current not in BOOKKEEPING:
            kept.append(line)
            continue
        text = value.decode("latin-1").strip()
        if current == b"status" and "R" in text:
            flags.append("\\Seen")
        elif current == b"x-status":
            flags.extend(flag for letter, flag in (("A", "\\Answered"), ("F", "\\Flagged"), ("T", "\\Draft"),
                                                   ("D", "\\Deleted")) if letter in text)
        elif current == b"x-keywords":
            flags.extend(word for word in re.split(r"[\s,]+", text) if word and is_keyword(word))
        elif current == b"x-imap":
            pseudo = True
    return tuple(dict.fromkeys(flags)), b"".join(kept), pseudo


def _finish(lines: list[bytes], from_line: bytes, start: int) -> MboxMessage | None:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines.pop()  # the empty line before the next From_ line belongs to the format
    raw = b"".join(lines)
    split = re.search(rb"\r?\n\r?\n", raw[:MAX_HEADER])
    head, body = (raw[:split.end()], raw[split.end():]) if split else (raw, b"")
    flags, head, pseudo = _flags_and_head(head)
    if pseudo:
        return None
    message = (head + body).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return MboxMessage(message, flags, from_line_date(from_line), start)


def read(path: Path, max_size: int) -> Iterator[MboxMessage]:
    """The messages of one mbox file, in order; ``MessageTooLarge`` names the line of one above ``max_size``."""
    with path.open("rb") as handle:
        lines: list[bytes] = []
        size = 0
        from_line: bytes | None = None
        start = 0
        previous_empty = True
        line_start = True
        number = 0
        while True:
            line = handle.readline(_LINE)
            if not line:
                break
            starts, line_start = line_start, line.endswith(b"\n")
            number += starts
            if starts and line.startswith(b"From ") and previous_empty:
                if from_line is not None:
                    message = _finish(lines, from_line, start)
                    if message is not None:
                        yield message
                lines, size, from_line, start = [], 0, line, number
                previous_empty = False
                continue
            previous_empty = starts and line in (b"\n", b"\r\n")
            if from_line is None:
                continue  # bytes before the first From_ line are not a message
            if starts and re.match(rb">+From ", line):
                line = line[1:]
            size += len(line)
            if size > max_size:
                raise MessageTooLarge(f"{path}: the message at line {start} is larger than {max_size} bytes.")
            lines.append(line)
        if from_line is not None:
            message = _finish(lines, from_line, start)
            if message is not None:
                yield message


def is_mbox(path: Path) -> bool:
    """Whether ``path`` is a file that starts like an mbox file (or is empty)."""
    try:
        with path.open("rb") as handle:
            first = handle.read(5)
    except OSError:
        return False
    return first in (b"", b"From ")


def _name(parts: list[str]) -> str | None:
    levels = [part.removesuffix(".sbd") for part in parts]
    levels[-1] = levels[-1].removesuffix(".mbox")
    if len(levels) == 1 and levels[0].lower() == "inbox":
        return "INBOX"
    return canonical(DELIMITER.join(levels))


def scan(root: Path) -> list[tuple[str, Path]]:
    """The folders of an mbox file (INBOX) or tree: (store name, file), sorted by name, without recursion."""
    if root.is_file():
        return [("INBOX", root)]
    found: dict[str, Path] = {}
    stack: list[tuple[Path, list[str]]] = [(root, [])]
    while stack:
        directory, parts = stack.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if len(parts) + 1 < MAX_DEPTH:
                        stack.append((Path(entry.path), [*parts, entry.name]))
                elif entry.is_file(follow_symlinks=False) and not entry.name.endswith((".msf", ".dat", ".lock")):
                    path = Path(entry.path)
                    name = _name([*parts, entry.name])
                    if name is not None and name not in found and is_mbox(path):
                        if len(found) >= MAX_FOLDERS:
                            raise TooManyFolders(f"{root} holds more than {MAX_FOLDERS} mbox files.")
                        found[name] = path
    return sorted(found.items())
