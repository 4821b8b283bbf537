"""SMTP AUTH OAUTHBEARER (RFC 7628 3.2, 4.1) and XOAUTH2 on the submission listeners (RFC 4954).

aiosmtpd offers AUTH only after TLS (``auth_require_tls``), so a token never crosses a clear connection; the
mechanisms are named in EHLO only when ``[psc]`` is configured (:func:`ehlo`). A refused token gets the RFC
7628 error JSON as a ``334`` challenge; whatever the client answers (``AQ==``), the exchange ends ``535 5.7.8``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

from gateway.psc.login import MECHANISMS, PscOutcome
from gateway.psc.sasl import SaslError, parse
from gateway.routing import replies


def ehlo(authenticator: Any, responses: list[str]) -> list[str]:
    """EHLO lines without OAUTHBEARER and XOAUTH2 when no PSC provider is configured."""
    if getattr(authenticator, "psc", None) is not None:
        return responses
    kept = []
    for line in responses:
        if line.startswith("250-AUTH "):
            names = [m for m in line[len("250-AUTH "):].split() if m not in MECHANISMS]
            if not names:
                continue
            line = "250-AUTH " + " ".join(names)
        kept.append(line)
    return kept


def _client(server: SMTP) -> str:
    peer = server.session.peer if server.session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


async def auth(server: SMTP, authenticator: Any, args: list[str], mechanism: str) -> AuthResult:
    """One AUTH exchange: initial response (or an empty challenge), verification, error challenge on refusal."""
    psc = getattr(authenticator, "psc", None)
    if psc is None:
        return AuthResult(success=False, handled=False, message=str(replies.PSC_NOT_OFFERED))
    if len(args) > 1:
        if args[1] == "=":
            data: Any = b""
        else:
            try:
                data = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                return AuthResult(success=False, handled=False, message=str(replies.PSC_MALFORMED))
    else:
        data = await server.challenge_auth("", encode_to_b64=False)
        if not isinstance(data, bytes):
            return AuthResult(success=False, handled=True)  # '*' or bad base64: aiosmtpd answered already
    try:
        response = parse(mechanism, data)
    except SaslError as exc:
        return AuthResult(success=False, handled=False, message=str(replies.PSC_MALFORMED.with_text(str(exc))))
    result = await psc.login(mechanism, response, _client(server), "smtp")
    if result.outcome is PscOutcome.OK:
        return AuthResult(success=True, auth_data=result.account, message=str(replies.AUTH_OK))
    if result.outcome is PscOutcome.UNAVAILABLE:
        return AuthResult(success=False, handled=False, message=str(replies.PSC_UNAVAILABLE))
    answer = await server.challenge_auth(result.challenge)  # RFC 7628 3.2.2; the client answers %x01
    if not isinstance(answer, bytes):
        return AuthResult(success=False, handled=True)
    return AuthResult(success=False, handled=False, message=str(replies.PSC_INVALID))
