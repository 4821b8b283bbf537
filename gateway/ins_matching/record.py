"""The patient record (filed documents) and the review queue (R10, R11), with their events (R18).

Tables live beside the store's (same metadata, migration ``documents_0001``). Every function works inside
the caller's transaction and writes one event with its rule, like :mod:`gateway.ins_matching.identities`;
the caller commits. The API is plain values in, ids and dataclasses out, so a web page can call it later.

A replacement (RPLC, or a higher version of the same setId) marks the older filed versions of that patient as
superseded; they stay in the record (R15: a corrected document replaces the old one as a new version).
Events carry ids and codes only: file names (``source``) may name the patient, so they stay in the tables.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, func, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import JSON

from gateway.codes.identity_status import QUALIFIEE
from gateway.codes.oids import OID_RPPS
from gateway.codes.rules import Rule
from gateway.documents.cda import CdaHeader
from gateway.documents.pipeline import extract
from gateway.ins_matching import identities
from gateway.ins_matching.filing import Outcome, decide
from gateway.ins_matching.matching import FileTo, IdentityLike, Review
from gateway.store.changes import HL7_OUTBOX, mark_changed
from gateway.store.events import now, record
from gateway.store.models import Base, Id, Identity

OPEN = "open"
RESOLVED = "resolved"
REJECTED = "rejected"
REVIEW_STATUSES = (OPEN, RESOLVED, REJECTED)


class PatientDocument(Base):
    """A document filed into a patient's record, automatically (R10) or by a person from the review queue."""

    __tablename__ = "patient_documents"
    __table_args__ = (UniqueConstraint("identity_id", "unique_id", name="uq_patient_documents_identity_unique_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(500), default="")
    unique_id: Mapped[str] = mapped_column(String(200), index=True)
    set_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    type_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type_code_system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type_display: Mapped[str | None] = mapped_column(String(300), nullable=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    effective_time: Mapped[str | None] = mapped_column(String(40), nullable=True)
    confidentiality: Mapped[str | None] = mapped_column(String(40), nullable=True)
    author_national_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    author_organisation: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: The whole CDA header as read (gateway.documents.cda.CdaHeader.to_dict()).
    header: Mapped[dict[str, Any]] = mapped_column(JSON)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    filed_by: Mapped[str] = mapped_column(String(320))
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("patient_documents.id"), nullable=True)
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DocumentReview(Base):
    """A received document waiting for a person: why (ANS code and sentence), what, and what was decided."""

    __tablename__ = "document_reviews"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(500), default="")
    #: R11: the identity the document seems to be about, proposed to the person, never filed automatically.
    candidate_identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id"), nullable=True)
    unique_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    matricule: Mapped[str | None] = mapped_column(String(15), nullable=True, index=True)
    header: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    filed_document_id: Mapped[int | None] = mapped_column(ForeignKey("patient_documents.id"), nullable=True)


class RecordError(ValueError):
    """A refused record or review operation, in one sentence."""


@dataclass(frozen=True)
class ReviewSummary:
    id: int
    code: int
    reason: str
    rule: str
    status: str
    source: str
    title: str | None
    type_code: str | None
    candidate_identity_id: int | None
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None


@dataclass(frozen=True)
class ReviewItem:
    summary: ReviewSummary
    matricule: str | None
    header: dict[str, Any] | None
    content: bytes
    message_id: int | None
    decision_note: str | None
    filed_document_id: int | None


@dataclass(frozen=True)
class FiledDocument:
    id: int
    identity_id: int
    unique_id: str
    set_id: str | None
    version: int | None
    type_code: str | None
    title: str | None
    effective_time: str | None
    filed_at: datetime
    filed_by: str
    superseded_by: int | None


def _ii(value: Any) -> str | None:
    if not isinstance(value, dict) or not value.get("root"):
        return None
    return f"{value['root']}^{value['extension']}" if value.get("extension") else str(value["root"])


def _columns(header: dict[str, Any]) -> dict[str, Any]:
    """Record columns from a header dict (the same for a live header and one stored with a review)."""
    code = header.get("code") or {}
    confidentiality = header.get("confidentiality") or {}
    authors = header.get("authors") or []
    first = authors[0] if authors else {}
    author_id = first.get("id") or {}
    organisation = first.get("organisation") or {}
    unique_id = _ii(header.get("id"))
    if unique_id is None:
        raise RecordError("The document has no id; it cannot be filed.")
    return dict(
        unique_id=unique_id[:200], set_id=(_ii(header.get("set_id")) or None), version=header.get("version"),
        type_code=code.get("code"), type_code_system=code.get("code_system"),
        type_display=(code.get("display_name") or None), title=header.get("title"),
        effective_time=header.get("effective_time"), confidentiality=confidentiality.get("code"),
        author_national_id=author_id.get("extension") if author_id.get("root") == OID_RPPS else None,
        author_organisation=(organisation.get("name") or None),
    )


def _replaced_id(header: dict[str, Any]) -> str | None:
    for related in header.get("related") or []:
        if related.get("type_code") == "RPLC":
            return _ii(related.get("parent_id"))
    return None


async def file_document(session: AsyncSession, identity_id: int, content: bytes,
                        header: CdaHeader | dict[str, Any], *, message_id: int | None = None, source: str = "",
                        actor: str = "gateway", rule: str = Rule.R10, review_id: int | None = None) -> int:
    """File a document into an identity's record; returns its id (the existing one if already filed).

    The older versions it replaces (RPLC parent, or a lower version of the same setId) are marked superseded.
    """
    data = header.to_dict() if isinstance(header, CdaHeader) else header
    columns = _columns(data)
    existing = (await session.execute(select(PatientDocument.id).where(
        PatientDocument.identity_id == identity_id, PatientDocument.unique_id == columns["unique_id"]))).scalar()
    if existing is not None:
        await record(session, "document.filed", "duplicate", rule=rule, actor=actor, message_id=message_id,
                     identity_id=identity_id, document_id=existing)
        return int(existing)
    at = now()
    document = PatientDocument(identity_id=identity_id, message_id=message_id, source=source[:500], header=data,
                               content=content, sha256=hashlib.sha256(content).hexdigest(), size=len(content),
                               filed_at=at, filed_by=actor, **columns)
    session.add(document)
    await session.flush()
    mark_changed(session, HL7_OUTBOX)  # a configured DPI peer gets it as MDM^T02 at commit (gateway/hl7/relay.py)
    await record(session, "document.filed", "filed", rule=rule, actor=actor, message_id=message_id,
                 identity_id=identity_id, document_id=document.id, code=columns["type_code"], review_id=review_id)
    older = [PatientDocument.unique_id == replaced] if (replaced := _replaced_id(data)) else []
    if columns["set_id"] and columns["version"] is not None:
        older.append((PatientDocument.set_id == columns["set_id"]) & (PatientDocument.version < columns["version"]))
    if older:
        superseded = (await session.execute(select(PatientDocument.id).where(
            PatientDocument.identity_id == identity_id, PatientDocument.superseded_by.is_(None),
            PatientDocument.id != document.id, or_(*older)))).scalars().all()
        for old_id in superseded:
            await session.execute(sql_update(PatientDocument).where(PatientDocument.id == old_id)
                                  .values(superseded_by=document.id, superseded_at=at))
            await record(session, "document.superseded", "replaced", rule=Rule.R15, actor=actor,
                         identity_id=identity_id, document_id=old_id, replaced_by=document.id)
    return document.id


async def open_review(session: AsyncSession, decision: Review, content: bytes,
                      header: CdaHeader | dict[str, Any] | None = None, *, message_id: int | None = None,
                      source: str = "", actor: str = "gateway") -> int:
    """Put a document in the review queue with the decision's ANS code and reason (R10, R11)."""
    data = header.to_dict() if isinstance(header, CdaHeader) else header
    candidate = _identity_id(decision.candidate)
    unique_id = _ii(data.get("id")) if data else None
    matricule = None
    if data:
        ins = (data.get("patient") or {}).get("ins") or []
        matricule = (ins[0].get("extension") or None) if ins else None
    review = DocumentReview(code=decision.code, reason=decision.reason, rule=decision.rule, status=OPEN,
                            message_id=message_id, source=source[:500], candidate_identity_id=candidate,
                            unique_id=unique_id[:200] if unique_id else None,
                            matricule=matricule[:15] if matricule else None, header=data, content=content,
                            sha256=hashlib.sha256(content).hexdigest(), size=len(content), created_at=now())
    session.add(review)
    await session.flush()
    await record(session, "document.review_opened", str(decision.code), rule=decision.rule, actor=actor,
                 message_id=message_id, identity_id=candidate, review_id=review.id, code=decision.code,
                 reason_text=decision.reason)
    return review.id


def _identity_id(identity: IdentityLike | None) -> int | None:
    value = getattr(identity, "id", None) if identity is not None else None
    return int(value) if isinstance(value, int) else None


def _summary(review: DocumentReview) -> ReviewSummary:
    header = review.header or {}
    return ReviewSummary(id=review.id, code=review.code, reason=review.reason, rule=review.rule,
                         status=review.status, source=review.source, title=header.get("title"),
                         type_code=(header.get("code") or {}).get("code"),
                         candidate_identity_id=review.candidate_identity_id, created_at=review.created_at,
                         decided_at=review.decided_at, decided_by=review.decided_by)


async def list_reviews(session: AsyncSession, status: str | None = OPEN, limit: int = 100,
                       offset: int = 0) -> list[ReviewSummary]:
    """Review items, oldest first, without their bytes; ``status`` None lists all."""
    if status is not None and status not in REVIEW_STATUSES:
        raise RecordError(f"Review status must be one of {', '.join(REVIEW_STATUSES)}.")
    query = select(DocumentReview).order_by(DocumentReview.id).limit(max(1, min(limit, 1000))).offset(max(0, offset))
    if status is not None:
        query = query.where(DocumentReview.status == status)
    return [_summary(r) for r in (await session.execute(query)).scalars().all()]


async def _review(session: AsyncSession, review_id: int) -> DocumentReview:
    review = await session.get(DocumentReview, review_id)
    if review is None:
        raise RecordError(f"No review item has id {review_id}.")
    return review


async def show_review(session: AsyncSession, review_id: int) -> ReviewItem:
    """One review item with its document bytes and header."""
    review = await _review(session, review_id)
    return ReviewItem(summary=_summary(review), matricule=review.matricule, header=review.header,
                      content=review.content, message_id=review.message_id, decision_note=review.decision_note,
                      filed_document_id=review.filed_document_id)


async def resolve_review(session: AsyncSession, review_id: int, identity_id: int, actor: str,
                         note: str | None = None) -> int:
    """A person files the reviewed document into ``identity_id``'s record; returns the filed document's id.

    Only into a ``qualifiée`` identity, as automatic filing (R10): a document that names a provisional identity
    may be proposed as its candidate, but filing it would not qualify it (R11) and could file it to the wrong
    person. The command line and the console both come here.
    """
    review = await _review(session, review_id)
    if review.status != OPEN:
        raise RecordError(f"Review item {review_id} is already {review.status}.")
    if review.header is None:
        raise RecordError("This item is not a readable CDA document; it can only be rejected.")
    identity = await identities.get(session, identity_id)
    if identity.status != QUALIFIEE:
        raise RecordError(f"Identity {identity_id} is {identity.status}, not {QUALIFIEE}: qualify it (INSi and an "
                          "identity document) before filing a document to it (R10, R11).")
    document_id = await file_document(session, identity_id, review.content, review.header,
                                      message_id=review.message_id, source=review.source, actor=actor, rule=Rule.R11,
                                      review_id=review_id)
    await session.execute(sql_update(DocumentReview).where(DocumentReview.id == review_id).values(
        status=RESOLVED, decided_at=now(), decided_by=actor, decision_note=note, filed_document_id=document_id))
    await record(session, "document.review_resolved", RESOLVED, rule=Rule.R11, actor=actor, identity_id=identity_id,
                 review_id=review_id, document_id=document_id, identity_status=identity.status,
                 code=review.code, reason_text=note)
    return document_id


async def reject_review(session: AsyncSession, review_id: int, actor: str, reason: str) -> None:
    """A person decides the reviewed document is not to be filed (wrong recipient, duplicate, unreadable)."""
    review = await _review(session, review_id)
    if review.status != OPEN:
        raise RecordError(f"Review item {review_id} is already {review.status}.")
    if not reason.strip():
        raise RecordError("Say why the document is rejected; the reason is kept in the trail (R18).")
    await session.execute(sql_update(DocumentReview).where(DocumentReview.id == review_id).values(
        status=REJECTED, decided_at=now(), decided_by=actor, decision_note=reason))
    await record(session, "document.review_rejected", REJECTED, rule=Rule.R10, actor=actor, review_id=review_id,
                 code=review.code, reason_text=reason)


async def documents_of(session: AsyncSession, identity_id: int,
                       include_superseded: bool = False) -> list[FiledDocument]:
    """A patient's record, oldest first; superseded versions only when asked."""
    query = select(PatientDocument).where(PatientDocument.identity_id == identity_id).order_by(PatientDocument.id)
    if not include_superseded:
        query = query.where(PatientDocument.superseded_by.is_(None))
    return [FiledDocument(id=d.id, identity_id=d.identity_id, unique_id=d.unique_id, set_id=d.set_id,
                          version=d.version, type_code=d.type_code, title=d.title, effective_time=d.effective_time,
                          filed_at=d.filed_at, filed_by=d.filed_by, superseded_by=d.superseded_by)
            for d in (await session.execute(query)).scalars().all()]


async def document_content(session: AsyncSession, document_id: int) -> bytes:
    document = await session.get(PatientDocument, document_id)
    if document is None:
        raise RecordError(f"No filed document has id {document_id}.")
    return document.content


# --- from a message to the record ------------------------------------------------------------------------

async def identities_for(session: AsyncSession, matricules: Iterable[str]) -> dict[str, Identity]:
    """The repository's identities for these matricules (obsolete ones lead to their principal one, R8)."""
    found: dict[str, Identity] = {}
    for matricule in set(matricules):
        identity = await identities.find(session, matricule, follow=True)
        if identity is not None:
            found[matricule] = identity
    return found


async def filed_versions(session: AsyncSession, set_ids: Iterable[str]) -> dict[str, int]:
    """The highest version already filed for each setId (for the version check, code 900)."""
    wanted = list(set(set_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(PatientDocument.set_id, func.max(PatientDocument.version))
                                 .where(PatientDocument.set_id.in_(wanted)).group_by(PatientDocument.set_id))
    return {set_id: version for set_id, version in rows.all() if set_id is not None and version is not None}


@dataclass(frozen=True)
class Recorded:
    """What became of one outcome: ``("filed", document id)`` or ``("review", review id)``."""

    kind: str
    id: int
    outcome: Outcome


async def record_outcomes(session: AsyncSession, outcomes: Sequence[Outcome], *, message_id: int | None = None,
                          actor: str = "gateway") -> list[Recorded]:
    """File or queue each outcome of :func:`gateway.ins_matching.filing.process_message`."""
    results = []
    for outcome in outcomes:
        document, decision = outcome.document, outcome.decision
        if isinstance(decision, FileTo) and document.header is not None:
            identity_id = _identity_id(decision.identity)
            if identity_id is None:
                raise RecordError("The identity to file into has no id; use identities from the store.")
            document_id = await file_document(session, identity_id, document.content, document.header,
                                              message_id=message_id, source=document.source, actor=actor,
                                              rule=decision.rule)
            results.append(Recorded("filed", document_id, outcome))
        else:
            review = decision if isinstance(decision, Review) else Review(906, "The document could not be filed.")
            review_id = await open_review(session, review, document.content, document.header,
                                          message_id=message_id, source=document.source, actor=actor)
            results.append(Recorded("review", review_id, outcome))
    return results


async def process_and_record(session: AsyncSession, raw: bytes, *, message_id: int | None = None,
                             allow_test_oids: bool = False, validate: bool = True,
                             actor: str = "gateway") -> list[Recorded]:
    """The whole path for one delivered message: extract (in a thread), match against the store, record.

    Call it after the message is committed (architecture.md: documents are read after delivery), in its own
    transaction; what it records is idempotent per (identity, document id), so a retry does not file twice.
    """
    documents = await asyncio.to_thread(extract, raw, validate=validate)
    matricules = [d.header.patient.matricule for d in documents if d.header and d.header.patient.matricule]
    set_ids = [str(d.header.set_id) for d in documents if d.header and d.header.set_id]
    lookup = await identities_for(session, matricules)
    versions = await filed_versions(session, set_ids)
    outcomes = [Outcome(d, decide(d, lookup, allow_test_oids=allow_test_oids, filed_version=versions.get))
                for d in documents]
    return await record_outcomes(session, outcomes, message_id=message_id, actor=actor)
