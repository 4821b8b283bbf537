"""Metrics across worker processes: the folder prometheus_client's multiprocess mode shares between them.

prometheus_client chooses where values live when it is first imported, so the folder must be in the
environment before any worker imports it: the supervisor calls :func:`prepare` before it starts the workers
(they inherit the environment through ``exec``), :func:`worker_exited` when one dies, and :func:`finish` when
it stops. This module imports prometheus_client only inside :func:`worker_exited`, so calling :func:`prepare`
first is always early enough.

The folder is ``$PROMETHEUS_MULTIPROC_DIR`` when the service sets it (deploy/gateway.service uses
``/run/gateway/metrics``), otherwise a private temporary folder made for this daemon. Its files are removed at
start: counters start from zero with each daemon, as Prometheus expects of a restarted target.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from gateway.config import Config

ENV = "PROMETHEUS_MULTIPROC_DIR"
_made: Path | None = None


def prepare(config: Config) -> Path | None:
    """Set up the shared folder for a daemon with ``[metrics]``: the one the environment names (any number of
    workers), or a temporary one for several workers; None when this process may keep values in memory.

    Call it before anything imports prometheus_client in this process (``gateway serve`` does it first).
    """
    global _made
    if config.metrics is None:
        return None
    given = os.environ.get(ENV)
    if given:
        folder = Path(given)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # values of a previous daemon
            stale.unlink(missing_ok=True)
        return folder
    if config.workers <= 1:
        return None
    folder = _made = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    os.environ[ENV] = str(folder)
    return folder


def worker_exited(pid: int) -> None:
    """Forget the live gauges (open IMAP sessions) of a worker that died; its counters stay counted."""
    if not os.environ.get(ENV):
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid)


def finish() -> None:
    """Remove the folder :func:`prepare` made (a folder the service named is left to the service)."""
    global _made
    if _made is not None:
        shutil.rmtree(_made, ignore_errors=True)
        os.environ.pop(ENV, None)
        _made = None
