"""What `make run` does on a fresh machine: `gateway init` then `gateway serve --banner`, and curl sends through it."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.process import free_port

from gateway.devsetup import DEMO_PATIENT, DEMO_PROFESSIONAL

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/setup.d installs it)")
def test_init_then_serve_then_curl_sends_to_the_demo_patient(tmp_path: Path):
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "init", "--data", str(data)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config = data / "gateway.toml"
    text = config.read_text()
    ports = {old: free_port() for old in ("2587", "2465", "2143", "2993")}
    for old, new in ports.items():  # the development ports may be taken on this machine
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    config.write_text(text)
    password = dict(line.split() for line in (data / "dev-accounts.txt").read_text().splitlines())[DEMO_PROFESSIONAL]

    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--banner"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        banner = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            banner.append(line)
            if "--upload-file" in line or not line:
                break
        assert any("The gateway is running." in line for line in banner), banner
        assert any(DEMO_PROFESSIONAL in line for line in banner)
        message = tmp_path / "message.eml"
        message.write_bytes(f"From: {DEMO_PROFESSIONAL}\r\nTo: {DEMO_PATIENT}\r\nSubject: Bonjour\r\n\r\n"
                            "Texte.\r\n".encode())
        sent = subprocess.run(
            ["curl", "-sS", "-v", "--ssl-reqd", "--cacert", str(data / "pki" / "ca-bundle.crt"),
             f"smtp://127.0.0.1:{ports['2587']}", "--user", f"{DEMO_PROFESSIONAL}:{password}",
             "--mail-from", DEMO_PROFESSIONAL, "--mail-rcpt", DEMO_PATIENT, "--upload-file", str(message)],
            capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert re.search(r"< 250 2\.0\.0 Message accepted as \d+", sent.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
