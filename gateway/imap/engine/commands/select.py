"""SELECT/EXAMINE with CONDSTORE/QRESYNC, CLOSE and UNSELECT (RFC 9051 6.3.2-3, 6.4.1-2; RFC 7162 3.1.8, 3.2.5).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.imap.engine.state import Done, State
from gateway.imap.engine.updates import Selected, flags_text
from gateway.imap.proto import commands as c
from gateway.imap.proto import sequence

if TYPE_CHECKING:
    from gateway.imap.engine.session import Session


async def select(session: Session, cmd: c.Select) -> Done:
    """RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected; CONDSTORE/QRESYNC parameters enable them."""
    session.deselect()
    if cmd.condstore:
        session.enabled.add("CONDSTORE")
    if cmd.qresync is not None and not session.qresync:
        from gateway.imap.engine.state import Bad

        raise Bad("QRESYNC must be enabled first (RFC 7162 3.2.5).", "CLIENTBUG")
    view = await session.backend.select(cmd.mailbox, readonly=cmd.readonly)
    selected = Selected(session, view, readonly=cmd.readonly)
    await selected.send_flags()
    await session.untagged(f"{view.exists} EXISTS")
    if not session.rev2:
        # RFC 3501 2.3.2: the messages this session is the first to see; SEARCH RECENT and STATUS agree.
        await session.untagged(f"{view.recent} RECENT")
        if view.first_unseen is not None:
            await session.untagged(f"OK [UNSEEN {view.first_unseen}] First unseen message.")
    await session.untagged(f"OK [UIDVALIDITY {view.uidvalidity}] UIDs valid.")
    await session.untagged(f"OK [UIDNEXT {view.uidnext}] Predicted next UID.")
    await session.untagged(f"OK [HIGHESTMODSEQ {view.highestmodseq}] Highest mod-sequence.")
    await session.untagged(f"OK [MAILBOXID ({view.mailbox_id})] Mailbox id.")
    session.selected = selected
    session.selected_name = cmd.mailbox
    session.state = State.SELECTED
    if cmd.qresync is not None and cmd.qresync.uidvalidity == view.uidvalidity:
        await _qresync(session, selected, cmd.qresync)
    access = "READ-ONLY" if cmd.readonly else "READ-WRITE"
    return Done(f"{'EXAMINE' if cmd.readonly else 'SELECT'} completed", access)


async def _qresync(session: Session, selected: Selected, qresync: c.QResync) -> None:
    """RFC 7162 3.2.5.2: VANISHED (EARLIER) for what went since ``modseq``, FETCH for what changed."""
    resync = await selected.view.resync(qresync.modseq, qresync.known_uids)
    if resync.vanished:
        await session.untagged("VANISHED (EARLIER) " + sequence.format(resync.vanished))
    await selected.announce_rows(row for _, row in resync.changed)
    for seq, row in resync.changed:
        await session.untagged(f"{seq} FETCH (UID {row.uid} FLAGS {flags_text(selected.flags_of(row))} "
                               f"MODSEQ ({row.modseq}))")


async def close(session: Session, cmd: c.Close) -> Done:
    """RFC 9051 6.4.1: expunge silently unless the mailbox was EXAMINEd."""
    selected = session.selected
    if selected is not None and not selected.readonly:
        await selected.view.expunge(None)  # no EXPUNGE responses: the mailbox is closed
    session.deselect()
    return Done("CLOSE completed")


async def unselect(session: Session, cmd: c.Unselect) -> Done:
    session.deselect()
    return Done("UNSELECT completed")
