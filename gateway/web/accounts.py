"""Console accounts and sessions: local login (Argon2id password + TOTP), PSC-linked accounts, idle expiry.

A session cookie is ``<token>.<HMAC-SHA256(secret, token)>``: a cookie signed with another instance's secret is
refused before the store is asked, and the store keeps only the token's SHA-256, so a database dump does not
hand out sessions. A session unused for ``[web] idle_timeout`` seconds (30 minutes by default) is over.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.passwords import hash_password, verify_password
from gateway.codes.rules import Rule
from gateway.store.events import record
from gateway.web.models import ROLES, ConsoleLoginState, ConsoleSession, ConsoleUser

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
#: TOTP codes accepted one step either side of now (RFC 6238 section 5.2: clock drift).
TOTP_WINDOW = 1
MIN_PASSWORD = 12


class AccountError(ValueError):
    """A refused account operation, in one sentence."""


@dataclass(frozen=True)
class Person:
    """Who is signed in: what pages may show and what every event names as actor (R18)."""

    user_id: int
    username: str
    display_name: str
    role: str
    csrf: str
    method: str

    @property
    def actor(self) -> str:
        return f"console:{self.username}"


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def add_user(session: AsyncSession, username: str, role: str, *, password: str | None, actor: str,
                   display_name: str = "", psc_id: str | None = None) -> tuple[int, str | None]:
    """Create an account; returns its id and the TOTP secret to enrol (None for a PSC-only account)."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise AccountError("The user name must be 2 to 64 lower-case letters, digits, dots, hyphens or underscores.")
    if role not in ROLES:
        raise AccountError(f"The role must be one of {', '.join(ROLES)}.")
    if password is None and not psc_id:
        raise AccountError("Give a password (local login) or a PSC id (Pro Santé Connect login), or both.")
    if password is not None and len(password) < MIN_PASSWORD:
        raise AccountError(f"The password must hold at least {MIN_PASSWORD} characters.")
    if (await session.execute(select(ConsoleUser.id).where(ConsoleUser.username == username))).scalar():
        raise AccountError("A console account with this user name already exists.")
    totp = pyotp.random_base32() if password is not None else None
    user = ConsoleUser(username=username, display_name=display_name[:200], role=role,
                       password_hash=hash_password(password) if password is not None else None, totp_secret=totp,
                       psc_id=psc_id or None, active=True, created_at=now())
    session.add(user)
    await session.flush()
    await record(session, "console.user_added", role, rule=Rule.R18, actor=actor, user_id=user.id, username=username)
    return user.id, totp


async def list_users(session: AsyncSession) -> list[ConsoleUser]:
    return list((await session.execute(select(ConsoleUser).order_by(ConsoleUser.id))).scalars().all())


async def set_active(session: AsyncSession, username: str, active: bool, actor: str) -> int:
    """Enable or disable an account; disabling ends its sessions on every instance at once."""
    user = (await session.execute(select(ConsoleUser).where(
        ConsoleUser.username == username.strip().lower()))).scalar_one_or_none()
    if user is None:
        raise AccountError("No console account has this user name.")
    user.active = active
    if not active:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    await record(session, "console.user_enabled" if active else "console.user_disabled", "ok", rule=Rule.R18,
                 actor=actor, user_id=user.id, username=user.username)
    return user.id


