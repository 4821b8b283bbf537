"""Liveness and readiness: what ``/healthz`` and ``/readyz`` answer.

Alive means the process answers HTTP. Ready means it can take mail now: the store answers within a second, its
schema is at the newest migration of this code (every alembic head is in ``alembic_version``), and every
listener the configuration asks for is bound (:class:`Listeners`, filled by the daemon as it starts them and
emptied when it drains, so a load balancer stops sending connections before a stop).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Config
from gateway.store import db

#: Seconds the readiness probe waits for the store.
DATABASE_TIMEOUT = 1.0


class Listeners:
    """The listeners one process is expected to serve, and which of them are bound now."""

    def __init__(self, expected: Iterable[str] = ()) -> None:
        self.expected: set[str] = set(expected)
        self.bound: dict[str, str] = {}
        self.draining = False

    @classmethod
    def from_config(cls, config: Config, *, once: bool = True) -> Listeners:
        """Expect the listeners ``config`` names (the card endpoint only where the once-only work runs)."""
        found = {"submission": config.submission, "submissions": config.submissions, "imap": config.imap,
                 "imaps": config.imaps, "relay": config.relay.listen if config.relay is not None else None,
                 "card": config.card.listen if config.card is not None and once else None,
                 "hl7": config.hl7.listen if config.hl7 is not None else None}
        return cls(name for name, listen in found.items() if listen is not None)

    def expect(self, name: str) -> None:
        self.expected.add(name)

    def up(self, name: str, address: object = "") -> None:
        """``name`` is bound and accepting (at ``address``)."""
        self.bound[name] = str(address)

    def down(self, name: str) -> None:
        self.bound.pop(name, None)

    def drain(self) -> None:
        """The daemon is stopping: not ready any more, whatever is still bound."""
        self.draining = True

    def missing(self) -> list[str]:
        return sorted(self.expected - set(self.bound))


@dataclass
class Readiness:
    ok: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def migration_heads() -> frozenset[str]:
    """The newest revision of every branch of the store's migrations (gateway/store/migrations)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(db.MIGRATIONS)).get_heads())


async def _versions(sessions: async_sessionmaker[AsyncSession]) -> tuple[bool, frozenset[str] | None]:
    """(store answers, revisions in alembic_version or None when the table is absent)."""
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
        connection = await session.connection()
        if not await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
            return True, None  # never migrated
        rows = await session.execute(text("SELECT version_num FROM alembic_version"))
        return True, frozenset(str(v) for v in rows.scalars().all())


async def readiness(sessions: async_sessionmaker[AsyncSession], listeners: Listeners, heads: frozenset[str],
                    within: float = DATABASE_TIMEOUT) -> Readiness:
    """Check the store, its schema and the listeners; details name what is wrong, never a URL or a password."""
    checks: dict[str, dict[str, Any]] = {}
    versions: frozenset[str] | None = None
    try:
        async with asyncio.timeout(within):
            _, versions = await _versions(sessions)
        checks["database"] = {"ok": True}
    except TimeoutError:
        checks["database"] = {"ok": False, "detail": f"no answer within {within:g} s"}
    except Exception as exc:
        checks["database"] = {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}
    if not checks["database"]["ok"]:
        checks["migrations"] = {"ok": False, "detail": "unknown while the database is unreachable"}
    elif versions is None:
        checks["migrations"] = {"ok": False, "detail": "the store was never migrated"}
    elif versions != heads:
        checks["migrations"] = {"ok": False, "detail": "the store is not at the newest migration",
                                "missing": sorted(heads - versions), "unknown": sorted(versions - heads)}
    else:
        checks["migrations"] = {"ok": True}
    missing = listeners.missing()
    if listeners.draining:
        checks["listeners"] = {"ok": False, "detail": "stopping"}
    elif missing:
        checks["listeners"] = {"ok": False, "detail": "not listening yet", "missing": missing}
    else:
        checks["listeners"] = {"ok": True, "bound": sorted(listeners.bound)}
    return Readiness(all(check["ok"] for check in checks.values()), checks)
