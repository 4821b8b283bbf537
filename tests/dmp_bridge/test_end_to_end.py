"""The DMP bridge end to end through real sockets: SMTP submission → deposit job → outbox → DMP simulator → ITI-18.

A biologist's practice software submits a message with the lab report CDA to the qualified test patient; the
running gateway considers it (R12–R16), deposits it over ITI-41 (SOAP/MTOM, signed VIHF, TLS client certificate)
to a `gateway dmp-simulator` process, and an ITI-18 FindDocuments query returns it with the expected metadata.
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from dmp_bridge.dmp_support import BIOLOGIST, GP, MATRICULE, TEST_OID, policy, variant
from sqlalchemy import select
from support.dmp_simulator import SimulatorProcess
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox import ACCEPTED, RETRY, SENT, DmpDeposit
from gateway.dmp_bridge.soap import DmpClient, Endpoint, client_ssl_context
from gateway.ins_matching.record import PatientDocument
from gateway.samples import samples_dir

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

BIO = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
SENDER = "marcel.camparini@pro.gateway.test"
PATIENT = f"{MATRICULE}@patient.gateway.test"


@pytest.fixture
def dmp(tmp_path: Path, pki: PKIFiles) -> Iterator[dict[str, Any]]:
    """A `gateway dmp-simulator` process with certificates of the test PKI."""
    yield from SimulatorProcess.fixture(tmp_path / "dmp", pki)


def dmp_config(dmp: dict[str, Any], ca: Path, professional: Any = BIOLOGIST, mailbox: str = SENDER,
               retries: str = "") -> str:
    folder = dmp["folder"]
    return f"""