def totp_uri(username: str, secret: str, issuer: str = "Console MSSanté") -> str:
    """The ``otpauth://`` URI an authenticator application enrols from (as a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


async def check_local(session: AsyncSession, username: str, password: str, code: str) -> ConsoleUser | None:
    """The account if the password and the TOTP code are both right (and it is active); None otherwise.

    The password is hashed even for an unknown name, so timing does not tell which accounts exist.
    """
    user = (await session.execute(select(ConsoleUser).where(
        ConsoleUser.username == username.strip().lower()[:64]))).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.active else None
    ok = await verify_password(stored, password)
    if not ok or user is None or not user.totp_secret:
        return None
    if not pyotp.TOTP(user.totp_secret).verify(code.strip().replace(" ", ""), valid_window=TOTP_WINDOW):
        return None
    return user


async def user_for_psc(session: AsyncSession, psc_id: str) -> ConsoleUser | None:
    return (await session.execute(select(ConsoleUser).where(
        ConsoleUser.psc_id == psc_id[:64], ConsoleUser.active.is_(True)))).scalar_one_or_none()


# --- sessions ------------------------------------------------------------------------------------------------

def token_hash(token: str) -> str:
    """What the store keeps of a session token (never the token itself)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def sign(secret: bytes, value: str) -> str:
    mac = hmac.new(secret, value.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{value}.{mac}"


def unsign(secret: bytes, cookie: str | None) -> str | None:
    """The value of a cookie this secret signed; None for anything else (another instance's secret, forged)."""
    if not cookie or len(cookie) > 200 or "." not in cookie:
        return None
    value, _, mac = cookie.rpartition(".")
    if not value.isascii():
        return None
    expected = hmac.new(secret, value.encode("ascii"), hashlib.sha256).hexdigest()
    return value if hmac.compare_digest(expected, mac) else None


async def open_session(session: AsyncSession, user: ConsoleUser, method: str, secret: bytes,
                       client: str, idle: float = 1800.0) -> str:
    """A new session for ``user``; returns the signed cookie value. The login is an event (R18); sessions
    long idle (anyone's) are forgotten on the way, so the table holds live sessions only."""
    await prune(session, idle)
    token = secrets.token_urlsafe(32)
    at = now()
    session.add(ConsoleSession(token_hash=token_hash(token), user_id=user.id, csrf=secrets.token_urlsafe(32),
                               method=method, created_at=at, last_seen=at))
    user.last_login_at = at
    await record(session, "console.login", "ok", rule=Rule.R18, actor=f"console:{user.username}",
                 user_id=user.id, method=method, client=client)
    return sign(secret, token)


async def resume(session: AsyncSession, secret: bytes, cookie: str | None, idle: float) -> Person | None:
    """The person behind a session cookie, the session's idle clock reset; None if unsigned, unknown or idle."""
    token = unsign(secret, cookie)
    if token is None:
        return None
    key = token_hash(token)
    row = (await session.execute(select(ConsoleSession, ConsoleUser).join(
        ConsoleUser, ConsoleUser.id == ConsoleSession.user_id).where(ConsoleSession.token_hash == key))).first()
    if row is None:
        return None
    live, user = row
    at = now()
    if not user.active or _aware(live.last_seen) + timedelta(seconds=idle) < at:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == key))
        return None
    await session.execute(update(ConsoleSession).where(ConsoleSession.token_hash == key).values(last_seen=at))
    return Person(user.id, user.username, user.display_name or user.username, user.role, live.csrf, live.method)


async def take_flash(session: AsyncSession, cookie: str | None, secret: bytes) -> str | None:
    """The sentence left for this page by the previous action, cleared as it is read."""
    token = unsign(secret, cookie)
    if token is None:
        return None
    key = token_hash(token)
    message = (await session.execute(select(ConsoleSession.flash).where(ConsoleSession.token_hash == key))).scalar()
    if message:
        await session.execute(update(ConsoleSession).where(ConsoleSession.token_hash == key).values(flash=None))
    return message


async def close_session(session: AsyncSession, secret: bytes, cookie: str | None) -> None:
    token = unsign(secret, cookie)
    if token is not None:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token)))


async def prune(session: AsyncSession, idle: float) -> None:
    """Forget sessions idle for too long and OIDC logins never finished."""
    cutoff = now() - timedelta(seconds=idle)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.last_seen < cutoff))
    await session.execute(delete(ConsoleLoginState).where(ConsoleLoginState.created_at < now() - timedelta(minutes=10)))
