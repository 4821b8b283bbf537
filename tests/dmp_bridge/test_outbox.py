"""The deposit outbox against the DMP simulator over HTTPS, on SQLite and PostgreSQL: rules to jobs, retries,
refusals, exactly-once across lost answers, concurrent workers and a worker killed mid-flight (R12–R18)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from dmp_bridge.dmp_support import BIOLOGIST, GP, MATRICULE, TEST_OID, DmpPKI, endpoint, policy, sample, variant
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import outbox
from gateway.dmp_bridge.bridge import Considered, consider_message
from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox import DmpDeposit
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.presence import CommandPresence
from gateway.dmp_bridge.rules import AccessMode
from gateway.dmp_bridge.simulator import DmpState, Simulator
from gateway.dmp_bridge.soap import DmpClient
from gateway.documents.cda import non_xml_body, read_header
from gateway.documents.xdm_writer import build_xdm
from gateway.ins_matching import identities
from gateway.store import db, mailstore
from gateway.store.models import Event, Message
from gateway.store.queue import Backoff

PDF_CDA = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"
TRAITS = identities.Traits("PAT-TROIS", "DOMINIQUE MARIE-LOUISE", "1979-03-28", "F", "51215")
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(store_url: str) -> AsyncIterator[Sessions]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    yield db.sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def make_worker(dmp_pki: DmpPKI, simulator: Simulator,
                      sessions: Sessions) -> AsyncIterator[Callable[..., OutboxWorker]]:
    clients: list[DmpClient] = []

    def factory(timeout: float = 10.0, lease: float = 30.0, concurrency: int = 8, worker_id: str | None = None,
                **kwargs: object) -> OutboxWorker:
        client = DmpClient(endpoint(dmp_pki, simulator.url, timeout=timeout), dmp_pki.signer)
        clients.append(client)
        return OutboxWorker(sessions, Depositor(client, dmp_pki.signer, policy()), policy(),
                            concurrency=concurrency, lease=lease, backoff=Backoff(0.05, 2.0, 0.5),
                            poll_interval=0.05, worker_id=worker_id, **kwargs)  # type: ignore[arg-type]
    yield factory
    for client in clients:
        await client.close()


async def _enqueue(sessions: Sessions, cda: bytes, author: str = BIOLOGIST.national_id) -> int:
    header = read_header(cda, validate=False, limits=c.CDA_LIMITS)
    async with sessions() as session, session.begin():
        job_id = await outbox.enqueue(session, cda=cda, unique_id=header.unique_id, matricule=MATRICULE,
                                      author_id=author, title=header.title, type_code=header.type_code)
    assert job_id is not None
    return job_id


async def _job(sessions: Sessions, job_id: int) -> DmpDeposit:
    async with sessions() as session:
        job = await session.get(DmpDeposit, job_id)
        assert job is not None
        return job


async def _until(sessions: Sessions, job_ids: list[int], states: set[str], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        jobs = [await _job(sessions, j) for j in job_ids]
        if all(j.state in states for j in jobs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs did not reach {states}: {[(j.id, j.state, j.last_error) for j in jobs]}")


async def _run_until(worker: OutboxWorker, sessions: Sessions, job_ids: list[int], states: set[str],
                     deadline: float = 30.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await _until(sessions, job_ids, states, deadline)
    finally:
        stop.set()
        await task


def _mail(cda: bytes, sender: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"{MATRICULE}@patient.gw.test"
    message["Subject"] = "CR"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Compte rendu joint.")
    message.add_attachment(cda, maintype="application", subtype="xml", filename="CDA.xml")
    return message.as_bytes()


async def _setup(sessions: Sessions, *, qualified: bool = True, mailbox: str = BIOLOGIST.mailbox,
                 raw: bytes = b"") -> tuple[int, int]:
    async with sessions() as session, session.begin():
        mailbox_id = await mailstore.create_mailbox(session, mailbox, "PER")
        identity_id = await identities.add_identity(session, MATRICULE, TEST_OID, TRAITS, "test", allow_test=True)
        await identities.record_insi(session, identity_id, "found", "test")
        if qualified:
            await identities.record_document(session, identity_id, "passport", "test")
        message = Message(received_at=datetime.now(UTC), sender_mailbox_id=mailbox_id, mail_from=mailbox,
                          rcpt_to=[f"{MATRICULE}@patient.gw.test"], size=len(raw), raw=raw)
        session.add(message)
        await session.flush()
        return mailbox_id, message.id


async def test_r12_submitted_cda_is_queued_in_the_message_transaction_and_deposited_once(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    raw = _mail(sample(PDF_CDA), BIOLOGIST.mailbox, X_DMP_Visibility="INVISIBLE_PATIENT")
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as session, session.begin():
        results = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                         sender_mailbox_id=mailbox_id)
    [considered] = results
    assert considered.plan.allowed and considered.job_id is not None
    assert considered.plan.visibility == {c.INVISIBLE_PATIENT}
    worker = make_worker()
    assert await worker.run_once() == 1
    job = await _job(sessions, considered.job_id)
    assert job.state == outbox.ACCEPTED and job.attempts == 1
    [entry] = simulator.entries(MATRICULE)
    assert c.INVISIBLE_PATIENT in entry["confidentialityCode"]
    assert await worker.run_once() == 0
    async with sessions() as session:
        kinds = [e.kind for e in (await session.execute(select(Event).order_by(Event.id))).scalars()
                 if e.kind.startswith("dmp.")]
        rules = {e.rule for e in (await session.execute(select(Event).where(Event.kind == "dmp.rule"))).scalars()}
    assert kinds[-3:] == ["dmp.deposit.queued", "dmp.deposit.sent", "dmp.deposit.accepted"]
    assert rules == {"R7", "R12", "R13", "R14", "R15", "R16"}


async def test_r7_identity_not_qualified_is_filed_locally_not_deposited(sessions: Sessions) -> None:
    raw = _mail(sample(PDF_CDA), BIOLOGIST.mailbox)
    mailbox_id, message_id = await _setup(sessions, qualified=False, raw=raw)
    async with sessions() as session, session.begin():
        [considered] = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                              sender_mailbox_id=mailbox_id)
    assert considered.job_id is None and considered.plan.refusal is not None
    assert considered.plan.refusal.rule == "R7"
    async with sessions() as session:
        assert (await session.execute(select(DmpDeposit))).first() is None


async def test_r12_document_sent_by_someone_else_is_not_deposited(sessions: Sessions) -> None:
    raw = _mail(sample(PDF_CDA), GP.mailbox)  # the biologist wrote it; the GP forwards it
    mailbox_id, message_id = await _setup(sessions, mailbox=GP.mailbox, raw=raw)
    async with sessions() as session, session.begin():
        [considered] = await consider_message(session, message_id, raw, GP.mailbox, [], policy=policy(),
                                              sender_mailbox_id=mailbox_id)
    assert considered.job_id is None
    assert considered.plan.refusal is not None and considered.plan.refusal.code == "sender_not_author"


async def test_r14_presence_mode_deposits_only_while_the_card_is_in(sessions: Sessions) -> None:
    raw = _mail(sample(PDF_CDA), BIOLOGIST.mailbox)
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    presence_policy = policy(default_mode=AccessMode.PRESENCE)
    presence = CommandPresence()
    async with sessions() as session, session.begin():
        [absent] = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=presence_policy,
                                          sender_mailbox_id=mailbox_id, presence=presence)
    assert absent.job_id is None and absent.plan.refusal is not None and absent.plan.refusal.code == "patient_absent"
    presence.present(mailbox_id, MATRICULE)
    async with sessions() as session, session.begin():
        [present] = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=presence_policy,
                                           sender_mailbox_id=mailbox_id, presence=presence)
    assert present.job_id is not None


async def test_r17_closed_dmp_is_refused_kept_and_not_retried_until_asked(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    simulator.set_patient(MATRICULE, state=DmpState.CLOSED)
    job_id = await _enqueue(sessions, sample(PDF_CDA))
    worker = make_worker()
    await worker.run_once()
    job = await _job(sessions, job_id)
    assert job.state == outbox.REFUSED and job.result_code == c.ERR_DMP_CLOSED
    assert job.last_error is not None and "fermé" in job.last_error and job.cda == sample(PDF_CDA)
    assert await worker.run_once() == 0  # not retried by itself
    simulator.set_patient(MATRICULE, state=DmpState.OPEN)
    async with sessions() as session, session.begin():
        await outbox.retry_job(session, job_id, "operator")
    await worker.run_once()
    assert (await _job(sessions, job_id)).state == outbox.ACCEPTED
    async with sessions() as session:
        shown = await outbox.show_job(session, job_id)
    kinds = [e["kind"] for e in shown["events"]]
    assert "dmp.deposit.refused" in kinds and kinds[-1] == "dmp.deposit.accepted"
    refused = next(e for e in shown["events"] if e["kind"] == "dmp.deposit.refused")
    assert refused["rule"] == "R17"


async def test_simulator_down_then_up_is_retried_with_backoff_and_accepted_once(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    simulator.inject("unavailable", count=3)
    job_id = await _enqueue(sessions, sample(PDF_CDA))
    await _run_until(make_worker(), sessions, [job_id], {outbox.ACCEPTED})
    job = await _job(sessions, job_id)
    assert job.attempts == 4 and len(simulator.documents) == 1 and simulator.requests == 4
    async with sessions() as session:
        retries = (await session.execute(select(Event).where(Event.kind == "dmp.deposit.retry"))).scalars().all()
    assert [r.detail["delay"] for r in retries] == [0.05, 0.1, 0.2]  # exponential


async def test_answer_lost_after_storing_counts_as_accepted_without_a_second_document(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    simulator.inject("lost_answer", count=1)
    job_id = await _enqueue(sessions, sample(PDF_CDA))
    await _run_until(make_worker(), sessions, [job_id], {outbox.ACCEPTED})
    job = await _job(sessions, job_id)
    assert job.attempts == 2 and job.result_code == c.ERR_DUPLICATE_UNIQUE_ID
    assert len(simulator.documents) == 1


async def test_timeout_is_a_transport_error_and_retried(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    simulator.inject("hang", count=1, delay=5.0)
    job_id = await _enqueue(sessions, sample(PDF_CDA))
    await _run_until(make_worker(timeout=0.5), sessions, [job_id], {outbox.ACCEPTED})
    job = await _job(sessions, job_id)
    assert job.attempts == 2 and len(simulator.documents) == 1


async def test_two_workers_share_the_outbox_without_double_sending(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    base = sample(PDF_CDA)
    ids = [await _enqueue(sessions, variant(base, unique_id=f"1.2.250.1.999.42.8.{n}")) for n in range(24)]
    workers = [make_worker(concurrency=4, worker_id="w1"), make_worker(concurrency=4, worker_id="w2")]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        await _until(sessions, ids, {outbox.ACCEPTED})
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert simulator.requests == 24 and len(simulator.documents) == 24
    async with sessions() as session:
        actors = {e.actor for e in (await session.execute(
            select(Event).where(Event.kind == "dmp.deposit.accepted"))).scalars()}
        sent = (await session.execute(select(Event).where(Event.kind == "dmp.deposit.sent"))).scalars().all()
    assert len(sent) == 24
    assert actors <= {"w1", "w2"}


@pytest.mark.slow  # starts a process
async def test_worker_killed_mid_flight_leaves_no_duplicate(
        sessions: Sessions, store_url: str, dmp_pki: DmpPKI, simulator: Simulator,
        make_worker: Callable[..., OutboxWorker]) -> None:
    simulator.inject("store_then_hang", count=1, delay=30.0)
    job_id = await _enqueue(sessions, sample(PDF_CDA))
    script = Path(__file__).with_name("worker_main.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    child = await asyncio.create_subprocess_exec(sys.executable, str(script), store_url, simulator.url,
                                                 str(dmp_pki.folder), "1.0", stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
        end = time.monotonic() + 30
        while simulator.accepted < 1:  # the DMP stored the document; its answer is still pending
            assert time.monotonic() < end, "the child never sent the deposit"
            await asyncio.sleep(0.02)
        assert (await _job(sessions, job_id)).state == outbox.SENT
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    await _run_until(make_worker(), sessions, [job_id], {outbox.ACCEPTED})
    job = await _job(sessions, job_id)
    assert job.attempts == 2 and job.result_code == c.ERR_DUPLICATE_UNIQUE_ID
    assert len(simulator.documents) == 1 and simulator.accepted == 1


async def test_commands_list_show_cancel_and_retry(sessions: Sessions) -> None:
    job_id = await _enqueue(sessions, sample(PDF_CDA))
    async with sessions() as session, session.begin():
        [listed] = await outbox.list_jobs(session, state=outbox.PENDING)
        assert listed["id"] == job_id and listed["unique_id"] == "1.3.6.1.4.1.19376.1.2.20.12345.1.1"
        await outbox.cancel_job(session, job_id, "operator")
    async with sessions() as session, session.begin():
        assert (await outbox.show_job(session, job_id))["state"] == outbox.CANCELLED
        with pytest.raises(ValueError, match="cancelled"):
            await outbox.cancel_job(session, job_id, "operator")
        await outbox.retry_job(session, job_id, "operator")
        assert (await outbox.counts(session)) == {outbox.PENDING: 1}
    async with sessions() as session, session.begin():
        with pytest.raises(LookupError):
            await outbox.show_job(session, 999)
        assert await outbox.enqueue(session, cda=sample(PDF_CDA), unique_id="1.3.6.1.4.1.19376.1.2.20.12345.1.1",
                                    matricule=MATRICULE, author_id=BIOLOGIST.national_id, title="x",
                                    type_code="11502-2") is None  # the uniqueId is the idempotency key


async def test_r13_attachments_get_stable_unique_ids_so_a_message_considered_twice_deposits_once(
        sessions: Sessions) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BIOLOGIST.mailbox, f"{MATRICULE}@patient.gw.test", "CR"
    message.set_content("Compte rendu et annexe.")
    message.add_attachment(sample(PDF_CDA), maintype="application", subtype="xml", filename="CR.xml")
    message.add_attachment(b"%PDF-1.4 copy", maintype="application", subtype="pdf", filename="CR.pdf")  # copy
    message.add_attachment(b"%PDF-1.4 annex", maintype="application", subtype="pdf", filename="Annexe.pdf")
    message.add_attachment(b"GIF89a", maintype="image", subtype="gif", filename="logo.gif")  # not R15's format
    raw = message.as_bytes()
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    for attempt in range(2):
        async with sessions() as session, session.begin():
            results = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                             sender_mailbox_id=mailbox_id)
        assert len(results) == 2 and all(r.plan.allowed for r in results)
        assert [r.job_id is not None for r in results] == [attempt == 0] * 2  # the second time: duplicates
    async with sessions() as session:
        jobs = list((await session.execute(select(DmpDeposit))).scalars())
    assert len(jobs) == 2
    wrapped = read_header(next(j.cda for j in jobs if j.title == "Annexe"), validate=False, limits=c.CDA_LIMITS)
    assert wrapped.body_media_type == "application/pdf"
    assert wrapped.patient.matricule == MATRICULE  # the patient of the message's CDA


def _annex_to_colleague(**headers: str) -> bytes:
    """The biologist sends the GP (not the patient) an attached PDF, with these headers."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BIOLOGIST.mailbox, GP.mailbox, "Radio"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Pour information.")
    message.add_attachment(b"%PDF-1.4 radio", maintype="application", subtype="pdf", filename="Radio.pdf")
    return message.as_bytes()


