"""CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, COMPRESS (RFC 9051 6.1, RFC 2971, RFC 5161, RFC 4978).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.imap.engine import wire
from gateway.imap.engine.capabilities import ENABLEABLE
from gateway.imap.engine.state import ANSWERED, Bad, Done, No, State
from gateway.imap.proto import commands as c
from gateway.imap.proto import response

if TYPE_CHECKING:
    from gateway.imap.engine.session import Session

#: Our ID answer (RFC 2971 3.3): no version, nothing that helps an attacker pick an exploit.
SERVER_ID = (("name", "gateway"),)


async def capability(session: Session, cmd: c.Capability) -> Done:
    await session.untagged("CAPABILITY " + " ".join(session.capability_list()))
    return Done("CAPABILITY completed")


async def noop(session: Session, cmd: c.Noop | c.Check) -> Done:
    return Done(f"{type(cmd).__name__.upper()} completed")


async def logout(session: Session, cmd: c.Logout) -> Done:
    await session.send(wire.status("*", "BYE", "Logging out."))
    session.deselect()
    session.state = State.LOGOUT
    return Done("LOGOUT completed")


async def id_(session: Session, cmd: c.Id) -> Done:
    """RFC 2971: the client's fields are logged at debug only (they may name a person's workstation)."""
    if cmd.params:
        session.log.debug("imap_client_id", fields=dict(cmd.params[:30]))
    items = b" ".join(response.quoted(k) + b" " + response.quoted(v) for k, v in SERVER_ID)
    await session.untagged(b"ID (" + items + b")")
    return Done("ID completed")


async def enable(session: Session, cmd: c.Enable) -> Done:
    """RFC 5161 3: only extensions we know are enabled; QRESYNC implies CONDSTORE (RFC 7162 3.2.3)."""
    newly = []
    for name in cmd.capabilities:
        name = name.upper()
        if name in ENABLEABLE and name not in session.enabled:
            session.enabled.add(name)
            newly.append(name)
            if name == "QRESYNC" and "CONDSTORE" not in session.enabled:
                session.enabled.add("CONDSTORE")
    await session.untagged("ENABLED" + "".join(" " + n for n in newly))
    return Done("ENABLE completed")


async def namespace(session: Session, cmd: c.Namespace) -> Done:
    """RFC 2342 / RFC 9051 6.3.10: one personal namespace, no other users' or shared folders."""
    await session.untagged('NAMESPACE (("" "/")) NIL NIL')
    return Done("NAMESPACE completed")


async def compress(session: Session, cmd: c.Compress) -> Done:
    """RFC 4978 3: the tagged OK is the last uncompressed data; both directions are compressed after it."""
    if cmd.mechanism.upper() != "DEFLATE":
        raise Bad("Only DEFLATE is supported.", "CLIENTBUG")
    if session.channel.deflate is not None:
        raise No("Compression is already active.", "COMPRESSIONACTIVE")
    if session.pending_input():
        raise Bad("Nothing may follow COMPRESS before its answer.", "CLIENTBUG")
    await session.send(wire.status(cmd.tag, "OK", "DEFLATE active"))
    session.channel.start_compress()
    return ANSWERED
