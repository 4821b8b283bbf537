"""Presence windows: "the patient is here", per (professional mailbox, patient), driven by card readers (R14).

The DMP's "in the patient's presence" mode deposits automatically only while the patient's Vitale card is in
the reader of a workstation serving the professional (R14). The card agents report insertions and removals
(see :mod:`gateway.card.endpoint`); each insertion is one row of ``card_presence``. A Vitale insertion opens a
presence window as soon as the patient it stands for is known: either the agent read it, or a person or the
practice software bound the inserted card to an identity of the repository (the usual case: a Vitale card's
data is not readable through plain PC/SC, and one card may carry several beneficiaries, so nobody guesses).
The window closes when the card is removed, when the agent restarts or loses the reader (the card may have been
swapped meanwhile), or after the configured timeout. Every change is an event of the trail (R18).

Only registered agents may report: an agent is known by its client certificate's fingerprint and serves one
workstation and one professional mailbox (``card_agents``); nothing in an event can widen that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.ins_matching import identities
from gateway.ins_matching.nir import key_ok
from gateway.store.events import record
from gateway.store.models import Base, Id, Mailbox

#: Default lifetime of a presence window when the card stays in the reader (a long consultation).
DEFAULT_TIMEOUT = 3600.0
#: The rule the windows serve (access mode "in the patient's presence").
RULE = "R14"
REMOVAL_REASONS = frozenset({"removed", "reader_gone", "agent_restart", "service_lost"})


@dataclass(frozen=True)
class PresenceSettings:
    """How long a window stays open while the card stays in the reader."""

    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError("the presence timeout must be greater than zero")


class CardAgent(Base):
    """A workstation's card agent, known by its client certificate, serving one professional mailbox."""

    __tablename__ = "card_agents"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: SHA-256 of the agent's client certificate (DER), lower-case hex.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    workstation: Mapped[str] = mapped_column(String(100))
    professional_mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CardPresence(Base):
    """One card insertion in one reader, and the presence window it opened (Vitale cards with a known patient)."""

    __tablename__ = "card_presence"
    __table_args__ = (
        Index("ix_card_presence_window", "professional_mailbox_id", "matricule", "closed_at"),
        Index("ix_card_presence_open", "closed_at", "expires_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("card_agents.id"), index=True)
    #: The agent's identifier of this insertion (a UUID): how removal and binding refer to it.
    insertion: Mapped[str] = mapped_column(String(36), unique=True)
    reader: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))  # CardKind: "cps" | "vitale" | "unknown"
    model: Mapped[str | None] = mapped_column(String(60), nullable=True)
    atr: Mapped[str] = mapped_column(String(80))  # hex
    professional_mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    inserted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    removal_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: The patient the card stands for, once known (Vitale only), and how it became known ("card" | "bound").
    matricule: Mapped[str | None] = mapped_column(String(15), nullable=True)
    identity_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    patient_source: Mapped[str | None] = mapped_column(String(10), nullable=True)
    #: The presence window: open from ``opened_at`` until ``closed_at`` or ``expires_at``, whichever is first.
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)


@dataclass(frozen=True)
class Outcome:
    """What became of one reported event: ``ok``, ``duplicate`` (already applied) or ``rejected`` (a sentence)."""

    status: str
    message: str = ""
    presence_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.status != "rejected"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def effective_time(reported: datetime | None, now: datetime) -> datetime:
    """The agent's time of an event, never in the future (a fast clock must not stretch a window)."""
    if reported is None:
        return now
    return min(_aware(reported), now)


def actor_of(agent: CardAgent) -> str:
    """How an agent appears in the trail (R18): its workstation."""
    return f"card-agent:{agent.workstation}"


# --- agents -----------------------------------------------------------------------------------------------------

