"""Per client address and per account limits shared by SMTP and IMAP (as Postfix's anvil), in each process's memory.

- connections: at most ``[limits] connections_per_address`` open at once from one address (Postfix's default
  concurrency limit, 50) and at most ``connection_rate_per_address`` opened per minute;
- messages: at most ``messages_per_minute`` messages and ``recipients_per_minute`` recipients per minute per
  account, whatever address it sends from.
The three rates are off (0) by default, as Postfix's: a lab system legitimately sends hundreds of results a
minute; a structure sets them for its patients' and people's accounts.

A listener calls :meth:`Anvil.open` when a connection arrives and :meth:`Lease.close` when it ends (a refused
connection is answered with :attr:`Refusal.reason` and closed); the submission handler calls
:meth:`Anvil.allow_message` before accepting a message. Loopback is not exempt: every limit is a setting.
Windows slide over the last 60 seconds; the tables are bounded so a spray of addresses cannot grow them without end.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("gateway.auth")

MINUTE = 60.0
#: Most addresses or accounts whose recent history is kept; the stalest is forgotten beyond.
MAX_TRACKED = 100_000


@dataclass(frozen=True)
class Refusal:
    """A connection or message refused by a limit; ``reason`` is the sentence to send to the client."""

    reason: str
    limit: str


class Lease:
    """One open connection counted against its address; :meth:`close` (idempotent) gives it back."""

    def __init__(self, anvil: Anvil, client_ip: str, protocol: str) -> None:
        self._anvil = anvil
        self.client_ip = client_ip
        self.protocol = protocol
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._anvil._closed(self.client_ip)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Window:
    """Amounts in a sliding 60-second window: a deque of (time, amount) and their running sum."""

    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, now: float) -> int:
        while self.events and self.events[0][0] <= now - MINUTE:
            self.total -= self.events.popleft()[1]
        return self.total

    def add(self, now: float, amount: int) -> None:
        self.events.append((now, amount))
        self.total += amount


class _Windows:
    def __init__(self) -> None:
        self._by_key: dict[Any, _Window] = {}

    def total(self, key: Any, now: float) -> int:
        window = self._by_key.get(key)
        if window is None:
            return 0
        total = window.expire(now)
        if not window.events:
            del self._by_key[key]
        return total

    def add(self, key: Any, now: float, amount: int) -> None:
        window = self._by_key.get(key)
        if window is None:
            if len(self._by_key) >= MAX_TRACKED:
                self._forget_stalest(now)
            window = self._by_key[key] = _Window()
        window.add(now, amount)

    def _forget_stalest(self, now: float) -> None:
        for key in [k for k, w in self._by_key.items() if w.expire(now) == 0]:
            del self._by_key[key]
        if len(self._by_key) >= MAX_TRACKED:  # all recent: drop the one whose newest event is oldest
            stalest = min(self._by_key, key=lambda k: self._by_key[k].events[-1][0])
            del self._by_key[stalest]


class Anvil:
    """Connection and message limits per address and per account, for one process's listeners."""

    def __init__(self, connections_per_address: int = 50, connection_rate_per_address: int = 0,
                 messages_per_minute: int = 0, recipients_per_minute: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connections_per_address = connections_per_address
        self.connection_rate_per_address = connection_rate_per_address
        self.messages_per_minute = messages_per_minute
        self.recipients_per_minute = recipients_per_minute
        self._clock = clock
        self._open: Counter[str] = Counter()
        self._connections = _Windows()
        self._messages = _Windows()
        self._recipients = _Windows()

    @classmethod
    def from_limits(cls, limits: Any) -> Anvil:
        """From :class:`gateway.config.Limits` (its ``[limits]`` keys of the same names)."""
        return cls(limits.connections_per_address, limits.connection_rate_per_address,
                   limits.messages_per_minute, limits.recipients_per_minute)

    def open(self, client_ip: str, protocol: str) -> Lease | Refusal:
        """Count a new connection from ``client_ip``, or refuse it (too many open, or opened too fast)."""
        now = self._clock()
        if self._open[client_ip] >= self.connections_per_address:
            log.warning("limit", limit="connections_per_address", protocol=protocol, client=client_ip,
                        open=self._open[client_ip], ceiling=self.connections_per_address)
            return Refusal(f"Too many connections from your address (at most {self.connections_per_address} at "
                           "once); close some and try again", "connections_per_address")
        rate = self.connection_rate_per_address
        if rate and self._connections.total(client_ip, now) >= rate:
            log.warning("limit", limit="connection_rate_per_address", protocol=protocol, client=client_ip,
                        ceiling=self.connection_rate_per_address)
            return Refusal(f"Too many connections from your address in the last minute (at most "
                           f"{self.connection_rate_per_address}); try again in a minute",
                           "connection_rate_per_address")
        self._connections.add(client_ip, now, 1)
        self._open[client_ip] += 1
        return Lease(self, client_ip, protocol)

    def _closed(self, client_ip: str) -> None:
        self._open[client_ip] -= 1
        if self._open[client_ip] <= 0:
            del self._open[client_ip]

    def connections(self, client_ip: str) -> int:
        """Connections open from ``client_ip`` now."""
        return self._open.get(client_ip, 0)

    def allow_message(self, client_ip: str, mailbox_id: int, recipients: int) -> str | None:
        """Count one message with ``recipients`` recipients for the account; the refusal sentence, or None."""
        now = self._clock()
        messages = self._messages.total(mailbox_id, now)
        if self.messages_per_minute and messages + 1 > self.messages_per_minute:
            log.warning("limit", limit="messages_per_minute", client=client_ip, mailbox_id=mailbox_id,
                        ceiling=self.messages_per_minute)
            return (f"Too many messages from your account in the last minute (at most {self.messages_per_minute});"
                    " try again in a minute")
        sent = self._recipients.total(mailbox_id, now)
        if self.recipients_per_minute and sent + recipients > self.recipients_per_minute:
            log.warning("limit", limit="recipients_per_minute", client=client_ip, mailbox_id=mailbox_id,
                        ceiling=self.recipients_per_minute, recipients=recipients)
            return (f"Too many recipients from your account in the last minute (at most "
                    f"{self.recipients_per_minute}); try again in a minute")
        self._messages.add(mailbox_id, now, 1)
        self._recipients.add(mailbox_id, now, recipients)
        return None
