"""The client responses of SASL OAUTHBEARER (RFC 7628 3.1) and XOAUTH2, and the error challenge (RFC 7628 3.2.2).

Pure and bounded: no I/O, one split per response, nothing that input can make recursive. The token is returned
to the caller for verification and never kept.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

#: The longest client response decoded (RFC 4954 4 bounds the AUTH line at 12288 octets; base64 of this fits).
MAX_RESPONSE = 9000
#: RFC 6750 2.1 b64token.
_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
#: RFC 7628 3.1 key: 1*(ALPHA).
_KEY = re.compile(rb"[A-Za-z]+")
#: The dummy client response that ends a failed exchange (RFC 7628 3.2.3: %x01).
ABORT = b"\x01"


class SaslError(ValueError):
    """A response that is not of the mechanism's form; the text says what is wrong, for a 501 / BAD reply."""


@dataclass(frozen=True)
class BearerResponse:
    """What the client sent: the mailbox it asks to act as (may be empty for OAUTHBEARER) and its token."""

    authzid: str
    token: str = ""


def _kvpairs(data: bytes, mechanism: str) -> dict[bytes, bytes]:
    """RFC 7628 3.1: ``kvsep *(kvpair) kvsep`` where kvsep is %x01; duplicate keys are refused."""
    if not data.endswith(b"\x01\x01"):
        raise SaslError(f"The {mechanism} response must end with two ^A separators.")
    pairs: dict[bytes, bytes] = {}
    for item in data[:-2].split(b"\x01"):
        if not item:
            continue
        key, sep, value = item.partition(b"=")
        if not sep or _KEY.fullmatch(key) is None or key in pairs:
            raise SaslError(f"The {mechanism} response has a malformed key=value pair.")
        pairs[key] = value
    return pairs


def _bearer(value: bytes | None, mechanism: str) -> str:
    """``Bearer <b64token>`` (RFC 6750 2.1); the scheme is case-insensitive."""
    if value is None:
        raise SaslError(f"The {mechanism} response carries no auth=Bearer token.")
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer" or _B64TOKEN.fullmatch(token.strip(b" ")) is None:
        raise SaslError(f"The {mechanism} response's auth value is not 'Bearer <token>'.")
    return token.strip(b" ").decode("ascii")


def _text(value: bytes, mechanism: str) -> str:
    try:
        return value.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        raise SaslError(f"The {mechanism} authorisation identity is not UTF-8.") from None


def parse_oauthbearer(data: bytes) -> BearerResponse:
    """RFC 7628 3.1: ``gs2-header kvsep *kvpair kvsep``; gs2-header = ``n,`` [``a=`` authzid] ``,``.

    Channel binding is not offered, so ``p=`` is refused; ``y`` and ``n`` are accepted (RFC 5801 5).
    """
    if len(data) > MAX_RESPONSE:
        raise SaslError("The OAUTHBEARER response is too long.")
    header, sep, rest = data.partition(b"\x01")
    if not sep:
        raise SaslError("The OAUTHBEARER response has no ^A after its GS2 header.")
    flag, _, after = header.partition(b",")
    if flag not in (b"n", b"y"):
        raise SaslError("The OAUTHBEARER GS2 header must start with 'n,' (no channel binding is offered).")
    authz, comma, tail = after.partition(b",")
    if not comma or tail:
        raise SaslError("The OAUTHBEARER GS2 header must be 'n,a=ADDRESS,' or 'n,,'.")
    if authz and not authz.startswith(b"a="):
        raise SaslError("The OAUTHBEARER GS2 authorisation identity must be written 'a=ADDRESS'.")
    # RFC 5801 4: ',' and '=' are escaped as =2C and =3D in the authzid.
    authzid = _text(authz[2:].replace(b"=2C", b",").replace(b"=3D", b"="), "OAUTHBEARER") if authz else ""
    pairs = _kvpairs(b"\x01" + rest, "OAUTHBEARER")
    return BearerResponse(authzid, _bearer(pairs.get(b"auth"), "OAUTHBEARER"))


def parse_xoauth2(data: bytes) -> BearerResponse:
    """XOAUTH2: ``user=ADDRESS ^A auth=Bearer TOKEN ^A ^A`` (the mail clients' pre-RFC 7628 form)."""
    if len(data) > MAX_RESPONSE:
        raise SaslError("The XOAUTH2 response is too long.")
    pairs = _kvpairs(data, "XOAUTH2")
    user = pairs.get(b"user")
    if not user:
        raise SaslError("The XOAUTH2 response carries no user=ADDRESS.")
    return BearerResponse(_text(user, "XOAUTH2"), _bearer(pairs.get(b"auth"), "XOAUTH2"))


def parse(mechanism: str, data: bytes) -> BearerResponse:
    return parse_oauthbearer(data) if mechanism == "OAUTHBEARER" else parse_xoauth2(data)


def error_challenge(status: str, scope: str, configuration: str) -> bytes:
    """RFC 7628 3.2.2: the JSON the server sends before failing; ``status`` is an RFC 6750 3.1 error code."""
    return json.dumps({"status": status, "scope": scope, "openid-configuration": configuration},
                      separators=(",", ":")).encode()


def oauthbearer_response(token: str, authzid: str = "") -> bytes:
    """What a client sends (tests, ``gateway token`` examples, the bench)."""
    escaped = authzid.replace("=", "=3D").replace(",", "=2C")
    return f"n,{'a=' + escaped if authzid else ''},\x01auth=Bearer {token}\x01\x01".encode()


def xoauth2_response(token: str, user: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
