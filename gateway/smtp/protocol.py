"""aiosmtpd's protocol object, adjusted for what a health gateway needs.

* Implicit TLS (port 465 style): aiosmtpd only counts STARTTLS as "TLS", so AUTH would be refused with
  538 on a connection that is encrypted from its first byte. We record the implicit TLS session the way
  STARTTLS would, so AUTH is offered and accepted there and STARTTLS is not offered twice.
* Enhanced status codes (RFC 2034/3463) on every reply: aiosmtpd's own fixed replies lack them, so
  :meth:`push` adds one, from a table for the replies we know and by reply class otherwise.
* DSN (RFC 3461) on submission: ``NOTIFY``/``ORCPT`` (RCPT) and ``RET``/``ENVID`` (MAIL) are taken off the
  command before aiosmtpd (which refuses unknown parameters) sees it, and attached to the accepted target.
* SASL EXTERNAL (RFC 4422 appendix A): a software mailbox logs in with the client certificate it presented.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import re
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

from gateway.routing import replies
from gateway.routing.policy import DsnRequest, Target

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


_XTEXT = re.compile(r"^([!-*,-<>-~]|\+[0-9A-F]{2})*$")  # RFC 3461 4: xtext
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def _take_params(arg: str, names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Split ``names=value`` ESMTP parameters off a MAIL or RCPT argument (case of the values preserved)."""
    kept, taken = [], {}
    for i, token in enumerate(arg.split(" ")):
        key, sep, value = token.partition("=")
        if i > 0 and sep and key.upper() in names:
            taken[key.upper()] = value
        else:
            kept.append(token)
    return " ".join(kept), taken


def dsn_request(mail: dict[str, str], rcpt: dict[str, str]) -> DsnRequest | None:
    """Validate RFC 3461 parameters; raises ValueError when one is malformed."""
    if not mail and not rcpt:
        return None
    notify = rcpt.get("NOTIFY")
    if notify is not None:
        values = {v.strip().upper() for v in notify.split(",")}
        if not (values == {"NEVER"} or (values and values <= _NOTIFY)):
            raise ValueError("NOTIFY")
        notify = ",".join(sorted(values))
    ret = mail.get("RET")
    if ret is not None and ret.upper() not in ("FULL", "HDRS"):
        raise ValueError("RET")
    for key, limit in (("ENVID", 100), ("ORCPT", 500)):
        value = mail.get(key) if key == "ENVID" else rcpt.get(key)
        if value is not None and (len(value) > limit or not _XTEXT.match(value)):
            raise ValueError(key)
    return DsnRequest(notify, rcpt.get("ORCPT"), ret.upper() if ret else None, mail.get("ENVID"))


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with implicit-TLS awareness, enhanced status codes, DSN parameters and SASL EXTERNAL."""

    #: Offer DSN (RFC 3461) and accept its parameters; the relay listener turns it off (we deliver at once).
    offer_dsn = True

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

    # --- DSN parameters (RFC 3461) --------------------------------------------------------------------------
    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        result = await super()._call_handler_hook(command, *args)
        if command == "EHLO" and self.offer_dsn and isinstance(result, list) and result:
            result = [*result[:-1], "250-DSN", result[-1]]
        return result

    async def smtp_MAIL(self, arg: str) -> None:
        if not self.offer_dsn or not arg:
            await super().smtp_MAIL(arg)
            return
        arg, params = _take_params(arg, ("RET", "ENVID"))
        try:
            dsn_request(params, {})
        except ValueError:
            await self.push(str(replies.BAD_DSN_PARAMETER))
            return
        await super().smtp_MAIL(arg)
        self._dsn_mail = params

    async def smtp_RCPT(self, arg: str) -> None:
        if not self.offer_dsn or not arg:
            await super().smtp_RCPT(arg)
            return
        arg, params = _take_params(arg, ("NOTIFY", "ORCPT"))
        in_mail = self.envelope is not None and bool(self.envelope.mail_from)
        mail_params: dict[str, str] = getattr(self, "_dsn_mail", {}) if in_mail else {}
        try:
            request = dsn_request(mail_params, params)
        except ValueError:
            await self.push(str(replies.BAD_DSN_PARAMETER))
            return
        targets: list[Target] | None = getattr(self.envelope, "targets", None)
        before = len(targets) if targets is not None else 0
        await super().smtp_RCPT(arg)
        targets = getattr(self.envelope, "targets", None)
        if request is not None and targets is not None and len(targets) > before:
            targets[-1] = dataclasses.replace(targets[-1], dsn=request)

    # --- graceful stop (gateway/process) --------------------------------------------------------------------
    #: Set while a DATA command runs (message received, then committed and answered): a stopping daemon lets it
    #: end before it answers ``421`` (RFC 5321 3.8), so an acknowledged message is stored and a stored one is
    #: acknowledged.
    data_done: asyncio.Event | None = None

    async def smtp_DATA(self, arg: str) -> None:
        done = self.data_done = asyncio.Event()
        try:
            await self._receive_data(arg)
        finally:
            self.data_done = None
            done.set()

    # --- SASL EXTERNAL (RFC 4422 appendix A; RFC 4954) ------------------------------------------------------
    async def auth_EXTERNAL(self, _server: SMTP, args: list[str]) -> AuthResult:
        """Log in as the mailbox bound to the client certificate of this TLS connection; no password."""
        from gateway.trust.certificates import login_external

        authenticator = getattr(self.event_handler, "authenticator", None)
        if authenticator is None:
            return AuthResult(success=False, handled=False, message=str(replies.EXTERNAL_NOT_BOUND))
        if len(args) > 1:
            response: Any = b"" if args[1] == "=" else _b64(args[1])
        else:
            response = await self.challenge_auth("", encode_to_b64=False)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=response is not None,
                              message="501 5.5.2 Cannot decode the EXTERNAL response")
        try:
            authzid = response.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode the EXTERNAL response")
        assert self.session is not None
        ssl_object = (self.session.ssl or {}).get("ssl_object")
        peer = self.session.peer
        client = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        account = await login_external(authenticator, ssl_object, authzid, client, "smtp")
        if isinstance(account, replies.Reply):
            return AuthResult(success=False, handled=False, message=str(account))
        return AuthResult(success=True, auth_data=account, message=str(replies.AUTH_OK))


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
