"""``[gateway] log_file``: every process of the daemon appends its JSON lines to one file, and SIGUSR1 (what
logrotate sends after moving the file away) makes each of them reopen it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from support.mail import PRO, PRO2
from support.process import GatewayProcess
from support.store import Store
from support.workers import PASSWORD, wait_until

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def _events(path: Path, name: str) -> list[dict[str, object]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(line.startswith("{") for line in lines), lines  # JSON lines only
    return [event for event in map(json.loads, lines) if event.get("event") == name]


def test_sigusr1_reopens_the_log_file_in_every_process(
        make_daemon: Callable[..., GatewayProcess], store: Store, tmp_path: Path) -> None:
    log_file = tmp_path / "gateway.log"
    daemon = make_daemon(log_file=str(log_file))
    daemon.start()
    wait_until(lambda: _events(log_file, "ready"), what="the ready line in the log file")
    rotated = tmp_path / "gateway.log.1"
    os.rename(log_file, rotated)
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGUSR1)
    wait_until(lambda: len(_events(log_file, "log_reopened")) == 3, what="the supervisor and both workers reopen")
    with daemon.smtp(PRO, PASSWORD) as client:
        client.sendmail(PRO, [PRO2], f"From: {PRO}\r\nTo: {PRO2}\r\nSubject: rotation\r\n\r\nTexte.\r\n".encode())
    wait_until(lambda: _events(log_file, "login"), what="the login line in the new file")
    assert not _events(rotated, "login")  # nothing is written to the rotated file any more
