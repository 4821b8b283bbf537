"""The SMTP session set-up (:mod:`gateway.smtp.session_init`) leaves a protocol object as aiosmtpd's own
``SMTP.__init__`` does, for the submission and relay listeners' arguments.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import collections
import ssl
import weakref
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from gateway.smtp.handler import SubmissionHandler
from gateway.smtp.protocol import GatewaySMTP
from gateway.smtp.relay import RelayHandler, RelaySMTP

SUBMISSION = {"hostname": "mx.gateway.test", "ident": "MSSante gateway", "require_starttls": True,
              "auth_required": True, "auth_require_tls": True, "data_size_limit": 1 << 20, "timeout": 30,
              "decode_data": False}
RELAY = {**SUBMISSION, "auth_required": False, "auth_exclude_mechanism": ["PLAIN", "LOGIN", "EXTERNAL"]}
CASES = [(GatewaySMTP, SubmissionHandler, SUBMISSION, True), (GatewaySMTP, SubmissionHandler, SUBMISSION, False),
         (RelaySMTP, RelayHandler, RELAY, True)]


def _comparable(value: Any) -> Any:
    """Methods by their function and owner, other objects made per connection by their type."""
    if hasattr(value, "__func__"):
        return ("method", value.__func__, type(value.__self__))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # aiosmtpd's _AuthMechAttr
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, weakref.ref):
        return type(value())
    if value is None or isinstance(value, (str, int, float, bool, ssl.SSLContext)) or callable(value):
        return value
    return type(value)


@pytest.mark.parametrize(("protocol_class", "handler_class", "arguments", "tls"), CASES)
async def test_a_session_is_set_up_as_aiosmtpd_sets_it_up(protocol_class: type[GatewaySMTP],
                                                          handler_class: type, arguments: dict[str, Any],
                                                          tls: bool) -> None:
    handler: Any = object.__new__(handler_class)
    arguments = {**arguments, "tls_context": ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) if tls else None,
                 "enable_SMTPUTF8": True}
    ours = protocol_class(handler, **arguments)
    again = protocol_class(handler, **arguments)  # from the tables kept for this class and handler
    reference = protocol_class.__new__(protocol_class)
    reference.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
    SMTP.__init__(reference, handler, **arguments)
    expected = {name: _comparable(value) for name, value in vars(reference).items()
                if name not in ("_smtp_methods", "command_size_limits")}  # both changed by GatewaySMTP's __init__
    for session in (ours, again):
        assert {name: _comparable(getattr(session, name)) for name in expected} == expected
        assert session._smtp_methods.keys() == reference._smtp_methods.keys()
        builtins: list[Any] = [a.method for a in session._auth_methods.values() if a.is_builtin]
        assert all(m.__self__ is session for m in builtins)
    assert ours._stream_reader_wr() is not again._stream_reader_wr()  # type: ignore[attr-defined]
    assert sorted(ours._auth_methods) == sorted(reference._auth_methods)
