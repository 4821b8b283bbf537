"""The one PostgreSQL helper of the suite: the server of ``GATEWAY_TEST_POSTGRES_URL``, fresh databases on it,
and the skip when it is not set (CI sets it in .ci/setup.d/10-postgres.sh).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

#: The maintenance database of the test server (``postgresql+asyncpg://user@host:port/postgres``), or None.
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")


def server_url() -> str:
    """The test server's URL; skips the calling test when there is none."""
    if not POSTGRES_URL:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set (.ci/setup.d/10-postgres.sh sets it in CI)")
    return POSTGRES_URL


def url_of(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return f"{server_url().rsplit('/', 1)[0]}/{name}"


async def admin(statement: str) -> None:
    """Run one statement on the maintenance database (CREATE DATABASE cannot run inside a transaction)."""
    import asyncpg

    conn = await asyncpg.connect(server_url().replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def drop(name: str) -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def databases(count: int, prefix: str = "gw") -> Iterator[list[str]]:
    """``count`` fresh databases for one test, dropped afterwards (use with ``yield from`` in a fixture)."""
    server_url()
    names = [f"{prefix}_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for name in names:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield [url_of(name) for name in names]
    finally:
        for name in names:
            drop(name)


def database(prefix: str = "gw") -> Iterator[str]:
    """One fresh database for one test, dropped afterwards."""
    for urls in databases(1, prefix):
        yield urls[0]
