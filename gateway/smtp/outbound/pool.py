"""SMTP sessions to next hops, kept open between transactions (no TLS handshake per message).

A session is reused for :data:`IDLE_SECONDS` after its last transaction, and at most ``size`` are kept per hop.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import ssl
import time

import aiosmtplib

from gateway.config import OutboundSettings

#: An open session to a next hop is reused for this long after its last transaction.
IDLE_SECONDS = 20.0

Hop = tuple[str, int]


class SessionPool:
    """Open sessions per next hop: STARTTLS with our client context, opened on demand, closed when stale."""

    def __init__(self, settings: OutboundSettings, tls: ssl.SSLContext, local_hostname: str) -> None:
        self.settings = settings
        self.tls = tls
        self.local_hostname = local_hostname
        self._idle: dict[Hop, list[tuple[float, aiosmtplib.SMTP]]] = {}

    async def connect(self, hop: Hop) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(hostname=hop[0], port=hop[1], local_hostname=self.local_hostname,
                                 tls_context=self.tls, start_tls=True, timeout=s.command_timeout)
        await client.connect(timeout=s.connect_timeout)
        return client

    def take(self, hop: Hop) -> aiosmtplib.SMTP | None:
        """A live idle session to ``hop``, or None."""
        idle = self._idle.get(hop, [])
        while idle:
            since, client = idle.pop()
            if client.is_connected and time.monotonic() - since < IDLE_SECONDS:
                return client
            client.close()
        return None

    def give_back(self, hop: Hop, client: aiosmtplib.SMTP) -> None:
        idle = self._idle.setdefault(hop, [])
        if client.is_connected and len(idle) < self.settings.concurrency:
            idle.append((time.monotonic(), client))
        else:
            client.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for _, client in idle:
                client.close()
        self._idle.clear()
