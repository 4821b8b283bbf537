"""From a submitted message to deposit jobs: find the CDA documents, apply the rules, enqueue what they allow.

:func:`consider_message` runs inside the caller's transaction (the rule decisions and the jobs commit together,
or none of them does). The filing worker's deposit job runs its halves apart, so that the writer is held only for
the writes: :func:`read_submission` (CPU, off the event loop) and :func:`decide_message` (reads) before its write
transaction, :func:`record_decisions` (a handful of statements) inside it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import policy as email_policy
from email.parser import BytesParser
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.codes.identity_status import is_qualified
from gateway.codes.rules import Rule
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.attachments import DEFAULT_ATTACHMENT_TYPE, TYPE_HEADER, Attachment, digest, find_attachments
from gateway.dmp_bridge.metadata import WrappedPatient, wrap_document
from gateway.dmp_bridge.outbox import NewDeposit, add_deposits, trail_row
from gateway.dmp_bridge.presence import PresenceSource, nobody_present
from gateway.dmp_bridge.rules import (
    Decision,
    DepositPlan,
    DepositPolicy,
    Professional,
    depositing_author,
    evaluate,
    r7_identity,
    refuse,
)
from gateway.documents.cda import CdaHeader, Code, non_xml_body, read_header, unwrapped
from gateway.documents.errors import CdaRefused
from gateway.documents.pipeline import Extracted, read_message
from gateway.store.effects import record_events
from gateway.store.events import now as event_time
from gateway.store.models import Identity

log = structlog.get_logger("gateway.dmp_bridge.bridge")

@dataclass(frozen=True)
class Considered:
    """What happened to one CDA found in a message."""

    unique_id: str
    plan: DepositPlan
    job_id: int | None


def cdas_of(extracted: Extracted) -> list[tuple[bytes, CdaHeader]]:
    """The CDA R2 documents to consider for deposit among what :func:`gateway.documents.pipeline.read_message`
    found: readable ones within the DMP's CDA size (R15), de-duplicated by uniqueId. The message was read by
    the one bounded reader (zip bombs, zip slip, nesting and MIME depth are refused there)."""
    found: dict[str, tuple[bytes, CdaHeader]] = {}
    for document in extracted.documents:
        if document.header is None or len(document.content) > c.MAX_CDA_SIZE:
            continue
        # an auto-presentable CDA is deposited as the ClinicalDocument it wraps, without the stylesheet
        content = unwrapped(document.content, c.CDA_LIMITS) if document.header.auto_presentable else document.content
        found.setdefault(document.header.unique_id, (content, document.header))
    return list(found.values())


async def _identity(session: AsyncSession, ctx: _Context, matricule: str) -> Identity | None:
    """The repository's identity for ``matricule`` (obsolete ones lead to the principal one, R8): the one the
    filing worker already looked up for R10 when it gave it, else read here."""
    if ctx.identities is not None and matricule in ctx.identities:
        return ctx.identities[matricule]
    from gateway.ins_matching import identities

    return await identities.find(session, matricule)


@dataclass(frozen=True)
class _Context:
    """What every document of one message is considered with."""

    message_id: int | None
    sender: str
    sender_mailbox_id: int | None
    policy: DepositPolicy
    presence: PresenceSource
    now: datetime
    visibility: str | None
    title: str | None
    manual_request: bool
    confirmed_by: str | None
    #: The professional a person names as the author when the document's own authors are not ours (R12).
    author: Professional | None = None
    #: The person who asked for the deposit (manual deposit, confirmation): the actor of the trail (R18).
    person: str | None = None
    #: Identities already read for these documents' matricules (the filing worker's R10 lookup).
    identities: Mapping[str, Identity] | None = None

    @property
    def actor(self) -> str:
        return self.person or self.sender


@dataclass(frozen=True)
class Submission:
    """What a message submits for deposit, read from its bytes alone (CPU, no store): its CDAs, the attachments
    deposited as documents of their own, and the sender's ``X-DMP-*`` headers. Read before any transaction."""

    message_key: str
    visibility: str | None
    title: str | None
    type_code: str | None
    named: str | None
    cdas: list[tuple[bytes, CdaHeader]]
    attached: list[Attachment]


