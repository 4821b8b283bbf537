"""DMP authors from the Annuaire Santé (R15): the XDS author and the VIHF carry what the directory publishes,
``[[dmp.professional]]`` overrides it, and a professional the directory does not know waits with a reason.

The outbox worker deposits into the DMP simulator over HTTPS, on SQLite and PostgreSQL, with the directory
simulator in its own process; the ITI-41 the DMP simulator captured is read back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from directory.directory_support import SimulatorProcess
from dmp_bridge.dmp_support import (
    BIOLOGIST,
    GP,
    MATRICULE,
    SCHEMA_DIR,
    STRUCTURE,
    DmpPKI,
    endpoint,
    make_dmp_pki,
    sample,
    variant,
)
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.directory.client import DirectoryClient
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import outbox, soap
from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox import DmpDeposit
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.rules import AccessMode, DepositPolicy, Professional
from gateway.dmp_bridge.simulator import Simulator, serve
from gateway.dmp_bridge.soap import DmpClient
from gateway.documents.cda import Code, read_header
from gateway.store import db
from gateway.store.models import Event
from gateway.store.queue import Backoff

PDF_CDA = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"

#: Every test here starts the directory simulator (another program): not in make test-fast.
pytestmark = pytest.mark.slow
Sessions = async_sessionmaker[AsyncSession]
UNSET_PROFESSION = Code("", c.OID_PROFESSION, "")
UNSET_SPECIALTY = Code("", c.OID_SPECIALTY, "")
#: The biologist and the GP as a configuration without role nor specialty lists them: the directory decides.
BIOLOGIST_FROM_DIRECTORY = Professional(BIOLOGIST.national_id, BIOLOGIST.family, BIOLOGIST.given, BIOLOGIST.mailbox,
                                        UNSET_PROFESSION, UNSET_SPECIALTY)
GP_FROM_DIRECTORY = Professional(GP.national_id, GP.family, GP.given, GP.mailbox, UNSET_PROFESSION,
                                 UNSET_SPECIALTY)


@pytest.fixture(scope="module")
def dmp_pki(tmp_path_factory: pytest.TempPathFactory) -> DmpPKI:
    return make_dmp_pki(tmp_path_factory.mktemp("dmp-pki"))


@pytest.fixture
async def dmp(dmp_pki: DmpPKI, tmp_path: Path) -> AsyncIterator[Simulator]:
    sim = await serve("127.0.0.1", 0, certificate=dmp_pki.server_cert, key=dmp_pki.server_key,
                      ca_bundle=dmp_pki.ca_bundle, schema_dir=SCHEMA_DIR, state_file=tmp_path / "dmp-state.json")
    yield sim
    await sim.stop()


@pytest.fixture
async def sessions(store_url: str) -> AsyncIterator[Sessions]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    yield db.sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def directory(annuaire: SimulatorProcess) -> AsyncIterator[DirectoryClient]:
    async with annuaire.client() as client:
        yield client


class Harness:
    def __init__(self, dmp_pki: DmpPKI, dmp: Simulator, sessions: Sessions) -> None:
        self.dmp_pki, self.dmp, self.sessions = dmp_pki, dmp, sessions
        self.clients: list[DmpClient] = []

    def worker(self, professionals: tuple[Professional, ...], directory: DirectoryClient | None) -> OutboxWorker:
        policy = DepositPolicy(STRUCTURE, professionals, AccessMode.SYSTEMATIC)
        client = DmpClient(endpoint(self.dmp_pki, self.dmp.url), self.dmp_pki.signer)
        self.clients.append(client)
        return OutboxWorker(self.sessions, Depositor(client, self.dmp_pki.signer, policy), policy,
                            backoff=Backoff(0.05, 2.0, 0.5), poll_interval=0.05, directory=directory)

    async def enqueue(self, cda: bytes, author: str) -> int:
        header = read_header(cda, validate=False, limits=c.CDA_LIMITS)
        async with self.sessions() as session, session.begin():
            job_id = await outbox.enqueue(session, cda=cda, unique_id=header.unique_id, matricule=MATRICULE,
                                          author_id=author, title=header.title, type_code=header.type_code)
        assert job_id is not None
        return job_id

    async def job(self, job_id: int) -> DmpDeposit:
        async with self.sessions() as session:
            job = await session.get(DmpDeposit, job_id)
            assert job is not None
            return job

    async def events(self, job_id: int, kind: str) -> list[Event]:
        async with self.sessions() as session:
            rows = (await session.execute(select(Event).where(Event.kind == kind))).scalars().all()
        return [e for e in rows if (e.detail or {}).get("job_id") == job_id]


@pytest.fixture
async def harness(dmp_pki: DmpPKI, dmp: Simulator, sessions: Sessions) -> AsyncIterator[Harness]:
    h = Harness(dmp_pki, dmp, sessions)
    yield h
    for client in h.clients:
        await client.close()


def _sent(dmp: Simulator) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """The document entry's author slots and the VIHF roles (code, system) of the last ITI-41."""
    message = dmp.last_request
    assert message is not None
    rim = c.NS_RIM
    eo = message.envelope.find(f".//{{{rim}}}ExtrinsicObject")
    assert eo is not None
    author = next(cl for cl in eo.findall(f"{{{rim}}}Classification")
                  if cl.get("classificationScheme") == c.DE_AUTHOR)
    slots = {s.get("name", ""): [v.text or "" for v in s.iter(f"{{{rim}}}Value")]
             for s in author.findall(f"{{{rim}}}Slot")}
    assertion = soap.assertion_of(message.envelope)
    assert assertion is not None
    roles = [(r.get("code", ""), r.get("codeSystem", "")) for r in assertion.iter(f"{{{c.NS_HL7}}}Role")]
    return slots, roles


