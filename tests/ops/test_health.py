"""/healthz and /readyz: alive always; ready only with the store answering, at the newest migration, all
listeners bound, and not draining; a PostgreSQL server stopped and started again is followed."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops.ops_support import free_port, make_config, running
from sqlalchemy import text
from support.pki import PKIFiles

from gateway.ops.health import Listeners, migration_heads
from gateway.store import db


async def _ready(gw: object) -> tuple[int, dict[str, object]]:
    status, body, _ = await gw.get("/readyz")  # type: ignore[attr-defined]
    return status, json.loads(body)


async def test_healthz_is_alive_and_readyz_waits_for_every_expected_listener(
        tmp_path: Path, pki: PKIFiles, migrated_url: str) -> None:
    config = make_config(pki, migrated_url, tmp_path)
    listeners = Listeners.from_config(config)
    assert listeners.expected == {"submission", "submissions", "imap", "imaps"}
    async with running(config, listeners) as gw:
        status, body, _ = await gw.get("/healthz")
        assert (status, json.loads(body)) == (200, {"alive": True})
        status, ready = await _ready(gw)
        assert status == 503 and ready["ready"] is False
        checks = ready["checks"]
        assert isinstance(checks, dict)
        assert checks["database"] == {"ok": True} and checks["migrations"] == {"ok": True}
        assert checks["listeners"]["missing"] == ["imap", "imaps", "submission", "submissions"]
        for name in ("submission", "submissions", "imap"):
            listeners.up(name, "127.0.0.1:1")
        assert (await _ready(gw))[1]["checks"]["listeners"]["missing"] == ["imaps"]  # type: ignore[index]
        listeners.up("imaps", "127.0.0.1:2")
        status, ready = await _ready(gw)
        assert status == 200 and ready["ready"] is True
        listeners.drain()  # SIGTERM: the load balancer must stop sending before the listeners close
        status, ready = await _ready(gw)
        assert status == 503 and ready["checks"]["listeners"]["detail"] == "stopping"  # type: ignore[index]


async def test_readyz_refuses_a_store_behind_the_newest_migration(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path)
    heads = sorted(migration_heads())
    assert heads
    async with running(config) as gw:
        assert (await _ready(gw))[0] == 200  # no listener expected: only the store counts
        async with gw.sessions() as s, s.begin():
            await s.execute(text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": heads[0]})
        status, ready = await _ready(gw)
        migrations = ready["checks"]["migrations"]  # type: ignore[index]
        assert status == 503 and migrations["ok"] is False and migrations["missing"] == [heads[0]]
        async with gw.sessions() as s, s.begin():
            await s.execute(text("DROP TABLE alembic_version"))
        status, ready = await _ready(gw)
        assert status == 503
        assert ready["checks"]["migrations"]["detail"] == "the store was never migrated"  # type: ignore[index]


# --- a throwaway PostgreSQL cluster, stopped and started under the probe ----------------------------------------
def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [found] if found else sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates and candidates[-1] else None


class Cluster:
    """A PostgreSQL cluster of our own on a free loopback port (as root: run as the gateway-pg user)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-ops-pg-"))
        self.port = free_port()
        self.user: str | None = "gateway-pg" if os.geteuid() == 0 else None
        if self.user is not None:
            shutil.chown(self.dir, self.user)
        self.run("initdb", "-D", f"{self.dir}/data", "-U", "gateway", "--auth=trust", "-E", "UTF8")

    def run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} -c fsync=off"
        self.run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o", options, "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://gateway@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/setup.d/10-postgres.sh installs them)")
    if os.geteuid() == 0 and subprocess.run(["id", "gateway-pg"], capture_output=True).returncode != 0:
        pytest.skip("initdb cannot run as root and the gateway-pg user does not exist")
    made = Cluster(bin_dir)
    made.start()
    try:
        yield made
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", f"{made.dir}/data", "-m", "immediate", "stop"],
                       capture_output=True, user=made.user)
        shutil.rmtree(made.dir, ignore_errors=True)


async def _until(gw: object, status: int, deadline: float) -> dict[str, object]:
    """Poll /readyz until it answers ``status`` (each probe is bounded by its own 1 s timeout)."""
    while True:
        started = time.monotonic()
        got, ready = await _ready(gw)
        assert time.monotonic() - started < 5, "a readiness probe must answer within its timeout"
        if got == status:
            return ready
        assert time.monotonic() < deadline, f"/readyz still answers {got}: {ready}"
        await asyncio.sleep(0.05)  # polling interval, not a wait for timing


@pytest.mark.postgres
@pytest.mark.slow  # starts and stops a PostgreSQL server of its own
async def test_readyz_is_unready_while_postgresql_is_stopped_and_ready_when_it_returns(
        tmp_path: Path, pki: PKIFiles, cluster: Cluster) -> None:
    await db.migrate(cluster.url)
    config = make_config(pki, cluster.url, tmp_path)
    async with running(config) as gw:
        await _until(gw, 200, time.monotonic() + 30)
        await asyncio.to_thread(cluster.stop)
        ready = await _until(gw, 503, time.monotonic() + 30)
        checks = ready["checks"]
        assert checks["database"]["ok"] is False  # type: ignore[index]
        assert "gateway@" not in json.dumps(ready)  # never the URL
        assert (await gw.get("/healthz"))[0] == 200  # alive all along
        text_ = await gw.metrics()
        assert "gateway_store_up 0.0" in text_
        await asyncio.to_thread(cluster.start)
        await _until(gw, 200, time.monotonic() + 30)
