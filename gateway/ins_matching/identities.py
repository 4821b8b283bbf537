"""The structure's identity repository (R7): identities, the evidence of each qualification step, and status.

The status is never set by hand: it is derived from the evidence recorded (R7). ``qualifiée`` needs both an
INSi success and a high-trust identity document check; a received document never qualifies anyone (R11).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.codes.identity_status import PROVISOIRE, QUALIFIEE, RECUPEREE, STATUSES, VALIDEE
from gateway.codes.rules import Rule
from gateway.ins_matching.nir import INS_OIDS, TEST_OIDS, key_ok
from gateway.store.events import now, record
from gateway.store.models import Identity, IdentityEvidence

__all__ = ["PROVISOIRE", "QUALIFIEE", "RECUPEREE", "STATUSES", "VALIDEE"]

#: High-trust identity documents (R7); a family booklet only counts for a child.
HIGH_TRUST_DOCUMENTS = frozenset({"identity_card", "passport", "residence_permit", "family_booklet"})
OTHER_DOCUMENTS = frozenset({"driving_licence", "health_card", "other"})
INSI_RESULTS = frozenset({"found", "none", "several"})


class IdentityError(ValueError):
    """A refused identity operation, explained in one sentence."""


@dataclass(frozen=True)
class Traits:
    """The five INS traits (R7)."""

    birth_name: str
    first_names: str
    birth_date: str  # YYYY-MM-DD
    sex: str  # M, F or U
    birth_place: str  # INSEE code, 5 characters

    @property
    def first_name(self) -> str:
        return self.first_names.split()[0] if self.first_names.split() else ""

    def check(self) -> None:
        if not self.birth_name.strip() or not self.first_names.strip():
            raise IdentityError("Birth name and birth first names are required (R7).")
        try:
            born = date.fromisoformat(self.birth_date)
        except ValueError:
            raise IdentityError(f"Birth date {self.birth_date!r} is not a date in YYYY-MM-DD form.") from None
        if born > date.today():
            raise IdentityError("Birth date is in the future.")
        if self.sex not in {"M", "F", "U"}:
            raise IdentityError("Sex must be M, F or U.")
        if len(self.birth_place) != 5:
            raise IdentityError("Birth place must be a 5-character INSEE code (99xxx abroad).")


def status_from(insi_ok: bool, document_ok: bool) -> str:
    """R7's table: INSi success and high-trust document check give the four statuses."""
    if insi_ok and document_ok:
        return QUALIFIEE
    if insi_ok:
        return RECUPEREE
    if document_ok:
        return VALIDEE
    return PROVISOIRE


async def add_identity(
    session: AsyncSession, matricule: str, oid: str, traits: Traits, actor: str, allow_test: bool = False
) -> int:
    """Register an identity as ``provisoire``; the matricule key and OID are checked (R8)."""
    if not key_ok(matricule):
        raise IdentityError(f"Matricule key is wrong or the matricule is malformed (R8): {len(matricule)} characters.")
    if oid not in INS_OIDS:
        raise IdentityError(f"OID {oid} is not an INS OID (R8).")
    if oid in TEST_OIDS and not allow_test:
        raise IdentityError("Test and demonstration INS OIDs are refused unless rules.allow_test_identities is set.")
    traits.check()
    if await find(session, matricule, follow=False) is not None:
        raise IdentityError("An identity with this matricule already exists.")
    at = now()
    result = await session.execute(insert(Identity).values(
        matricule=matricule, oid=oid, birth_name=traits.birth_name, first_names=traits.first_names,
        first_name=traits.first_name, birth_date=traits.birth_date, sex=traits.sex, birth_place=traits.birth_place,
        status=PROVISOIRE, replaced_by=None, created_at=at, updated_at=at,
    ).returning(Identity.id))
    identity_id = result.scalar_one()
    await record(session, "identity.added", PROVISOIRE, rule=Rule.R7, actor=actor, identity_id=identity_id)
    return identity_id


async def find(session: AsyncSession, matricule: str, follow: bool = True) -> Identity | None:
    """The identity with ``matricule``; an obsolete matricule leads to its principal one when ``follow`` (R8)."""
    for _ in range(5):  # a short chain at most; guards against a cycle
        identity = (await session.execute(
            select(Identity).where(Identity.matricule == matricule))).scalar_one_or_none()
        if identity is None or not follow or identity.replaced_by is None:
            return identity
        matricule = identity.replaced_by
    return None


