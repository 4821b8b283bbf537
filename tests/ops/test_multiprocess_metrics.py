"""Several worker processes: counters of every worker, living or dead, in one scrape; the open-session gauge of
a dead worker forgotten; the shared folder emptied for each daemon (gateway/ops/multiprocess.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from ops.ops_support import config_data, free_port, sample
from support.pki import PKIFiles

from gateway.config import parse
from gateway.ops import multiprocess

WORKER = """
import os
from gateway.ops import metrics
metrics.smtp_transaction("submission", 250, 0.02)
metrics.imap_session("imaps", +1)
print(os.getpid())
"""

SERVER = """
import asyncio, sys
from pathlib import Path
from gateway.config import load
from gateway.ops.health import Listeners
from gateway.ops.http import start_http
from gateway.store import db

async def main():
    config = load(Path(sys.argv[1]))
    engine = db.create_engine(config.database_url)
    service = await start_http(config, db.sessionmaker(engine), Listeners())
    print("port", service.port, flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await service.close()
    await engine.dispose()

asyncio.run(main())
"""


def _toml(data: dict[str, object]) -> str:
    lines = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        for key, value in values.items():  # type: ignore[attr-defined]
            lines.append(f"{key} = {json.dumps(value)}")  # JSON strings, numbers and arrays are TOML too
    return "\n".join(lines) + "\n"


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return str(response.read().decode())


@pytest.mark.slow  # starts a process
def test_one_scrape_adds_up_every_worker_and_forgets_the_live_gauge_of_a_dead_one(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_99999999.db").write_bytes(b"stale values of a previous daemon")
    data = config_data(pki, migrated_sqlite, metrics={"listen": f"127.0.0.1:{free_port()}"})
    data["gateway"]["workers"] = 2  # type: ignore[index]
    path = tmp_path / "gateway.toml"
    path.write_text(_toml(data), encoding="utf-8")
    monkeypatch.setenv(multiprocess.ENV, str(folder))
    assert multiprocess.prepare(parse(data, tmp_path)) == folder
    assert list(folder.iterdir()) == []  # counters start from zero with each daemon

    env = {**os.environ, multiprocess.ENV: str(folder)}
    pids = [int(subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True,
                               check=True, timeout=120).stdout) for _ in range(2)]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(path)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        line = ""
        while not line.startswith("port "):  # unconfigured structlog writes its lines to stdout first
            line = server.stdout.readline()
            assert line, "the server process ended before listening"
        port = int(line.split()[1])
        text = _scrape(port)
        assert sample(text, "gateway_smtp_transactions_total", listener="submission", outcome="accepted") == 2
        assert sample(text, "gateway_smtp_data_seconds_count", listener="submission") == 2
        assert sample(text, "gateway_imap_sessions", listener="imaps") == 2
        assert sample(text, "gateway_store_up") == 1
        multiprocess.worker_exited(pids[0])  # the supervisor saw it die
        text = _scrape(port)
        assert sample(text, "gateway_imap_sessions", listener="imaps") == 1
        assert sample(text, "gateway_smtp_transactions_total", listener="submission", outcome="accepted") == 2
        server.stdin.write("\n")
        server.stdin.flush()
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_prepare_makes_a_private_folder_for_several_workers_and_none_for_one(
        tmp_path: Path, pki: PKIFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    config = parse(config_data(pki, "sqlite+aiosqlite:///x.sqlite3"), tmp_path)
    assert multiprocess.prepare(dataclasses.replace(config, workers=1)) is None
    assert multiprocess.prepare(dataclasses.replace(config, metrics=None, workers=4)) is None
    made = multiprocess.prepare(dataclasses.replace(config, workers=4))
    assert made is not None and made.is_dir() and os.environ[multiprocess.ENV] == str(made)
    assert oct(made.stat().st_mode & 0o777) == "0o700"
    multiprocess.finish()
    assert not made.exists() and multiprocess.ENV not in os.environ
