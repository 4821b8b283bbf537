"""The supervisor (``gateway serve`` with ``[gateway] workers`` above 1), like Postfix's master or Dovecot's.

It migrates the store once, binds every listener once (see gateway/process/loop.py for why binding here and
not ``SO_REUSEPORT`` in each worker), starts N worker processes with ``fork``+``exec`` of ``gateway worker``
handing them the sockets, and then:

* relays what each worker's channel says to the others (change wake-ups, the whitelist);
* logs ``ready`` once every worker listens (the line scripts and tests wait for);
* restarts a worker that dies (with a growing pause if it keeps dying young); the others keep serving, and the
  listening sockets keep queueing connections meanwhile;
* SIGTERM/SIGINT: closes its copy of the sockets, forwards SIGTERM to the workers (each drains: DATA
  transactions finish within ``[gateway] stop_grace``, idle sessions get ``421``, IMAP gets ``BYE``), exits 0;
* SIGHUP: reads the file again; an invalid one is refused in one log sentence naming the key and the running
  configuration stays; a valid one is sent to every worker, which applies it without closing sessions.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gateway import logs
from gateway.config import Config, ConfigError
from gateway.ops import multiprocess
from gateway.process.channel import Channel
from gateway.process.loop import bind, key, listen_addresses, named_listeners
from gateway.process.reload import read_config, restart_keys
from gateway.store import db

log = structlog.get_logger("gateway.process")

#: A worker that lived less than this is "dying young": its restarts wait longer each time.
YOUNG = 10.0
#: Longest pause before restarting a worker that keeps dying young.
MAX_RESTART_PAUSE = 10.0
#: Seconds past ``stop_grace`` a worker has to finish stopping before it is killed.
STOP_MARGIN = 10.0


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process
    channel: Channel
    started: float
    ready: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class Supervisor:
    """Starts, watches, restarts and stops the worker processes of one daemon."""

    def __init__(self, path: Path, text: str, config: Config, on_ready: Callable[[], None] | None = None) -> None:
        self.path = path
        self.text = text
        self.config = config
        self.on_ready = on_ready
        self.sockets: dict[str, socket.socket] = {}
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        self.failure = 0
        self._young_deaths: dict[int, int] = {}
        self._trusted: dict[str, Any] | None = None
        #: The workers' common key for their verified-credential caches (gateway/auth/cache.py); memory only.
        self._cache_secret = secrets.token_bytes(32)
        self._stop = asyncio.Event()
        self._all_ready = asyncio.Event()
        self._worker0_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def reopen_logs(self) -> None:
        """SIGUSR1 (after logrotate): this process and every worker reopen the log file."""
        logs.reopen()
        for worker in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGUSR1)

    # --- run ------------------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn_task(self.reload()))
        loop.add_signal_handler(signal.SIGUSR1, self.reopen_logs)
        await db.migrate(self.config.database_url)  # once, before any worker opens the store
        names = named_listeners(self.config)
        for listen in listen_addresses(self.config):
            self.sockets[key(listen)] = bind(listen, names.get(key(listen)))
        count = self.config.workers
        await self._start(0)
        if self.config.whitelist is not None:  # the others start with the domains worker 0 loaded
            await _first(self._worker0_ready.wait(), self._stop.wait())
        for index in range(1, count):
            if not self.stopping:
                await self._start(index)
        await _first(self._all_ready.wait(), self._stop.wait())
        if not self.stopping:
            log.info("ready", hostname=self.config.hostname, workers=count,
                     pids=[w.process.pid for w in self.workers.values()])
            if self.on_ready is not None:
                self.on_ready()
        await self._stop.wait()
        await self._wait_workers()
        for task in list(self._tasks):
            task.cancel()
        log.info("stopped", status=self.failure)
        return self.failure

    def request_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping", workers=len(self.workers), grace=self.config.stop_grace)
        for sock in self.sockets.values():  # the workers' copies serve until each has drained
            sock.close()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        self._stop.set()

    async def _wait_workers(self) -> None:
        deadline = time.monotonic() + self.config.stop_grace + STOP_MARGIN
        for worker in list(self.workers.values()):
            try:
                await asyncio.wait_for(worker.process.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("worker_killed", worker=worker.index, pid=worker.process.pid,
                            reason="still running after stop_grace")
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()

    # --- workers --------------------------------------------------------------------------------------------
    async def _start(self, index: int) -> None:
        ours, theirs = socket.socketpair()
        listen = [f"{name}={sock.fileno()}" for name, sock in self.sockets.items()]
        args = [sys.executable, "-m", "gateway.cli", "worker", "--config", str(self.path), "--index", str(index),
                "--channel", str(theirs.fileno()), "--parent", str(os.getpid())]
        for item in listen:
            args += ["--listen", item]
        try:
            process = await asyncio.create_subprocess_exec(
                *args, pass_fds=[theirs.fileno(), *(s.fileno() for s in self.sockets.values())],
                stdin=asyncio.subprocess.DEVNULL)
        finally:
            theirs.close()
        channel = await Channel.open(ours)
        channel.send(self._config_message("config"))
        channel.send({"t": "credentials", "secret": self._cache_secret.hex()})
        if self._trusted is not None:
            channel.send(self._trusted)
        channel.send({"t": "started"})
        worker = Worker(index, process, channel, time.monotonic())
        self.workers[index] = worker
        worker.tasks = [self._spawn_task(self._read(worker)), self._spawn_task(self._watch(worker))]
        log.info("worker_started", worker=index, pid=process.pid)

    def _config_message(self, kind: str) -> dict[str, Any]:
        return {"t": kind, "text": self.text, "base": str(self.path.parent.resolve()), "name": str(self.path)}

    async def _read(self, worker: Worker) -> None:
        while (message := await worker.channel.receive()) is not None:
            kind = message["t"]
            if kind == "ready":
                worker.ready = True
                if worker.index == 0:
                    self._worker0_ready.set()
                if len(self.workers) == self.config.workers and all(w.ready for w in self.workers.values()):
                    self._all_ready.set()
            elif kind in ("changed", "trusted", "verified"):
                if kind == "trusted":
                    self._trusted = message
                for other in self.workers.values():
                    if other is not worker:
                        other.channel.send(message)

    async def _watch(self, worker: Worker) -> None:
        status = await worker.process.wait()
        multiprocess.worker_exited(worker.process.pid)  # its live gauges leave the scrape
        await worker.channel.close()
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if self.stopping:
            return
        if not self._all_ready.is_set() and not worker.ready:
            # It could not start (a listener, the schema...): it said why; the daemon does not start either.
            log.error("worker_failed", worker=worker.index, pid=worker.process.pid, status=status)
            self.failure = status if status and status > 0 else 1
            self.request_stop()
            return
        lived = time.monotonic() - worker.started
        young = self._young_deaths.get(worker.index, 0) + 1 if lived < YOUNG else 0
        self._young_deaths[worker.index] = young
        pause = min(MAX_RESTART_PAUSE, 0.25 * 2 ** young) if young else 0.0
        log.warning("worker_exited", worker=worker.index, pid=worker.process.pid, status=status,
                    restart_in=pause)
        if pause:
            await _first(asyncio.sleep(pause), self._stop.wait())
        if not self.stopping:
            await self._start(worker.index)

    # --- reload ---------------------------------------------------------------------------------------------
    async def reload(self) -> None:
        try:
            text, new = await asyncio.to_thread(read_config, self.path)
        except ConfigError as exc:
            log.error("reload_refused", reason=str(exc))
            return
        needs_restart = restart_keys(self.config, new)
        self.text, self.config = text, new if not needs_restart else self._keep_fixed(new)
        for worker in self.workers.values():
            worker.channel.send(self._config_message("reload"))
        log.info("reload", workers=len(self.workers))

    def _keep_fixed(self, new: Config) -> Config:
        """What the supervisor itself goes on using: the worker count and stop grace it started with."""
        import dataclasses

        return dataclasses.replace(new, workers=self.config.workers)

    def _spawn_task(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


def serve(path: Path, text: str, config: Config, on_ready: Callable[[], None] | None = None) -> int:
    """Run the supervisor until it stops; its exit status."""
    return asyncio.run(Supervisor(path, text, config, on_ready).run())
