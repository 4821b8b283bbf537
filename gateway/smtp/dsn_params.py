"""DSN parameters (RFC 3461 4): NOTIFY and ORCPT on RCPT, RET and ENVID on MAIL, taken off the command line
before aiosmtpd (which refuses unknown parameters) sees it, and checked.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re

from gateway.routing.policy import DsnRequest

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
