"""R6 across operators: a lab at operator A sends a report to B's filing mailbox asking for an MDN; B's
integration error MDN goes back to A over the relay (NOTIFY=NEVER, no DSN about it) and lands in the lab's
INBOX, with the KO subject of the ANS platform volet."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.relay import make_pair, queue_rows, wait_for

from gateway.samples import samples_dir

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
FILING = '\n[documents]\nfiling_mailboxes = ["resultats@pro.b.test"]\n'


def test_r6_an_integration_error_mdn_reaches_the_lab_at_another_operator(tmp_path: Path, pki: PKIFiles) -> None:
    stores = [f"sqlite+aiosqlite:///{tmp_path / f'{n}.sqlite3'}" for n in ("a", "b")]
    pair = make_pair(tmp_path, pki, stores, extra=FILING)
    try:
        lab, results = pair.a.address("laboratoire"), pair.b.address("resultats")
        pair.store_a.add_mailbox(lab, "ORG")
        pair.store_b.add_mailbox(results, "ORG")  # no identity at B: the report's patient is unknown (902)
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"], message["To"], message["Subject"] = lab, results, "Compte rendu de biologie"
        message["Message-ID"] = f"<{uuid.uuid4().hex}@lab.a.test>"
        message["Disposition-Notification-To"] = lab
        message.set_content("Veuillez trouver le compte rendu.")
        message.add_attachment(SAMPLE.read_bytes(), maintype="text", subtype="xml", filename="cr.xml")
        with pair.a.smtp(lab) as client:
            client.sendmail(lab, [results], message.as_bytes())
        wait_for(lambda: [r for r in queue_rows(pair.store_b) if r.state == "sent"])
        (raw,) = wait_for(lambda: pair.store_a.messages_in(lab))
        report = email.message_from_bytes(raw, policy=email.policy.default)
        (received,) = pair.store_b.messages_in(results)
        original = email.message_from_bytes(received, policy=email.policy.default)
        # The lab's CDA left A packaged as an XDM under the ANS subject convention; the KO prefixes that subject.
        assert str(original["Subject"]).startswith("XDM/1.0/DDM+")
        assert str(report["Subject"]) == f"[KO Intégration système !][902] {original['Subject']}"
        assert report.get_content_type() == "multipart/report"
        assert [p.get_content_type() for p in report.iter_parts()][-1] == "message/rfc822"
        (row,) = queue_rows(pair.store_b)
        assert (row.mail_from, row.recipient, row.notify) == (results, lab, "NEVER")
        assert len(pair.store_b.messages_in(results, "Sent")) == 1
    finally:
        pair.stop()
