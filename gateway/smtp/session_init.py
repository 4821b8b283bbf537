"""aiosmtpd's per-connection set-up, with its scans of the protocol class and the handler made once.

aiosmtpd's ``SMTP.__init__`` builds three tables on every connection — the AUTH mechanisms
(``inspect.getmembers`` of the protocol object and of the handler, which also evaluates every property), the
handler's hooks (``dir``) and the SMTP verbs (``dir``) — and reads the EHLO hook's signature: ~0.3 ms of the
event loop per connection, a sixth of its work when every message comes on a new connection. The tables depend
only on the protocol class and the handler, so :func:`init_session` finds their names once per pair and each
connection binds them; every other attribute is set as aiosmtpd sets it. tests/smtp/test_session_init.py
compares the result with aiosmtpd's own ``__init__``, so an aiosmtpd release that sets more fails there.

Only what the gateway passes is supported (no ``authenticator``/``auth_callback``, call limits or PROXY
protocol: those keep aiosmtpd's defaults, which refuse every AUTH mechanism the handler does not implement).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd import smtp as aiosmtpd


class QuietSession(aiosmtpd.Session):
    """aiosmtpd's session without the warning its legacy ``login_data`` field logs at every login (aiosmtpd
    sets it after each AUTH): a line through the logging machinery per login, for a field nobody reads."""

    @property  # type: ignore[override]
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


@dataclass(frozen=True)
class _Tables:
    """What aiosmtpd's scans find for one protocol class and handler: names to bind per connection."""

    #: (mechanism, attribute name, implemented by the protocol class rather than the handler)
    auth: tuple[tuple[str, str, bool], ...]
    hooks: dict[str, Any]  # the handler's bound ``handle_*`` methods, shared by its connections
    ehlo_hook_version: str | None
    verbs: tuple[tuple[str, str], ...]  # (verb, attribute name) of the ``smtp_*`` methods


_TABLES: weakref.WeakKeyDictionary[Any, dict[type, _Tables]] = weakref.WeakKeyDictionary()


def _scan(protocol: aiosmtpd.SMTP, handler: Any) -> _Tables:
    """aiosmtpd's scans, once: the handler's mechanisms replace the class's of the same name, as there."""
    auth: dict[str, tuple[str, bool]] = {}
    for owner, builtin in ((protocol, True), (handler, False)):
        for name, method in inspect.getmembers(type(owner) if builtin else owner):
            if name.startswith("auth_"):
                mechanism = getattr(method, "__auth_mechanism_name__", name.replace("auth_", "").replace("__", "-"))
                auth[mechanism] = (name, builtin)
    hooks = {name.replace("handle_", ""): getattr(handler, name) for name in dir(handler)
             if name.startswith("handle_")}
    version = None
    if "EHLO" in hooks:
        arity = len(inspect.signature(hooks["EHLO"]).parameters)
        if arity not in (4, 5):
            raise RuntimeError("Unsupported EHLO Hook")
        version = "old" if arity == 4 else "new"
    verbs = tuple((name.replace("smtp_", ""), name) for name in dir(type(protocol)) if name.startswith("smtp_"))
    return _Tables(tuple((m, n, b) for m, (n, b) in auth.items()), hooks, version, verbs)


def _tables(protocol: aiosmtpd.SMTP, handler: Any) -> _Tables:
    by_class = _TABLES.setdefault(handler, {})
    tables = by_class.get(type(protocol))
    if tables is None:
        tables = by_class[type(protocol)] = _scan(protocol, handler)
    return tables


def init_session(protocol: aiosmtpd.SMTP, handler: Any, *, data_size_limit: int | None = aiosmtpd.DATA_SIZE_DEFAULT,
                 enable_SMTPUTF8: bool = False, decode_data: bool = False, hostname: str | None = None,
                 ident: str | None = None, tls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False, timeout: float = 300, auth_required: bool = False,
                 auth_require_tls: bool = True, auth_exclude_mechanism: Iterable[str] | None = None) -> None:
    """Set ``protocol`` up as ``aiosmtpd.smtp.SMTP.__init__`` does with these arguments (see the module)."""
    protocol.__ident__ = ident or aiosmtpd.__ident__  # type: ignore[attr-defined]
    protocol.loop = loop = asyncio.get_running_loop()
    asyncio.StreamReaderProtocol.__init__(
        protocol, asyncio.StreamReader(loop=loop, limit=protocol.line_length_limit),
        client_connected_cb=protocol._cb_client_connected, loop=loop)
    protocol.event_handler = handler
    protocol.data_size_limit = data_size_limit
    protocol.enable_SMTPUTF8 = enable_SMTPUTF8
    protocol._decode_data = decode_data
    protocol.hostname = hostname or socket.getfqdn()
    protocol.tls_context = tls_context
    protocol.require_starttls = tls_context and require_starttls  # type: ignore[assignment]
    protocol._timeout_duration = timeout
    protocol._timeout_handle = None
    protocol._tls_handshake_okay = True
    protocol._tls_protocol = None
    protocol._original_transport = None
    protocol.session = None
    protocol.envelope = None
    protocol.transport = None
    protocol._handler_coroutine = None
    protocol._auth_require_tls = auth_require_tls
    protocol._proxy_timeout = None
    protocol._authenticator = None
    protocol._auth_callback = aiosmtpd.login_always_fail
    protocol._auth_required = auth_required
    tables = _tables(protocol, handler)
    excluded = set(auth_exclude_mechanism or ())
    protocol._auth_methods = {
        mechanism: aiosmtpd._AuthMechAttr(getattr(protocol if builtin else handler, name), builtin)
        for mechanism, name, builtin in tables.auth if mechanism not in excluded}
    protocol._handle_hooks = tables.hooks
    protocol._ehlo_hook_ver = tables.ehlo_hook_version
    protocol._smtp_methods = {verb: getattr(protocol, name) for verb, name in tables.verbs}
    protocol._enforce_call_limit = False
