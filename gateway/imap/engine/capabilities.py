"""What the server announces in CAPABILITY, per connection state (RFC 9051 6.1.1, 7.2.2).

Before TLS the only way forward is STARTTLS: ``LOGINDISABLED`` and no ``AUTH=`` mechanism (RFC 9051 6.2.3,
11.1). ``AUTH=EXTERNAL`` is offered only to a client that presented a certificate (RFC 4422 appendix A).
After login the list carries every extension the engine implements.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

#: Announced in every state.
BASE = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "ID", "IDLE", "NAMESPACE", "UNSELECT",
        "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
        "ESEARCH", "ESORT", "SEARCHRES", "CONDSTORE", "QRESYNC", "BINARY", "MULTIAPPEND", "SORT", "SORT=DISPLAY",
        "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "STATUS=SIZE", "OBJECTID", "QUOTA", "QUOTA=RES-STORAGE",
        "UTF8=ACCEPT", "PREVIEW", "WITHIN")

#: What ENABLE may switch on (RFC 5161); other names are ignored, as the RFC says.
ENABLEABLE = frozenset({"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"})


def capabilities(*, tls: bool, authenticated: bool, client_certificate: bool, compressed: bool,
                 message_size: int, psc: bool = False) -> list[str]:
    """The capability list for a connection in this state."""
    names = list(BASE)
    names.append(f"APPENDLIMIT={message_size}")
    if not tls:
        names += ["STARTTLS", "LOGINDISABLED"]
    elif not authenticated:
        names.append("AUTH=PLAIN")
        if client_certificate:
            names.append("AUTH=EXTERNAL")
        if psc:  # Pro Sante Connect tokens (RFC 7628, XOAUTH2; gateway/psc), after TLS only like every AUTH=
            names += ["AUTH=OAUTHBEARER", "AUTH=XOAUTH2"]
    if authenticated and not compressed:
        names.append("COMPRESS=DEFLATE")
    return names
