"""Acknowledgements back: the DMP's answer and the MSSanté delivery relayed to the DPI as ZAM messages over MLLP,
to a `gateway hl7-simulator serve` process standing for the DPI, once each even when the DPI re-sends."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import hl7
import pytest
from sqlalchemy import select
from support.hl7_peer import BIO, DOCTOR, LAB, PATIENT, Hl7Gateway, Mllp, code_of, dmp_section, oru, wait_for
from support.pki import PKIFiles
from support.process import accepts, free_port
from support.store import Store

from gateway.hl7.models import Hl7Outgoing
from gateway.hl7.relay import ZAM_DMP, ZAM_MSS, zam


def recorded(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_zam_message_is_valid_hl7_naming_the_original_control_id():
    message = hl7.parse(zam(ZAM_DMP, "Z01-1", "LAB-9", "279035121518989", "1.2.250.1.213.1.4.10", False,
                            ("DMP_0001", "Patient inconnu")))
    assert str(message.segment("MSH")(9)) == "ZAM^Z01^ZAM_Z01"
    obx = message.segment("OBX")
    assert str(obx(3)(1)(1)) == "ACK_RECEPTION_DMP" and str(obx(4)) == "LAB-9" and str(obx(5)(1)(1)) == "N"
    assert str(message.segment("ERR")(5)(1)(1)) == "DMP_0001"


@pytest.mark.slow
def test_ack_reception_relays_the_dmp_and_mssante_answers_once_to_the_dpi(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str, dmp: dict[str, Any]):
    store = Store(sqlite_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    port, record = free_port(), tmp_path / "dpi.jsonl"
    dpi = subprocess.Popen([sys.executable, "-m", "gateway.cli", "hl7-simulator", "serve", "--listen",
                            f"127.0.0.1:{port}", "--record", str(record)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url, extra_config=dmp_section(dmp, pki.ca_bundle),
                         peer_extra=f'return_address = "127.0.0.1:{port}"')
    try:
        wait_for(lambda: accepts(port), "the DPI simulator")
        gateway.start()
        client = Mllp(gateway.hl7_port)
        message = oru("ACK-1", destinations=("DESTDMP", "DESTMSSANTEPS"), flags=("ACK_RECEPTION",))
        first = client.exchange(message)
        assert code_of(first) == ("AA", None), first
        wait_for(lambda: len(recorded(record)) >= 2, "two acknowledgement messages at the DPI", 90,
                 lambda: gateway.log_lines[-10:])
        assert client.exchange(message) == first  # re-sent: answered from the record, nothing new owed
        client.close()
    finally:
        gateway.stop()
        dpi.terminate()
        dpi.wait(10)
    kinds = sorted(r["type"] for r in recorded(record))
    assert kinds == ["ZAM^Z01", "ZAM^Z02"]
    for entry in recorded(record):
        obx = hl7.parse(entry["message"].replace("\n", "\r")).segment("OBX")
        assert str(obx(4)) == "ACK-1" and str(obx(5)(1)(1)) == "Y"

    async def rows(session: Any) -> list[tuple[str, str]]:
        found = await session.execute(select(Hl7Outgoing.kind, Hl7Outgoing.state))
        return sorted((r.kind, r.state) for r in found)
    assert store.run(rows) == [(ZAM_DMP, "done"), (ZAM_MSS, "done")]


@pytest.mark.slow
def test_r10_a_document_filed_to_a_patient_reaches_the_dpi_as_mdm_t02_once(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str):
    results = "resultats@pro.gateway.test"
    store = Store(sqlite_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(results, "ORG")
    store.add_identity()
    port, record = free_port(), tmp_path / "dpi.jsonl"
    dpi = subprocess.Popen([sys.executable, "-m", "gateway.cli", "hl7-simulator", "serve", "--listen",
                            f"127.0.0.1:{port}", "--record", str(record)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url, hl7_extra='documents_peer = "dpi"',
                         peer_extra=f'return_address = "127.0.0.1:{port}"',
                         extra_config=f'\n[documents]\nfiling_mailboxes = ["{results}"]\n')
    try:
        wait_for(lambda: accepts(port), "the DPI simulator")
        gateway.start()
        client = Mllp(gateway.hl7_port)  # the lab system sends its report to the hospital's results mailbox
        answer = client.exchange(oru("LIS-1", destinations=("DESTMSSANTEPS",), recipients=(results,)))
        client.close()
        assert code_of(answer) == ("AA", None), answer
        wait_for(lambda: any(r["type"] == "MDM^T02" for r in recorded(record)), "the MDM^T02 at the DPI", 90,
                 lambda: gateway.log_lines[-10:])
    finally:
        gateway.stop()
        dpi.terminate()
        dpi.wait(10)
    documents = [r for r in recorded(record) if r["type"] == "MDM^T02"]
    assert len(documents) == 1
    message = hl7.parse(documents[0]["message"].replace("\n", "\r"))
    pid3 = message.segment("PID")(3)
    assert str(pid3(1)(1)) == "279035121518989" and str(pid3(1)(5)) == "INS"
    assert str(message.segment("TXA")(12)) == "1.2.250.1.213.1.1.1.55.2024.9.1"
    data = str(message.segment("OBX")(5)(1)(5))
    assert base64.b64decode(data) == BIO.read_bytes()