[dmp]
repository_url = "{dmp['url']}/repository"
registry_url = "{dmp['url']}/registry"
ca_file = "{ca}"
client_certificate = "{folder / 'client.crt'}"
client_key = "{folder / 'client.key'}"
signing_certificate = "{folder / 'signing.crt'}"
signing_key = "{folder / 'signing.key'}"
structure_id = "1120459876"
structure_name = "Laboratoire des charmes"
source_id = "1.2.250.1.999.42"
default_mode = "systematic"
{retries}
[[dmp.professional]]
national_id = "{professional.national_id}"
family = "{professional.family}"
given = "{professional.given}"
mailbox = "{mailbox}"
role = "{professional.profession.code}"
specialty = "{professional.specialty.code}"
"""


def submission(cda: bytes) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = SENDER, PATIENT, "Votre compte rendu"
    message["Message-ID"] = f"<{time.monotonic_ns()}@lgc.test>"
    message.set_content("Bonjour, voici votre compte rendu d'examens.")
    message.add_attachment(cda, maintype="text", subtype="xml", filename="CR-BIO.xml")
    return message.as_bytes()


def deposits(store: Store) -> list[DmpDeposit]:
    async def work(session: Any) -> list[DmpDeposit]:
        return list((await session.execute(select(DmpDeposit))).scalars())
    return store.run(work)


def test_r12_a_submitted_lab_report_reaches_the_dmp_and_iti18_finds_it(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store = Store(store_url)
    store.add_mailbox(SENDER, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()  # qualifiée (R4, R7)
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, message_size=5_000_000,
                             extra_config=dmp_config(dmp, pki.ca_bundle))
    gateway.start()
    try:
        with gateway.smtp(SENDER) as client:
            client.sendmail(SENDER, [PATIENT], submission(BIO.read_bytes()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(d.state == ACCEPTED for d in deposits(store)):
            time.sleep(0.2)
        jobs = deposits(store)
        assert [d.state for d in jobs] == [ACCEPTED], ([(d.state, d.last_error) for d in jobs],
                                                       "\n".join(gateway.log_lines[-20:]))
        listing = subprocess.run([sys.executable, "-m", "gateway.cli", "dmp", "list", "--json", "--config",
                                  str(gateway.config_path)], capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0 and '"accepted"' in listing.stdout, listing.stderr
        refused = subprocess.run([sys.executable, "-m", "gateway.cli", "dmp", "cancel", str(jobs[0].id),
                                  "--config", str(gateway.config_path)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "accepted" in refused.stderr  # an accepted deposit cannot be cancelled
    finally:
        gateway.stop()

    async def query() -> list[dict[str, Any]]:
        endpoint = Endpoint(f"{dmp['url']}/repository", f"{dmp['url']}/registry",
                            client_ssl_context(dmp["client"], pki.ca_bundle.read_bytes()))
        async with DmpClient(endpoint, dmp["client"]) as client:
            depositor = Depositor(client, dmp["signer"], policy())
            return await depositor.find(BIOLOGIST, MATRICULE, TEST_OID)

    found = asyncio.run(query())
    assert len(found) == 1
    entry = found[0]
    assert entry["typeCode"] == "11502-2"  # lab report (LOINC), from the CDA code
    assert entry["formatCode"] == "urn:ihe:lab:xd-lab:2008"
    assert entry["patientId"] == f"{MATRICULE}^^^&{TEST_OID}&ISO^NH"  # the patient's INS
    assert entry["authorPerson"][0].startswith(f"{BIOLOGIST.national_id}^CAMPARINI")
    assert entry["uniqueId"] == "1.2.250.1.213.1.1.1.55.2024.9.1"  # the CDA id
    assert entry["confidentialityCode"] == ["N"]  # visible: no visibility code asked (R16)
    assert entry["title"] == "Compte rendu d'examens biologiques"
    assert [e.rule for e in store.events("dmp.considered")] == ["R12"]


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
GP_ADDRESS = "jean.medecin@pro.gateway.test"
LAB = "labo.externe@pro.gateway.test"


def with_attachments(message: EmailMessage, *names: str) -> bytes:
    for n, name in enumerate(names):
        message.add_attachment(PDF + f"% {name} {n}\n".encode(), maintype="application", subtype="pdf",
                               filename=name)
    return message.as_bytes()


def registry(dmp: dict[str, Any], pki: PKIFiles) -> list[dict[str, Any]]:
    """ITI-18 FindDocuments for the test patient, as the biologist (approved documents)."""
    async def query() -> list[dict[str, Any]]:
        endpoint = Endpoint(f"{dmp['url']}/repository", f"{dmp['url']}/registry",
                            client_ssl_context(dmp["client"], pki.ca_bundle.read_bytes()))
        async with DmpClient(endpoint, dmp["client"]) as client:
            return await Depositor(client, dmp["signer"], policy()).find(BIOLOGIST, MATRICULE, TEST_OID)
    return asyncio.run(query())


def submission_sets(dmp: dict[str, Any]) -> dict[str, str]:
    """The submission set each document the simulator holds came in, by uniqueId (what the DMP links, R15)."""
    path = dmp["folder"] / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {"documents": []}
    return {d["unique_id"]: d["submission_set"] for d in state["documents"]}


def wait_for(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def started(tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any], extra: str = "",
            professional: Any = BIOLOGIST, mailbox: str = SENDER, retries: str = "") -> tuple[Store, GatewayProcess]:
    store = Store(store_url)
    store.add_mailbox(SENDER, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()  # qualifiée (R4, R7)
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, message_size=5_000_000,
                             extra_config=dmp_config(dmp, pki.ca_bundle, professional, mailbox, retries) + extra)
    gateway.start()
    return store, gateway


def to_patient(subject: str, **headers: str) -> EmailMessage:
    """A message from the biologist to the test patient, attachments to be added."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = SENDER, PATIENT, subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Bonjour, voici les documents.")
    return message


def test_r13_r15_an_attached_pdf_is_deposited_wrapped_as_cda_level_1(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store, gateway = started(tmp_path, pki, store_url, dmp)
    try:
        message = to_patient("Votre ordonnance scannée", X_DMP_Visibility="MASQUE_PS")
        with gateway.smtp(SENDER) as client:
            client.sendmail(SENDER, [PATIENT], with_attachments(message, "Ordonnance scannée.pdf"))
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED], "the PDF was not deposited")
    finally:
        gateway.stop()
    (entry,) = registry(dmp, pki)
    assert entry["formatCode"] == "urn:ihe:iti:xds-sd:pdf:2008"  # CDA level 1 wrapping a PDF (XDS-SD)
    assert entry["mimeType"] == "text/xml"
    assert entry["typeCode"] == "11488-4"  # no CDA, no X-DMP-Type: the default type of an attached document
    assert entry["patientId"] == f"{MATRICULE}^^^&{TEST_OID}&ISO^NH"
    assert entry["authorPerson"][0].startswith(f"{BIOLOGIST.national_id}^CAMPARINI")  # the sender wrote it
    assert entry["title"] == "Ordonnance scannée"
    assert sorted(entry["confidentialityCode"]) == ["MASQUE_PS", "N"]  # R16, the sender's choice


