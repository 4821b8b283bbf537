"""State that workers of one daemon share through the supervisor: change wake-ups and the whitelist.

Each class is the in-process object the rest of the gateway already uses, plus a ``send`` of what changed
here; what arrives from the other workers is applied with the ``apply_*`` methods, which do not send again.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gateway.config import TrustedDomains
from gateway.store.changes import ChangeHub

Send = Callable[[dict[str, Any]], None]
#: Most ids taken from one ``changed`` message.
MAX_IDS = 10_000


class SharedHub(ChangeHub):
    """A :class:`ChangeHub` whose publications also reach the other workers' hubs.

    On PostgreSQL folder ids already travel by ``NOTIFY`` (gateway/imap/changes.py), so only the wake-up
    channels (ids below 1, e.g. the outbound queue's) are sent; on SQLite everything is, which wakes an IDLE
    client of another worker within milliseconds instead of the 0.1 s poll.
    """

    def __init__(self, send: Send, *, folders: bool) -> None:
        super().__init__()
        self._send = send
        self._folders = folders

    def publish(self, folder_ids: Iterable[int]) -> None:
        ids = list(folder_ids)
        super().publish(ids)
        shared = ids if self._folders else [i for i in ids if i <= 0]
        if shared:
            self._send({"t": "changed", "ids": shared})

    def apply_changed(self, ids: Any) -> None:
        if isinstance(ids, list):
            ChangeHub.publish(self, [i for i in ids[:MAX_IDS] if isinstance(i, int) and not isinstance(i, bool)])


class SharedTrusted(TrustedDomains):
    """The whitelist in effect: refreshed by worker 0's loader, the same set replaced in every worker."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self._send = send

    def replace(self, domains: frozenset[str]) -> None:
        super().replace(domains)
        self._send({"t": "trusted", "domains": sorted(domains)})

    def apply_trusted(self, domains: Any) -> None:
        if isinstance(domains, list):
            TrustedDomains.replace(self, frozenset(d for d in domains if isinstance(d, str)))
