"""``make run`` from a clean clone, as a newcomer runs it: a fresh virtual environment, ``gateway init``, the DMP
simulator, the gateway and the demo. The clone has no ``../shared`` beside it, so the demo's sample comes from the
repository's own fixtures.

The demo's lab report must be deposited in the simulated DMP (R12) and filed to the demo patient (R10): this is
what the banner promises.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "newcomer" / "mss-gateway"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    assert not (clone.parent / "shared").exists()
    return clone


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """The process's output up to the line holding ``marker``, failing with the output at the deadline."""
    assert process.stdout is not None
    seen: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=1.0):
            if process.poll() is not None:
                break
            continue
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} never printed:\n{''.join(seen[-40:])}")


def _gateway(clone: Path, *args: str) -> str:
    result = subprocess.run([str(clone / ".venv" / "bin" / "gateway"), *args,
                             "--config", str(clone / "data" / "gateway.toml")],
                            capture_output=True, text=True, timeout=60, cwd=clone)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_from_a_clean_clone_serves_and_the_demo_is_filed_and_deposited(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    env = {**os.environ, "PYTHON": sys.executable, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("GATEWAY_SAMPLES", None)
    process = subprocess.Popen(["make", "run"], cwd=clone, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        banner = _read_until(process, "Stop with Ctrl-C.", timeout=600)
        assert "dr.demo@pro.gateway.test" in banner and "DMP simulator" in banner
        deposits: list[dict[str, object]] = wait_until(
            lambda: (lambda listed: listed if listed and listed[0]["state"] == "accepted" else None)(
                json.loads(_gateway(clone, "dmp", "list", "--json"))), 60, "the demo deposit accepted", interval=0.5)
        assert [d["state"] for d in deposits] == ["accepted"], deposits
        identities = json.loads(_gateway(clone, "identity", "list", "--json"))
        assert [i["status"] for i in identities] == ["qualifiée"]
        filed = _gateway(clone, "documents", "list", str(identities[0]["id"]))
        assert "11502-2" in filed, filed
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