def read_submission(raw: bytes, *, policy: DepositPolicy, message_id: int | None,
                    extracted: Extracted | None = None, only: str | None = None) -> Submission:
    """The documents of ``raw`` to consider (``only``: the attachments reduced to that uniqueId, R12 confirmation);
    ``extracted``: what :func:`gateway.documents.pipeline.read_message` read of it (read here when not given).

    The bytes a level-1 CDA wraps are digested here, once, so that its attached rendering is not deposited
    twice (R15)."""
    headers = BytesParser(policy=email_policy.default).parsebytes(raw, headersonly=True)
    if extracted is None:
        extracted = read_message(raw, validate=False)
    cdas = cdas_of(extracted)
    renderings = frozenset(digest(body) for body in (non_xml_body(cda, c.CDA_LIMITS) for cda, header in cdas
                                                     if header.body == "nonXML") if body)
    message_key = str(message_id) if message_id is not None else hashlib.sha256(raw).hexdigest()
    attached = [a for a in find_attachments(extracted, renderings)
                if only is None or a.unique_id(policy.structure.source_id, message_key) == only]
    return Submission(message_key, str(headers.get(c.VISIBILITY_HEADER) or "") or None,
                      str(headers.get(c.TITLE_HEADER) or "") or None,
                      str(headers.get(TYPE_HEADER) or "").strip()[:40] or None,
                      str(headers.get(c.PATIENT_HEADER) or "").strip().upper()[:32] or None, cdas, attached)


@dataclass(frozen=True)
class _Decided:
    """One document decided: its rules' verdicts, and the deposit to queue when they all allow it."""

    unique_id: str
    plan: DepositPlan
    identity_id: int | None
    deposit: NewDeposit | None


@dataclass(frozen=True)
class Decisions:
    """A message's documents decided (R7, R12–R16) from what was read before the write transaction:
    what :func:`record_decisions` writes, with a handful of statements."""

    message_id: int | None
    sender_mailbox_id: int | None
    actor: str
    root: str
    decided: tuple[_Decided, ...]

    def __len__(self) -> int:
        return len(self.decided)


async def decide_message(session: AsyncSession, message_id: int | None, raw: bytes, sender: str,
                         recipients: list[str], *, policy: DepositPolicy, sender_mailbox_id: int | None = None,
                         presence: PresenceSource = nobody_present, now: datetime | None = None,
                         manual_request: bool = False, confirmed_by: str | None = None,
                         author: Professional | None = None, title: str | None = None,
                         visibility: str | None = None, only: str | None = None,
                         extracted: Extracted | None = None, identities: Mapping[str, Identity] | None = None,
                         submission: Submission | None = None) -> Decisions:
    """Apply R7 and R12–R16 to every CDA and attached document of a submitted message, writing nothing:
    ``session`` only reads (the identities, the patient's presence, the patient recipients), so it may be a
    read session before the write transaction. Arguments as :func:`consider_message`; ``submission``: what
    :func:`read_submission` read of ``raw`` (read here when not given)."""
    if submission is None:
        submission = read_submission(raw, policy=policy, message_id=message_id, extracted=extracted, only=only)
    ctx = _Context(message_id, sender, sender_mailbox_id, policy, presence, now or datetime.now(UTC),
                   visibility or submission.visibility, title or submission.title, manual_request, confirmed_by,
                   author, confirmed_by if manual_request else None, identities)
    cdas = submission.cdas
    decided = [await _decide(session, ctx, cda, header, len(cda), ctx.title) for cda, header in cdas
               if only is None or header.unique_id == only]
    if submission.attached:
        decided += await _decide_attachments(session, ctx, submission.attached, [h for _, h in cdas], recipients,
                                             submission.type_code, submission.message_key, named=submission.named)
    return Decisions(message_id, sender_mailbox_id, ctx.actor, policy.structure.source_id, tuple(decided))


