"""The optional RCPT check (``[directory] check_recipients``): a remote MSSanté address must be published.

Off by default because the directory lags behind the whitelist: a mailbox opened this morning at another
operator may not be published yet. When on, a remote professional address the Annuaire Santé does not publish
is refused with 550 5.1.1 (RFC 3463: bad destination mailbox address). When the directory cannot answer, the
recipient is accepted and the event logged: an outage of the directory must not stop mail.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.config.directory import DirectorySettings
from gateway.directory import client as directory_client
from gateway.directory.client import DirectoryClient, DirectoryError

log = structlog.get_logger("gateway.directory.recipients")

#: One client per settings and event loop (its connection pool belongs to the loop), shared by every session.
_clients: dict[tuple[DirectorySettings, int], DirectoryClient] = {}


def client_for(settings: DirectorySettings) -> DirectoryClient:
    """This event loop's client for ``settings``."""
    key = (settings, id(asyncio.get_running_loop()))
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = directory_client.client_for(settings)
    return client


async def is_published(settings: DirectorySettings, address: str) -> bool | None:
    """Whether the directory publishes ``address``; None when it cannot tell now."""
    try:
        owner = await client_for(settings).mailbox(address)
    except DirectoryError as exc:
        log.warning("directory.rcpt_check", outcome="unknown", reason=str(exc)[:200])
        return None
    log.info("directory.rcpt_check", outcome="published" if owner else "not_published",
             domain=address.rpartition("@")[2])
    return owner is not None
