"""Exactly once across a SIGKILL, and MDM^T10 replacement at the DMP, through real sockets and processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dmp_bridge.dmp_support import variant
from sqlalchemy import select
from support.hl7_peer import BIO, DOCTOR, LAB, PATIENT, Hl7Gateway, Mllp, code_of, dmp_section, oru, wait_for
from support.pki import PKIFiles
from support.store import Store

from gateway.dmp_bridge.outbox import ACCEPTED, DmpDeposit
from gateway.hl7 import codes


def deposits(store: Store) -> list[DmpDeposit]:
    async def work(session: Any) -> list[DmpDeposit]:
        return list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
    return store.run(work)


def dmp_documents(dmp: dict[str, Any]) -> list[dict[str, Any]]:
    path = dmp["folder"] / "state.json"
    return json.loads(path.read_text())["documents"] if path.exists() else []


def prepared(store_url: str) -> Store:
    store = Store(store_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    return store


@pytest.mark.slow
def test_sigkill_after_aa_every_acknowledged_message_is_delivered_once_after_restart(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store = prepared(store_url)
    dmp["simulator"].stop()  # the DMP is down: the deposits wait in the outbox when the gateway dies
    gateway = Hl7Gateway(tmp_path / "gw", pki, store_url, extra_config=dmp_section(dmp, pki.ca_bundle)).start()
    messages = [oru(f"KILL-{n}", variant(BIO.read_bytes(), unique_id=f"1.2.250.1.999.7.{n}"),
                    destinations=("DESTDMP", "DESTMSSANTEPS")) for n in range(5)]
    client = Mllp(gateway.hl7_port)
    answers = [client.exchange(m) for m in messages]
    client.close()
    assert [code_of(a)[0] for a in answers] == ["AA"] * 5
    gateway.kill()  # SIGKILL right after the last AA
    dmp["simulator"].start()
    gateway.start()
    try:
        client = Mllp(gateway.hl7_port)
        again = [client.exchange(m) for m in messages]  # the DPI re-sends what it is unsure of
        client.close()
        assert again == answers
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED] * 5,
                 "five accepted deposits", 90, lambda: ([(d.state, d.last_error) for d in deposits(store)],
                                                        store.events("filing"), gateway.log_lines[-15:]))
    finally:
        gateway.stop()
    assert sorted(d["unique_id"] for d in dmp_documents(dmp)) == [f"1.2.250.1.999.7.{n}" for n in range(5)]
    assert len(store.messages_in(DOCTOR)) == 5


@pytest.mark.slow
def test_mdm_t10_replaces_the_document_at_the_dmp_as_version_2_and_sends_a_new_message(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str, dmp: dict[str, Any]):
    store = prepared(sqlite_url)
    first_id, second_id = "1.2.250.1.999.8.1", "1.2.250.1.999.8.2"
    first = variant(BIO.read_bytes(), unique_id=first_id)
    second = variant(BIO.read_bytes(), unique_id=second_id, replaces=first_id)
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url, extra_config=dmp_section(dmp, pki.ca_bundle)).start()
    try:
        client = Mllp(gateway.hl7_port)
        created = client.exchange(oru("T02-1", first, kind=codes.MDM_T02, document_id=first_id,
                                      destinations=("DESTDMP", "DESTMSSANTEPS")))
        assert code_of(created) == ("AA", None), created
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED], "the first deposit")
        replaced = client.exchange(oru("T10-1", second, kind=codes.MDM_T10, document_id=second_id,
                                       replaces=first_id, destinations=("DESTDMP", "DESTMSSANTEPS")))
        assert code_of(replaced) == ("AA", None), replaced
        client.close()
        wait_for(lambda: [d.state for d in deposits(store)] == [ACCEPTED] * 2, "the replacement")
    finally:
        gateway.stop()
    assert deposits(store)[1].replaces == first_id
    documents = {d["unique_id"]: d for d in dmp_documents(dmp)}
    assert documents[second_id]["version"] == 2 and documents[first_id]["status"].endswith("Deprecated")
    assert len(store.messages_in(DOCTOR)) == 2
