"""The supervisor ↔ worker channel: one UNIX socket pair per worker, one JSON object per line.

Messages are small facts, never health data: ``ready``; ``changed`` (folder and wake-up ids a commit touched,
so an IDLE client of another worker wakes within milliseconds); ``trusted`` (the whitelist's domains, refreshed
once by worker 0); ``verified`` (a login's keyed hash, mailbox id and stored hash, for the other workers'
credential caches); from the supervisor also ``config`` (the accepted configuration's text), ``credentials``
(the workers' common cache key), ``started`` (end of the initial snapshot) and ``reload``. Lines are bounded;
a peer that stops reading loses wake-ups (each has a slower fallback: IMAP polls, queues poll), never the
channel.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import structlog

log = structlog.get_logger("gateway.process")

#: Longest line accepted: the whitelist's domain list is the largest message (its source is capped at 8 MiB).
MAX_MESSAGE = 32 * 1024 * 1024
#: Bytes queued towards a peer past which wake-up messages are dropped rather than buffered.
MAX_BACKLOG = 8 * 1024 * 1024
#: Messages never dropped, whatever the backlog (losing them would change behaviour, not only latency).
_KEEP = frozenset({"config", "credentials", "reload", "started", "ready", "trusted"})


class Channel:
    """One end of a worker's channel: :meth:`send` never blocks, :meth:`receive` returns None at the end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._dropped = 0

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_MESSAGE)
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def send(self, message: dict[str, Any]) -> None:
        if self._writer.is_closing():
            return
        transport = self._writer.transport
        if message.get("t") not in _KEEP and transport.get_write_buffer_size() > MAX_BACKLOG:
            self._dropped += 1
            if self._dropped == 1:
                log.warning("channel_backlog", outcome="wake-ups dropped until the peer reads again")
            return
        self._dropped = 0
        self._writer.write(json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n")

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None when the peer is gone (or sent a line past :data:`MAX_MESSAGE`)."""
        while True:
            try:
                line = await self._reader.readline()
            except (ValueError, ConnectionError):
                return None
            if not line:
                return None
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and isinstance(message.get("t"), str):
                return message

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
