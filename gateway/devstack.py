"""``gateway dev-stack``: the whole development stack in one command (what ``make run`` starts).

It prepares ``data/`` when missing (``gateway init``), starts the DMP simulator and the gateway as child processes,
sends the demo once (a lab report written by the demo professional: filed to the patient's record through the
filing mailbox, R10, and deposited in the simulated DMP, R12-R15), prints where everything is, and stops both
children on Ctrl-C or SIGTERM. The children are the same commands a person would run (``gateway dmp-simulator``,
``gateway serve``), so the stack teaches the real steps.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from gateway import config as config_module
from gateway.devsetup import (
    DEMO_FILING,
    DEMO_PATIENT,
    DEMO_PROFESSIONAL,
    DEV_DMP_PORT,
    connection_banner,
    initialise,
)
from gateway.samples import samples_dir

#: The sample lab report of the demo (its patient is the demo patient, its author the demo professional).
DEMO_REPORT = "BIO-CR-BIO_2024.01_TSH_1.xml"
#: Seconds a child may take to listen before the stack gives up with one sentence.
START_TIMEOUT = 60.0


class StackError(Exception):
    """The stack could not start; the message is one sentence for the person at the terminal."""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"The {what} stopped while starting (exit {process.returncode}); see its log above.")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise StackError(f"The {what} did not listen on port {port} within {START_TIMEOUT:.0f} s.")


def _password(data: Path, address: str) -> str:
    for line in (data / "dev-accounts.txt").read_text(encoding="utf-8").splitlines():
        name, _, password = line.partition(" ")
        if name == address:
            return password
    raise StackError(f"No password for {address} in {data / 'dev-accounts.txt'}; run 'gateway init --force'.")


def send_demo(data: Path, smtp_port: int) -> None:
    """Submit the demo lab report to the patient (DMP deposit, R12) and to the filing mailbox (R10)."""
    report = samples_dir() / "cda" / DEMO_REPORT
    message = EmailMessage()
    message["From"], message["To"] = DEMO_PROFESSIONAL, f"{DEMO_PATIENT}, {DEMO_FILING}"
    message["Subject"] = "Compte rendu de biologie (démonstration)"
    message.set_content("Bonjour,\n\nvoici le compte rendu de vos examens.\n")
    message.add_attachment(report.read_bytes(), maintype="text", subtype="xml", filename="CR-BIO.xml")
    context = ssl.create_default_context(cafile=str(data / "pki" / "ca-bundle.crt"))
    with smtplib.SMTP("localhost", smtp_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(DEMO_PROFESSIONAL, _password(data, DEMO_PROFESSIONAL))
        client.send_message(message)


def _children(data: Path, config_path: Path) -> list[tuple[str, list[str]]]:
    pki = data / "pki"
    gateway = [sys.executable, "-m", "gateway.cli"]
    return [
        ("DMP simulator", [*gateway, "dmp-simulator", "--listen", f"127.0.0.1:{DEV_DMP_PORT}",
                           "--certificate", str(pki / "dmp-simulator.crt"), "--key", str(pki / "dmp-simulator.key"),
                           "--ca", str(pki / "ca-bundle.crt"), "--state-file", str(data / "dmp-simulator.json")]),
        ("gateway", [*gateway, "serve", "--config", str(config_path)]),
    ]


def run(data: Path) -> int:
    config_path = initialise(data)
    cfg = config_module.load(config_path)
    if cfg.submission is None:
        raise StackError(f"Configuration key 'smtp.submission' is needed by the demo in {config_path}.")
    processes: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        for (what, command), port in zip(_children(data, config_path), (DEV_DMP_PORT, cfg.submission.port),
                                         strict=True):
            processes.append(subprocess.Popen(command))
            _wait_for_port(port, processes[-1], what)
        marker = data / "demo-sent"
        if not marker.exists():
            send_demo(data, cfg.submission.port)
            marker.touch()
            demo = "sent now"
        else:
            demo = "sent at the first start"
        print(connection_banner(cfg, data), flush=True)
        print(f"  DMP simulator    https://localhost:{DEV_DMP_PORT} (documents kept in {data / 'dmp-simulator.json'})")
        if cfg.metrics is not None:
            print(f"  Metrics, probes  http://{cfg.metrics.listen}/metrics  /healthz  /readyz")
            print(f"  Autoconfig       http://{cfg.metrics.listen}/mail/config-v1.1.xml?emailaddress={DEMO_PROFESSIONAL}")
        print(f"  Demo             a lab report to {DEMO_PATIENT} and {DEMO_FILING}, {demo}:")
        print(f"                   gateway identity list --config {config_path}   (the patient's identity id)")
        print(f"                   gateway documents list ID --config {config_path}   (filed, R10)")
        print(f"                   gateway dmp list --config {config_path}   (deposited, R12)")
        print("  Stop with Ctrl-C.", flush=True)
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 0 if stopping else 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway dev-stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="data folder (git-ignored; default data)")
    args = parser.parse_args(argv)
    try:
        return run(args.data)
    except (StackError, smtplib.SMTPException, OSError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
