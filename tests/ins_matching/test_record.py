"""The patient record and review queue on a real store (SQLite, and PostgreSQL when configured): R10, R11, R15."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from documents.helpers import TEST_MATRICULE, TEST_OID, sample, variant
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.migrations import differences_of, schema_differences

from gateway.documents.xdm_writer import build_xdm
from gateway.ins_matching import identities, record
from gateway.ins_matching.identities import Traits
from gateway.store import db
from gateway.store.models import Event

IMAGING = "IMG_CR_IMG_2024.01.xml"
TRAITS = Traits("PAT-TROIS", "DOMINIQUE MARIE-LOUISE", "1979-03-28", "F", "51215")


@pytest.fixture
async def sessions(store_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    try:
        yield db.sessionmaker(engine)
    finally:
        await engine.dispose()


async def _identity(sessions: async_sessionmaker[AsyncSession], *, insi: bool = True, document: bool = True) -> int:
    async with sessions() as session, session.begin():
        identity_id = await identities.add_identity(session, TEST_MATRICULE, TEST_OID, TRAITS, "test", allow_test=True)
        if insi:
            await identities.record_insi(session, identity_id, "found", "test")
        if document:
            await identities.record_document(session, identity_id, "passport", "test")
        return identity_id


def _mail(*documents: bytes) -> bytes:
    archive, _ = build_xdm(list(documents))
    message = EmailMessage()
    message["Subject"] = "XDM/1.0/DDM+CR"
    message.set_content("ci-joint")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return message.as_bytes()


async def _process(sessions: async_sessionmaker[AsyncSession], raw: bytes) -> list[record.Recorded]:
    async with sessions() as session, session.begin():
        return await record.process_and_record(session, raw, allow_test_oids=True)


async def _events(sessions: async_sessionmaker[AsyncSession], kind: str) -> list[Event]:
    async with sessions() as session:
        query = select(Event).where(Event.kind == kind).order_by(Event.id)
        return list((await session.execute(query)).scalars().all())


async def test_r10_documents_filed_into_the_qualified_patient_record(sessions: async_sessionmaker[AsyncSession],
                                                                     bio: bytes) -> None:
    identity_id = await _identity(sessions)
    results = await _process(sessions, _mail(bio, sample(IMAGING)))
    assert [r.kind for r in results] == ["filed", "filed"]
    async with sessions() as session:
        filed = await record.documents_of(session, identity_id)
        assert [d.type_code for d in filed] == ["11502-2", "18748-4"]
        assert await record.document_content(session, filed[0].id) == bio
    events = await _events(sessions, "document.filed")
    assert [(e.rule, e.outcome, e.identity_id) for e in events] == [("R10", "filed", identity_id)] * 2


async def test_r10_same_message_twice_files_once(sessions: async_sessionmaker[AsyncSession], bio: bytes) -> None:
    identity_id = await _identity(sessions)
    first = await _process(sessions, _mail(bio))
    again = await _process(sessions, _mail(bio))
    assert first[0].id == again[0].id
    async with sessions() as session:
        assert len(await record.documents_of(session, identity_id, include_superseded=True)) == 1


async def test_r10_unknown_patient_reviewed_then_filed_by_a_person(sessions: async_sessionmaker[AsyncSession],
                                                                   bio: bytes) -> None:
    (result,) = await _process(sessions, _mail(bio))
    assert result.kind == "review"
    async with sessions() as session:
        (summary,) = await record.list_reviews(session)
        assert (summary.code, summary.status, summary.rule, summary.type_code) == (902, "open", "R10", "11502-2")
        item = await record.show_review(session, summary.id)
        assert item.content == bio and item.matricule == TEST_MATRICULE
    identity_id = await _identity(sessions)
    async with sessions() as session, session.begin():
        document_id = await record.resolve_review(session, summary.id, identity_id, "secretary@pro.gateway.test",
                                                  note="checked with the lab")
    async with sessions() as session:
        assert await record.list_reviews(session) == []
        item = await record.show_review(session, summary.id)
        assert item.summary.status == "resolved" and item.filed_document_id == document_id
        assert item.summary.decided_by == "secretary@pro.gateway.test"
        assert [d.id for d in await record.documents_of(session, identity_id)] == [document_id]
    (opened,) = await _events(sessions, "document.review_opened")
    assert (opened.rule, opened.outcome) == ("R10", "902")
    (resolved,) = await _events(sessions, "document.review_resolved")
    assert resolved.rule == "R11" and resolved.detail["identity_status"] == "qualifiée"


async def test_r11_identity_not_qualified_is_a_candidate_not_filed(sessions: async_sessionmaker[AsyncSession],
                                                                   bio: bytes) -> None:
    identity_id = await _identity(sessions, document=False)  # récupérée: INSi only
    (result,) = await _process(sessions, _mail(bio))
    assert result.kind == "review"
    async with sessions() as session:
        (summary,) = await record.list_reviews(session)
        assert summary.rule == "R11" and summary.candidate_identity_id == identity_id
        assert await record.documents_of(session, identity_id) == []
        identity = await identities.get(session, identity_id)
        assert identity.status == "récupérée"  # the document did not qualify anyone (R11)
    async with sessions() as session, session.begin():  # nor may a person file it there before qualification
        with pytest.raises(record.RecordError, match="récupérée, not qualifiée"):
            await record.resolve_review(session, summary.id, identity_id, "secretary@pro.gateway.test", note="sure")
    async with sessions() as session:
        assert await record.documents_of(session, identity_id) == []
        assert [r.status for r in await record.list_reviews(session)] == ["open"]


async def test_review_rejected_with_a_reason_and_closed(sessions: async_sessionmaker[AsyncSession],
                                                        bio: bytes) -> None:
    (result,) = await _process(sessions, _mail(bio))
    async with sessions() as session, session.begin():
        with pytest.raises(record.RecordError, match="why"):
            await record.reject_review(session, result.id, "doctor@pro.gateway.test", " ")
        await record.reject_review(session, result.id, "doctor@pro.gateway.test", "not our patient")
    async with sessions() as session, session.begin():
        with pytest.raises(record.RecordError, match="already rejected"):
            await record.resolve_review(session, result.id, 1, "doctor@pro.gateway.test")
        with pytest.raises(record.RecordError, match="No review"):
            await record.show_review(session, 999_999)
        assert [r.status for r in await record.list_reviews(session, status=None)] == ["rejected"]
    (event,) = await _events(sessions, "document.review_rejected")
    assert event.rule == "R10" and event.actor == "doctor@pro.gateway.test"


async def test_r15_replacement_supersedes_the_older_version(sessions: async_sessionmaker[AsyncSession]) -> None:
    identity_id = await _identity(sessions)
    imaging = sample(IMAGING)
    original = variant(imaging, ('<id root="1.2.250.1.213.1.1.1.45.2024.1.1"/>',
                                 '<id root="90E1C8EC-F951-4B26-A305-A34848818DD6"/>'),
                       ('<versionNumber value="2"/>', '<versionNumber value="1"/>'))
    (first,) = await _process(sessions, _mail(original))
    (second,) = await _process(sessions, _mail(imaging))
    assert (first.kind, second.kind) == ("filed", "filed")
    async with sessions() as session:
        current = await record.documents_of(session, identity_id)
        assert [d.id for d in current] == [second.id]
        everything = await record.documents_of(session, identity_id, include_superseded=True)
        assert {d.id: d.superseded_by for d in everything} == {first.id: second.id, second.id: None}
    (event,) = await _events(sessions, "document.superseded")
    assert event.rule == "R15" and event.detail["document_id"] == first.id


async def test_r10_older_version_after_a_newer_one_is_900(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _identity(sessions)
    imaging = sample(IMAGING)
    older = variant(imaging, ('<id root="1.2.250.1.213.1.1.1.45.2024.1.1"/>', '<id root="1.2.3.4.5.6.7"/>'),
                    ('<versionNumber value="2"/>', '<versionNumber value="1"/>'))
    await _process(sessions, _mail(imaging))
    (late,) = await _process(sessions, _mail(older))
    assert late.kind == "review"
    async with sessions() as session:
        (summary,) = await record.list_reviews(session)
        assert summary.code == 900


async def test_migration_matches_the_models(sessions: async_sessionmaker[AsyncSession], store_url: str) -> None:
    diff = await schema_differences(store_url, migrate=False)  # the fixture migrated the store
    assert differences_of(diff, ["patient_documents", "document_reviews"]) == []
