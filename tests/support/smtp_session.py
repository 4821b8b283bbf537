"""SMTP test helpers: accounts, a gateway with its own [limits], and a raw TLS session checking every reply line."""

from __future__ import annotations

import base64
import socket
import ssl

from support.mail import PATIENT, PRO, PRO2
from support.process import GatewayProcess
from support.store import Store

PRO3 = "dr.cuddy@pro.gateway.test"


def add_people(store: Store) -> Store:
    store.add_mailbox(PRO, "PER")
    store.add_mailbox(PRO2, "PER")
    store.add_mailbox(PRO3, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    return store


def with_settings(process: GatewayProcess, table: str, **keys: object) -> GatewayProcess:
    """Add keys to a table of the written configuration (before start)."""
    lines = "".join(f"{key} = {value!r}\n" for key, value in keys.items())
    text = process.config_path.read_text(encoding="utf-8")
    assert f"[{table}]\n" in text
    process.config_path.write_text(text.replace(f"[{table}]\n", f"[{table}]\n" + lines, 1), encoding="utf-8")
    return process


def with_limits(process: GatewayProcess, **limits: object) -> GatewayProcess:
    return with_settings(process, "limits", **limits)


class RawSession:
    """A line-level SMTP client over implicit TLS, for what smtplib cannot send (BDAT chunks, broken input)."""

    def __init__(self, gateway: GatewayProcess, timeout: float = 20) -> None:
        plain = socket.create_connection(("127.0.0.1", gateway.smtps_port), timeout=timeout)
        self.sock = gateway.client_tls().wrap_socket(plain, server_hostname="mail.gateway.test")
        self.stream = self.sock.makefile("rwb")
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()

    def reply(self) -> list[bytes]:
        """Every line of one reply; each must be well formed: three digits, '-' or ' ', text, CRLF."""
        lines = []
        while True:
            line = self.stream.readline()
            if not line:
                raise ConnectionError("connection closed")
            assert well_formed(line), line
            lines.append(line)
            if line[3:4] == b" ":
                return lines

    def command(self, line: str | bytes) -> list[bytes]:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        try:
            return self.stream.readline() == b""
        except (OSError, ssl.SSLError):
            return True

    def login(self, user: str, password: str = "secret-password") -> None:
        assert self.command("EHLO client.test")[-1].startswith(b"250 ")
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        reply = self.command(f"AUTH PLAIN {token}")
        assert reply[0].startswith(b"235 "), reply

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def well_formed(line: bytes) -> bool:
    return (len(line) >= 6 and line[:3].isdigit() and line[3:4] in (b" ", b"-") and line.endswith(b"\r\n")
            and b"\r" not in line[:-2] and b"\n" not in line[:-1] and line.isascii()
            and b"Traceback" not in line)
