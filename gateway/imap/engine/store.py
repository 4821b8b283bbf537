"""How store outcomes become IMAP answers (RFC 5530 response codes).

The view package raises :class:`~gateway.imap.view.errors.ViewError` subclasses carrying their code
(``StoreUnavailable`` → ``UNAVAILABLE``, ``MailboxNotFound`` → ``NONEXISTENT``...). A database error that
escapes it is treated the same as ``StoreUnavailable``: ``NO [UNAVAILABLE]``, and the client may retry.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from gateway.imap.engine.state import No
from gateway.imap.view.errors import ViewError, is_store_failure

UNAVAILABLE = "The mail store is unavailable; please try again later."


def is_store_error(exc: BaseException) -> bool:
    return isinstance(exc, ViewError) or is_store_failure(exc)


def translate(exc: BaseException) -> No:
    """The tagged ``NO`` for a store outcome."""
    if isinstance(exc, ViewError):
        return No(exc.text or UNAVAILABLE, exc.code)
    return No(UNAVAILABLE, "UNAVAILABLE")
