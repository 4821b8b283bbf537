"""A document the DPI refuses (AE/AR to the MDM^T02 the gateway forwarded, R10) is where staff look: a review item
with the DPI's error, listed by ``gateway review list`` (run as a command), and an event (R18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.hl7_peer import LAB, DpiSimulator, Hl7Gateway, Mllp, code_of, oru, wait_for
from support.pki import PKIFiles
from support.store import Store

from gateway.hl7.models import Hl7Outgoing
from gateway.hl7.relay import DPI_REFUSED, REFUSED_BY_PEER

RESULTS = "resultats@pro.gateway.test"


def review_list(gateway: Hl7Gateway, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "review", "list", *extra, "--config",
                           str(gateway.config_path)], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_r10_a_document_the_dpi_refuses_is_listed_for_review_with_the_dpi_error(
        tmp_path: Path, pki: PKIFiles, store_url: str):
    store = Store(store_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(RESULTS, "ORG")
    store.add_identity()
    dpi = DpiSimulator(tmp_path, answer="AR", error="902^Identifiant patient inconnu").start()
    gateway = Hl7Gateway(tmp_path / "gw", pki, store_url, hl7_extra='documents_peer = "dpi"\nrelay_poll = 600',
                         peer_extra=dpi.return_address,
                         extra_config=f'\n[documents]\nfiling_mailboxes = ["{RESULTS}"]\n')
    try:
        gateway.start()
        client = Mllp(gateway.hl7_port)  # the lab's report reaches the results mailbox, is filed, goes to the DPI
        answer = client.exchange(oru("LIS-R1", destinations=("DESTMSSANTEPS",), recipients=(RESULTS,)))
        client.close()
        assert code_of(answer) == ("AA", None), answer
        # the filing commit wakes the relay (HL7_OUTBOX): long before its 600 s poll
        wait_for(lambda: bool(store.events("hl7.dpi_refused")), "the refusal's event", 60,
                 lambda: gateway.log_lines[-10:])
        listing = review_list(gateway)
        as_json = review_list(gateway, "--json")
    finally:
        gateway.stop()
        dpi.stop()
    assert [r["type"] for r in dpi.received()] == ["MDM^T02"]  # refused: not sent again
    assert listing.returncode == 0, listing.stderr
    assert "hl7-dpi:dpi" in listing.stdout and "902 Identifiant patient inconnu" in listing.stdout
    items = json.loads(as_json.stdout)
    assert len(items) == 1
    item = items[0]
    assert item["code"] == DPI_REFUSED and item["status"] == "open" and item["type"] == "11502-2"
    assert item["reason"] == "Refusé par le DPI « dpi » (AR) : 902 Identifiant patient inconnu"
    event = store.events("hl7.dpi_refused")[0]
    assert event.outcome == "AR" and event.rule == "R10" and event.detail["review_id"] == item["id"]

    async def rows(session: Any) -> list[tuple[str, str | None]]:
        return [(r.state, r.last_error) for r in (await session.execute(select(Hl7Outgoing))).scalars()]
    assert store.run(rows) == [(REFUSED_BY_PEER, "AR: 902 Identifiant patient inconnu")]