async def register_agent(session: AsyncSession, fingerprint: str, workstation: str, professional_address: str,
                         actor: str) -> int:
    """Register (or re-point) the agent with this certificate fingerprint; the mailbox must exist."""
    fingerprint = fingerprint.lower().replace(":", "")
    if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
        raise ValueError("A certificate fingerprint is 64 hexadecimal characters (SHA-256).")
    if not workstation or len(workstation) > 100:
        raise ValueError("A workstation name has 1 to 100 characters.")
    mailbox_id = (await session.execute(
        select(Mailbox.id).where(Mailbox.address == professional_address.lower(), Mailbox.kind != "PAT")
    )).scalar_one_or_none()
    if mailbox_id is None:
        raise ValueError(f"No professional mailbox has the address {professional_address!r}.")
    existing = (await session.execute(
        select(CardAgent).where(CardAgent.fingerprint == fingerprint))).scalar_one_or_none()
    if existing is None:
        agent = CardAgent(fingerprint=fingerprint, workstation=workstation, professional_mailbox_id=mailbox_id,
                          active=True, created_at=utcnow())
        session.add(agent)
        await session.flush()
    else:
        agent = existing
        agent.workstation, agent.professional_mailbox_id, agent.active = workstation, mailbox_id, True
    await record(session, "card.agent.registered", "ok", rule="R18", actor=actor, mailbox_id=mailbox_id,
                 workstation=workstation, fingerprint=fingerprint[:16])
    return agent.id


async def agent_by_fingerprint(session: AsyncSession, fingerprint: str) -> CardAgent | None:
    """The active agent whose client certificate has this SHA-256 fingerprint."""
    return (await session.execute(select(CardAgent).where(
        CardAgent.fingerprint == fingerprint.lower(), CardAgent.active.is_(True)))).scalar_one_or_none()


async def professional_address(session: AsyncSession, agent: CardAgent) -> str:
    return (await session.execute(
        select(Mailbox.address).where(Mailbox.id == agent.professional_mailbox_id))).scalar_one()


# --- windows ----------------------------------------------------------------------------------------------------

async def open_window(session: AsyncSession, row: CardPresence, matricule: str, identity_id: int, source: str,
                      at: datetime, settings: PresenceSettings, actor: str) -> None:
    """Open the presence window of a Vitale insertion for the patient it stands for (R14), traced (R18)."""
    row.matricule, row.identity_id, row.patient_source = matricule, identity_id, source
    row.opened_at = at
    row.expires_at = at + timedelta(seconds=settings.timeout)
    await session.flush()
    await record(session, "card.presence.opened", "open", rule=RULE, actor=actor,
                 mailbox_id=row.professional_mailbox_id, identity_id=identity_id, presence_id=row.id,
                 reader=row.reader, source=source, matricule=matricule)


async def close_window(session: AsyncSession, row: CardPresence, reason: str, at: datetime, actor: str) -> bool:
    """Close an open window (removal, restart, timeout...); False when there was none to close."""
    if row.opened_at is None or row.closed_at is not None:
        return False
    assert row.expires_at is not None
    expires = _aware(row.expires_at)
    row.closed_at = min(at, expires) if reason != "timeout" else expires
    row.close_reason = "timeout" if _aware(row.closed_at) >= expires else reason
    await session.flush()
    await record(session, "card.presence.closed", row.close_reason, rule=RULE, actor=actor,
                 mailbox_id=row.professional_mailbox_id, identity_id=row.identity_id, presence_id=row.id,
                 reader=row.reader)
    return True


async def _insertion(session: AsyncSession, agent: CardAgent, insertion: str) -> CardPresence | None:
    return (await session.execute(select(CardPresence).where(
        CardPresence.insertion == insertion, CardPresence.agent_id == agent.id))).scalar_one_or_none()


async def _patient(session: AsyncSession, matricule: str) -> tuple[str, int] | str:
    """The repository identity for ``matricule`` (following an obsolete one, R8), or the reason there is none."""
    if not key_ok(matricule):
        return "The matricule is malformed or its key is wrong (R8)."
    identity = await identities.find(session, matricule.upper())
    if identity is None:
        return "No identity of the repository has this matricule; add and qualify it first (R7)."
    return identity.matricule, identity.id