async def _considered_alone(sessions: Sessions, raw: bytes) -> Considered:
    """Consider a message to the GP whose only document is its attachment."""
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as session, session.begin():
        [considered] = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [GP.mailbox],
                                              policy=policy(), sender_mailbox_id=mailbox_id)
    return considered


async def test_r7_an_attachment_for_no_single_patient_is_not_deposited(sessions: Sessions) -> None:
    considered = await _considered_alone(sessions, _annex_to_colleague())
    assert considered.job_id is None and considered.plan.refusal is not None
    assert (considered.plan.refusal.rule, considered.plan.refusal.code) == ("R7", "no_patient")


def _letter_with_annexes(*annexes: bytes) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BIOLOGIST.mailbox, f"{MATRICULE}@patient.gw.test", "CR"
    message.set_content("Compte rendu et annexes.")
    message.add_attachment(sample(PDF_CDA), maintype="application", subtype="xml", filename="CR.xml")
    for n, annex in enumerate(annexes):
        message.add_attachment(annex, maintype="application", subtype="pdf", filename=f"Annexe {n + 1}.pdf")
    return message.as_bytes()


async def test_r15_a_letter_and_its_attachments_are_deposited_together_in_one_submission_set(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    raw = _letter_with_annexes(b"%PDF-1.4 annex one", b"%PDF-1.4 annex two")
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as session, session.begin():
        results = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                         sender_mailbox_id=mailbox_id)
    assert len(results) == 3 and all(r.job_id is not None for r in results)
    async with sessions() as session:
        jobs = list((await session.execute(select(DmpDeposit))).scalars())
        linked = list((await session.execute(select(Event).where(Event.kind == "dmp.deposit.linked"))).scalars())
    assert len({j.submission_uid for j in jobs}) == 1  # one link key for the three
    assert [(e.rule, sorted(e.detail["job_ids"])) for e in linked] == [("R15", sorted(j.id for j in jobs))]
    assert await make_worker(concurrency=1).run_once() == 3  # claimed together although one at a time is asked
    assert simulator.requests == 1 and simulator.accepted == 3  # one ITI-41 request ...
    sets = {d.submission_set for d in simulator.documents.values()}
    assert sets == {jobs[0].submission_uid}  # ... one submission set: the documents are linked (R15)
    assert [(await _job(sessions, j.id)).state for j in jobs] == [outbox.ACCEPTED] * 3