def test_r13_r15_a_letter_with_two_attachments_gives_three_linked_deposits_and_the_pdf_copy_none(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store, gateway = started(tmp_path, pki, store_url, dmp)
    try:
        message = to_patient("Compte rendu et annexes")
        message.add_attachment(BIO.read_bytes(), maintype="text", subtype="xml", filename="CR-BIO.xml")
        raw = with_attachments(message, "CR-BIO.pdf", "Annexe 1.pdf", "Annexe 2.pdf")  # CR-BIO.pdf: the copy
        with gateway.smtp(SENDER) as client:
            client.sendmail(SENDER, [PATIENT], raw)
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED] * 3, "three deposits were expected")
    finally:
        gateway.stop()
    found = registry(dmp, pki)
    assert sorted(e["title"] for e in found) == ["Annexe 1", "Annexe 2", "Compte rendu d'examens biologiques"]
    assert sorted(e["formatCode"] for e in found) == ["urn:ihe:iti:xds-sd:pdf:2008"] * 2 + ["urn:ihe:lab:xd-lab:2008"]
    assert {e["patientId"] for e in found} == {f"{MATRICULE}^^^&{TEST_OID}&ISO^NH"}
    assert {e["authorPerson"][0].split("^")[0] for e in found} == {BIOLOGIST.national_id}
    linked = submission_sets(dmp)
    assert sorted(linked) == sorted(e["uniqueId"] for e in found)
    assert len(set(linked.values())) == 1  # R15: deposited together, in one submission set
    assert [e.rule for e in store.events("dmp.deposit.linked")] == ["R15"]


def record(store: Store) -> list[PatientDocument]:
    """The documents filed into the patients' records (R10)."""
    async def work(session: Any) -> list[PatientDocument]:
        return list((await session.execute(select(PatientDocument).order_by(PatientDocument.id))).scalars())
    return store.run(work)


def report_from_the_lab(store: Store, gateway: GatewayProcess) -> None:
    """The lab (not of the structure) sends the GP the biologist's report on the test patient."""
    store.add_mailbox(GP_ADDRESS, "PER")
    store.add_mailbox(LAB, "PER")
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = LAB, GP_ADDRESS, "Résultats de votre patient"
    message.set_content("Bonjour, voici les résultats.")
    message.add_attachment(BIO.read_bytes(), maintype="text", subtype="xml", filename="CR-BIO.xml")
    with gateway.smtp(LAB) as client:
        client.sendmail(LAB, [GP_ADDRESS], message.as_bytes())


def test_r12_a_lab_report_received_from_another_structure_is_filed_but_not_deposited(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    """A GP's structure; the lab and its biologist are not of it: the report is filed to the patient (R10) from
    the GP's INBOX, and the DMP bridge refuses it (R12) — nothing reaches the DMP."""
    store, gateway = started(tmp_path, pki, store_url, dmp, "\n[documents]\nfile_all_inboxes = true\n",
                             professional=GP, mailbox=GP_ADDRESS)
    try:
        report_from_the_lab(store, gateway)
        wait_for(lambda: store.events("dmp.considered") and store.events("filing.done"),
                 "the message was not considered and filed")
    finally:
        gateway.stop()
    assert [e.outcome for e in store.events("filing.done")] == ["filed"]
    assert [(d.unique_id, d.type_code) for d in record(store)] == [("1.2.250.1.213.1.1.1.55.2024.9.1", "11502-2")]
    refused = [e for e in store.events("dmp.rule") if e.outcome == "refused"]
    assert [(e.rule, e.detail["code"]) for e in refused] == [("R12", "not_author")]
    assert [(e.rule, e.detail["code"]) for e in store.events("dmp.deposit.not_deposited")] == [("R12", "not_author")]
    assert deposits(store) == []
    assert registry(dmp, pki) == [] and submission_sets(dmp) == {}  # the DMP holds nothing


def gateway_command(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(gateway.config_path)],
                          capture_output=True, text=True, timeout=60)


