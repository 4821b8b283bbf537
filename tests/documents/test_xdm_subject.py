"""The ANS subject convention for a message carrying a CDA in XDM: ``XDM/1.0/DDM+<label> <NAME> <first name>
<birth date>``, set on the messages whose CDA the gateway packages, through the submission port as a practice
software sends them."""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from documents.helpers import BIO
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

from gateway.documents.cda import read_header
from gateway.documents.packaging import package
from gateway.documents.xdm_writer import xdm_subject

EXPECTED = "XDM/1.0/DDM+Compte rendu d'examens biologiques PAT-TROIS DOMINIQUE 19790328"
LAB = "laboratoire@pro.gateway.test"
GP = "medecin@pro.gateway.test"


def _mail(subject: str, cda: bytes) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = LAB
    message["To"] = GP
    message["Subject"] = subject
    message["Message-ID"] = f"<{time.monotonic_ns()}@lab.test>"
    message.set_content("Veuillez trouver le compte rendu.")
    message.add_attachment(cda, maintype="text", subtype="xml", filename="cr.xml")
    return message.as_bytes()


def _subject(raw: bytes) -> str:
    """The Subject as a reader sees it: unfolded (RFC 5322 2.2.3), without the field body's leading space."""
    return str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"]).strip()


def test_the_subject_names_the_document_and_the_patients_traits() -> None:
    assert xdm_subject([read_header(BIO.read_bytes(), validate=False)]) == EXPECTED


def test_traits_with_line_breaks_stay_on_one_line() -> None:
    cda = BIO.read_bytes().replace(b">PAT-TROIS<", b">PAT-\r\n  TROIS<", 1)
    subject = xdm_subject([read_header(cda, validate=False)])
    assert "\n" not in subject and "\r" not in subject and subject.startswith("XDM/1.0/DDM+")


def test_a_packaged_message_gets_the_convention_and_one_already_following_it_keeps_its_own() -> None:
    packaged = package(_mail("Résultats du jour", BIO.read_bytes()), lambda _m: True)
    assert packaged is not None and _subject(packaged) == EXPECTED
    own = "XDM/1.0/DDM+CR biologie PAT-TROIS DOMINIQUE 19790328"
    kept = package(_mail(own, BIO.read_bytes()), lambda _m: True)
    assert kept is not None and _subject(kept) == own


def test_a_message_without_cda_keeps_its_subject() -> None:
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = "Bonjour"
    message.set_content("texte")
    assert package(message.as_bytes(), lambda _m: True) is None


@pytest.fixture
def gateway(tmp_path: Path, pki: PKIFiles, store_url: str):  # type: ignore[no-untyped-def]
    store = Store(store_url)
    store.add_mailbox(LAB, "ORG")
    store.add_mailbox(GP, "PER")
    store.add_identity()
    process = GatewayProcess(tmp_path / "gw", pki, store_url, message_size=20_000_000,
                             extra_config="\n[documents]\npackage_outgoing = true\n")
    process.start()
    yield process, store
    process.stop()


@pytest.mark.slow  # starts a process
def test_a_cda_sent_through_submission_arrives_under_the_xdm_subject(gateway) -> None:  # type: ignore[no-untyped-def]
    process, store = gateway
    with process.smtp(LAB) as client:
        client.sendmail(LAB, [GP], _mail("Résultats", BIO.read_bytes()))
    (received,) = store.messages_in(GP)
    parsed = email.message_from_bytes(received, policy=email.policy.default)
    assert _subject(received) == EXPECTED
    assert parsed["X-MSS-CODECDA"] == "11502-2"
