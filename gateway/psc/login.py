"""A Pro Santé Connect login: token verified, professional mapped to a granted mailbox, outcome traced.

Both protocols call :meth:`PscLogin.login` with the parsed SASL response; it answers an :class:`Account`, a
refusal with the RFC 7628 error JSON to send before failing (535 5.7.8 / ``NO [AUTHENTICATIONFAILED]``), or
*unavailable* when the provider cannot be reached and no cached key serves (454 4.7.0 / ``NO [UNAVAILABLE]``).

The mailbox is the one the client names (OAUTHBEARER ``a=``, XOAUTH2 ``user=``), and must be granted to the
token's national id (``gateway psc grant``), active, and accept the ``psc`` method (``mailboxes.auth_methods``).
An OAUTHBEARER response without ``a=`` logs in to the professional's only granted mailbox. Each attempt is
one ``login`` event with the client address, the mailbox id and the reason; never the token nor the id.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth.accounts import Account
from gateway.auth.methods import allows
from gateway.config.psc import PscSettings
from gateway.ops import metrics
from gateway.psc.models import PscGrant
from gateway.psc.sasl import BearerResponse, error_challenge
from gateway.psc.tokens import Rejected, TokenVerifier, Unavailable
from gateway.store.models import Mailbox

log = structlog.get_logger("gateway.auth")

#: The SASL mechanisms this module serves, as SMTP EHLO and IMAP CAPABILITY name them.
MECHANISMS = ("OAUTHBEARER", "XOAUTH2")


class PscOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class PscResult:
    outcome: PscOutcome
    account: Account | None = None
    reason: str = ""
    #: INVALID: the RFC 7628 3.2.2 error JSON, sent as a challenge before the final refusal.
    challenge: bytes = b""
    #: The mailbox a refusal concerns, when one was found (disabled, method not allowed), for the trail.
    mailbox_id: int | None = None


class PscLogin:
    """One per process, shared by the SMTP and IMAP listeners (``Authenticator.psc``)."""

    def __init__(self, settings: PscSettings, reads: async_sessionmaker[AsyncSession],
                 verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self._reads = reads
        self.verifier = verifier or TokenVerifier(settings)

    async def close(self) -> None:
        await self.verifier.close()

    def _refused(self, reason: str, status: str = "invalid_token", mailbox_id: int | None = None) -> PscResult:
        challenge = error_challenge(status, self.settings.required_scope, self.settings.configuration_url)
        return PscResult(PscOutcome.INVALID, reason=reason, challenge=challenge, mailbox_id=mailbox_id)

    async def _granted(self, national_id: str, authzid: str) -> list[Any]:
        query = (select(Mailbox.id, Mailbox.address, Mailbox.kind, Mailbox.matricule, Mailbox.active,
                        Mailbox.auth_methods)
                 .join(PscGrant, PscGrant.mailbox_id == Mailbox.id).where(PscGrant.national_id == national_id))
        if authzid:
            query = query.where(Mailbox.address == authzid)
        async with self._reads() as session:
            return list((await session.execute(query.limit(2))).all())

    async def login(self, mechanism: str, response: BearerResponse, client: str, protocol: str) -> PscResult:
        """Verify the token of ``response`` and find the mailbox it may use; never raises for a bad token."""
        result = await self._login(response)
        mailbox_id = result.account.id if result.account else result.mailbox_id
        if result.outcome is PscOutcome.OK:
            log.info("login", protocol=protocol, mechanism=mechanism, outcome="ok", client=client,
                     mailbox_id=mailbox_id)
        else:
            log.info("login", protocol=protocol, mechanism=mechanism, outcome=result.outcome.value, client=client,
                     mailbox_id=mailbox_id, reason=result.reason)
        metrics.login(protocol, mechanism, "refused" if result.outcome is PscOutcome.UNAVAILABLE
                      else result.outcome.value)
        return result

    async def _login(self, response: BearerResponse) -> PscResult:
        try:
            verified = await self.verifier.verify(response.token)
        except Rejected as exc:
            return self._refused(exc.reason, exc.status)
        except Unavailable as exc:
            return PscResult(PscOutcome.UNAVAILABLE, reason=str(exc))
        rows = await self._granted(verified.national_id, response.authzid)
        if not rows:
            return self._refused("not_granted")
        if len(rows) > 1:  # OAUTHBEARER without a=, and several granted mailboxes: which one is not ours to guess
            return self._refused("authzid_needed")
        row = rows[0]
        if not row.active:
            return self._refused("disabled", mailbox_id=row.id)
        if not allows(row.auth_methods, "psc"):
            return self._refused("method_not_allowed", mailbox_id=row.id)
        return PscResult(PscOutcome.OK, Account(row.id, row.address, row.kind, row.matricule))
