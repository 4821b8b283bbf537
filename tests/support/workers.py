"""Daemons with several worker processes (gateway/process), and what tests read from their JSON logs."""

from __future__ import annotations

import json
from typing import Any

from support.process import GatewayProcess
from support.wait import wait_until

PASSWORD = "secret-password"


def configure(process: GatewayProcess, **keys: Any) -> None:
    """Add ``[gateway]`` keys (``workers``, ``stop_grace``) to the process's configuration file."""
    lines = "".join(f"{name} = {json.dumps(value)}\n" for name, value in keys.items())
    text = process.config_path.read_text(encoding="utf-8")
    process.config_path.write_text(text.replace("[gateway]\n", "[gateway]\n" + lines, 1), encoding="utf-8")


def events(process: GatewayProcess, name: str) -> list[dict[str, Any]]:
    """The JSON log events called ``name`` so far."""
    found = []
    for line in list(process.log_lines):
        if f'"event": "{name}"' in line:
            found.append(json.loads(line))
    return found


def worker_pids(process: GatewayProcess) -> dict[int, int]:
    """The pid of each worker index, the latest started."""
    return {e["worker"]: e["pid"] for e in events(process, "worker_started")}


def start(process: GatewayProcess) -> GatewayProcess:
    process.start()
    wait_until(lambda: events(process, "ready"), what="the ready line")
    return process
