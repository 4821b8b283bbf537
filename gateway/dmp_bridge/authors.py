"""The author of a deposit as the DMP must see them: profession, specialty and structure from the Annuaire Santé.

The XDS author (authorRole, authorSpecialty, authorInstitution) and the VIHF subject:role are built from the
:class:`~gateway.dmp_bridge.rules.Professional` this module returns (R15: the author with their practice
situation). The directory is the source; a profession or specialty given in ``[[dmp.professional]]``
(``role``, ``specialty``) overrides it. A professional the directory does not publish, with no override, is not
guessed: :func:`resolve` answers :class:`Unresolved` and the outbox keeps the deposit waiting with that reason,
to try again later (the directory may publish them, or the configuration name them).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from gateway.directory.client import DirectoryError, DirectoryUnavailable
from gateway.directory.fhir import Coded, Practitioner
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.rules import Professional, Structure
from gateway.documents.cda import Code


class AuthorDirectory(Protocol):
    async def practitioner(self, national_id: str) -> Practitioner | None: ...


@dataclass(frozen=True)
class Unresolved:
    """Why the author cannot be described yet: a short code for machines and a sentence for people."""

    code: str
    reason: str


def _configured(code: Code) -> bool:
    return bool(code.code)


def _as_code(coded: Coded | None, oid: str) -> Code | None:
    """A directory coding (FHIR system URL) as the XDS/VIHF code under the code system's OID."""
    return None if coded is None else Code(coded.code, oid, coded.display or coded.code)


async def resolve(professional: Professional, structure: Structure,
                  directory: AuthorDirectory | None) -> Professional | Unresolved:
    """``professional`` with the profession, specialty and institution the directory publishes, configured
    values winning (R15); or why it cannot be told now."""
    who = professional.national_id
    overridden = _configured(professional.profession) and _configured(professional.specialty)
    if directory is None:
        if overridden:
            return professional
        return Unresolved("author_not_described", f"The profession and specialty of author {who} are not "
                          "configured ([[dmp.professional]] role and specialty) and no [directory] is configured to "
                          "read them from the Annuaire Santé; the deposit waits.")
    try:
        found = await directory.practitioner(who)
    except DirectoryError as exc:
        if overridden:
            return professional  # the configuration describes them fully: the directory only adds the structure
        code = "directory_unavailable" if isinstance(exc, DirectoryUnavailable) else "directory_refused"
        return Unresolved(code, f"The Annuaire Santé could not describe author {who} ({exc}); the deposit waits "
                          "and is tried again.")
    if found is None:
        if overridden:
            return professional
        return Unresolved("author_not_in_directory", f"Author {who} is not published in the Annuaire Santé and "
                          "[[dmp.professional]] gives no role and specialty for them; the deposit waits until the "
                          "directory publishes them or the configuration names them (no guess is sent).")
    role = found.role_in(structure.identifier)
    profession = professional.profession if _configured(professional.profession) else _as_code(
        (role.profession if role else None) or found.profession, c.OID_PROFESSION)
    specialty = professional.specialty if _configured(professional.specialty) else _as_code(
        (role.specialty if role else None) or found.specialty, c.OID_SPECIALTY)
    missing = [name for name, value in (("profession", profession), ("specialty", specialty)) if value is None]
    if missing or profession is None or specialty is None:
        return Unresolved("author_incomplete_in_directory", f"The Annuaire Santé publishes no {' nor '.join(missing)} "
                          f"for author {who} and [[dmp.professional]] does not give it; the deposit waits.")
    institution = None
    org = role.organisation if role else None
    if org is not None and org.identifier and org.name:
        institution = replace(structure, identifier=org.identifier, name=org.name)
    return replace(professional, profession=profession, specialty=specialty, institution=institution)
