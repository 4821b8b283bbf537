"""Asking INSi about one identity and recording the answer (R8, R9): the command line and the console both come here.

An answer moves the identity's evidence (:func:`identities.record_insi`); an obsolete matricule moves the identity
to the principal one first (R8). No answer (INSi unreachable, garbled) is no evidence: the identity stays as it
was and the failure is an event.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.codes.rules import Rule
from gateway.ins_matching import identities
from gateway.ins_matching.insi import InsiService
from gateway.ins_matching.insi_client import InsiUnavailable
from gateway.store.events import record


@dataclass(frozen=True)
class InsiCheck:
    """What asking INSi did: ``identity_id`` holds the answer (the principal identity when the matricule was
    obsolete); ``outcome`` is INSi's (found, none, several) or ``unavailable`` with ``error``."""

    identity_id: int
    outcome: str
    status: str | None = None
    replaced: bool = False
    error: str | None = None


async def ask_insi(session: AsyncSession, identity_id: int, service: InsiService, actor: str) -> InsiCheck:
    """Verify ``identity_id``'s matricule and traits with ``service`` and record the answer."""
    identity = await identities.get(session, identity_id)
    traits = identities.Traits(identity.birth_name, identity.first_names, identity.birth_date, identity.sex,
                               identity.birth_place)
    try:
        result = await service.verify(identity.matricule, traits)
    except InsiUnavailable as exc:
        await record(session, "identity.insi", "unavailable", rule=Rule.R9, actor=actor, identity_id=identity_id,
                     error=str(exc))
        return InsiCheck(identity_id, "unavailable", error=str(exc))
    if result.replaced and result.identity is not None:
        principal = await identities.replace_matricule(session, identity.matricule, result.replaced,
                                                       result.identity.oid, actor)
        status = await identities.record_insi(session, principal, "found", actor)
        return InsiCheck(principal, "found", status, replaced=True)
    status = await identities.record_insi(session, identity_id, result.outcome, actor)
    return InsiCheck(identity_id, result.outcome, status)
