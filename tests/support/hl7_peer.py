"""A gateway with ``[hl7]`` (and the DMP simulator) for the HL7 tests and benches, and raw MLLP helpers."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmp_bridge.dmp_support import BIOLOGIST, MATRICULE, TEST_OID

from gateway.hl7.mllp import frame
from gateway.hl7.simulator import ack_code, document_message
from gateway.samples import samples_dir
from support.pki import PKIFiles
from support.process import GatewayProcess, accepts, free_port

BIO = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
LAB = "labo.sil@pro.gateway.test"
DOCTOR = "adam.hoda@pro.gateway.test"
PATIENT = f"{MATRICULE}@patient.gateway.test"
ALL = ("DESTDMP", "DESTMSSANTEPS", "DESTMSSANTEPAT")


def hl7_config(port: int, extra: str = "", peer_extra: str = "") -> str:
    return f"""
[hl7]
listen = "127.0.0.1:{port}"
read_timeout = 2
frame_timeout = 10
max_frame_bytes = 12_000_000
max_segments = 2000
{extra}
[[hl7.peer]]
name = "dpi"
addresses = ["127.0.0.1"]
sender = "{LAB}"
{peer_extra}
"""


def dmp_section(dmp: dict[str, Any], ca: Path) -> str:
    folder = dmp["folder"]
    return f"""
[dmp]
repository_url = "{dmp['url']}/repository"
registry_url = "{dmp['url']}/registry"
ca_file = "{ca}"
client_certificate = "{folder / 'client.crt'}"
client_key = "{folder / 'client.key'}"
signing_certificate = "{folder / 'signing.crt'}"
signing_key = "{folder / 'signing.key'}"
structure_id = "1120459876"
structure_name = "Laboratoire des charmes"
source_id = "1.2.250.1.999.42"
default_mode = "systematic"
retry_base = 0.2
retry_ceiling = 1.0
lease = 3

[[dmp.professional]]
national_id = "{BIOLOGIST.national_id}"
family = "{BIOLOGIST.family}"
given = "{BIOLOGIST.given}"
mailbox = "{LAB}"
role = "{BIOLOGIST.profession.code}"
specialty = "{BIOLOGIST.specialty.code}"
"""


class Hl7Gateway(GatewayProcess):
    def __init__(self, folder: Path, pki: PKIFiles, store_url: str, *, extra_config: str = "",
                 hl7_extra: str = "", peer_extra: str = "", log_level: str = "info") -> None:
        self.hl7_port = free_port()
        super().__init__(folder, pki, store_url, message_size=20_000_000, log_level=log_level,
                         extra_config=hl7_config(self.hl7_port, hl7_extra, peer_extra) + extra_config)

    def start(self) -> Hl7Gateway:
        """Started once the MLLP listener accepts too (it is bound by worker 0 with the once-only work)."""
        super().start()
        wait_for(lambda: accepts(self.hl7_port), "the MLLP listener", 60)
        return self


def oru(control_id: str, cda: bytes | None = None, *, destinations: tuple[str, ...] = ALL,
        recipients: tuple[str, ...] = (DOCTOR,), **kwargs: Any) -> bytes:
    return document_message(BIO.read_bytes() if cda is None else cda, control_id=control_id, matricule=MATRICULE,
                            oid=TEST_OID, recipients=recipients, destinations=destinations, **kwargs)


class Mllp:
    """A blocking MLLP client on a raw socket (so tests can also send what no library would)."""

    def __init__(self, port: int, timeout: float = 30.0, context: ssl.SSLContext | None = None) -> None:
        """``context``: TLS (with the client certificate it holds, if any) as a peer of ``[hl7] tls``."""
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="localhost") if context is not None else raw
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def exchange(self, message: bytes) -> str:
        self.sock.sendall(frame(message))
        return self.read_ack()

    def read_ack(self) -> str:
        while b"\x1c\r" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the gateway")
            self.buffer += chunk
        content, _, self.buffer = self.buffer.partition(b"\x1c\r")
        return content.lstrip(b"\x0b").decode("utf-8")

    def closed_by_peer(self, seconds: float) -> bool:
        """Whether the gateway closes the connection within ``seconds`` (reading whatever it sends)."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):  # TLS 1.3: a refused client certificate arrives as an alert
            return True

    def close(self) -> None:
        self.sock.close()


def code_of(answer: str) -> tuple[str, str | None]:
    return ack_code(answer)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60.0,
             detail: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail is not None else ""))


class DpiSimulator:
    """`gateway hl7-simulator serve` as a process: the DPI's MLLP server recording what the gateway sends."""

    def __init__(self, folder: Path, *, answer: str = "AA", error: str | None = None) -> None:
        self.port = free_port()
        self.record = folder / "dpi.jsonl"
        self.answer, self.error = answer, error
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DpiSimulator:
        command = [sys.executable, "-m", "gateway.cli", "hl7-simulator", "serve", "--listen",
                   f"127.0.0.1:{self.port}", "--record", str(self.record), "--answer", self.answer]
        if self.error is not None:
            command += ["--error", self.error]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: accepts(self.port), "the DPI simulator")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    @property
    def return_address(self) -> str:
        return f'return_address = "127.0.0.1:{self.port}"'

    def received(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines() if line.strip()]
