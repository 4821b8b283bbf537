"""HL7 over MLLP end to end through real sockets: a `gateway serve` process with `[hl7]`, a DMP simulator process,
IMAP clients reading what the professional and the patient received."""

from __future__ import annotations

import email
import email.policy
import imaplib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.hl7_peer import DOCTOR, LAB, PATIENT, Hl7Gateway, Mllp, code_of, dmp_section, oru, wait_for
from support.pki import PKIFiles
from support.store import Store

from gateway.dmp_bridge.outbox import ACCEPTED, DmpDeposit
from gateway.hl7.models import Hl7Received


def deposits(store: Store) -> list[DmpDeposit]:
    async def work(session: Any) -> list[DmpDeposit]:
        return list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
    return store.run(work)


def received(store: Store) -> int:
    return store.run(lambda s: _count(s))


async def _count(session: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(Hl7Received))).scalar_one())


def recorded_sizes(store: Store) -> list[int]:
    async def work(session: Any) -> list[int]:
        return [len(bytes(r)) for r in (await session.execute(select(Hl7Received.raw))).scalars()]
    return store.run(work)


def imap_inbox(gateway: Hl7Gateway, user: str) -> list[email.message.EmailMessage]:
    client = imaplib.IMAP4_SSL("127.0.0.1", gateway.imaps_port, ssl_context=gateway.client_tls())
    try:
        client.login(user, "secret-password")
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "ALL")
        found = []
        for number in data[0].split():
            _, parts = client.fetch(number, "(BODY.PEEK[])")
            raw = parts[0][1]
            found.append(email.message_from_bytes(raw, policy=email.policy.default))
        return found
    finally:
        client.logout()


def setup_store(store_url: str, *, qualified: bool = True) -> Store:
    store = Store(store_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity(insi=qualified)
    return store


@pytest.mark.slow
def test_oru_r01_with_the_three_destinations_gives_one_of_each_and_a_resend_is_a_no_op(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store = setup_store(store_url)
    gateway = Hl7Gateway(tmp_path / "gw", pki, store_url, extra_config=dmp_section(dmp, pki.ca_bundle)).start()
    try:
        client = Mllp(gateway.hl7_port)
        first = client.exchange(oru("LAB-0001"))
        assert code_of(first) == ("AA", None), first
        again = client.exchange(oru("LAB-0001"))  # the DPI did not see our ACK and sends the same message
        assert again == first
        client.close()
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED], "the DMP deposit", 60,
                 lambda: ([(d.state, d.last_error) for d in deposits(store)], store.events("filing"),
                          gateway.log_lines[-15:]))
        doctor = imap_inbox(gateway, DOCTOR)
        patient = imap_inbox(gateway, PATIENT)
    finally:
        gateway.stop()
    assert len(doctor) == 1 and len(patient) == 1
    message = doctor[0]
    assert message["From"] == LAB and message["X-MSS-CODECDA"] == "11502-2" and message["X-MSS-INS"] == "O"
    assert str(message["Subject"]).startswith("XDM/1.0/DDM+Compte rendu d'examens biologiques ")
    zipped = next(p for p in message.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP").get_content()
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert "IHE_XDM/SUBSET01/METADATA.XML" in names and any(n.endswith("DOC0001.XML") for n in names)
    assert patient[0]["To"] == PATIENT
    assert received(store) == 1
    assert recorded_sizes(store)[0] < 4096  # the record without the document's base64: the CDA is in the mails
    assert [d.unique_id for d in deposits(store)] == ["1.2.250.1.213.1.1.1.55.2024.9.1"]
    assert [e.outcome for e in store.events("hl7.message")] == ["accepted", "accepted"]  # two messages built


@pytest.mark.slow
def test_r4_a_patient_not_qualifiee_gets_ae_on_pid3_and_nothing_is_sent(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str, dmp: dict[str, Any]):
    store = setup_store(sqlite_url, qualified=False)
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url, extra_config=dmp_section(dmp, pki.ca_bundle)).start()
    try:
        client = Mllp(gateway.hl7_port)
        answer = client.exchange(oru("LAB-0002"))
        assert code_of(answer) == ("AE", "PID^1^3"), answer
        assert "R4" in answer
        client.close()
    finally:
        gateway.stop()
    assert store.count_messages() == 0 and deposits(store) == [] and received(store) == 0
    refused = store.events("hl7.message")
    assert [(e.outcome, e.rule) for e in refused] == [("refused", "R4")]