async def record_decisions(session: AsyncSession, decisions: Decisions,
                           closing: Sequence[dict[str, Any]] = ()) -> list[Considered]:
    """Write what :func:`decide_message` decided, in the caller's write transaction: the deposits allowed,
    queued and linked (R15: one submission set per patient and author), and one event per rule decision (R18)
    with ``closing`` (rows of :func:`outbox.trail_row`) after them, in one statement."""
    added = await add_deposits(session, [d.deposit for d in decisions.decided if d.deposit is not None],
                               root=decisions.root, message_id=decisions.message_id, actor=decisions.actor)
    rows: list[dict[str, Any]] = []
    results = []
    queued = iter(zip(added.job_ids, added.rows, strict=True))
    for item in decisions.decided:
        for decision in item.plan.decisions:
            rows.append(trail_row("dmp.rule", "allowed" if decision.allowed else "refused", rule=decision.rule,
                                  actor=decisions.actor, message_id=decisions.message_id,
                                  mailbox_id=decisions.sender_mailbox_id, identity_id=item.identity_id,
                                  code=decision.code, reason_text=decision.reason, unique_id=item.unique_id))
        job_id = None
        if item.deposit is not None:
            job_id, row = next(queued)
            rows.append(row)
        else:
            refusal = item.plan.refusal
            rows.append(trail_row("dmp.deposit.not_deposited", "filed_locally",
                                  rule=refusal.rule if refusal else None, actor=decisions.actor,
                                  message_id=decisions.message_id, identity_id=item.identity_id,
                                  unique_id=item.unique_id, code=refusal.code if refusal else "no_author"))
        results.append(Considered(item.unique_id, item.plan, job_id))
    at = event_time()
    await record_events(session, [{**row, "at": at} for row in [*rows, *added.linked, *closing]])
    return results


async def consider_message(session: AsyncSession, message_id: int | None, raw: bytes, sender: str,
                           recipients: list[str], *, policy: DepositPolicy, sender_mailbox_id: int | None = None,
                           presence: PresenceSource = nobody_present, now: datetime | None = None,
                           manual_request: bool = False, confirmed_by: str | None = None,
                           author: Professional | None = None, title: str | None = None,
                           visibility: str | None = None, only: str | None = None,
                           extracted: Extracted | None = None,
                           identities: Mapping[str, Identity] | None = None) -> list[Considered]:
    """Apply R7 and R12–R16 to every CDA and attached document of a submitted message; enqueue what they allow.

    Runs in the caller's transaction; records one event per rule decision (R18). The documents queued together
    are linked (R15: one submission set per patient and author, :func:`outbox.add_deposits`). The
    ``X-DMP-Visibility`` and ``X-DMP-Title`` headers of the message carry the sender's visibility codes and manual
    title, ``X-DMP-Type`` the type code of its attached documents and ``X-DMP-Patient`` their patient when no CDA
    names one; ``title`` and ``visibility`` given by a person replace them. ``only``: the uniqueId of the one
    document a person confirms (R12), the message's other documents left as they are. ``extracted``: what
    :func:`gateway.documents.pipeline.read_message` read of ``raw`` (read here when not given);
    ``identities``: the identities already looked up for its matricules.

    The filing worker runs the same two halves apart (:func:`decide_message` before its write transaction,
    :func:`record_decisions` inside it), so that the writer lock is held only for the writes.
    """
    decisions = await decide_message(
        session, message_id, raw, sender, recipients, policy=policy, sender_mailbox_id=sender_mailbox_id,
        presence=presence, now=now, manual_request=manual_request, confirmed_by=confirmed_by, author=author,
        title=title, visibility=visibility, only=only, extracted=extracted, identities=identities)
    return await record_decisions(session, decisions)