def test_r14_a_person_deposits_a_file_from_the_command_line_with_a_title(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store, gateway = started(tmp_path, pki, store_url, dmp)
    scan = tmp_path / "radio.pdf"
    scan.write_bytes(PDF)
    try:
        untitled = gateway_command(gateway, "dmp", "deposit", "--file", str(scan), "--patient", MATRICULE,
                                   "--author", BIOLOGIST.national_id)
        assert untitled.returncode == 1 and "title" in untitled.stderr and "Traceback" not in untitled.stderr
        asked = gateway_command(gateway, "dmp", "deposit", "--file", str(scan), "--patient", MATRICULE,
                                "--author", BIOLOGIST.national_id, "--title", "Radiographie du thorax",
                                "--type", "18748-4", "--actor", "Marcel Camparini")
        assert asked.returncode == 0 and "queued" in asked.stdout, asked.stderr
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED], "the manual deposit was not accepted")
    finally:
        gateway.stop()
    (entry,) = registry(dmp, pki)
    assert (entry["title"], entry["typeCode"]) == ("Radiographie du thorax", "18748-4")
    assert entry["formatCode"] == "urn:ihe:iti:xds-sd:pdf:2008"
    manual = [e for e in store.events("dmp.rule") if e.rule == "R14"]
    assert [(e.detail["code"], e.actor) for e in manual] == [("manual", "Marcel Camparini")]  # the person (R18)


def test_r12_a_person_confirms_authorship_of_a_received_document_and_it_is_deposited(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store, gateway = started(tmp_path, pki, store_url, dmp, professional=GP, mailbox=GP_ADDRESS)
    try:
        report_from_the_lab(store, gateway)
        wait_for(lambda: store.events("dmp.considered"), "the message was not considered")
        assert deposits(store) == []  # R12: not the structure's document
        message_id = str(store.events("dmp.considered")[0].message_id)
        confirmed = gateway_command(gateway, "dmp", "confirm", message_id, "--author", GP.national_id,
                                    "--title", "Bilan thyroïdien", "--actor", "Dr Jean Medecin")
        assert confirmed.returncode == 0 and "queued" in confirmed.stdout, (confirmed.stdout, confirmed.stderr)
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED], "the confirmed deposit was not accepted")
        again = gateway_command(gateway, "dmp", "confirm", message_id, "--author", GP.national_id,
                                "--title", "Bilan thyroïdien")
        assert again.returncode == 0 and "already in the outbox" in again.stdout
    finally:
        gateway.stop()
    (entry,) = registry(dmp, pki)
    assert entry["title"] == "Bilan thyroïdien"
    assert entry["authorPerson"][0].startswith(f"{GP.national_id}^MEDECIN")
    confirmations = [e for e in store.events("dmp.rule") if e.rule == "R12" and e.outcome == "allowed"]
    assert [e.detail["code"] for e in confirmations] == ["confirmed"] * 2  # each request traced (R18) ...
    assert confirmations[0].actor == "Dr Jean Medecin"  # ... with the person who confirmed
    assert "Dr Jean Medecin" in confirmations[0].detail["reason_text"]


