"""aiosmtpd's protocol object, adjusted for what a health gateway needs.

* Implicit TLS (port 465 style): aiosmtpd only counts STARTTLS as "TLS", so AUTH would be refused with
  538 on a connection that is encrypted from its first byte. We record the implicit TLS session the way
  STARTTLS would, so AUTH is offered and accepted there and STARTTLS is not offered twice.
* Enhanced status codes (RFC 2034/3463) on every reply: aiosmtpd's own fixed replies lack them, so
  :meth:`push` adds one, from a table for the replies we know and by reply class otherwise.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiosmtpd.smtp import SMTP

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


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with implicit-TLS awareness and enhanced status codes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        implicit = self._original_transport is None and transport.get_extra_info("ssl_object") is not None
        super().connection_made(transport)
        if implicit and self.session is not None:
            # Encrypted from the first byte: the TLS session aiosmtpd looks for when deciding about AUTH.
            self._tls_protocol = getattr(transport, "_ssl_protocol", None) or True  # type: ignore[assignment]
            self.session.ssl = {
                "ssl_object": transport.get_extra_info("ssl_object"),
                "peercert": transport.get_extra_info("peercert"),
                "cipher": transport.get_extra_info("cipher"),
            }

    async def push(self, status: Any) -> None:
        if isinstance(status, bytes):  # AUTH challenges ("334 ...") come as bytes
            await super().push(status)
            return
        await super().push(with_enhanced_code(str(status)))
