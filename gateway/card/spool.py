"""The agent's on-disk queue: events wait here, in order, until the gateway has taken them.

One JSON file per event, named by a sequence number, written to a temporary name, synced, then renamed, so that
a crash leaves either the whole event or nothing. Several processes may append (the running agent, a ``bind``
command run by the practice software): appends take an exclusive ``flock``; one sender at a time empties the
queue, oldest first, holding a second lock. Bounded: a full queue refuses new events rather than fill the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

MAX_EVENTS = 10_000
MAX_EVENT_BYTES = 8192
_DIGITS = 20


class SpoolFull(Exception):
    """The queue holds :data:`MAX_EVENTS` events: the gateway has been unreachable for a long time."""


class Delivery(Enum):
    """What the gateway did with an event."""

    DELIVERED = "delivered"  # applied (or already applied): remove it
    REJECTED = "rejected"  # can never be accepted: set it aside, go on with the next one
    RETRY = "retry"  # not now (unreachable, refused for now): keep it and stop here


@dataclass(frozen=True)
class Queued:
    path: Path
    event: dict[str, Any]


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A folder of queued events; safe for several processes."""

    def __init__(self, folder: Path, max_events: int = MAX_EVENTS) -> None:
        self.folder = folder
        self.rejected = folder / "rejected"
        self.max_events = max_events
        self.rejected.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.folder) if n.endswith(".json") and n[:_DIGITS].isdigit())

    def __len__(self) -> int:
        return len(self._names())

    def append(self, event: dict[str, Any]) -> Path:
        """Queue ``event`` after every event already queued; durable when this returns."""
        data = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        if len(data) > MAX_EVENT_BYTES:
            raise ValueError(f"An event is at most {MAX_EVENT_BYTES} bytes.")
        with _locked(self.folder / ".append.lock"):
            names = self._names()
            if len(names) >= self.max_events:
                raise SpoolFull(f"The event queue in {self.folder} is full ({len(names)} events); the gateway has "
                                "not been reachable for a long time.")
            counter = self.folder / ".sequence"
            last = int(counter.read_text() or 0) if counter.exists() else 0
            if names:
                last = max(last, int(names[-1][:_DIGITS]))
            seq = last + 1
            path = self.folder / f"{seq:0{_DIGITS}d}.json"
            tmp = self.folder / f".{seq}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            counter.write_text(str(seq))
            _fsync_dir(self.folder)
            return path

    def oldest(self) -> Queued | None:
        """The event at the head of the queue (an unreadable file is set aside, never silently lost)."""
        for name in self._names():
            path = self.folder / name
            try:
                if path.stat().st_size > MAX_EVENT_BYTES:
                    raise ValueError("too large")
                event = json.loads(path.read_bytes())
                if not isinstance(event, dict):
                    raise ValueError("not an object")
            except FileNotFoundError:
                continue
            except ValueError:
                self.set_aside(path)
                continue
            return Queued(path, event)
        return None

    def done(self, item: Queued) -> None:
        item.path.unlink(missing_ok=True)
        _fsync_dir(self.folder)

    def set_aside(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, self.rejected / path.name)

    def flush(self, send: Callable[[dict[str, Any]], Delivery]) -> bool | None:
        """Send queued events in order until the queue is empty (True) or the gateway says "later" (False).

        None when another process is already sending (it will empty the queue).
        """
        with _locked(self.folder / ".send.lock", blocking=False) as mine:
            if not mine:
                return None
            while (item := self.oldest()) is not None:
                outcome = send(item.event)
                if outcome is Delivery.RETRY:
                    return False
                if outcome is Delivery.REJECTED:
                    self.set_aside(item.path)
                else:
                    self.done(item)
            return True
