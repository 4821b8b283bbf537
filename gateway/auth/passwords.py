"""Password hashes from a memory-hard KDF (Argon2id), verified off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106 second recommended option scaled to an interactive login: 64 MiB, 3 passes.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)
#: A hash to verify against when the account does not exist, so timing does not reveal which accounts exist.
_DUMMY = _HASHER.hash("no such account")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Check ``password`` against ``stored`` in a worker thread (Argon2 takes tens of milliseconds)."""
    return await asyncio.to_thread(_verify, stored, password)
