"""One deposit, end to end on the wire: from a CDA and the rules' choices to an ITI-41 answer.

The outbox stores only what this module needs (the CDA, title, visibility, author and submission uniqueId), so
that a re-send after a crash builds the same submission with a fresh assertion. Documents deposited together (a
letter and its attachments, R15) travel as the entries of one submission set: :func:`together`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import metadata, saml, signature
from gateway.dmp_bridge.rules import DepositPlan, DepositPolicy, Professional
from gateway.dmp_bridge.soap import DmpClient, RegistryResult
from gateway.documents.cda import read_header
from gateway.pki import Issued

log = structlog.get_logger("gateway.dmp_bridge.deposit")


@dataclass(frozen=True)
class Prepared:
    """One submission set and its document entries (one patient, one author: one VIHF assertion)."""

    submission: metadata.SubmissionSet
    entries: tuple[metadata.DocumentEntry, ...]

    @property
    def entry(self) -> metadata.DocumentEntry:
        """The first (for a single deposit, the only) document entry."""
        return self.entries[0]

    def request(self, inline: bool = False, signed: signature.SignedSet | None = None) -> Any:
        """The ProvideAndRegister request; with ``signed``, the set's signature document and its ``signs``
        association are part of it (IHE DSG)."""
        request = metadata.build_request(self.submission, self.entries, inline=inline)
        if signed is not None:
            signature.attach(request, self.submission, self.entries, signed, inline=inline)
        return request

    def parts(self, signed: signature.SignedSet | None = None) -> list[tuple[str, bytes]]:
        parts = [(metadata.document_cid(entry), entry.content) for entry in self.entries]
        if signed is not None:
            parts.append((signed.cid, signed.content))
        return parts

    def sign(self, signer: Issued, now: datetime | None = None) -> signature.SignedSet:
        """The XAdES signature of this set's documents by the structure's signing certificate."""
        return signature.sign_set(self.submission.unique_id, {e.unique_id: e.content for e in self.entries},
                                  signer, now)


def submission_uid_for(root: str, unique_ids: Iterable[str]) -> str:
    """The submission set uniqueId of exactly these documents: an OID under the structure's ``root``, the same for
    the same documents (a re-send after a crash is the same submission), another for any other set."""
    digest = hashlib.sha256("|".join(sorted(unique_ids)).encode()).hexdigest()
    return f"{root}.{int(digest[:30], 16)}"[:64]


def together(prepared: Sequence[Prepared], root: str) -> Prepared:
    """R15: documents deposited together are linked, as the entries of one submission set.

    The caller gives documents of one patient by one author (what one assertion covers); the submission set is
    the first one's, renamed after the set of documents it carries (:func:`submission_uid_for`).
    """
    entries = tuple(entry for p in prepared for entry in p.entries)
    if len({(e.matricule, e.author.national_id) for e in entries}) != 1:
        raise ValueError("Documents deposited together must be for one patient by one author.")
    uid = submission_uid_for(root, (e.unique_id for e in entries))
    return Prepared(replace(prepared[0].submission, unique_id=uid), entries)


def prepare(cda: bytes, *, title: str, visibility: Iterable[str], author: Professional, submission_uid: str,
            policy: DepositPolicy, now: datetime | None = None) -> Prepared:
    """The submission set and document entry for a CDA the rules allowed."""
    header = read_header(cda, validate=False, limits=c.CDA_LIMITS)
    plan = DepositPlan((), title or header.title or policy.default_title, frozenset(visibility), author)
    entry = metadata.entry_from_cda(cda, header, plan, policy)
    submission = metadata.SubmissionSet(submission_uid, policy.structure.source_id, author, policy.structure,
                                        now or datetime.now(UTC), title=plan.title,
                                        content_type=policy.structure.content_type)
    return Prepared(submission, (entry,))


class Depositor:
    """Sends prepared deposits: builds the VIHF for the author and patient, then ITI-41 (and ITI-18 checks).

    Every submission set is signed (IHE DSG, XAdES) with the same certificate as the VIHF unless ``sign_sets`` is
    off; before it is sent, TD0.2 asks whether the patient's DMP exists, is open and the author is authorised
    (R17), and a refusal is returned as the DMP's answer without sending the documents (``precheck`` off: not
    asked)."""

    def __init__(self, client: DmpClient, signer: Issued, policy: DepositPolicy,
                 software: saml.Software | None = None, *, sign_sets: bool = True, precheck: bool = True) -> None:
        self.client = client
        self.signer = signer
        self.policy = policy
        self.software = software or saml.Software()
        self.sign_sets = sign_sets
        self.precheck = precheck

    def assertion(self, author: Professional, matricule: str, oid: str) -> Any:
        ctx = saml.VihfContext(author, self.policy.structure, matricule, oid, self.software)
        return saml.build_assertion(ctx, self.signer)

    async def send(self, prepared: Prepared) -> RegistryResult:
        entry = prepared.entry
        assertion = self.assertion(entry.author, entry.matricule, entry.patient_oid)
        if self.precheck:
            check = await self.client.check_access(entry.matricule, entry.patient_oid,
                                                   self.policy.structure.identifier, assertion)
            if check.refusal is not None:
                log.info("dmp.precheck.refused", code=check.refusal.code, author=entry.author.national_id,
                         submission=prepared.submission.unique_id)
                return RegistryResult(False, (check.refusal,))
        signed = prepared.sign(self.signer) if self.sign_sets else None
        return await self.client.provide_and_register(prepared.request(signed=signed), prepared.parts(signed),
                                                      assertion)

    async def deposited(self, prepared: Prepared) -> set[str]:
        """ITI-18 GetDocuments: the uniqueIds of the entries already in the DMP as these exact documents (same
        uniqueId and hash)."""
        entry = prepared.entry
        assertion = self.assertion(entry.author, entry.matricule, entry.patient_oid)
        found = await self.client.get_documents([e.unique_id for e in prepared.entries], assertion)
        stored = {(f.get("uniqueId"), f.get("hash")) for f in found}
        return {e.unique_id for e in prepared.entries if (e.unique_id, e.hash) in stored}

    async def already_deposited(self, prepared: Prepared) -> bool:
        """Is every document of ``prepared`` already in the DMP, as it is?"""
        return len(await self.deposited(prepared)) == len(prepared.entries)

    async def find(self, author: Professional, matricule: str, oid: str,
                   statuses: Iterable[str] = (c.STATUS_APPROVED,)) -> list[dict[str, Any]]:
        return await self.client.find_documents(matricule, oid, self.assertion(author, matricule, oid),
                                                tuple(statuses))
