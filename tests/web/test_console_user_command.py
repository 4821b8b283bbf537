"""``gateway console-user``: the first admin is made from the command line, with a TOTP secret to enrol;
refusals are one sentence; disabling is traced (R18)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyotp
import pytest
from support.console import write_config
from support.pki import PKIFiles
from support.store import Store

from gateway.cli import main


def run(config: Path, *args: str, stdin: str = "") -> int:
    sys.stdin = io.StringIO(stdin)
    try:
        return main(["console-user", *args, "--config", str(config), "--actor", "installateur"])
    finally:
        sys.stdin = sys.__stdin__


def test_the_first_admin_is_created_with_a_totp_secret(tmp_path: Path, pki: PKIFiles, sqlite_url: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "gw", pki, sqlite_url)
    assert run(config, "add", "Alice", "--role", "admin", "--name", "Alice Martin", "--password-stdin",
               stdin="un-mot-de-passe-solide\n") == 0
    printed = capsys.readouterr().out
    secret = printed.split("application): ")[1].split()[0]
    assert pyotp.TOTP(secret).now().isdigit() and "otpauth://totp/" in printed and "alice" in printed
    assert run(config, "list", "--json") == 0
    listed = capsys.readouterr().out
    assert '"username": "alice"' in listed and '"role": "admin"' in listed and secret not in listed
    assert run(config, "disable", "alice") == 0
    assert "sessions are closed" in capsys.readouterr().out
    events = Store(sqlite_url).events("console.user")
    assert [(e.kind, e.actor) for e in events] == [("console.user_added", "cli:installateur"),
                                                   ("console.user_disabled", "cli:installateur")]


@pytest.mark.parametrize(("args", "stdin", "sentence"), [
    (["add", "bob", "--role", "admin", "--password-stdin"], "court\n", "at least 12 characters"),
    (["add", "bob", "--role", "admin"], "", "Give a password"),
    (["add", "Bob Dupont", "--role", "dmp", "--psc-id", "801234534765"], "", "user name must be"),
    (["disable", "personne"], "", "No console account"),
])
def test_a_refused_account_operation_is_one_sentence(tmp_path: Path, pki: PKIFiles, sqlite_url: str,
                                                     capsys: pytest.CaptureFixture[str], args: list[str],
                                                     stdin: str, sentence: str) -> None:
    config = write_config(tmp_path / "gw", pki, sqlite_url)
    assert run(config, *args, stdin=stdin) == 1
    error = capsys.readouterr().err
    assert sentence in error and "Traceback" not in error and error.count("\n") == 1
