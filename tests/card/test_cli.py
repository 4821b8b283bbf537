"""The two commands as people run them: ``gateway card`` (administrator) and ``gateway card-agent`` (workstation)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from card.cardkit import CardGateway, PcscStack

from gateway import devsetup
from gateway.card.agent import certificate_fingerprint
from gateway.pki import DevelopmentPKI

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_administrator_registers_lists_and_deactivates_an_agent(tmp_path: Path):
    config = devsetup.initialise(tmp_path / "data")
    DevelopmentPKI.load(tmp_path / "data" / "pki").software("consultation-1").write(
        tmp_path / "agent.crt", tmp_path / "agent.key")
    done = run("gateway.card.admin", "--config", str(config), "register", "--certificate",
               str(tmp_path / "agent.crt"), "--workstation", "consultation-1",
               "--professional", devsetup.DEMO_PROFESSIONAL)
    assert done.returncode == 0, done.stderr
    listed = run("gateway.card.admin", "--config", str(config), "list")
    assert listed.stdout.split("\t")[:3] == ["1", "consultation-1", devsetup.DEMO_PROFESSIONAL]
    assert run("gateway.card.admin", "--config", str(config), "deactivate", "--id", "1").returncode == 0
    assert "deactivated" in run("gateway.card.admin", "--config", str(config), "list").stdout


def test_registering_for_an_unknown_mailbox_says_so(tmp_path: Path):
    config = devsetup.initialise(tmp_path / "data")
    done = run("gateway.card.admin", "--config", str(config), "register", "--fingerprint", "ab" * 32,
               "--workstation", "w", "--professional", "nobody@pro.gateway.test")
    assert done.returncode == 1 and "No professional mailbox" in done.stderr


def write_agent_config(gw: CardGateway, folder: Path) -> Path:
    path = folder / "card-agent.toml"
    path.write_text(
        f'[card_agent]\ngateway_url = "{gw.url}"\nworkstation = "consultation-1"\n'
        f'professional = "dr.house@pro.gateway.test"\ncertificate = "{gw.folder / "agent.crt"}"\n'
        f'private_key = "{gw.folder / "agent.key"}"\ntrust_anchors = "{gw.pki.ca_bundle}"\n'
        'data_dir = "agent-data"\nretry_initial = 0.1\npoll_ms = 100\n')
    return path


async def test_agent_fingerprint_matches_the_certificate(card_gateway: CardGateway, tmp_path: Path):
    done = run("gateway.card.agent", "--config", str(write_agent_config(card_gateway, tmp_path)), "fingerprint")
    assert done.stdout.strip() == certificate_fingerprint(card_gateway.folder / "agent.crt")


async def test_agent_configuration_errors_are_sentences(tmp_path: Path):
    (tmp_path / "bad.toml").write_text('gateway_url = "http://gw:80"\n')
    done = run("gateway.card.agent", "--config", str(tmp_path / "bad.toml"), "status")
    assert done.returncode == 2 and "setting" in done.stderr


async def test_agent_process_reports_a_card_and_stops_cleanly_on_sigterm(
        pcsc: PcscStack, card_gateway: CardGateway, tmp_path: Path):
    config = write_agent_config(card_gateway, tmp_path)
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": os.environ["PCSCLITE_CSOCK_NAME"]}
    agent = subprocess.Popen([sys.executable, "-m", "gateway.card.agent", "--config", str(config), "run"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await card_gateway.until(lambda: card_gateway.events("card.agent.started"), "the agent process's hello")
        pcsc.insert("3B751300004509EA9000")

        async def vitale_seen() -> bool:
            return [e.outcome for e in await card_gateway.events("card.inserted")] == ["vitale"]
        await card_gateway.until(vitale_seen, "the insertion reported by the agent process")
        # In a thread: the gateway answering the command runs in this test's event loop.
        status = await asyncio.to_thread(run, "gateway.card.agent", "--config", str(config), "status")
        assert "vitale Vitale 2" in status.stdout and "0 event(s) waiting" in status.stdout
        bound = await asyncio.to_thread(run, "gateway.card.agent", "--config", str(config), "bind",
                                        "--matricule", "279035121518989")
        assert bound.returncode == 0, bound.stderr
        assert await card_gateway.present()
    finally:
        agent.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(agent.wait, 20)
        stderr = agent.stderr.read().decode() if agent.stderr else ""
        if agent.stderr:
            agent.stderr.close()
    assert code == 0, stderr
    assert "279035121518989" not in stderr, "no matricule in the agent's logs"
