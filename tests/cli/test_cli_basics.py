"""The command line as a daily tool: --version, a reader closing the pipe, --json that is only JSON, help for
every command and option, and manual pages generated from the parser."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
from cli.cli_support import config_file, gateway_cli
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from support.pki import PKIFiles
from support.store import Store

from gateway.cli import build_parser
from gateway.dmp_bridge.outbox import STATES
from gateway.store.models import Conversation
from gateway.transfer import accounts

PRO = "dr.house@pro.gateway.test"


@pytest.mark.slow  # starts a process
def test_version_prints_the_installed_distribution_version() -> None:
    result = gateway_cli(None, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gateway {version('mss-gateway')}"


def _many_mailboxes(url: str, count: int) -> None:
    lines = [accounts.AccountLine(n + 2, f"user{n:05d}@pro.gateway.test", "PER") for n in range(count)]

    async def work(session: AsyncSession) -> None:
        await accounts.create(session, [(line, None) for line in lines], "test")
    Store(url).run(work)


@pytest.mark.slow  # starts a process
def test_reader_closing_the_pipe_ends_the_command_quietly_with_status_0(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, sqlite_url)
    _many_mailboxes(sqlite_url, 3000)  # far more than a pipe's buffer holds
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "mailbox", "list", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    error = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert first.split()[:2] == [b"id", b"address"]
    assert error == b""

    lister = subprocess.Popen([sys.executable, "-m", "gateway.cli", "mailbox", "list", "--json", "--config",
                               str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-c", "10"], stdin=lister.stdout, stdout=subprocess.PIPE)
    assert lister.stdout is not None and lister.stderr is not None
    lister.stdout.close()  # only head holds the pipe's reading end now
    shown, _ = head.communicate(timeout=120)
    assert lister.wait(timeout=120) == 0 and lister.stderr.read() == b""
    assert shown == b'[\n {\n  "id'


@pytest.mark.slow  # starts a process
def test_json_of_every_list_and_show_is_only_json(tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, store_url)
    store = Store(store_url)
    professional = store.add_mailbox(PRO)
    identity = store.add_identity()

    async def conversation(session: AsyncSession) -> int:
        at = datetime.now(UTC)
        result = await session.execute(insert(Conversation).values(
            professional_id=professional, matricule="279035121518989", state="open", replies_blocked=False,
            opened_at=at, updated_at=at).returning(Conversation.id))
        return int(result.scalar_one())
    conversation_id = store.run(conversation)

    outputs = {}
    for command in (["mailbox", "list"], ["identity", "list"], ["identity", "show", str(identity)],
                    ["conversation", "list"], ["conversation", "show", str(conversation_id)], ["queue", "list"],
                    ["dmp", "list"], ["dmp", "counts"], ["review", "list"], ["throttle", "list"]):
        result = gateway_cli(config, *command, "--json")
        assert result.returncode == 0, (command, result.stderr)
        outputs[" ".join(command[:2])] = json.loads(result.stdout)
    assert outputs["mailbox list"][0]["address"] == PRO
    shown = outputs["identity show"]
    assert shown["id"] == identity and shown["status"] and [e["step"] for e in shown["evidence"]]
    assert outputs["conversation show"]["state"] == "open" and outputs["conversation show"]["events"] == []
    assert outputs["dmp counts"] == {state: 0 for state in STATES}

    table = gateway_cli(config, "dmp", "counts")
    assert table.stdout.split()[:2] == ["state", "jobs"] and "pending" in table.stdout


def _arguments(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"'{path} {name}' has no help"
                found.extend(_arguments(sub, f"{path} {name}"))
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_every_command_subcommand_and_option_has_help() -> None:
    missing = [f"{path} {action.option_strings or action.dest}"
               for path, action in _arguments(build_parser(), "gateway") if not action.help]
    assert missing == []


@pytest.mark.slow  # starts a process
def test_man_writes_one_valid_roff_page_per_command_group(tmp_path: Path) -> None:
    result = gateway_cli(None, "man", "--output", str(tmp_path / "man"))
    assert result.returncode == 0, result.stderr
    pages = {page.name: page.read_text() for page in (tmp_path / "man").iterdir()}
    for group in ("mailbox", "mail", "backup", "restore", "identity", "dmp", "card", "throttle"):
        assert f"gateway-{group}.1" in pages
    assert "gateway.1" in pages and "gateway-worker.1" not in pages
    mail = pages["gateway-mail.1"]
    assert mail.startswith('.TH "GATEWAY-MAIL" 1') and '.SH "MAIL IMPORT"' in mail and "\\-\\-mailbox" in mail
    assert "\\fBgateway\\-mail\\fR(1)" in pages["gateway.1"]
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed: the pages were written but not typeset")
    for name in pages:
        typeset = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "man" / name)],
                                 capture_output=True, text=True, timeout=60)
        assert typeset.returncode == 0 and typeset.stderr == "", (name, typeset.stderr)
