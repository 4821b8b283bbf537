"""From a submitted message to deposit jobs: find the CDA documents, apply the rules, enqueue what they allow.

The lead wires SMTP submission to :func:`consider_message`, which runs inside the caller's transaction (the
message, the rule decisions and the jobs commit together, or none of them does).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.parser import BytesParser

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.cda_header import CdaError, CdaHeader, read_header
from gateway.dmp_bridge.outbox import enqueue
from gateway.dmp_bridge.presence import PresenceSource, nobody_present
from gateway.dmp_bridge.rules import DepositPlan, DepositPolicy, evaluate
from gateway.store.events import record

log = structlog.get_logger("gateway.dmp_bridge.bridge")

MAX_PARTS = 50
MAX_ZIP_MEMBERS = 200
MAX_DOCUMENTS = 20
XML_TYPES = frozenset({"text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml"})
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/octet-stream"})


@dataclass(frozen=True)
class Considered:
    """What happened to one CDA found in a message."""

    unique_id: str
    plan: DepositPlan
    job_id: int | None


def _cdas_in_zip(data: bytes) -> Iterator[bytes]:
    """CDA candidates inside an IHE XDM zip: XML members other than METADATA.XML, bounded in count and size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return
    with archive:
        for info in archive.infolist()[:MAX_ZIP_MEMBERS]:
            name = info.filename.replace("\\", "/").upper()
            if not name.endswith(".XML") or name.endswith("METADATA.XML") or info.file_size > c.MAX_CDA_SIZE:
                continue
            with archive.open(info) as member:
                content = member.read(c.MAX_CDA_SIZE + 1)
            if len(content) <= c.MAX_CDA_SIZE:
                yield content


def find_cdas(raw: bytes) -> list[tuple[bytes, CdaHeader]]:
    """The CDA R2 documents a message carries, directly or inside an XDM zip (bounded, de-duplicated by id)."""
    message = BytesParser(policy=email_policy.default).parsebytes(raw)
    found: dict[str, tuple[bytes, CdaHeader]] = {}
    parts = 0
    for part in message.walk():
        parts += 1
        if parts > MAX_PARTS or len(found) >= MAX_DOCUMENTS:
            break
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        filename = (part.get_filename() or "").lower()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        candidates: list[bytes] = []
        if kind in XML_TYPES or filename.endswith(".xml"):
            candidates = [payload]
        elif kind in ZIP_TYPES or filename.endswith(".zip"):
            candidates = list(_cdas_in_zip(payload))
        for candidate in candidates:
            try:
                header = read_header(candidate)
            except CdaError:
                continue
            found.setdefault(header.unique_id, (candidate, header))
    return list(found.values())


async def _identity(session: AsyncSession, matricule: str) -> tuple[int | None, str | None]:
    from gateway.ins_matching import identities

    identity = await identities.find(session, matricule)
    if identity is None:
        return None, None
    return identity.id, identity.status


async def consider_message(session: AsyncSession, message_id: int | None, raw: bytes, sender: str,
                           recipients: list[str], *, policy: DepositPolicy, sender_mailbox_id: int | None = None,
                           presence: PresenceSource = nobody_present, now: datetime | None = None,
                           manual_request: bool = False, confirmed_by: str | None = None) -> list[Considered]:
    """Apply R7 and R12–R16 to every CDA of a submitted message and enqueue the deposits they allow.

    Runs in the caller's transaction; records one event per rule decision (R18). The ``X-DMP-Visibility`` and
    ``X-DMP-Title`` headers of the message carry the sender's visibility codes and manual title.
    """
    now = now or datetime.now(UTC)
    headers = BytesParser(policy=email_policy.default).parsebytes(raw, headersonly=True)
    visibility = str(headers.get(c.VISIBILITY_HEADER) or "") or None
    title = str(headers.get(c.TITLE_HEADER) or "") or None
    results = []
    for cda, header in find_cdas(raw):
        matricule = header.patient.matricule if header.patient else ""
        identity_id, status = await _identity(session, matricule) if matricule else (None, None)
        present = None
        if header.patient is not None and sender_mailbox_id is not None:
            present = await presence(session, sender_mailbox_id, matricule)
        plan = evaluate(header, size=len(cda), policy=policy, sender_address=sender, identity_status=status,
                        patient_present=present, now=now, visibility_header=visibility, title=title,
                        manual_request=manual_request, confirmed_by=confirmed_by)
        for decision in plan.decisions:
            await record(session, "dmp.rule", "allowed" if decision.allowed else "refused", rule=decision.rule,
                         actor=sender, message_id=message_id, mailbox_id=sender_mailbox_id, identity_id=identity_id,
                         code=decision.code, reason_text=decision.reason, unique_id=header.unique_id)
        job_id = None
        if plan.allowed and plan.author is not None:
            job_id = await enqueue(session, cda=cda, unique_id=header.unique_id, matricule=matricule,
                                   author_id=plan.author.national_id, title=plan.title,
                                   type_code=header.type_code.code, visibility=sorted(plan.visibility),
                                   replaces=header.replaces, message_id=message_id,
                                   sender_mailbox_id=sender_mailbox_id, identity_id=identity_id,
                                   submission_root=policy.structure.source_id, actor=sender)
        else:
            refusal = plan.refusal
            await record(session, "dmp.deposit.not_deposited", "filed_locally", rule=refusal.rule if refusal else None,
                         actor=sender, message_id=message_id, identity_id=identity_id, unique_id=header.unique_id,
                         code=refusal.code if refusal else "no_author")
        results.append(Considered(header.unique_id, plan, job_id))
    return results