def test_r12_a_person_confirms_a_filed_document_by_its_unique_id_and_only_it_is_deposited(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    """The GP's structure files the lab's report (R10); a person confirms that the structure wrote it, naming the
    document rather than the message; a wrong id or job number is one sentence, not a traceback."""
    store, gateway = started(tmp_path, pki, store_url, dmp, "\n[documents]\nfile_all_inboxes = true\n",
                             professional=GP, mailbox=GP_ADDRESS)
    unique_id = "1.2.250.1.213.1.1.1.55.2024.9.1"
    try:
        report_from_the_lab(store, gateway)
        wait_for(lambda: store.events("dmp.considered") and record(store), "the report was not filed")
        assert deposits(store) == []  # R12
        unknown = gateway_command(gateway, "dmp", "confirm", "1.2.3.4.5", "--author", GP.national_id,
                                  "--title", "Bilan", "--actor", "Dr Jean Medecin")
        assert unknown.returncode == 1 and "1.2.3.4.5" in unknown.stderr and "Traceback" not in unknown.stderr
        not_a_job = gateway_command(gateway, "dmp", "show", unique_id)
        assert not_a_job.returncode == 1 and "not a deposit job id" in not_a_job.stderr
        confirmed = gateway_command(gateway, "dmp", "confirm", unique_id, "--author", GP.national_id,
                                    "--title", "Bilan thyroïdien", "--actor", "Dr Jean Medecin")
        assert confirmed.returncode == 0 and f"{unique_id}: queued" in confirmed.stdout, confirmed.stderr
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED], "the confirmed deposit was not accepted")
    finally:
        gateway.stop()
    (entry,) = registry(dmp, pki)
    assert (entry["uniqueId"], entry["title"]) == (unique_id, "Bilan thyroïdien")
    assert entry["authorPerson"][0].startswith(f"{GP.national_id}^MEDECIN")
    confirmed_events = [e for e in store.events("dmp.rule") if e.rule == "R12" and e.outcome == "allowed"]
    assert [(e.detail["code"], e.actor) for e in confirmed_events] == [("confirmed", "Dr Jean Medecin")]


FAST_RETRIES = "retry_base = 1.0\nretry_ceiling = 2.0\nlease = 8.0\n"


def lab_reports(count: int) -> list[bytes]:
    """``count`` submissions, each with its own lab report (another document id)."""
    return [submission(variant(BIO.read_bytes(), unique_id=f"1.2.250.1.999.42.77.{n}")) for n in range(count)]


def test_the_dmp_down_for_30_seconds_then_every_deposit_is_accepted_once(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    simulator: SimulatorProcess = dmp["simulator"]
    simulator.stop()
    down_since = time.monotonic()
    store, gateway = started(tmp_path, pki, store_url, dmp.copy(), extra="", retries=FAST_RETRIES)
    try:
        with gateway.smtp(SENDER) as client:
            for raw in lab_reports(5):
                client.sendmail(SENDER, [PATIENT], raw)
        wait_for(lambda: len(deposits(store)) == 5 and all(d.attempts >= 1 and d.state in (RETRY, SENT)
                                                            for d in deposits(store)),
                 "the deposits were not waiting for a retry while the DMP was down")
        while time.monotonic() - down_since < 30:  # the outage itself: jobs keep being retried, none is lost
            assert all(d.state in (RETRY, SENT) for d in deposits(store))
            time.sleep(0.5)
        attempts_during_outage = max(d.attempts for d in deposits(store))
        simulator.start()
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED] * 5, "not every deposit was accepted")
    finally:
        gateway.stop()
    assert attempts_during_outage >= 2  # retried with backoff during the outage
    found = registry(dmp, pki)
    assert sorted(e["uniqueId"] for e in found) == [f"1.2.250.1.999.42.77.{n}" for n in range(5)]  # each once


def test_sigkill_of_the_gateway_with_deposits_in_flight_loses_and_duplicates_nothing(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    simulator: SimulatorProcess = dmp["simulator"]
    simulator.stop()
    simulator.start("slow:5:3")  # the first five ITI-41 requests are answered after 3 s
    store, gateway = started(tmp_path, pki, store_url, dmp, retries=FAST_RETRIES)
    try:
        with gateway.smtp(SENDER) as client:
            for raw in lab_reports(5):
                client.sendmail(SENDER, [PATIENT], raw)
        wait_for(lambda: len(deposits(store)) == 5 and all(d.state == SENT for d in deposits(store)),
                 "the deposits were not in flight")
        gateway.kill()  # SIGKILL while the five requests wait for their answers
        assert all(d.state == SENT for d in deposits(store))
        gateway.start()  # the lease of the dead process runs out; the jobs are sent again
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED] * 5, "not every deposit was accepted")
    finally:
        gateway.stop()
    assert all(d.attempts >= 2 for d in deposits(store))
    found = registry(dmp, pki)
    assert sorted(e["uniqueId"] for e in found) == [f"1.2.250.1.999.42.77.{n}" for n in range(5)]  # each once