async def _decide(session: AsyncSession, ctx: _Context, cda: bytes, header: CdaHeader, size: int,
                  title: str | None) -> _Decided:
    """R7, R12–R16 for one document; the deposit to queue when all allow it (reads only).

    ``size`` is the document's (a wrapped PDF's, not its wrapper's, R15); ``title`` the sender's, if any.
    """
    matricule = header.patient.matricule or ""
    identity = await _identity(session, ctx, matricule) if matricule else None
    identity_id, status = (identity.id, identity.status) if identity is not None else (None, None)
    present = None
    if matricule and ctx.sender_mailbox_id is not None:
        present = await ctx.presence(session, ctx.sender_mailbox_id, matricule)
    plan = evaluate(header, size=size, policy=ctx.policy, sender_address=ctx.sender, identity_status=status,
                    patient_present=present, now=ctx.now, visibility_header=ctx.visibility,
                    title=title,
                    manual_request=ctx.manual_request, confirmed_by=ctx.confirmed_by)
    if plan.author is None and ctx.confirmed_by and ctx.author is not None:
        plan = replace(plan, author=ctx.author)  # R12: the person confirmed that this professional wrote it
    deposit = None
    if plan.allowed and plan.author is not None:
        deposit = NewDeposit(cda=cda, unique_id=header.unique_id, matricule=matricule,
                             author_id=plan.author.national_id, title=plan.title, type_code=header.type_code,
                             visibility=tuple(sorted(plan.visibility)),
                             replaces=str(header.replaces) if header.replaces else None,
                             message_id=ctx.message_id, sender_mailbox_id=ctx.sender_mailbox_id,
                             identity_id=identity_id, actor=ctx.actor)
    return _Decided(header.unique_id, plan, identity_id, deposit)


async def _addressed_patient(session: AsyncSession, recipients: list[str], named: str | None) -> str | None:
    """Without a CDA: the patient the sender names (``X-DMP-Patient``) and the message's patient recipients, when
    they are one and the same (None for none, several or a disagreement: never guess, R10)."""
    from gateway.store.models import Mailbox

    addresses = [address.lower() for address in recipients][:100]
    found = set((await session.execute(select(Mailbox.matricule).where(
        Mailbox.address.in_(addresses), Mailbox.kind == "PAT", Mailbox.matricule.is_not(None)))).scalars())
    if named:
        found.add(named)
    return found.pop() if len(found) == 1 else None


async def _decide_attachments(session: AsyncSession, ctx: _Context, attached: list[Attachment],
                              cdas: list[CdaHeader], recipients: list[str], type_code: str | None,
                              message_key: str, *, patient: str | None = None, named: str | None = None,
                              author: Professional | None = None) -> list[_Decided]:
    """Attached documents, each wrapped in a level-1 CDA for the message's patient and author, then decided.

    The patient is the one of the message's CDA (a letter and its attachments), else the one the sender names
    (``named``, X-DMP-Patient) and/or the message's patient recipient; the author is the sending professional,
    else the structure's author of the CDA (software sending for them). A manual deposit names both (``patient``,
    ``author``).
    """
    policy = ctx.policy
    patients = {h.patient.matricule for h in cdas if h.patient.matricule}
    matricule = patient or ((patients.pop() if len(patients) == 1 else None) if cdas else await _addressed_patient(
        session, recipients, named))
    author = author or ctx.author or policy.professional_by_mailbox(ctx.sender) or next(
        (a for a in (depositing_author(h, policy) for h in cdas) if a is not None), None)
    code = type_code or (cdas[0].type_code if cdas else DEFAULT_ATTACHMENT_TYPE)
    identity = await _identity(session, ctx, matricule) if matricule else None
    results = []
    for attachment in attached:
        unique_id = attachment.unique_id(policy.structure.source_id, message_key)
        refusal = _attachment_refusal(matricule, identity, author)
        if refusal is not None or identity is None or author is None:
            decision = refusal or refuse(Rule.R12, "no_author", "The document names no author.")
            results.append(_Decided(unique_id, DepositPlan((decision,)), identity.id if identity else None, None))
            continue
        wrapped = wrap_document(
            attachment.content, attachment.media_type, unique_id=unique_id, title=attachment.title,
            type_code=Code(code, c.OID_CISIS_TYPE if code == c.TYPE_SUMMARY else c.OID_LOINC),
            patient=WrappedPatient(identity.matricule, identity.oid, identity.birth_name, identity.first_names,
                                   identity.first_name, identity.birth_date, identity.sex, identity.birth_place),
            author=author, structure=policy.structure, created=ctx.now)
        # A message's title names its main document; attachments keep their file names unless a person asks.
        header = read_header(wrapped, validate=False, limits=c.CDA_LIMITS)
        results.append(await _decide(session, ctx, wrapped, header, len(attachment.content),
                                     ctx.title if ctx.manual_request else None))
    return results


