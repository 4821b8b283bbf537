"""R10 across operators: a lab report relayed over mutual TLS to a filing mailbox is filed, as if submitted there.

Operator A's lab submits a CDA lab report for a results mailbox hosted by operator B; A queues it and relays it
to B over mutual TLS; B accepts it with the same planner as submitted mail, so the filing job is created in
the transaction that stores it, and B's filing worker files the document to B's qualified identity.
"""

from __future__ import annotations

import email.policy
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.pki import PKIFiles
from support.relay import make_pair, queue_rows, wait_for

from gateway.filing.models import FilingJob
from gateway.ins_matching.record import PatientDocument
from gateway.samples import samples_dir

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
FILING = '\n[documents]\nfiling_mailboxes = ["resultats@pro.b.test"]\n'


def lab_report(sender: str, to: str) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = sender, to, "Compte rendu de biologie"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@lab.a.test>"
    message.set_content("Veuillez trouver le compte rendu.")
    message.add_attachment(SAMPLE.read_bytes(), maintype="text", subtype="xml", filename="cr.xml")
    return message.as_bytes()


def test_r10_a_lab_report_relayed_to_a_filing_mailbox_is_filed(tmp_path: Path, pki: PKIFiles, two_stores: list[str]):
    pair = make_pair(tmp_path, pki, two_stores, extra=FILING)
    try:
        lab, results = pair.a.address("laboratoire"), pair.b.address("resultats")
        pair.store_a.add_mailbox(lab, "ORG")
        pair.store_b.add_mailbox(results, "ORG")
        identity_id = pair.store_b.add_identity()  # the sample's patient, qualifiée at B
        with pair.a.smtp(lab) as client:
            client.sendmail(lab, [results], lab_report(lab, results))
        wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "sent"])
        done = wait_for(lambda: pair.store_b.events("filing.done"))

        async def documents(session: Any) -> list[PatientDocument]:
            return list((await session.execute(select(PatientDocument))).scalars())

        async def jobs(session: Any) -> list[FilingJob]:
            return list((await session.execute(select(FilingJob))).scalars())

        filed = pair.store_b.run(documents)
        assert [(d.identity_id, d.type_code) for d in filed] == [(identity_id, "11502-2")]
        assert [(e.outcome, e.rule) for e in done] == [("filed", "R10")]
        assert [(j.kind, j.state) for j in pair.store_b.run(jobs)] == [("file", "done")]
        assert [e.outcome for e in pair.store_b.events("relay.message")] == ["accepted"]
        assert len(pair.store_b.messages_in(results)) == 1
    finally:
        pair.stop()
