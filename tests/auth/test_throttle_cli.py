"""``gateway throttle list`` and ``gateway throttle clear``: what a person sees and lifts, on the real store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

from gateway.auth.accounts import Authenticator, LoginOutcome
from gateway.config import load
from gateway.store import db

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

ALICE = "alice@pro.gateway.test"
BOB = "bob@pro.gateway.test"


def gateway_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


async def logins(url: str, config: Path, attempts: list[tuple[str, str, str]]) -> list[LoginOutcome]:
    """Logins through the daemon's authenticator built from the same configuration file."""
    engine = db.create_engine(url)
    try:
        auth = Authenticator.from_config(load(config), db.read_sessionmaker(engine), db.sessionmaker(engine))
        return [(await auth.login(user, password, client, "imap")).outcome for user, password, client in attempts]
    finally:
        await engine.dispose()


@pytest.fixture
def config(tmp_path: Path, pki: PKIFiles, store_url: str) -> Path:
    process = GatewayProcess(tmp_path / "gw", pki, store_url)  # only its configuration file (failed_logins = 3)
    store = Store(store_url)
    store.add_mailbox(ALICE)
    store.add_mailbox(BOB)
    return process.config_path


def test_throttle_list_shows_blocked_pairs_and_clear_lifts_them(config: Path, store_url: str) -> None:
    wrong = [(ALICE, "typo", "192.0.2.7")] * 3 + [(BOB, "typo", "192.0.2.7")]
    assert asyncio.run(logins(store_url, config, wrong)) == [LoginOutcome.INVALID] * 4
    listed = gateway_cli(config, "throttle", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["account"]: row for row in json.loads(listed.stdout)}
    assert rows[ALICE]["client"] == "192.0.2.7" and rows[ALICE]["failures"] == 3
    assert rows[ALICE]["blocked"] == "account" and rows[ALICE]["until"]
    assert rows[BOB]["failures"] == 1 and rows[BOB]["blocked"] == ""
    assert asyncio.run(logins(store_url, config, [(ALICE, "secret-password", "192.0.2.7")])) \
        == [LoginOutcome.THROTTLED]

    cleared = gateway_cli(config, "throttle", "clear", "192.0.2.7", "--account", ALICE.upper())
    assert cleared.returncode == 0 and cleared.stdout.startswith("3 failed login(s) from 192.0.2.7")
    assert asyncio.run(logins(store_url, config, [(ALICE, "secret-password", "192.0.2.7")])) == [LoginOutcome.OK]
    rows = json.loads(gateway_cli(config, "throttle", "list", "--json").stdout)
    assert [row["account"] for row in rows] == [BOB]
    assert gateway_cli(config, "throttle", "clear", "192.0.2.7").stdout.startswith("1 failed login(s)")
    assert gateway_cli(config, "throttle", "list").stdout.strip() == "(none)"
    assert any(e.kind == "auth.throttle" and e.outcome == "cleared" for e in Store(store_url).events("auth."))


def test_throttle_clear_refuses_what_is_not_an_address(config: Path) -> None:
    result = gateway_cli(config, "throttle", "clear", "alice@pro.gateway.test")
    assert result.returncode == 1
    assert result.stderr.startswith("gateway: 'alice@pro.gateway.test' is not an IP address")
    missing = gateway_cli(config, "throttle", "clear")
    assert missing.returncode == 1 and "needs the client address" in missing.stderr