async def test_r15_a_message_considered_alone_is_not_linked_and_keeps_its_own_submission_set(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    first = _mail(sample(PDF_CDA), BIOLOGIST.mailbox)
    mailbox_id, message_id = await _setup(sessions, raw=first)
    for raw, key in ((first, message_id), (_letter_with_annexes(b"%PDF-1.4 alone"), None)):
        async with sessions() as session, session.begin():
            await consider_message(session, key, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                   sender_mailbox_id=mailbox_id)
    async with sessions() as session:
        jobs = list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
    assert len(jobs) == 2  # the letter once (its uniqueId is the idempotency key), the second message's annex
    assert jobs[0].submission_uid != jobs[1].submission_uid  # not deposited together: not linked
    assert await make_worker().run_once() == 2
    assert simulator.requests == 2 and len({d.submission_set for d in simulator.documents.values()}) == 2


async def test_r7_x_dmp_patient_names_the_patient_of_an_attachment_sent_to_a_colleague(sessions: Sessions) -> None:
    considered = await _considered_alone(sessions, _annex_to_colleague(X_DMP_Patient=MATRICULE))
    assert considered.job_id is not None and considered.plan.allowed
    async with sessions() as session:
        [wrapped] = (await session.execute(select(DmpDeposit.cda))).scalars()
    header = read_header(wrapped, validate=False, limits=c.CDA_LIMITS)
    assert header.patient.matricule == MATRICULE and header.title == "Radio"
    assert [a.national_id for a in header.authors] == [BIOLOGIST.national_id]  # the sending professional


async def test_r7_x_dmp_patient_naming_an_unknown_patient_deposits_nothing(sessions: Sessions) -> None:
    considered = await _considered_alone(sessions, _annex_to_colleague(X_DMP_Patient="180012B01234558"))
    assert considered.job_id is None and considered.plan.refusal is not None
    assert (considered.plan.refusal.rule, considered.plan.refusal.code) == ("R7", "unknown_identity")


async def test_r13_the_pdf_a_level_1_cda_wraps_is_its_rendering_and_not_deposited_again(sessions: Sessions) -> None:
    cda = sample(PDF_CDA)
    body = non_xml_body(cda)
    assert body is not None and body.startswith(b"%PDF")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BIOLOGIST.mailbox, f"{MATRICULE}@patient.gw.test", "CR"
    message.set_content("Compte rendu.")
    message.add_attachment(cda, maintype="application", subtype="xml", filename="document.xml")
    message.add_attachment(body, maintype="application", subtype="pdf", filename="Compte rendu lisible.pdf")
    raw = message.as_bytes()
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as session, session.begin():
        results = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                         sender_mailbox_id=mailbox_id)
    assert [r.unique_id for r in results] == ["1.3.6.1.4.1.19376.1.2.20.12345.1.1"]  # the CDA alone


async def test_r13_beside_an_xdm_zip_its_documents_copies_are_not_deposited_but_an_annex_is(
        sessions: Sessions) -> None:
    cda = sample(PDF_CDA)
    archive, [written] = build_xdm([cda])
    assert written.path.endswith("DOC0001.XML")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BIOLOGIST.mailbox, f"{MATRICULE}@patient.gw.test", "CR"
    message.set_content("Compte rendu.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    message.add_attachment(b"%PDF-1.4 copy", maintype="application", subtype="pdf", filename="DOC0001.pdf")
    message.add_attachment(non_xml_body(cda), maintype="application", subtype="pdf", filename="Lisible.pdf")
    message.add_attachment(b"%PDF-1.4 annex", maintype="application", subtype="pdf", filename="Annexe.pdf")
    raw = message.as_bytes()
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as session, session.begin():
        results = await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                         sender_mailbox_id=mailbox_id)
        titles = sorted((await session.execute(select(DmpDeposit.title))).scalars())
    assert len(results) == 2 and all(r.job_id is not None for r in results)  # the CDA and the annex
    assert "Annexe" in titles
