"""Helpers of the IMAP robustness tests: a raw TLS IMAP client that can stop reading, and the server's RSS."""

from __future__ import annotations

import gc
import re
import socket
import ssl
import time

import psutil
from support.process import GatewayProcess

PASSWORD = "secret-password"
_TAGGED = re.compile(rb"^(?P<tag>[A-Za-z0-9]+) (?P<kind>OK|NO|BAD)\b")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class RawImap:
    """A line- and literal-aware IMAP client on implicit TLS, able to send anything and to stop reading."""

    def __init__(self, gateway: GatewayProcess, timeout: float = 30, rcvbuf: int | None = None) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small receive window: the server's answer piles up on its side, not ours
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.connect(("127.0.0.1", gateway.imaps_port))
        self.sock = gateway.client_tls().wrap_socket(raw, server_hostname="mail.gateway.test")
        self.buffer = bytearray()
        self.counter = 0
        greeting = self.line()
        assert greeting.startswith(b"* OK"), greeting

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLError, OSError):
            return False
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def line(self) -> bytes:
        """The next response line with its literals, CRLF removed; b"" at EOF."""
        out = bytearray()
        while True:
            end = self.buffer.find(b"\r\n")
            while end < 0:
                if not self._fill():
                    return bytes(out + self.buffer)
                end = self.buffer.find(b"\r\n", max(0, len(self.buffer) - 65536 - 1))
            piece = bytes(self.buffer[:end + 2])
            del self.buffer[:end + 2]
            out += piece
            literal = _LITERAL.search(piece)
            if literal is None:
                return bytes(out[:-2])
            size = int(literal.group(1))
            while len(self.buffer) < size:
                if not self._fill():
                    return bytes(out + self.buffer)
            out += self.buffer[:size]
            del self.buffer[:size]

    def command(self, text: str | bytes) -> tuple[bytes, list[bytes]]:
        """Send one command; (tagged line, untagged lines)."""
        self.counter += 1
        tag = b"r%d" % self.counter
        body = text.encode() if isinstance(text, str) else text
        self.send(tag + b" " + body + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> tuple[bytes, list[bytes]]:
        lines: list[bytes] = []
        while True:
            line = self.line()
            if not line:
                raise ConnectionError("connection closed; last lines: " + repr(lines[-3:]))
            match = _TAGGED.match(line)
            if match and match.group("tag") == tag:
                return line, lines
            lines.append(line)

    def login(self, user: str, password: str = PASSWORD) -> None:
        tagged, _ = self.command(f'LOGIN "{user}" "{password}"')
        assert b" OK" in tagged, tagged

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


def timed_noop(client: RawImap) -> float:
    """Seconds a NOOP takes to be answered OK."""
    start = time.monotonic()
    tagged, _ = client.command("NOOP")
    elapsed = time.monotonic() - start
    assert b" OK" in tagged, tagged
    return elapsed


def settle(pid: int, target: int, deadline: float) -> int:
    """The process's RSS once it is below ``target`` or the deadline passed (memory returned after a GC)."""
    gc.collect()
    value = rss(pid)
    end = time.monotonic() + deadline
    while value > target and time.monotonic() < end:
        time.sleep(0.2)
        value = rss(pid)
    return value


MB = 1024 * 1024
