"""Account authentication against the store, the one path both SMTP and IMAP log in through."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth.passwords import verify_password
from gateway.auth.throttle import LoginThrottle
from gateway.store.models import Mailbox

log = structlog.get_logger("gateway.auth")


@dataclass(frozen=True)
class Account:
    """An authenticated mailbox, as the protocol sessions carry it."""

    id: int
    address: str
    kind: str
    matricule: str | None

    @property
    def is_patient(self) -> bool:
        return self.kind == "PAT"


class LoginOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    account: Account | None = None


def account_of(mailbox: Mailbox) -> Account:
    return Account(mailbox.id, mailbox.address, mailbox.kind, mailbox.matricule)


class Authenticator:
    """Checks credentials and certificate bindings; throttles failures per client address."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], throttle: LoginThrottle) -> None:
        self._sessions = sessions
        self.throttle = throttle

    async def _mailbox(self, **where: str) -> Mailbox | None:
        async with self._sessions() as session:
            query = select(Mailbox).filter_by(active=True, **where)
            return (await session.execute(query)).scalar_one_or_none()

    async def login(self, username: str, password: str, client: str, protocol: str) -> LoginResult:
        """Verify a password login from ``client`` (an IP address)."""
        if self.throttle.blocked(client):
            log.warning("login", protocol=protocol, outcome="throttled")
            return LoginResult(LoginOutcome.THROTTLED)
        mailbox = await self._mailbox(address=username.strip().lower())
        ok = await verify_password(mailbox.password_hash if mailbox else None, password)
        if not ok or mailbox is None:
            self.throttle.failed(client)
            log.info("login", protocol=protocol, outcome="invalid")
            return LoginResult(LoginOutcome.INVALID)
        self.throttle.succeeded(client)
        log.info("login", protocol=protocol, outcome="ok", mailbox_id=mailbox.id)
        return LoginResult(LoginOutcome.OK, account_of(mailbox))

    async def login_certificate(self, fingerprint: str, authzid: str, protocol: str) -> Account | None:
        """SASL EXTERNAL: the mailbox bound to the client certificate's SHA-256 fingerprint."""
        mailbox = await self._mailbox(certificate_fingerprint=fingerprint.lower())
        if mailbox is None or (authzid and authzid.lower() != mailbox.address):
            log.info("login", protocol=protocol, mechanism="EXTERNAL", outcome="invalid")
            return None
        log.info("login", protocol=protocol, mechanism="EXTERNAL", outcome="ok", mailbox_id=mailbox.id)
        return account_of(mailbox)