def _attachment_refusal(matricule: str | None, identity: Identity | None,
                        author: Professional | None) -> Decision | None:
    """R7 and R12 before wrapping: the wrapper needs a qualified patient's traits and an author."""
    if matricule is None:
        return refuse(Rule.R7, "no_patient", "The attached document is for no single patient: the message has no "
                      "CDA naming one, and its patient recipient and X-DMP-Patient header name none or different "
                      "patients; it is not deposited.")
    if identity is None or not is_qualified(identity.status):
        return r7_identity(identity.status if identity is not None else None)
    if author is None:
        return refuse(Rule.R12, "no_author", "The sender is not one of the structure's professionals and no CDA of "
                      "the message names one: only a document's author may deposit it.")
    return None


#: File name extensions of the raw formats a person may deposit (R15), and their media types.
MEDIA_TYPES = {"pdf": "application/pdf", "jpg": "image/jpeg", "jpeg": "image/jpeg", "tif": "image/tiff",
               "tiff": "image/tiff", "txt": "text/plain", "rtf": "application/rtf"}


async def consider_manual(session: AsyncSession, content: bytes, filename: str, *, policy: DepositPolicy,
                          person: str, title: str, matricule: str | None = None, author_id: str | None = None,
                          type_code: str | None = None, visibility: str | None = None,
                          confirm_authorship: bool = False, now: datetime | None = None) -> Considered:
    """A deposit a person asks for (R14 manual: a title is required), through the same rules and outbox.

    A CDA is deposited as it is; a PDF, image, text or RTF file is wrapped in a level-1 CDA for ``matricule``
    and the professional ``author_id``. ``confirm_authorship``: the person confirms that the structure wrote a
    document the automatic check cannot attribute (R12); the confirmation is recorded with their name.
    """
    author = policy.professional(author_id) if author_id else None
    ctx = _Context(None, author.mailbox if author else "", None, policy, nobody_present, now or datetime.now(UTC),
                   visibility, title, True, person if confirm_authorship else None, author, person)
    try:
        header: CdaHeader | None = read_header(content, validate=False, limits=c.CDA_LIMITS)
    except CdaRefused:
        header = None
    if header is not None:
        [considered] = await record_decisions(session, _decisions(ctx, [await _decide(
            session, ctx, content, header, len(content), title)]))
        return considered
    media_type = MEDIA_TYPES.get(filename.rsplit(".", 1)[-1].lower())
    if media_type is None:
        raise ValueError(f"{filename} is neither a CDA nor a format the DMP accepts (pdf, jpeg, tiff, txt, rtf).")
    if author is None:
        raise ValueError("A document that is not a CDA needs its author: give --author, the national id of one of "
                         "the structure's professionals ([[dmp.professional]]).")
    if not matricule:
        raise ValueError("A document that is not a CDA needs its patient: give --patient with the INS matricule.")
    attachment = Attachment("manual", filename, media_type, content)
    digest = hashlib.sha256(f"{matricule}|{author.national_id}|".encode() + content).hexdigest()
    decided = await _decide_attachments(session, ctx, [attachment], [], [], type_code, digest, patient=matricule,
                                        author=author)
    [considered] = await record_decisions(session, _decisions(ctx, decided))
    return considered


def _decisions(ctx: _Context, decided: list[_Decided]) -> Decisions:
    return Decisions(ctx.message_id, ctx.sender_mailbox_id, ctx.actor, ctx.policy.structure.source_id,
                     tuple(decided))
