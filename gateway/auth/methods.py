"""The login methods a mailbox accepts (``mailboxes.auth_methods``): a structure can require PSC for people.

Kept on the mailbox row rather than in the configuration: the login already reads that row in its one query,
so the check costs nothing; it is per mailbox data an operator changes with ``gateway psc methods`` without a
reload; and every instance on one database applies the same policy.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

#: Pro Santé Connect token (SASL OAUTHBEARER / XOAUTH2), password (PLAIN, LOGIN), client certificate (EXTERNAL).
METHODS = ("psc", "password", "certificate")


def allows(methods: str | None, method: str) -> bool:
    """Whether a mailbox whose ``auth_methods`` is ``methods`` accepts ``method`` (NULL or empty: every method)."""
    if not methods:
        return True
    return method in (m.strip() for m in methods.split(","))


def normalise(names: list[str]) -> str | None:
    """The column value for a list of method names; ``ValueError`` names an unknown one."""
    chosen = []
    for name in names:
        for part in name.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part not in METHODS:
                raise ValueError(f"{part!r} is not a login method; use {', '.join(METHODS)}.")
            if part not in chosen:
                chosen.append(part)
    if not chosen:
        raise ValueError(f"Give at least one login method among {', '.join(METHODS)}.")
    return None if set(chosen) == set(METHODS) else ",".join(chosen)