async def card_inserted(session: AsyncSession, agent: CardAgent, *, insertion: str, reader: str, kind: str,
                        atr: str, model: str | None = None, at: datetime | None = None,
                        matricule: str | None = None, settings: PresenceSettings | None = None) -> Outcome:
    """Record an insertion; a Vitale card whose patient the agent could read opens its window at once."""
    settings = settings or PresenceSettings()
    now = utcnow()
    when = effective_time(at, now)
    existing = await _insertion(session, agent, insertion)
    if existing is not None:
        return Outcome("duplicate", presence_id=existing.id)
    if (await session.execute(select(CardPresence.id).where(CardPresence.insertion == insertion))).first():
        return Outcome("rejected", "This insertion identifier belongs to another agent.")
    actor = actor_of(agent)
    # A reader holds one card: an insertion still open in the same reader ended without our hearing of it.
    stale = (await session.execute(select(CardPresence).where(
        CardPresence.agent_id == agent.id, CardPresence.reader == reader, CardPresence.removed_at.is_(None),
    ))).scalars().all()
    for old in stale:
        await _remove(session, old, "reader_gone", when, actor)
    row = CardPresence(agent_id=agent.id, insertion=insertion, reader=reader[:200], kind=kind, model=model,
                       atr=atr[:80], professional_mailbox_id=agent.professional_mailbox_id, inserted_at=when)
    session.add(row)
    await session.flush()
    await record(session, "card.inserted", kind, rule="R18", actor=actor, mailbox_id=agent.professional_mailbox_id,
                 presence_id=row.id, reader=row.reader, model=model, atr=row.atr)
    if matricule is not None and kind == "vitale":
        patient = await _patient(session, matricule)
        if isinstance(patient, str):
            await record(session, "card.patient.refused", "rejected", rule=RULE, actor=actor,
                         mailbox_id=agent.professional_mailbox_id, presence_id=row.id, reason_text=patient)
        else:
            await open_window(session, row, patient[0], patient[1], "card", when, settings, actor)
    return Outcome("ok", presence_id=row.id)


async def _remove(session: AsyncSession, row: CardPresence, reason: str, at: datetime, actor: str) -> None:
    row.removed_at, row.removal_reason = at, reason
    await session.flush()
    await record(session, "card.removed", reason, rule="R18", actor=actor, mailbox_id=row.professional_mailbox_id,
                 presence_id=row.id, reader=row.reader, card_kind=row.kind)
    await close_window(session, row, reason, at, actor)


async def card_removed(session: AsyncSession, agent: CardAgent, *, insertion: str, reason: str = "removed",
                       at: datetime | None = None) -> Outcome:
    """Record a removal (or the loss of the reader): the insertion ends and its window, if any, closes."""
    if reason not in REMOVAL_REASONS:
        return Outcome("rejected", f"Unknown removal reason {reason!r}.")
    row = await _insertion(session, agent, insertion)
    if row is None:
        await record(session, "card.removed", "unknown-insertion", rule="R18", actor=actor_of(agent),
                     mailbox_id=agent.professional_mailbox_id, insertion=insertion)
        return Outcome("duplicate", "No such insertion; nothing to close.")
    if row.removed_at is not None:
        return Outcome("duplicate", presence_id=row.id)
    await _remove(session, row, reason, effective_time(at, utcnow()), actor_of(agent))
    return Outcome("ok", presence_id=row.id)


