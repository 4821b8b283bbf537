"""STARTTLS, LOGIN and AUTHENTICATE PLAIN / EXTERNAL / OAUTHBEARER / XOAUTH2 (RFC 9051 6.2, RFC 4616, RFC 4422
appendix A, RFC 4959, RFC 7628).

Passwords are checked by :class:`gateway.auth.accounts.Authenticator`: the same accounts, hashes and
per-address throttle as SMTP. No password crosses an unencrypted connection: LOGIN and AUTHENTICATE are
refused before TLS (``LOGINDISABLED``, RFC 9051 6.2.3 and 11.1).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from gateway.auth.accounts import Account, LoginOutcome
from gateway.imap.engine import wire
from gateway.imap.engine.channel import Closed
from gateway.imap.engine.state import ANSWERED, Bad, Done, No
from gateway.imap.proto import commands as c

if TYPE_CHECKING:
    from gateway.imap.engine.session import Session

#: Longest SASL response line we decode (base64 of an authzid, authcid and password).
MAX_SASL = 8192


async def starttls(session: Session, cmd: c.StartTLS) -> Done:
    """RFC 9051 6.2.1; what the client pipelined after STARTTLS was sent in clear: the connection is closed."""
    if session.channel.tls:
        raise Bad("TLS is already active.", "CLIENTBUG")
    await session.send(wire.status(cmd.tag, "OK", "Begin TLS negotiation now."))
    if session.pending_input():
        session.log.warning("imap_starttls_injection")
        raise Closed()
    await session.channel.start_tls(session.context.tls)
    session.reader = session.new_reader()
    return ANSWERED


def _require_tls(session: Session) -> None:
    if not session.channel.tls:
        raise No("Log in only after STARTTLS.", "PRIVACYREQUIRED")


def _logged_in(session: Session, account: Account) -> Done:
    session.login(account)
    return Done("Logged in.", session.capability_code())


async def _password(session: Session, username: str, password: str) -> Done:
    result = await session.context.authenticator.login(username, password, session.channel.client, "imap")
    if result.outcome is LoginOutcome.THROTTLED:
        raise No("Too many failed logins from your address; wait a few minutes and try again.", "UNAVAILABLE")
    if result.outcome is not LoginOutcome.OK or result.account is None:
        raise No("Wrong user name or password.", "AUTHENTICATIONFAILED")
    return _logged_in(session, result.account)


async def login(session: Session, cmd: c.Login) -> Done:
    _require_tls(session)
    return await _password(session, cmd.username, cmd.password)


async def _response(session: Session, initial: bytes | None) -> bytes:
    """The client's SASL response: the SASL-IR one, or a line after an empty challenge (RFC 9051 6.2.2)."""
    if initial is not None:
        return initial
    await session.send(b"+ \r\n")
    line = await session.read_line()
    if line.strip() == b"*":
        raise Bad("Authentication cancelled.")
    if len(line) > MAX_SASL:
        raise Bad("Authentication response too long.", "TOOBIG")
    if line.strip() == b"=":
        return b""
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Bad("Authentication response is not base64.") from None


async def _bearer(session: Session, mechanism: str, data: bytes) -> Done:
    """OAUTHBEARER (RFC 7628 3.2, 4.2) / XOAUTH2 with a Pro Sante Connect token (gateway/psc): a refused token
    gets the error JSON as a continuation, then ``NO [AUTHENTICATIONFAILED]`` after the client's ``AQ==``; an
    unreachable provider with no usable cached key ``NO [UNAVAILABLE]`` (RFC 5530)."""
    from gateway.psc.login import PscOutcome
    from gateway.psc.sasl import SaslError, parse

    try:
        response = parse(mechanism, data)
    except SaslError as exc:
        raise Bad(str(exc)) from None
    result = await session.context.authenticator.psc.login(mechanism, response, session.channel.client, "imap")
    if result.outcome is PscOutcome.OK and result.account is not None:
        return _logged_in(session, result.account)
    if result.outcome is PscOutcome.UNAVAILABLE:
        raise No("Pro Sante Connect cannot be reached to check the token; try again later.", "UNAVAILABLE")
    await session.send(b"+ " + base64.b64encode(result.challenge) + b"\r\n")  # RFC 7628 3.2.2
    if len(await session.read_line()) > MAX_SASL:
        raise Bad("Authentication response too long.", "TOOBIG")
    raise No("The Pro Sante Connect token is not valid for this mailbox.", "AUTHENTICATIONFAILED")


async def authenticate(session: Session, cmd: c.Authenticate) -> Done:
    mechanism = cmd.mechanism.upper()
    if mechanism == "PLAIN":
        _require_tls(session)
        data = await _response(session, cmd.initial)
        parts = data.split(b"\x00")
        if len(parts) != 3:
            raise Bad("Malformed PLAIN response (RFC 4616).")
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise Bad("PLAIN response is not UTF-8.") from None
        if authzid and authzid.strip().lower() != authcid.strip().lower():
            raise No("A login cannot act as another account.", "AUTHORIZATIONFAILED")
        return await _password(session, authcid, password)
    if mechanism == "EXTERNAL":
        _require_tls(session)
        data = await _response(session, cmd.initial)
        from gateway.trust.certificates import login_external

        try:
            authzid = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad("EXTERNAL authorisation identity is not UTF-8.") from None
        result = await login_external(session.context.authenticator, session.channel.ssl_object, authzid,
                                      session.channel.client, "imap")
        if not isinstance(result, Account):
            if result.code == 454:
                raise No("Too many failed logins from your address; wait a few minutes and try again.",
                         "UNAVAILABLE")
            raise No(result.text, "AUTHENTICATIONFAILED")
        return _logged_in(session, result)
    if mechanism in ("OAUTHBEARER", "XOAUTH2") and session.context.authenticator.psc is not None:
        _require_tls(session)
        return await _bearer(session, mechanism, await _response(session, cmd.initial))
    raise No("Mechanism not supported; use PLAIN or EXTERNAL.", "CANNOT")
