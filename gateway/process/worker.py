"""One worker process (``gateway worker``, started by the supervisor, never by hand).

It serves the listeners on the sockets it inherited, over the configuration text the supervisor sent (the one
the supervisor accepted, even if the file changed since), and runs the once-only work when it is worker 0.
SIGTERM drains it (:meth:`gateway.app.Gateway.drain`); reloads arrive on the channel. A worker dies with its
supervisor (``PR_SET_PDEATHSIG`` on Linux, end of the channel elsewhere), so a killed daemon leaves no process
holding its ports.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateway import logs
from gateway.config import ConfigError
from gateway.process.channel import Channel
from gateway.process.heap import start_serving_heap
from gateway.process.loop import DaemonLoop, named_listeners
from gateway.process.reload import check_tls, parse_text
from gateway.process.shared import SharedHub, SharedTrusted
from gateway.store import db
from gateway.tasks import run_once_workers_here

log = structlog.get_logger("gateway.process")

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when the supervisor dies (Linux); exit now if it is gone already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def forget_in_children(fds: list[int]) -> None:
    """Processes this one forks (the password-hashing pool) keep none of ``fds`` (listening sockets, channel)
    and die with it: a killed worker or daemon must free its ports and leave nothing behind."""

    def in_child() -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    os.register_at_fork(after_in_child=in_child)


def line_stderr() -> None:
    """One write per log line, so the lines of several processes sharing stderr never interleave."""
    import io

    raw = io.FileIO(2, "w", closefd=False)
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(raw, 1 << 16), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)


def main(index: int, channel_fd: int, listen: list[str], parent: int, make_gateway: Callable[..., Any]) -> int:
    """Run worker ``index``; ``listen`` holds ``key=fd`` pairs of the inherited listening sockets.

    ``make_gateway`` is :class:`gateway.app.Gateway`, handed in by the command line: the process package sits
    below the application it runs and does not import it.
    """
    die_with_parent(parent)
    # Reloads and stops come from the supervisor; a terminal's SIGINT/SIGHUP to the process group must not
    # stop a worker behind the supervisor's back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    line_stderr()
    inherited = {}
    for item in listen:
        name, _, fd = item.rpartition("=")
        inherited[name] = socket.socket(fileno=int(fd))
    channel_sock = socket.socket(fileno=channel_fd)
    forget_in_children([channel_fd, *(s.fileno() for s in inherited.values())])
    with asyncio.Runner(loop_factory=lambda: DaemonLoop(inherited)) as runner:
        return runner.run(_serve(index, channel_sock, make_gateway))


async def _serve(index: int, channel_sock: socket.socket, make_gateway: Callable[..., Any]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, logs.reopen)  # log rotation
    channel = await Channel.open(channel_sock)
    first = await channel.receive()
    if first is None or first.get("t") != "config":
        return 1
    try:
        config = parse_text(str(first["text"]), Path(str(first["base"])), str(first.get("name", "")))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if isinstance(loop, DaemonLoop):  # a listener bound here (the card endpoint) is named by key if it fails
        loop.names.update(named_listeners(config))
    logs.configure(config.log_level, path=config.log_file)
    structlog.contextvars.bind_contextvars(worker=index)  # each log line says which worker wrote it
    hub = SharedHub(channel.send, folders=db.is_sqlite(config.database_url))
    trusted = SharedTrusted(channel.send)
    config = dataclasses.replace(config, trusted=trusted)
    run_once_workers_here(index == 0)
    gateway = make_gateway(config, once=index == 0, hub=hub, migrate=False)
    started = asyncio.Event()
    gone = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def apply(message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "changed":
            hub.apply_changed(message.get("ids"))
        elif kind == "trusted":
            trusted.apply_trusted(message.get("domains"))
        elif kind == "verified":
            gateway.authenticator.cache.apply_verified(message)
        elif kind == "credentials" and isinstance(message.get("secret"), str):
            gateway.authenticator.cache.share(channel.send, bytes.fromhex(message["secret"]))
        elif kind == "started":
            started.set()
        elif kind == "reload":
            task = loop.create_task(_reload(gateway, message))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    async def read() -> None:
        while (message := await channel.receive()) is not None:
            apply(message)
        gone.set()

    reader = loop.create_task(read())
    await _first(started.wait(), gone.wait())
    try:
        await gateway.start()
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gateway: cannot start a listener: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    heap = start_serving_heap()
    channel.send({"t": "ready"})
    log.info("worker_ready", worker=index, pid=os.getpid(), once_only_work=index == 0)
    await _first(stop.wait(), gone.wait())
    if not stop.is_set():  # the supervisor is gone (killed): stop accepting and go, like it
        log.warning("supervisor_gone", worker=index)
        for server in getattr(loop, "servers", ()):
            server.close()
        os._exit(1)
    log.info("worker_stopping", worker=index, grace=gateway.config.stop_grace)
    await gateway.drain(gateway.config.stop_grace)
    await gateway.stop()
    heap.cancel()
    reader.cancel()
    await channel.close()
    log.info("worker_stopped", worker=index)
    return 0


async def _reload(gateway: Any, message: dict[str, Any]) -> None:
    try:
        new = parse_text(str(message["text"]), Path(str(message["base"])), str(message.get("name", "")))
        check_tls(new)
    except ConfigError as exc:  # the supervisor checked it; a file that vanished since is still refused here
        log.error("reload_refused", reason=str(exc))
        return
    await gateway.reload(new)


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
