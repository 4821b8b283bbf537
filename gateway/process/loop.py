"""The daemon's event loop: listeners get the sockets the supervisor bound, and every connection is known.

Why the supervisor binds (instead of each worker binding with ``SO_REUSEPORT``): an inherited socket works on
every platform, ports given as 0 resolve once for all workers, the port keeps accepting (into its backlog)
while a worker is being replaced, and a worker that dies takes no queued connection with it (with
``SO_REUSEPORT`` the kernel hashes connections to one worker's own queue, lost when it dies).

The listeners (SMTP, relay, IMAP, card endpoint) keep asking for ``host:port``; :class:`DaemonLoop` hands them
the inherited socket for that address, so no listener needs to know how many processes there are. The loop
also keeps its servers and a weak set of the protocols it created, which the graceful stop walks (SMTP
sessions get ``421``, see :meth:`gateway.app.Gateway.drain`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
import weakref
from typing import Any

from gateway.config import Config, ConfigError, Listen

#: Pending connections a listening socket holds while every worker is busy (or being restarted).
BACKLOG = 1024
#: How long binding waits for a port still held by a previous daemon's dying workers.
BIND_PATIENCE = 3.0


def listen_addresses(config: Config) -> list[Listen]:
    """The listeners every worker serves (the card endpoint is worker 0's alone and binds there)."""
    found = [config.submission, config.submissions, config.imap, config.imaps,
             config.relay.listen if config.relay is not None else None,
             config.metrics.listen if config.metrics is not None else None,
             config.autoconfig.listen if config.autoconfig is not None else None,
             config.web.listen if config.web is not None else None,
             config.hl7.listen if config.hl7 is not None else None]
    return [listen for listen in found if listen is not None]


class ListenerError(ConfigError):
    """A listener that cannot be bound (port in use, permission, unknown host), as one sentence naming its key."""

    @classmethod
    def of(cls, name: str | None, listen: Listen, exc: OSError) -> ListenerError:
        if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
            reason = os.strerror(exc.errno)  # asyncio's own text repeats the address
        else:
            reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
        reason = reason[:1].lower() + reason[1:]
        subject = f"Configuration key '{name}' names" if name else "A listener has"
        return cls(f"{subject} an address the gateway cannot listen on ({listen}: {reason}).")


def named_listeners(config: Config) -> dict[str, str]:
    """The configuration key of every listener, by :func:`key` of its address (for the sentences above)."""
    found = [("smtp.submission", config.submission), ("smtp.submissions", config.submissions),
             ("imap.listen", config.imap), ("imap.listen_tls", config.imaps),
             ("relay.listen", config.relay.listen if config.relay is not None else None),
             ("metrics.listen", config.metrics.listen if config.metrics is not None else None),
             ("autoconfig.listen", config.autoconfig.listen if config.autoconfig is not None else None),
             ("web.listen", config.web.listen if config.web is not None else None),
             ("hl7.listen", config.hl7.listen if config.hl7 is not None else None),
             ("card.listen", config.card.listen if config.card is not None else None)]
    return {key(listen): name for name, listen in reversed(found) if listen is not None}


def bind(listen: Listen, name: str | None = None) -> socket.socket:
    """A listening TCP socket on the first address ``listen.host`` resolves to; :class:`ListenerError` if not."""
    try:
        return _bind(listen)
    except OSError as exc:
        raise ListenerError.of(name, listen, exc) from None


def _bind(listen: Listen) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    deadline = time.monotonic() + BIND_PATIENCE
    while True:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        sock.listen(BACKLOG)
        return sock


def key(listen: Listen) -> str:
    return f"{listen.host}|{listen.port}"


class DaemonLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``create_server`` uses inherited sockets and records servers and protocols."""

    def __init__(self, inherited: dict[str, socket.socket] | None = None,
                 names: dict[str, str] | None = None) -> None:
        super().__init__()
        self.inherited = dict(inherited or {})
        #: Configuration keys by address (:func:`named_listeners`), for a bind failure's sentence.
        self.names = dict(names or {})
        self.servers: list[asyncio.AbstractServer] = []
        self.protocols: weakref.WeakSet[Any] = weakref.WeakSet()

    async def create_server(self, protocol_factory: Any, host: Any = None, port: Any = None,
                            **kwargs: Any) -> asyncio.Server:
        if kwargs.get("sock") is None and isinstance(host, str) and isinstance(port, int):
            sock = self.inherited.pop(key(Listen(host, port)), None)  # the server owns it from now on
            if sock is not None:
                host = port = None
                kwargs["sock"] = sock
                for name in ("reuse_address", "reuse_port", "family", "flags"):
                    kwargs.pop(name, None)

        def factory() -> Any:
            protocol = protocol_factory()
            with contextlib.suppress(TypeError):  # aiohttp's handlers have __slots__ and no weak reference
                self.protocols.add(protocol)
            return protocol

        try:
            server = await super().create_server(factory, host, port, **kwargs)
        except OSError as exc:
            if not (isinstance(host, str) and isinstance(port, int)):
                raise
            listen = Listen(host, port)
            raise ListenerError.of(self.names.get(key(listen)), listen, exc) from None
        self.servers.append(server)
        return server
