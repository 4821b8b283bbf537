"""``gateway init`` qualifies the demo patient (R7) through the commands a person runs, and prints them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.store import Store


@pytest.mark.slow  # starts a process
def test_init_prints_and_runs_the_identity_commands_that_qualify_the_demo_patient(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "init", "--data", str(data)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    commands = [line[2:] for line in done.stdout.splitlines() if line.startswith("$ gateway ")]
    assert [c.split()[1:3] for c in commands] == [["identity", "add"], ["identity", "insi"],
                                                   ["identity", "document"]]
    assert all(f"--config {data / 'gateway.toml'}" in c for c in commands)
    assert "identity 1 is now qualifiée" in done.stdout
    # What it printed can be run again by a person: the identity is there, its evidence by the same commands.
    shown = subprocess.run([sys.executable, "-m", "gateway.cli", "identity", "show", "1", "--json", "--config",
                            str(data / "gateway.toml")], capture_output=True, text=True, timeout=60)
    assert '"status": "qualifiée"' in shown.stdout
    store = Store(f"sqlite+aiosqlite:///{data / 'gateway.sqlite3'}")
    steps = [(e.kind, e.actor) for e in store.events("identity.") if e.kind in ("identity.insi", "identity.document")]
    assert steps == [("identity.insi", "gateway init"), ("identity.document", "gateway init")]
    again = subprocess.run([sys.executable, "-m", "gateway.cli", "init", "--data", str(data)], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and "$ gateway identity" not in again.stdout  # an existing setup is kept
