"""Building test messages (CRLF line endings, as SMTP carries them)."""

from __future__ import annotations

import re
import uuid

PRO = "dr.house@pro.gateway.test"
PRO2 = "dr.wilson@pro.gateway.test"
PHARMACY = "pharmacie@pro.gateway.test"
PATIENT = "279035121518989@patient.gateway.test"  # the samples' test patient, qualified in these tests
UNQUALIFIED = "180077511200168@patient.gateway.test"  # a homonym of the INSi simulator, only provisoire here


def message(sender: str, to: str, subject: str = "Bonjour", body: str = "Texte du message.",
            headers: dict[str, str] | None = None) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{uuid.uuid4().hex}@test>",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


_ADDED = re.compile(rb"\A(?:(?:Received|Date|Message-ID):[^\n]*\n(?:[ \t][^\n]*\n)*)+", re.IGNORECASE)


def as_written(stored: bytes) -> bytes:
    """A stored message less what the submission server put in front (Received, and Date and Message-ID when
    the client gave none, RFC 6409 8): the sender's bytes, which must come through unchanged."""
    return _ADDED.sub(b"", stored, count=1)


def as_written_all(stored: list[bytes]) -> list[bytes]:
    return [as_written(m) for m in stored]
