"""One acceptance planner: the same message gets the same effects whichever door it came through (R10, R18).

A lab report is accepted for the results mailbox once as a submission and once as an upstream import; both are
applied to a real store, then filed by the filing worker. The recipient sees the same thing both times: one
INBOX delivery, one filing job, the document filed to the qualified identity.
"""

from __future__ import annotations

import asyncio
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from support.store import Store

from gateway.auth.accounts import Account
from gateway.config import Config, load
from gateway.filing.models import FilingJob, UpstreamMessage
from gateway.filing.upstream import plan_import
from gateway.filing.worker import FilingWorker
from gateway.ins_matching.record import PatientDocument
from gateway.routing.delivery import Outcome, plan_submission
from gateway.routing.headers import summarise
from gateway.routing.policy import decide
from gateway.samples import samples_dir
from gateway.store import bulk, db
from gateway.store.changes import ChangeHub
from gateway.store.models import Delivery, Event, Folder

SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
DOC_ID = b"1.2.250.1.213.1.1.1.55.2024.9.1"
LAB, RESULTS = "laboratoire@pro.test", "resultats@pro.test"


def config(folder: Path, url: str) -> Config:
    (folder / "c.pem").write_text("x")
    (folder / "k.pem").write_text("x")
    path = folder / "gateway.toml"
    path.write_text(f'[gateway]\nhostname = "mx.test"\ndomains = ["pro.test"]\npatient_domain = "patient.test"\n'
                    f'[database]\nurl = "{url}"\n[tls]\ncertificate = "c.pem"\nprivate_key = "k.pem"\n'
                    f'[smtp]\nsubmission = "127.0.0.1:2587"\n[rules]\nallow_test_identities = true\n'
                    f'[documents]\nfiling_mailboxes = ["{RESULTS}"]\n')
    return load(path)


def lab_report(n: int) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = LAB, RESULTS, f"CR {n}"
    message["Message-ID"] = f"<cr{n}@lab.test>"
    message.set_content("Compte rendu")
    cda = SAMPLE.read_bytes().replace(DOC_ID, DOC_ID[:-1] + str(100 + n).encode(), 1)
    message.add_attachment(cda, maintype="text", subtype="xml", filename="cr.xml")
    return message.as_bytes()


async def _seen_by_recipient(session: AsyncSession, message_id: int) -> dict[str, Any]:
    """What the results mailbox and the filing path hold for one message."""
    folders = (await session.execute(select(Folder.name).join(Delivery, Delivery.folder_id == Folder.id)
                                     .where(Delivery.message_id == message_id, Folder.mailbox_id == 2))).scalars()
    jobs = (await session.execute(select(FilingJob.kind, FilingJob.mailbox_id, FilingJob.state)
                                  .where(FilingJob.message_id == message_id))).all()
    documents = (await session.execute(select(PatientDocument.identity_id, PatientDocument.type_code)
                                       .where(PatientDocument.message_id == message_id))).all()
    done = (await session.execute(select(Event.outcome, Event.rule).where(
        Event.message_id == message_id, Event.kind == "filing.done"))).all()
    return {"folders": sorted(folders), "jobs": sorted(map(tuple, jobs)), "documents": sorted(map(tuple, documents)),
            "filing.done": sorted(map(tuple, done))}


def test_r10_an_imported_message_gets_the_effects_of_the_same_message_submitted(tmp_path: Path,
                                                                                  store_url: str) -> None:
    cfg = config(tmp_path, store_url)
    store = Store(store_url)
    lab_id = store.add_mailbox(LAB, "ORG")
    results_id = store.add_mailbox(RESULTS, "ORG")
    assert results_id == 2
    store.add_identity()  # the sample's patient, qualifiée
    by_submission, by_import, upstream, imported = asyncio.run(_accept_both(cfg, store_url, lab_id, results_id))
    assert by_submission == by_import
    assert by_import["jobs"] == [("file", results_id, "done")]
    assert by_import["folders"] == ["INBOX"]
    assert by_import["filing.done"] == [("filed", "R10")]
    assert len(by_import["documents"]) == 1
    assert upstream == [imported]


async def _accept_both(cfg: Config, url: str, lab_id: int, results_id: int
                       ) -> tuple[dict[str, Any], dict[str, Any], list[int], int]:
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    try:
        lab = Account(lab_id, LAB, "ORG", None)
        async with sessions() as session, session.begin():
            decision = await decide(session, cfg, lab, RESULTS)
            assert decision.target is not None and decision.target.files
            raw = lab_report(1)
            plan = await plan_submission(session, cfg, lab, LAB, [decision.target], raw, summarise(raw))
            assert isinstance(plan, bulk.Plan)
            [submitted] = await bulk.apply(session, [plan])
            assert isinstance(plan.result(submitted), Outcome)
            [imported] = await bulk.apply(session, [plan_import("operateur", RESULTS, results_id, 7, 1,
                                                                lab_report(2))])
        worker = FilingWorker(cfg, sessions, sessions, ChangeHub())
        while await worker.run_once():
            pass
        async with sessions() as session:
            by_submission = await _seen_by_recipient(session, submitted)
            by_import = await _seen_by_recipient(session, imported)
            upstream = list((await session.execute(select(UpstreamMessage.message_id))).scalars().all())
    finally:
        await engine.dispose()
    return by_submission, by_import, upstream, imported