async def get(session: AsyncSession, identity_id: int) -> Identity:
    identity = await session.get(Identity, identity_id)
    if identity is None:
        raise IdentityError(f"No identity has id {identity_id}.")
    return identity


async def _recompute(session: AsyncSession, identity: Identity, actor: str) -> str:
    evidence = (await session.execute(
        select(IdentityEvidence).where(IdentityEvidence.identity_id == identity.id))).scalars().all()
    insi_ok = any(e.kind == "insi" and e.detail == "found" for e in evidence)
    document_ok = any(e.kind == "document" and e.detail in HIGH_TRUST_DOCUMENTS for e in evidence)
    status = status_from(insi_ok, document_ok)
    previous = identity.status
    if status != previous:
        await session.execute(update(Identity).where(Identity.id == identity.id)
                              .values(status=status, updated_at=now()))
        await record(session, "identity.status", status, rule=Rule.R7, actor=actor, identity_id=identity.id,
                     previous=previous)
        identity.status = status
    return status


async def record_insi(session: AsyncSession, identity_id: int, result: str, actor: str) -> str:
    """Record an INSi call's result (R9) and return the new status."""
    if result not in INSI_RESULTS:
        raise IdentityError(f"INSi result must be one of {', '.join(sorted(INSI_RESULTS))}.")
    identity = await get(session, identity_id)
    if identity.replaced_by is not None:
        raise IdentityError("This matricule is obsolete; qualify the principal identity instead (R8).")
    await session.execute(insert(IdentityEvidence).values(
        identity_id=identity_id, kind="insi", detail=result, actor=actor, at=now()))
    await record(session, "identity.insi", result, rule=Rule.R9, actor=actor, identity_id=identity_id)
    return await _recompute(session, identity, actor)


async def record_document(session: AsyncSession, identity_id: int, document: str, actor: str) -> str:
    """Record an identity document check (R7) and return the new status."""
    if document not in HIGH_TRUST_DOCUMENTS | OTHER_DOCUMENTS:
        known = ", ".join(sorted(HIGH_TRUST_DOCUMENTS | OTHER_DOCUMENTS))
        raise IdentityError(f"Identity document kind must be one of {known}.")
    identity = await get(session, identity_id)
    if identity.replaced_by is not None:
        raise IdentityError("This matricule is obsolete; qualify the principal identity instead (R8).")
    await session.execute(insert(IdentityEvidence).values(
        identity_id=identity_id, kind="document", detail=document, actor=actor, at=now()))
    await record(session, "identity.document", document, rule=Rule.R7, actor=actor, identity_id=identity_id,
                 high_trust=document in HIGH_TRUST_DOCUMENTS)
    return await _recompute(session, identity, actor)


async def replace_matricule(session: AsyncSession, obsolete: str, principal: str, oid: str, actor: str) -> int:
    """The national service said ``obsolete`` is replaced by ``principal`` (R8): move the identity over.

    The old row stays (documents and events refer to it) and points to the principal one, which inherits the
    traits but not the qualification evidence: INSi must be called again on the principal matricule.
    """
    old = await find(session, obsolete, follow=False)
    if old is None:
        raise IdentityError("No identity has the obsolete matricule.")
    if not key_ok(principal):
        raise IdentityError("The principal matricule's key is wrong (R8).")
    existing = await find(session, principal, follow=False)
    if existing is not None:
        new_id = existing.id
    else:
        traits = Traits(old.birth_name, old.first_names, old.birth_date, old.sex, old.birth_place)
        new_id = await add_identity(session, principal, oid, traits, actor, allow_test=True)
    await session.execute(update(Identity).where(Identity.id == old.id)
                          .values(replaced_by=principal, updated_at=now()))
    await record(session, "identity.replaced", "obsolete", rule=Rule.R8, actor=actor, identity_id=old.id,
                 principal_identity_id=new_id)
    return new_id


async def evidence_of(session: AsyncSession, identity_id: int) -> list[IdentityEvidence]:
    query = select(IdentityEvidence).where(IdentityEvidence.identity_id == identity_id).order_by(IdentityEvidence.id)
    return list((await session.execute(query)).scalars().all())


async def list_identities(session: AsyncSession) -> list[Identity]:
    return list((await session.execute(select(Identity).order_by(Identity.id))).scalars().all())
