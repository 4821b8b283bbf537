"""The filing worker starts a job when the transaction that created it commits, not at its next poll.

The poll is pushed out to a minute, so only the store's change notification (``FILING`` on the hub the group
committer publishes to) can wake the worker within the test's deadline.
"""

from __future__ import annotations

import asyncio
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.store import Store

from gateway.config import Config, load
from gateway.filing import worker as filing_worker
from gateway.filing.upstream import plan_import
from gateway.filing.worker import FilingWorker
from gateway.samples import samples_dir
from gateway.store import db
from gateway.store.changes import ChangeHub
from gateway.store.committer import GroupCommitter
from gateway.store.models import Event

RESULTS = "resultats@pro.gateway.test"


def lab_report() -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = "lab@pro.gateway.test", RESULTS, "CR"
    message.set_content("Compte rendu")
    message.add_attachment((samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes(),
                           maintype="text", subtype="xml", filename="cr.xml")
    return message.as_bytes()


def test_r10_a_committed_filing_job_wakes_the_worker(store_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    store = Store(store_url)
    results = store.add_mailbox(RESULTS, "ORG")
    store.add_identity()
    monkeypatch.setattr(filing_worker, "POLL_SECONDS", 60.0)
    config = _config(tmp_path, store_url)

    async def main() -> list[str]:
        engine = db.create_engine(store_url)
        sessions = db.sessionmaker(engine)
        hub = ChangeHub()
        committer = GroupCommitter(sessions, hub)
        worker = FilingWorker(config, sessions, sessions, hub)
        committer.start()
        worker.start()
        try:
            await worker.idle.wait()  # the queue was found empty: only a wake-up can start the job now
            raw = lab_report()
            await committer.run(lambda s: _plan(s, results, raw))
            async with asyncio.timeout(10):
                while True:
                    async with sessions() as session:
                        done = list((await session.execute(
                            select(Event.outcome).where(Event.kind == "filing.done"))).scalars())
                    if done:
                        return done
                    await asyncio.sleep(0.01)
        finally:
            await worker.stop()
            await committer.stop()
            await engine.dispose()

    assert asyncio.run(main()) == ["filed"]


def _config(folder: Path, url: str) -> Config:
    (folder / "c.pem").write_text("x")
    (folder / "k.pem").write_text("x")
    path = folder / "gateway.toml"
    path.write_text(f'[gateway]\nhostname = "mx.test"\ndomains = ["pro.gateway.test"]\n'
                    f'patient_domain = "patient.gateway.test"\n[database]\nurl = "{url}"\n'
                    f'[tls]\ncertificate = "c.pem"\nprivate_key = "k.pem"\n[smtp]\nsubmission = "127.0.0.1:2587"\n'
                    f'[rules]\nallow_test_identities = true\n[documents]\nfiling_mailboxes = ["{RESULTS}"]\n')
    return load(path)


async def _plan(_session: Any, mailbox_id: int, raw: bytes) -> Any:
    return plan_import("operateur", RESULTS, mailbox_id, 1, 1, raw)
