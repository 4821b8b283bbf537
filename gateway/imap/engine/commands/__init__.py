"""Command handlers by command class, with the states each is allowed in (RFC 9051 6).

Each entry is ``(handler, states, updates)``: ``updates`` is None when no untagged mailbox updates follow the
command, True when they may include expunges, False when they must not (FETCH, STORE, SEARCH by sequence
number: RFC 9051 7.5.1 — an EXPUNGE would shift the numbers the client is using).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.imap.engine.commands import auth, fetch, mailboxes, messages, misc
from gateway.imap.engine.commands import select as selecting
from gateway.imap.engine.state import ANY, AUTHENTICATED, NOT_AUTHENTICATED, SELECTED, State
from gateway.imap.proto import commands as c

Handler = Callable[[Any, Any], Awaitable[Any]]

HANDLERS: dict[type, tuple[Handler, frozenset[State], bool | None]] = {
    c.Capability: (misc.capability, ANY, True),
    c.Noop: (misc.noop, ANY, True),
    c.Logout: (misc.logout, ANY, None),
    c.Id: (misc.id_, ANY, True),
    c.StartTLS: (auth.starttls, NOT_AUTHENTICATED, None),
    c.Login: (auth.login, NOT_AUTHENTICATED, None),
    c.Authenticate: (auth.authenticate, NOT_AUTHENTICATED, None),
    c.Enable: (misc.enable, AUTHENTICATED, None),
    c.Namespace: (misc.namespace, AUTHENTICATED, True),
    c.Compress: (misc.compress, AUTHENTICATED, None),
    c.Select: (selecting.select, AUTHENTICATED, None),
    c.Check: (misc.noop, SELECTED, True),
    c.Close: (selecting.close, SELECTED, None),
    c.Unselect: (selecting.unselect, SELECTED, None),
    c.Create: (mailboxes.create, AUTHENTICATED, True),
    c.Delete: (mailboxes.delete, AUTHENTICATED, True),
    c.Rename: (mailboxes.rename, AUTHENTICATED, True),
    c.Subscribe: (mailboxes.subscribe, AUTHENTICATED, True),
    c.Unsubscribe: (mailboxes.unsubscribe, AUTHENTICATED, True),
    c.List: (mailboxes.list_, AUTHENTICATED, True),
    c.Status: (mailboxes.status, AUTHENTICATED, True),
    c.Append: (messages.append, AUTHENTICATED, True),
    c.Idle: (messages.idle, AUTHENTICATED, None),
    c.GetQuota: (mailboxes.getquota, AUTHENTICATED, True),
    c.GetQuotaRoot: (mailboxes.getquotaroot, AUTHENTICATED, True),
    c.SetQuota: (mailboxes.setquota, AUTHENTICATED, True),
    c.Fetch: (fetch.fetch, SELECTED, False),
    c.Store: (messages.store, SELECTED, False),
    c.Search: (messages.search, SELECTED, False),
    c.Sort: (messages.sort, SELECTED, False),
    c.Thread: (messages.thread, SELECTED, False),
    c.Copy: (messages.copy, SELECTED, True),
    c.Move: (messages.move, SELECTED, True),
    c.Expunge: (messages.expunge, SELECTED, True),
}