async def bind_patient(session: AsyncSession, agent: CardAgent, *, insertion: str, matricule: str,
                       at: datetime | None = None, settings: PresenceSettings | None = None,
                       actor: str | None = None) -> Outcome:
    """A person or the practice software says which patient the inserted Vitale card stands for (R14).

    The matricule must be an identity of the repository; the card must still be in the reader. Choosing another
    patient for the same insertion is refused: remove and re-insert the card, so that the trail stays plain.
    """
    settings = settings or PresenceSettings()
    actor = actor or actor_of(agent)
    row = await _insertion(session, agent, insertion)
    if row is None:
        return Outcome("rejected", "No card insertion has this identifier at this workstation.")
    if row.kind != "vitale":
        return Outcome("rejected", f"The card in {row.reader!r} is not a Vitale card ({row.kind}); "
                                   "only a Vitale card stands for a patient.")
    if row.removed_at is not None:
        return Outcome("rejected", "The card has been removed; insert it again before choosing the patient.")
    patient = await _patient(session, matricule.strip())
    if isinstance(patient, str):
        await record(session, "card.patient.refused", "rejected", rule=RULE, actor=actor,
                     mailbox_id=row.professional_mailbox_id, presence_id=row.id, reason_text=patient)
        return Outcome("rejected", patient)
    if row.matricule is not None:
        if row.matricule == patient[0]:
            return Outcome("duplicate", presence_id=row.id)
        return Outcome("rejected", "This card is already bound to another patient; remove and re-insert it "
                                   "to choose again.")
    await open_window(session, row, patient[0], patient[1], "bound", effective_time(at, utcnow()), settings,
                      actor)
    return Outcome("ok", presence_id=row.id)


async def agent_restarted(session: AsyncSession, agent: CardAgent, at: datetime | None = None) -> int:
    """An agent started: whatever it had reported as inserted is over (cards may have changed meanwhile)."""
    when = effective_time(at, utcnow())
    rows = (await session.execute(select(CardPresence).where(
        CardPresence.agent_id == agent.id, CardPresence.removed_at.is_(None)))).scalars().all()
    for row in rows:
        await _remove(session, row, "agent_restart", when, actor_of(agent))
    await record(session, "card.agent.started", "ok", rule="R18", actor=actor_of(agent),
                 mailbox_id=agent.professional_mailbox_id, closed=len(rows))
    return len(rows)


async def close_expired(session: AsyncSession, now: datetime | None = None) -> int:
    """Close the windows whose timeout has passed, each with its event (R18); returns how many."""
    now = now or utcnow()
    # Several gateway instances may sweep at once (PostgreSQL): each window is closed, and traced, by one of them.
    rows = (await session.execute(select(CardPresence).where(
        CardPresence.closed_at.is_(None), CardPresence.opened_at.is_not(None), CardPresence.expires_at <= now,
    ).with_for_update(skip_locked=True))).scalars().all()
    closed = 0
    for row in rows:
        closed += await close_window(session, row, "timeout", now, "gateway")
    return closed


async def presence_window(session: AsyncSession, professional_mailbox_id: int, matricule: str,
                          now: datetime | None = None) -> CardPresence | None:
    """The open presence window of this professional with this patient, if any (the newest one)."""
    now = now or utcnow()
    return (await session.execute(select(CardPresence).where(
        CardPresence.professional_mailbox_id == professional_mailbox_id,
        CardPresence.matricule == matricule.upper(),
        CardPresence.opened_at.is_not(None),
        CardPresence.closed_at.is_(None),
        CardPresence.expires_at > now,
    ).order_by(CardPresence.opened_at.desc()).limit(1))).scalar_one_or_none()


async def patient_present(session: AsyncSession, professional_mailbox_id: int, matricule: str) -> bool:
    """Whether the patient's Vitale card is in a reader serving this professional, now (R14 "patient present").

    Read-only: the caller (the DMP bridge) records its own decision with the rule; a window past its timeout
    counts as closed even before :func:`close_expired` has written so.
    """
    return await presence_window(session, professional_mailbox_id, matricule) is not None


async def deactivate_agent(session: AsyncSession, agent_id: int, actor: str) -> None:
    """Stop trusting an agent (its certificate was lost...): its open insertions end now."""
    agent = await session.get(CardAgent, agent_id)
    if agent is None:
        raise ValueError(f"No card agent has id {agent_id}.")
    await agent_restarted(session, agent)
    await session.execute(update(CardAgent).where(CardAgent.id == agent_id).values(active=False))
    await record(session, "card.agent.deactivated", "ok", rule="R18", actor=actor,
                 mailbox_id=agent.professional_mailbox_id)
