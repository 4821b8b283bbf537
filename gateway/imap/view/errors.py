"""What the mailbox view raises: each error is a sentence for the client and the IMAP response code to send.

``StoreUnavailable`` covers every database failure (connection lost, lock timeout, disk full): the transaction
that met it was rolled back, so nothing is half-written, and the engine answers ``NO [UNAVAILABLE]``
(RFC 5530 3). The domain errors carry the RFC 5530 code that fits them.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import SQLAlchemyError


class ViewError(Exception):
    """Base of the view's errors: ``text`` is shown to the client after the response ``code``."""

    code = "CANNOT"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        if code is not None:
            self.code = code


class StoreUnavailable(ViewError):
    """The store could not be read or written; nothing of the command was kept (RFC 5530 ``UNAVAILABLE``)."""

    code = "UNAVAILABLE"


class MailboxNotFound(ViewError):
    """No folder of that name in the account (RFC 5530 ``NONEXISTENT``)."""

    code = "NONEXISTENT"


class AlreadyExists(ViewError):
    """A folder of that name exists already (RFC 5530 ``ALREADYEXISTS``)."""

    code = "ALREADYEXISTS"


class OverQuota(ViewError):
    """The account's storage quota would be exceeded (RFC 9208 ``OVERQUOTA``)."""

    code = "OVERQUOTA"


class NotAllowed(ViewError):
    """The request is understood but refused (``CANNOT``, ``LIMIT`` or ``NOPERM`` per RFC 5530)."""

    code = "CANNOT"


def is_store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing (not our logic): driver and pool errors (sqlite3's too, from the
    view's one-hop statements), I/O (disk full, network)."""
    return isinstance(exc, SQLAlchemyError | sqlite3.Error | OSError | TimeoutError)


@asynccontextmanager
async def unavailable_on_failure(action: str) -> AsyncIterator[None]:
    """Turn a database failure inside the block into :class:`StoreUnavailable` (domain errors pass through)."""
    try:
        yield
    except ViewError:
        raise
    except Exception as exc:
        if is_store_failure(exc):
            raise StoreUnavailable(f"The mail store is unavailable ({action}); please try again later.") from exc
        raise
