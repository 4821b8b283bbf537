"""The DMP's answer to a DESTDMP deposit reaches the DPI as its ZAM^Z01 as soon as the answer is recorded: the
deposit's final state (accepted, refused) wakes the HL7 relay at commit (HL7_OUTBOX on the change hub), so the
acknowledgement never waits for the relay's safety-net poll, here pushed out to 600 s."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest
from dmp_bridge.dmp_support import MATRICULE
from support.dmp_simulator import SimulatorProcess
from support.hl7_peer import DOCTOR, LAB, PATIENT, DpiSimulator, Hl7Gateway, Mllp, code_of, dmp_section, oru, wait_for
from support.pki import PKIFiles
from support.store import Store

from gateway.dmp_bridge import constants as c

#: Every test here starts gateway processes: not in make test-fast.
pytestmark = pytest.mark.slow


def zam_z01(dpi: DpiSimulator) -> list[str]:
    return [r["message"] for r in dpi.received() if r["type"] == "ZAM^Z01"]


@pytest.mark.parametrize("closed", [False, True], ids=["accepted", "refused"])
def test_the_dmp_answer_wakes_the_relay_so_the_z01_does_not_wait_for_its_poll(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str, closed: bool):
    store = Store(sqlite_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()  # qualifiée (R7): the document may go to the DMP
    dmp = SimulatorProcess.with_certificates(tmp_path / "dmp", pki, closed=(MATRICULE,) if closed else ())
    dmp.start("slow:1:3")  # the DMP answers 3 s late: the relay is long asleep on its poll by then
    dpi = DpiSimulator(tmp_path).start()
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url, peer_extra=dpi.return_address,
                         hl7_extra="relay_poll = 600",  # only the answer's commit can wake it within the deadline
                         extra_config=dmp_section({"url": dmp.url, "folder": dmp.folder}, pki.ca_bundle))
    try:
        gateway.start()
        client = Mllp(gateway.hl7_port)
        answer = client.exchange(oru("DMP-WAKE-1", destinations=("DESTDMP",), flags=("ACK_RECEPTION",)))
        assert code_of(answer) == ("AA", None), answer
        client.close()
        wait_for(lambda: len(zam_z01(dpi)) == 1, "the ZAM^Z01 of the DMP's answer", 60,
                 lambda: gateway.log_lines[-10:])
    finally:
        gateway.stop()
        dpi.stop()
        dmp.stop()
    [message] = [hl7.parse(m.replace("\n", "\r")) for m in zam_z01(dpi)]
    obx = message.segment("OBX")
    assert str(obx(3)(1)(1)) == "ACK_RECEPTION_DMP" and str(obx(4)) == "DMP-WAKE-1"
    assert str(obx(5)(1)(1)) == ("N" if closed else "Y")
    if closed:  # R17: the DMP's own code reaches the DPI
        assert str(message.segment("ERR")(5)(1)(1)) == c.ERR_DMP_CLOSED
    events = [e.kind for e in store.events("dmp.deposit.")]
    assert ("dmp.deposit.refused" if closed else "dmp.deposit.accepted") in events
