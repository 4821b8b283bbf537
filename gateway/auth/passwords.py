"""Password hashes from a memory-hard KDF (Argon2id), verified off the event loop (see :mod:`.hashing`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from gateway.auth import hashing
from gateway.auth.hashing import DEFAULT_PARAMS, Argon2Params

#: Verified when the account does not exist or has no password, so timing does not reveal which accounts exist.
_DUMMIES: dict[Argon2Params, str] = {}


def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """Hash in this process: for administration commands and tests, not for the daemon's event loop."""
    return hashing.hash_sync(password, params)


async def _dummy(params: Argon2Params) -> str:
    dummy = _DUMMIES.get(params)
    if dummy is None:
        dummy = _DUMMIES[params] = await hashing.hash_password("no such account", params)
    return dummy


async def verify_password(stored: str | None, password: str, params: Argon2Params = DEFAULT_PARAMS) -> bool:
    """Check ``password`` against ``stored`` in a worker process; no hash (no account) costs the same and fails."""
    if stored is None:
        await hashing.verify(await _dummy(params), password)
        return False
    return await hashing.verify(stored, password)
