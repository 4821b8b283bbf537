"""Where "the patient is present" comes from (R14): a protocol, the card readers' answer, and a command-driven
stand-in for development and tests.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class PresenceSource(Protocol):
    """Whether ``matricule``'s Vitale card is in a reader serving that professional mailbox, now.

    ``gateway.card.presence.patient_present`` has this exact signature and is the production source.
    """

    async def __call__(self, session: AsyncSession, professional_mailbox_id: int, matricule: str) -> bool: ...


def card_presence() -> PresenceSource:
    """The card readers' presence windows (gateway.card)."""
    from gateway.card.presence import patient_present

    return patient_present


class CommandPresence:
    """Presence set by a command or a test: ``present(mailbox_id, matricule)`` until ``absent(...)``."""

    def __init__(self) -> None:
        self._present: set[tuple[int, str]] = set()

    def present(self, professional_mailbox_id: int, matricule: str) -> None:
        self._present.add((professional_mailbox_id, matricule))

    def absent(self, professional_mailbox_id: int, matricule: str) -> None:
        self._present.discard((professional_mailbox_id, matricule))

    async def __call__(self, session: AsyncSession, professional_mailbox_id: int, matricule: str) -> bool:
        return (professional_mailbox_id, matricule) in self._present


async def nobody_present(session: AsyncSession, professional_mailbox_id: int, matricule: str) -> bool:
    """A source for structures without card readers: the patient is never known to be present."""
    return False
