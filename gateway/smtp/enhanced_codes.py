"""Enhanced status codes (RFC 2034, RFC 3463) on every SMTP reply, aiosmtpd's fixed replies included.

Replies we know get their code from a table; others one by reply class. Replies that carry none by rule
(greeting, 221, the EHLO lines, 334, 354) are left as they are.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re

_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}( |$)")
_NO_ENHANCED = ("220 ", "221 ", "250-", "250 HELP", "334 ", "354 ")
_KNOWN = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for this gateway's size limit; nothing was stored",
    "530 Must issue a STARTTLS command first": "530 5.7.0 Must issue a STARTTLS command first",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.6 Line too long (RFC 5321 4.5.3.1.6)",
    "500 Command line too long": "500 5.5.6 Command line too long",
    "250 OK": "250 2.0.0 OK",
    "221 Bye": "221 2.0.0 Bye",
    "220 Ready to start TLS": "220 2.0.0 Ready to start TLS",
}
_CLASS = {"2": "2.0.0", "4": "4.0.0", "5": "5.5.0"}


def with_enhanced_code(status: str) -> str:
    """``status`` with an enhanced code after the reply code (RFC 2034 3), unless it has one or takes none."""
    if status in _KNOWN:
        return _KNOWN[status]
    if _HAS_ENHANCED.match(status) or status.startswith(_NO_ENHANCED) or len(status) < 4:
        return status
    code, rest = status[:3], status[4:]
    if status.startswith("552"):
        return f"552 5.3.4 {rest}"
    if status.startswith("555") or status.startswith("501"):
        return f"{code} 5.5.4 {rest}"
    if status.startswith("500"):
        return f"500 5.5.1 {rest}"
    enhanced = _CLASS.get(code[0])
    return f"{code} {enhanced} {rest}" if enhanced else status
