"""[documents] and [[upstream]]: which deliveries are filed (R10), and operator mailboxes imported over IMAP.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config.reader import PathOf, _array_of_tables, _readable, _Reader


@dataclass(frozen=True)
class DocumentSettings:
    """Which deliveries have their documents filed (R10): listed mailboxes, or every professional INBOX."""

    filing_mailboxes: frozenset[str] = frozenset()
    file_all_inboxes: bool = False
    #: The CDA schema documents are validated against (CDA_extended.xsd); development copies when absent.
    cda_schema: Path | None = None
    #: Package bare CDA of submitted messages in an IHE XDM zip and add X-MSS-CODECDA / X-MSS-INS (ANS spec).
    package_outgoing: bool = True
    #: R7: the birth place (INSEE code) must agree whenever the document and the identity both carry it;
    #: ``false`` compares only the four traits R10 names.
    compare_birth_place: bool = True


@dataclass(frozen=True)
class UpstreamSettings:
    """A mailbox at another MSSanté operator, read over IMAP; its messages are imported into ``deliver_to``."""

    name: str
    host: str
    port: int
    username: str
    password_file: Path | None
    client_certificate: Path | None
    client_key: Path | None
    ca_file: Path | None
    mailbox: str
    deliver_to: str
    idle_seconds: float = 300.0


def _documents_sections(
    root: _Reader, path: PathOf, domains: frozenset[str]
) -> tuple[DocumentSettings | None, tuple[UpstreamSettings, ...]]:
    """[documents] (which deliveries are filed) and [[upstream]] (operator mailboxes read over IMAP)."""
    documents = None
    docs = root.table("documents")
    if docs is not None:
        listed = docs.get("filing_mailboxes", list, [])
        docs.check("filing_mailboxes", all(isinstance(a, str) and "@" in a for a in listed),
                   "must be a list of mailbox addresses")
        schema = path(docs, "cda_schema", required=False)
        if schema is not None:
            _readable(docs, "cda_schema", schema)
        documents = DocumentSettings(frozenset(a.lower() for a in listed), docs.get("file_all_inboxes", bool, False),
                                     schema, docs.get("package_outgoing", bool, True),
                                     docs.get("compare_birth_place", bool, True))
        docs.finish()
    upstreams = []
    for up in _array_of_tables(root, "upstream"):
        name = up.get("name", str, required=True)
        host = up.get("host", str, required=True)
        port = up.get("port", int, 993)
        up.check("port", 0 < port < 65536, "must be a TCP port")
        username = up.get("username", str, required=True)
        password_file = path(up, "password_file", required=False)
        certificate = path(up, "client_certificate", required=False)
        key = path(up, "client_key", required=False)
        ca_file = path(up, "ca_file", required=False)
        for key_name, p in (("password_file", password_file), ("client_certificate", certificate),
                            ("client_key", key), ("ca_file", ca_file)):
            if p is not None:
                _readable(up, key_name, p)
        up.check("password_file", password_file is not None or certificate is not None,
                 "is missing; give a password_file or a client_certificate")
        up.check("client_key", (certificate is None) == (key is None), "must be given with client_certificate")
        deliver_to = up.get("deliver_to", str, required=True).lower()
        up.check("deliver_to", deliver_to.rpartition("@")[2] in domains, "must be a mailbox of this gateway's domains")
        upstreams.append(UpstreamSettings(
            name, host, port, username, password_file, certificate, key, ca_file, up.get("mailbox", str, "INBOX"),
            deliver_to, up.get("idle_seconds", float, 300.0)))
        up.finish()
    return documents, tuple(upstreams)
