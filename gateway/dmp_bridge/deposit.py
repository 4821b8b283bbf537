"""One deposit, end to end on the wire: from a CDA and the rules' choices to an ITI-41 answer.

The outbox stores only what this module needs (the CDA, title, visibility, author and submission uniqueId), so
that a re-send after a crash builds the same submission with a fresh assertion.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import metadata, saml
from gateway.dmp_bridge.rules import DepositPlan, DepositPolicy, Professional
from gateway.dmp_bridge.soap import DmpClient, RegistryResult
from gateway.documents.cda import read_header
from gateway.pki import Issued


@dataclass(frozen=True)
class Prepared:
    submission: metadata.SubmissionSet
    entry: metadata.DocumentEntry

    def request(self, inline: bool = False) -> Any:
        return metadata.build_request(self.submission, [self.entry], inline=inline)

    def parts(self) -> list[tuple[str, bytes]]:
        return [(metadata.document_cid(self.entry), self.entry.content)]


def prepare(cda: bytes, *, title: str, visibility: Iterable[str], author: Professional, submission_uid: str,
            policy: DepositPolicy, now: datetime | None = None) -> Prepared:
    """The submission set and document entry for a CDA the rules allowed."""
    header = read_header(cda, validate=False, limits=c.CDA_LIMITS)
    plan = DepositPlan((), title or header.title or policy.default_title, frozenset(visibility), author)
    entry = metadata.entry_from_cda(cda, header, plan, policy)
    submission = metadata.SubmissionSet(submission_uid, policy.structure.source_id, author, policy.structure,
                                        now or datetime.now(UTC), title=plan.title,
                                        content_type=policy.structure.content_type)
    return Prepared(submission, entry)


class Depositor:
    """Sends prepared deposits: builds the VIHF for the author and patient, then ITI-41 (and ITI-18 checks)."""

    def __init__(self, client: DmpClient, signer: Issued, policy: DepositPolicy,
                 software: saml.Software | None = None) -> None:
        self.client = client
        self.signer = signer
        self.policy = policy
        self.software = software or saml.Software()

    def assertion(self, author: Professional, matricule: str, oid: str) -> Any:
        ctx = saml.VihfContext(author, self.policy.structure, matricule, oid, self.software)
        return saml.build_assertion(ctx, self.signer)

    async def send(self, prepared: Prepared) -> RegistryResult:
        entry = prepared.entry
        assertion = self.assertion(entry.author, entry.matricule, entry.patient_oid)
        return await self.client.provide_and_register(prepared.request(), prepared.parts(), assertion)

    async def already_deposited(self, prepared: Prepared) -> bool:
        """ITI-18 GetDocuments: is this exact document (same uniqueId and hash) already in the DMP?"""
        entry = prepared.entry
        assertion = self.assertion(entry.author, entry.matricule, entry.patient_oid)
        found = await self.client.get_documents([entry.unique_id], assertion)
        return any(f.get("uniqueId") == entry.unique_id and f.get("hash") == entry.hash for f in found)

    async def find(self, author: Professional, matricule: str, oid: str,
                   statuses: Iterable[str] = (c.STATUS_APPROVED,)) -> list[dict[str, Any]]:
        return await self.client.find_documents(matricule, oid, self.assertion(author, matricule, oid),
                                                tuple(statuses))
