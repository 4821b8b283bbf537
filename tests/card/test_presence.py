"""Presence windows (R14) without a reader: what opens them, what closes them, and the trail they leave (R18)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.card import presence
from gateway.card.presence import CardAgent, PresenceSettings, patient_present
from gateway.ins_matching import identities
from gateway.ins_matching.insi import HOMONYM_A, TEST_PATIENT
from gateway.store import db, mailstore
from gateway.store.models import Event

PRO = "dr.house@pro.gateway.test"
PRO2 = "dr.wilson@pro.gateway.test"
UNKNOWN_BUT_WELL_FORMED = "180077511200267"  # HOMONYM_B: right key, not in this repository
CPS_ATR = "3bac00402a001225006480000310009000"
VITALE_ATR = "3b751300004509ea9000"


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    pro: int
    pro2: int
    agent_id: int
    agent2_id: int
    patient_identity: int

    async def agent(self, session: AsyncSession, agent_id: int | None = None) -> CardAgent:
        agent = await session.get(CardAgent, agent_id or self.agent_id)
        assert agent is not None
        return agent

    async def events(self, prefix: str = "card.") -> list[Event]:
        async with self.sessions() as s:
            rows = await s.execute(select(Event).where(Event.kind.startswith(prefix)).order_by(Event.id))
            return list(rows.scalars().all())


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[World]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    sessions = db.sessionmaker(engine)
    async with sessions() as s, s.begin():
        pro = await mailstore.create_mailbox(s, PRO, "PER")
        pro2 = await mailstore.create_mailbox(s, PRO2, "PER")
        await mailstore.create_mailbox(s, f"{TEST_PATIENT.matricule}@patient.gateway.test", "PAT",
                                       matricule=TEST_PATIENT.matricule)
        identity = await identities.add_identity(s, TEST_PATIENT.matricule, TEST_PATIENT.oid, TEST_PATIENT.traits,
                                                 "test", allow_test=True)
        await identities.add_identity(s, HOMONYM_A.matricule, HOMONYM_A.oid, HOMONYM_A.traits, "test",
                                      allow_test=True)
        agent_id = await presence.register_agent(s, "ab" * 32, "consultation-1", PRO, "admin")
        agent2_id = await presence.register_agent(s, "cd" * 32, "consultation-2", PRO2, "admin")
    yield World(sessions, pro, pro2, agent_id, agent2_id, identity)
    await engine.dispose()


def new_id() -> str:
    return str(uuid.uuid4())


async def insert(w: World, kind: str = "vitale", reader: str = "Reader 0", agent_id: int | None = None,
                 **kwargs: object) -> str:
    insertion = new_id()
    async with w.sessions() as s, s.begin():
        outcome = await presence.card_inserted(
            s, await w.agent(s, agent_id), insertion=insertion, reader=reader, kind=kind,
            atr=VITALE_ATR if kind == "vitale" else CPS_ATR, **kwargs)  # type: ignore[arg-type]
    assert outcome.status == "ok"
    return insertion


async def bind(w: World, insertion: str, matricule: str = TEST_PATIENT.matricule,
               **kwargs: object) -> presence.Outcome:
    async with w.sessions() as s, s.begin():
        return await presence.bind_patient(s, await w.agent(s), insertion=insertion, matricule=matricule,
                                           **kwargs)  # type: ignore[arg-type]


async def remove(w: World, insertion: str, reason: str = "removed") -> presence.Outcome:
    async with w.sessions() as s, s.begin():
        return await presence.card_removed(s, await w.agent(s), insertion=insertion, reason=reason)


async def present(w: World, pro: int | None = None, matricule: str = TEST_PATIENT.matricule) -> bool:
    async with w.sessions() as s:
        return await patient_present(s, pro or w.pro, matricule)


async def test_r14_vitale_inserted_then_bound_opens_window_and_removal_closes_it(world: World):
    insertion = await insert(world)
    assert not await present(world), "a Vitale card stands for nobody until someone says whom"
    assert (await bind(world, insertion)).status == "ok"
    assert await present(world)
    assert (await remove(world, insertion)).status == "ok"
    assert not await present(world)
    trail = [(e.kind, e.outcome, e.rule) for e in await world.events()]
    assert trail[-4:] == [("card.inserted", "vitale", "R18"), ("card.presence.opened", "open", "R14"),
                          ("card.removed", "removed", "R18"), ("card.presence.closed", "removed", "R14")]
    opened = (await world.events("card.presence.opened"))[0]
    assert opened.mailbox_id == world.pro and opened.identity_id == world.patient_identity


async def test_r14_window_is_per_professional_and_patient(world: World):
    await bind(world, await insert(world))
    assert await present(world)
    assert not await present(world, pro=world.pro2)
    assert not await present(world, matricule=HOMONYM_A.matricule)


async def test_r14_patient_read_from_card_opens_window_at_insertion(world: World):
    await insert(world, matricule=TEST_PATIENT.matricule)
    assert await present(world)
    async with world.sessions() as s:
        window = await presence.presence_window(s, world.pro, TEST_PATIENT.matricule)
    assert window is not None and window.patient_source == "card"


async def test_r14_window_closes_after_timeout_even_with_card_in_reader(world: World):
    settings = PresenceSettings(timeout=60)
    long_ago = presence.utcnow() - timedelta(seconds=120)
    insertion = await insert(world, at=long_ago, settings=settings)
    await bind(world, insertion, at=long_ago, settings=settings)
    assert not await present(world), "a window past its timeout counts as closed at once"
    async with world.sessions() as s, s.begin():
        assert await presence.close_expired(s) == 1
    async with world.sessions() as s, s.begin():
        assert await presence.close_expired(s) == 0
    closed = await world.events("card.presence.closed")
    assert [(e.outcome, e.rule) for e in closed] == [("timeout", "R14")]
    assert (await remove(world, insertion)).status == "ok"
    assert len(await world.events("card.presence.closed")) == 1, "removal after the timeout closes nothing more"


async def test_r14_timeout_counts_from_opening_and_keeps_open_before(world: World):
    settings = PresenceSettings(timeout=60)
    insertion = await insert(world, settings=settings)
    await bind(world, insertion, at=presence.utcnow() - timedelta(seconds=30), settings=settings)
    assert await present(world)
    async with world.sessions() as s, s.begin():
        assert await presence.close_expired(s, presence.utcnow() + timedelta(seconds=31)) == 1
    assert not await present(world)


async def test_r14_agent_clock_ahead_cannot_stretch_a_window(world: World):
    settings = PresenceSettings(timeout=60)
    insertion = await insert(world, settings=settings)
    await bind(world, insertion, at=presence.utcnow() + timedelta(days=1), settings=settings)
    async with world.sessions() as s, s.begin():
        assert await presence.close_expired(s, presence.utcnow() + timedelta(seconds=61)) == 1


async def test_r14_binding_a_matricule_outside_the_repository_is_refused_and_traced(world: World):
    insertion = await insert(world)
    outcome = await bind(world, insertion, UNKNOWN_BUT_WELL_FORMED)
    assert outcome.status == "rejected" and "repository" in outcome.message
    assert not await present(world, matricule=UNKNOWN_BUT_WELL_FORMED)
    refused = await world.events("card.patient.refused")
    assert [(e.rule, e.mailbox_id) for e in refused] == [("R14", world.pro)]


async def test_r8_binding_a_matricule_with_a_wrong_key_is_refused(world: World):
    insertion = await insert(world)
    outcome = await bind(world, insertion, TEST_PATIENT.matricule[:13] + "00")
    assert outcome.status == "rejected" and "R8" in outcome.message


async def test_r14_a_professional_card_stands_for_no_patient(world: World):
    outcome = await bind(world, await insert(world, kind="cps"))
    assert outcome.status == "rejected" and "not a Vitale card" in outcome.message
    assert not await present(world)


async def test_r14_binding_after_removal_is_refused(world: World):
    insertion = await insert(world)
    await remove(world, insertion)
    assert (await bind(world, insertion)).status == "rejected"
    assert not await present(world)


async def test_r14_another_patient_for_the_same_insertion_is_refused(world: World):
    insertion = await insert(world)
    assert (await bind(world, insertion)).status == "ok"
    assert (await bind(world, insertion)).status == "duplicate"
    assert (await bind(world, insertion, HOMONYM_A.matricule)).status == "rejected"
    assert await present(world) and not await present(world, matricule=HOMONYM_A.matricule)


async def test_repeated_events_are_applied_once(world: World):
    """Agents resend an event whose reply was lost: the second copy changes nothing."""
    insertion = await insert(world)
    async with world.sessions() as s, s.begin():
        again = await presence.card_inserted(s, await world.agent(s), insertion=insertion, reader="Reader 0",
                                             kind="vitale", atr=VITALE_ATR)
    assert again.status == "duplicate"
    await bind(world, insertion)
    assert (await remove(world, insertion)).status == "ok"
    assert (await remove(world, insertion)).status == "duplicate"
    assert len(await world.events("card.inserted")) == 1
    assert len(await world.events("card.presence.closed")) == 1


async def test_an_agent_cannot_touch_another_agents_insertion(world: World):
    insertion = await insert(world)
    await bind(world, insertion)
    async with world.sessions() as s, s.begin():
        other = await world.agent(s, world.agent2_id)
        stolen = await presence.card_inserted(s, other, insertion=insertion, reader="R", kind="vitale",
                                              atr=VITALE_ATR)
        assert stolen.status == "rejected"
        assert (await presence.card_removed(s, other, insertion=insertion)).status == "duplicate"
        assert (await presence.bind_patient(s, other, insertion=insertion,
                                            matricule=TEST_PATIENT.matricule)).status == "rejected"
    assert await present(world)


async def test_new_card_in_a_reader_ends_the_insertion_we_missed(world: World):
    first = await insert(world)
    await bind(world, first)
    await insert(world, kind="cps")  # same reader: the Vitale card must have left it
    assert not await present(world)
    removed = await world.events("card.removed")
    assert [e.outcome for e in removed] == ["reader_gone"]


async def test_agent_restart_ends_every_insertion_of_that_agent_only(world: World):
    await bind(world, await insert(world))
    other = await insert(world, agent_id=world.agent2_id, reader="Reader 9")
    async with world.sessions() as s, s.begin():
        assert await presence.agent_restarted(s, await world.agent(s)) == 1
    assert not await present(world)
    async with world.sessions() as s:
        row = (await s.execute(select(presence.CardPresence).where(
            presence.CardPresence.insertion == other))).scalar_one()
    assert row.removed_at is None


async def test_unknown_removal_reason_is_refused(world: World):
    assert (await remove(world, await insert(world), reason="exploded")).status == "rejected"


async def test_registering_an_agent_needs_a_professional_mailbox(world: World):
    async with world.sessions() as s, s.begin():
        with pytest.raises(ValueError, match="No professional mailbox"):
            await presence.register_agent(s, "ef" * 32, "w", f"{TEST_PATIENT.matricule}@patient.gateway.test", "a")
        with pytest.raises(ValueError, match="fingerprint"):
            await presence.register_agent(s, "xyz", "w", PRO, "a")


async def test_deactivated_agent_is_no_longer_found_and_its_windows_close(world: World):
    await bind(world, await insert(world))
    async with world.sessions() as s, s.begin():
        await presence.deactivate_agent(s, world.agent_id, "admin")
    async with world.sessions() as s:
        assert await presence.agent_by_fingerprint(s, "ab" * 32) is None
    assert not await present(world)


def test_presence_timeout_must_be_positive():
    with pytest.raises(ValueError):
        PresenceSettings(timeout=0)
