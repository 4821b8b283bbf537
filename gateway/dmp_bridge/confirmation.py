"""What a person designates when confirming that the structure wrote a received document (R12).

``gateway dmp confirm`` and the console's DMP page take the same argument: a message number, or a document's
uniqueId found in the patients' records or in the trail of documents the bridge did not deposit.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ins_matching.record import PatientDocument
from gateway.store.models import Event


async def confirmation_target(session: AsyncSession, given: str) -> tuple[int, str | None]:
    """A confirmation's argument as (message, document): a message number (all its documents), or a document's
    uniqueId, found in the patients' records (a received document filed, R10) or in the trail of documents the
    bridge did not deposit (R12)."""
    if given.isdigit():
        return int(given), None
    unique_id = given.strip()[:128]
    filed = (await session.execute(select(PatientDocument.message_id).where(
        PatientDocument.unique_id == unique_id, PatientDocument.message_id.is_not(None)).limit(1))).scalar()
    if filed is not None:
        return int(filed), unique_id
    trail = await session.execute(select(Event.message_id, Event.detail).where(
        Event.kind == "dmp.deposit.not_deposited", Event.message_id.is_not(None)).order_by(Event.id.desc()).limit(5000))
    for message_id, detail in trail.all():
        if message_id is not None and (detail or {}).get("unique_id") == unique_id:
            return int(message_id), unique_id
    raise LookupError(f"No received or undeposited document has the uniqueId {unique_id}; give the message's "
                      "number instead.")
