"""The relay is woken by the commits that owe a peer something (HL7_OUTBOX on the change hub), not by its poll:
with a 30 s safety-net poll, acknowledgements reach the DPI within seconds. /readyz names the MLLP listener."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import hl7
from support.hl7_peer import DOCTOR, LAB, DpiSimulator, Hl7Gateway, Mllp, code_of, oru, wait_for
from support.pki import PKIFiles
from support.process import free_port
from support.store import Store

from gateway.config import parse
from gateway.ops.health import Listeners


def test_readiness_expects_the_hl7_listener_when_hl7_is_configured(pki: PKIFiles):
    base = {"gateway": {"hostname": "mail.gateway.test", "domains": ["pro.gateway.test"],
                        "patient_domain": "patient.gateway.test"},
            "database": {"url": "sqlite+aiosqlite:///x.sqlite3"}, "smtp": {"submission": "127.0.0.1:2587"},
            "tls": {"certificate": str(pki.server_cert), "private_key": str(pki.server_key)}}
    hl7 = {"listen": "127.0.0.1:2575", "peer": [{"name": "dpi", "addresses": ["127.0.0.1"], "sender": LAB}]}
    listeners = Listeners.from_config(parse({**base, "hl7": hl7}, Path(".")))
    assert "hl7" in listeners.missing()  # not ready before the MLLP listener is bound
    listeners.up("submission")
    listeners.up("hl7", "127.0.0.1:2575")
    assert listeners.missing() == []
    assert "hl7" not in Listeners.from_config(parse(base, Path("."))).expected


def zam_z02(dpi: DpiSimulator) -> list[str]:
    return [r["message"] for r in dpi.received() if r["type"] == "ZAM^Z02"]


def test_acknowledgements_reach_the_dpi_without_waiting_for_the_relay_poll(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str):
    store = Store(sqlite_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_identity()
    dpi = DpiSimulator(tmp_path).start()
    metrics = free_port()
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url, peer_extra=dpi.return_address,
                         hl7_extra="relay_poll = 600",  # only a wake-up at commit makes the deadlines below
                         extra_config=f'\n[metrics]\nlisten = "127.0.0.1:{metrics}"\n')
    try:
        gateway.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz", timeout=10) as answer:
            ready = json.loads(answer.read())
        assert ready["ready"] and "hl7" in ready["checks"]["listeners"]["bound"]
        client = Mllp(gateway.hl7_port)
        for n in (1, 2):  # the second arrives while the relay sleeps on its 600 s poll
            answer = client.exchange(oru(f"WAKE-{n}", destinations=("DESTMSSANTEPS",), flags=("ACK_RECEPTION",)))
            assert code_of(answer) == ("AA", None), answer
            wait_for(lambda n=n: len(zam_z02(dpi)) == n, f"ZAM^Z02 number {n}", 60, lambda: gateway.log_lines[-8:])
        client.close()
    finally:
        gateway.stop()
        dpi.stop()
    parsed = [hl7.parse(m.replace("\n", "\r")) for m in zam_z02(dpi)]
    assert [str(p.segment("OBX")(4)) for p in parsed] == ["WAKE-1", "WAKE-2"]
    recipient = [s for s in parsed[0] if str(s[0]) == "OBX"][1]  # the volet: DESTINATAIRE_MSS, XTN X.400
    assert str(recipient(2)) == "XTN" and str(recipient(3)(1)(1)) == "DESTINATAIRE_MSS"
    assert str(recipient(5)(1)(3)) == "X.400" and str(recipient(5)(1)(4)) == DOCTOR
