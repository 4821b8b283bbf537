"""The mailbox directory as routing sees it: address → (id, kind, active), cached for a few seconds.

Every RCPT needs to know whether a local address exists; asking the database each time costs more than the
rest of the transaction. Entries live ``TTL`` seconds, so a mailbox added, disabled or re-enabled from the
command line (or by another gateway process) is seen by every process within that time. Rule state that
changes quickly (conversations, identity status) is never cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Mailbox

TTL = 5.0
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    active: bool


class Directory:
    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Entry | None]] = {}

    async def lookup(self, session: AsyncSession, address: str) -> Entry | None:
        address = address.lower()
        now = time.monotonic()
        cached = self._entries.get(address)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = (await session.execute(
            select(Mailbox.id, Mailbox.kind, Mailbox.active).where(Mailbox.address == address))).one_or_none()
        entry = Entry(row.id, row.kind, row.active) if row is not None else None
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[address] = (now + self.ttl, entry)
        return entry


#: One directory per process; tests and tools that need fresh answers construct their own with ttl=0.
DIRECTORY = Directory()
