"""The password-hashing pool: threads of the daemon process (no process to leave behind or to grow), one share
of the cores per daemon process, concurrent hashes each answered right."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from gateway.auth import hashing
from gateway.auth.hashing import Argon2Params

ROOT = Path(__file__).resolve().parents[2]
CHEAP = Argon2Params(memory_kib=1024, time_cost=1)

DAEMON = """
import asyncio, threading
import psutil
from gateway.auth import hashing
async def main():
    await hashing.start()
    stored = await hashing.hash_password("secret")
    assert await hashing.verify(stored, "secret") and not await hashing.verify(stored, "wrong")
    names = sorted(t.name.split("_")[0] for t in threading.enumerate() if t.name.startswith("argon2"))
    print(len(psutil.Process().children(recursive=True)), names[0] if names else "-", flush=True)
    hashing.shutdown()
asyncio.run(main())
"""


def test_hashes_run_on_threads_of_the_daemon_process_and_start_no_process() -> None:
    out = subprocess.run([sys.executable, "-c", DAEMON], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    assert out == ["0", "argon2"]


async def test_concurrent_verifications_each_get_their_own_answer() -> None:
    stored = {f"pw{n}": hashing.hash_sync(f"pw{n}", CHEAP) for n in range(6)}
    checks = [(h, pw if n % 2 == 0 else "wrong") for n, (pw, h) in enumerate(stored.items())]
    answers = await asyncio.gather(*(hashing.verify(h, pw) for h, pw in checks))
    assert answers == [True, False, True, False, True, False]


def test_daemon_workers_share_the_cores_between_their_hashers() -> None:
    cores = len(os.sched_getaffinity(0))
    try:
        hashing.share_cores(cores)
        assert hashing.workers() == 1
        hashing.share_cores(1)
        assert hashing.workers() == cores
    finally:
        hashing.share_cores(1)
