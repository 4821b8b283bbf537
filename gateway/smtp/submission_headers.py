"""What a submission server adds to a message before it leaves (RFC 6409 section 8, RFC 5321 4.4).

* ``Received:`` at the top: the client's EHLO name and address, our host name, ``ESMTPSA`` (``UTF8SMTPSA`` with
  SMTPUTF8, RFC 6531 3.7.3), the TLS version and cipher, who authenticated, a transaction id and the date. The
  authenticated identity of a patient is its mailbox id, never its INS matricule (an address at the patient
  domain is a matricule): trace headers travel with the message and are read by everyone downstream.
* ``Date:`` (RFC 6409 8.3) and ``Message-ID:`` (8.2) when the client gave none; a given Message-ID is kept.

Bytes are prepended to the message; the body is never scanned.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.auth.accounts import Account
from gateway.routing.headers import Summary

_UNSAFE = re.compile(r"[^\x21-\x7e]")  # what may appear of a client-chosen EHLO name in a trace field


@dataclass(frozen=True)
class Trace:
    """The facts of one SMTP transaction that its Received field records."""

    helo: str
    client_ip: str
    hostname: str
    tls_version: str | None
    cipher: str | None
    account: Account
    transaction_id: str
    utf8: bool = False


#: The RFC 5322 3.3 date of the current second, and that second.
_this_second: tuple[int, str] = (-1, "")


def _date_now() -> str:
    """Now as an RFC 5322 3.3 date in local time, formatted once a second: the date has whole seconds, and
    every message of a second gets the same one (localtime and the formatting cost more than the rest of the
    Received field)."""
    global _this_second
    second = int(time.time())
    if _this_second[0] != second:
        _this_second = (second, email.utils.format_datetime(email.utils.localtime(
            datetime.fromtimestamp(second, UTC))))
    return _this_second[1]


def new_transaction_id() -> str:
    """An opaque id naming one SMTP transaction in the Received field and in the logs."""
    return secrets.token_hex(8).upper()


def authenticated_as(account: Account) -> str:
    """The identity a trace field may show: a professional's address, a patient's mailbox id (no INS)."""
    return f"mailbox {account.id}" if account.is_patient else account.address


def received(trace: Trace) -> bytes:
    helo = _UNSAFE.sub("", trace.helo)[:100] or "unknown"
    protocol = "UTF8SMTPSA" if trace.utf8 else "ESMTPSA"
    tls = " ".join(p for p in (trace.tls_version, trace.cipher) if p) or "TLS"
    date = _date_now()
    text = (f"Received: from {helo} ([{trace.client_ip}])\r\n\tby {trace.hostname} with {protocol} ({tls})\r\n"
            f"\t(authenticated as {authenticated_as(trace.account)})\r\n\tid {trace.transaction_id}"
            f";\r\n\t{date}\r\n")
    return text.encode("utf-8")


def complete(raw: bytes, summary: Summary, trace: Trace) -> tuple[bytes, Summary]:
    """The message with Received prepended and Date/Message-ID added where missing, and its updated summary."""
    prefix = received(trace)
    added: dict[str, Any] = {}
    if summary.date is None:
        added["date"] = _date_now()
        prefix += f"Date: {added['date']}\r\n".encode("ascii")
    if summary.message_id is None:
        added["message_id"] = f"<{secrets.token_hex(12)}.{trace.transaction_id.lower()}@{trace.hostname}>"
        prefix += f"Message-ID: {added['message_id']}\r\n".encode("ascii")
    return prefix + raw, dataclasses.replace(summary, **added) if added else summary
