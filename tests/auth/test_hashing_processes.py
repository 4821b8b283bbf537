"""The password-hashing processes: one share of the cores per daemon process, and none left behind by a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from gateway.auth import hashing

ROOT = Path(__file__).resolve().parents[2]

DAEMON = """
import asyncio, os, sys
from gateway.auth import hashing
async def main():
    await hashing.start()
    stored = hashing.hash_sync("secret")
    assert await hashing.verify(stored, "secret")
    print(" ".join(str(c.pid) for c in __import__("psutil").Process().children()), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_hashing_processes_end_with_a_daemon_killed_by_sigkill() -> None:
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert daemon.stdout is not None
    children = [int(pid) for pid in daemon.stdout.readline().split()]
    assert children, "the daemon started no hashing process"
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait()
    deadline = time.monotonic() + 3 * hashing.ORPHAN_CHECK + 10
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        time.sleep(0.05)  # polling with a deadline: the orphans notice within ORPHAN_CHECK
    assert alive == [], f"hashing processes outlived their daemon: {alive}"


def test_daemon_workers_share_the_cores_between_their_hashers() -> None:
    cores = len(os.sched_getaffinity(0))
    try:
        hashing.share_cores(cores)
        assert hashing.workers() == 1
        hashing.share_cores(1)
        assert hashing.workers() == cores
    finally:
        hashing.share_cores(1)
