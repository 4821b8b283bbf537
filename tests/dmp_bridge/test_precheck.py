"""TD0.2 before every deposit, against the DMP simulator over HTTPS: a patient without a DMP, a closed DMP, a
professional blocked, not authorised or whose authorisation lapsed (R17) are refused before any document is sent,
the refusal recorded on the job with the DMP's reason; an unreachable or garbled pre-check is a retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from dmp_bridge.dmp_support import BIOLOGIST, MATRICULE, TEST_OID, DmpPKI, endpoint, policy, sample
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import outbox, precheck
from gateway.dmp_bridge.deposit import Depositor, Prepared, prepare
from gateway.dmp_bridge.outbox import DmpDeposit
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.simulator import DmpState, Simulator
from gateway.dmp_bridge.soap import DmpClient, DmpTransportError
from gateway.documents.cda import read_header
from gateway.store import db
from gateway.store.queue import Backoff

PDF_CDA = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"


def _prepared() -> Prepared:
    pol = policy()
    return prepare(sample(PDF_CDA), title="", visibility=(), author=BIOLOGIST, submission_uid="1.2.250.1.999.42.9.1",
                   policy=pol)


async def test_an_open_dmp_and_an_authorised_professional_pass_the_precheck_then_the_deposit_goes(
        depositor: Depositor, simulator: Simulator) -> None:
    result = await depositor.send(_prepared())
    assert result.success, result
    assert simulator.prechecks == 1 and simulator.accepted == 1


@pytest.mark.parametrize("setup, code, reason", [
    ({"state": DmpState.NOT_CREATED}, c.ERR_DMP_NOT_CREATED, "n'existe pas"),
    ({"state": DmpState.CLOSED}, c.ERR_DMP_CLOSED, "fermé"),
    ({"block": [BIOLOGIST.national_id]}, c.ERR_PS_BLOCKED, "bloqué"),
    ({"require_authorisation": True}, c.ERR_NOT_AUTHORISED, "autorisation du patient"),
])
async def test_a_precheck_refusal_is_returned_without_sending_the_documents(
        depositor: Depositor, simulator: Simulator, setup: dict[str, object], code: str, reason: str) -> None:
    simulator.set_patient(MATRICULE, **setup)  # type: ignore[arg-type]
    result = await depositor.send(_prepared())
    assert not result.success and result.has(code) and reason in result.message, result
    assert simulator.prechecks == 1
    assert simulator.requests == 0 and simulator.documents == {}  # no ITI-41 at all


async def test_an_authorisation_lapsed_after_six_months_is_refused_by_the_precheck(
        depositor: Depositor, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE, require_authorisation=True)
    simulator.patients[MATRICULE].authorised[BIOLOGIST.national_id] = (
        simulator.clock() - timedelta(days=200)).isoformat()
    result = await depositor.send(_prepared())
    assert result.has(c.ERR_NOT_AUTHORISED) and "expiré" in result.message
    assert simulator.requests == 0


async def test_the_precheck_reads_without_recording_an_access(depositor: Depositor, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE)
    entry = _prepared().entry
    assertion = depositor.assertion(entry.author, entry.matricule, entry.patient_oid)
    check = await depositor.client.check_access(MATRICULE, TEST_OID, "1120459876", assertion)
    assert check == precheck.AccessCheck(True, True, precheck.AUTH_VALID)
    assert simulator.patients[MATRICULE].authorised == {}


async def test_a_query_for_another_patient_than_the_assertions_is_an_error_not_an_answer(
        depositor: Depositor, simulator: Simulator) -> None:
    entry = _prepared().entry
    assertion = depositor.assertion(entry.author, entry.matricule, entry.patient_oid)
    check = await depositor.client.check_access("180012345678912", TEST_OID, "1120459876", assertion)
    assert check.error is not None and check.refusal == check.error and "patient" in check.error.context


@pytest.mark.parametrize("mode", ["precheck_unavailable", "precheck_garbled"])
async def test_an_unreachable_or_unreadable_precheck_is_a_transport_error_and_nothing_is_sent(
        depositor: Depositor, simulator: Simulator, mode: str) -> None:
    simulator.inject(mode)
    with pytest.raises(DmpTransportError):
        await depositor.send(_prepared())
    assert simulator.requests == 0
    assert (await depositor.send(_prepared())).success  # the fault was for one query


async def test_without_precheck_the_refusal_comes_from_the_deposit_itself(
        dmp_pki: DmpPKI, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE, state=DmpState.CLOSED)
    async with DmpClient(endpoint(dmp_pki, simulator.url), dmp_pki.signer) as client:
        result = await Depositor(client, dmp_pki.signer, policy(), precheck=False).send(_prepared())
    assert result.has(c.ERR_DMP_CLOSED) and simulator.prechecks == 0 and simulator.requests == 1


@pytest.fixture
async def sessions(store_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    yield db.sessionmaker(engine)
    await engine.dispose()


async def test_the_outbox_records_a_precheck_refusal_on_the_job_with_the_dmps_reason(
        sessions: async_sessionmaker[AsyncSession], depositor: Depositor, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE, state=DmpState.NOT_CREATED)
    cda = sample(PDF_CDA)
    header = read_header(cda, validate=False, limits=c.CDA_LIMITS)
    async with sessions() as session, session.begin():
        job_id = await outbox.enqueue(session, cda=cda, unique_id=header.unique_id, matricule=MATRICULE,
                                      author_id=BIOLOGIST.national_id, title=header.title, type_code=header.type_code)
    assert job_id is not None
    worker = OutboxWorker(sessions, depositor, policy(), backoff=Backoff(0.05, 2.0, 0.5), poll_interval=0.05)
    await worker.run_once()
    async with sessions() as session:
        job = await session.get(DmpDeposit, job_id)
        assert job is not None
        assert job.state == outbox.REFUSED and job.result_code == c.ERR_DMP_NOT_CREATED
        assert job.last_error is not None and "n'existe pas" in job.last_error
        shown = await outbox.show_job(session, job_id)
    refused = next(e for e in shown["events"] if e["kind"] == "dmp.deposit.refused")
    assert refused["rule"] == "R17"
    assert simulator.requests == 0 and simulator.documents == {}
