"""The console's tables: staff accounts (local password + TOTP, or a Pro Santé Connect id) and their sessions.

Sessions are rows, not process memory: any worker or instance sharing the database recognises a cookie, and
disabling an account ends its sessions everywhere at once. A session row holds the SHA-256 of the token only.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, Id

SECRETARIAT = "secretariat"
DMP = "dmp"
ADMIN = "admin"
ROLES = (SECRETARIAT, DMP, ADMIN)


class ConsoleUser(Base):
    """A person of the structure who may use the console, with one role."""

    __tablename__ = "console_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: Base32 TOTP secret (RFC 6238); a local login needs the password and the current code.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The professional's identifier at the OIDC provider (PSC: the national id), for PSC logins.
    psc_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConsoleSession(Base):
    """One signed-in browser: the token's hash, its CSRF token, and when it was last used (idle expiry)."""

    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))  # "password+totp" | "psc"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: One sentence for the next page (the outcome of a form), shown once.
    flash: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ConsoleLoginState(Base):
    """An OIDC login under way: ``state`` → PKCE verifier and nonce, kept in the store so any worker finishes it."""

    __tablename__ = "console_login_states"
    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