async def test_r15_biologist_sm03_from_directory_in_xds_author_and_vihf(harness: Harness,
                                                                       directory: DirectoryClient) -> None:
    worker = harness.worker((BIOLOGIST_FROM_DIRECTORY,), directory)
    job_id = await harness.enqueue(sample(PDF_CDA), BIOLOGIST.national_id)
    assert await worker.run_once() == 1
    assert (await harness.job(job_id)).state == outbox.ACCEPTED
    slots, roles = _sent(harness.dmp)
    assert slots["authorSpecialty"] == [f"SM03^Biologie médicale^{c.OID_SPECIALTY}"]
    assert slots["authorRole"] == [f"21^Pharmacien^{c.OID_PROFESSION}"]
    assert slots["authorInstitution"][0].startswith("Laboratoire des charmes^")
    assert slots["authorInstitution"][0].endswith("^1120459876")
    assert ("SM03", c.OID_SPECIALTY) in roles and ("21", c.OID_PROFESSION) in roles
    assert not any(code == "SM26" for code, _ in roles)


async def test_r15_configured_specialty_overrides_the_directory(harness: Harness,
                                                                 directory: DirectoryClient) -> None:
    configured = Professional(BIOLOGIST.national_id, BIOLOGIST.family, BIOLOGIST.given, BIOLOGIST.mailbox,
                              UNSET_PROFESSION, Code("SM05", c.OID_SPECIALTY, "Configurée"))
    worker = harness.worker((configured,), directory)
    job_id = await harness.enqueue(sample(PDF_CDA), BIOLOGIST.national_id)
    await worker.run_once()
    assert (await harness.job(job_id)).state == outbox.ACCEPTED
    slots, roles = _sent(harness.dmp)
    assert slots["authorSpecialty"] == [f"SM05^Configurée^{c.OID_SPECIALTY}"]
    assert slots["authorRole"] == [f"21^Pharmacien^{c.OID_PROFESSION}"]  # not overridden: the directory's
    assert ("SM05", c.OID_SPECIALTY) in roles


async def test_r15_professional_missing_from_directory_waits_with_a_reason(harness: Harness,
                                                                           directory: DirectoryClient) -> None:
    worker = harness.worker((GP_FROM_DIRECTORY,), directory)
    cda = variant(sample(PDF_CDA), unique_id="1.2.250.1.999.42.7001")
    job_id = await harness.enqueue(cda, GP.national_id)
    requests = harness.dmp.requests
    await worker.run_once()
    job = await harness.job(job_id)
    assert job.state == outbox.RETRY
    assert job.last_error is not None and "not published in the Annuaire Santé" in job.last_error
    assert GP.national_id in job.last_error
    retries = await harness.events(job_id, "dmp.deposit.retry")
    assert [e.detail["code"] for e in retries] == ["author_not_in_directory"]
    assert harness.dmp.requests == requests  # nothing went to the DMP: no guessed author


async def test_r15_no_directory_and_no_configured_specialty_waits(harness: Harness) -> None:
    worker = harness.worker((BIOLOGIST_FROM_DIRECTORY,), None)
    job_id = await harness.enqueue(sample(PDF_CDA), BIOLOGIST.national_id)
    await worker.run_once()
    job = await harness.job(job_id)
    assert job.state == outbox.RETRY and job.last_error is not None and "[directory]" in job.last_error


async def test_r15_directory_down_waits_then_deposits_when_it_answers(harness: Harness,
                                                                      annuaire: SimulatorProcess,
                                                                      directory: DirectoryClient) -> None:
    worker = harness.worker((BIOLOGIST_FROM_DIRECTORY,), directory)
    job_id = await harness.enqueue(sample(PDF_CDA), BIOLOGIST.national_id)
    annuaire.fault("down", 2)
    await worker.run_once()
    job = await harness.job(job_id)
    assert job.state == outbox.RETRY and "could not describe" in (job.last_error or "")
    annuaire.fault("down", 0)
    for _ in range(200):  # the backoff makes it due again within half a second
        await worker.run_once()
        if (await harness.job(job_id)).state == outbox.ACCEPTED:
            break
        await harness.sessions().close()
    assert (await harness.job(job_id)).state == outbox.ACCEPTED
    assert _sent(harness.dmp)[0]["authorSpecialty"][0].startswith("SM03^")


def _unused(_: object) -> None:
    etree.tostring  # noqa: B018 - lxml is the parser of the captured envelope
