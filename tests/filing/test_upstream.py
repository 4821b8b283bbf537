"""Filing from an upstream operator mailbox read over IMAP (aioimaplib, TLS, IDLE).

The "upstream operator" is a mailbox served by the gateway's own IMAP listener. Messages delivered there are
imported once into the local results mailbox and filed; a restart in the middle imports nothing twice, and
every upstream message ends marked ``$GatewayImported`` on the server.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store
from support.wait import wait_until

from gateway.filing.models import UpstreamMessage
from gateway.ins_matching.record import PatientDocument
from gateway.samples import samples_dir
from gateway.store.models import Delivery, Folder, Mailbox

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
LAB = "laboratoire@pro.gateway.test"
UPSTREAM = "boite-operateur@pro.gateway.test"
RESULTS = "resultats@pro.gateway.test"
DOC_ID = b"1.2.250.1.213.1.1.1.55.2024.9.1"


def lab_report(n: int) -> bytes:
    cda = SAMPLE.read_bytes().replace(DOC_ID, DOC_ID[:-1] + str(100 + n).encode(), 1)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = LAB, UPSTREAM, f"CR {n}"
    message["Message-ID"] = f"<cr{n}@lab.test>"
    message.set_content(f"Compte rendu {n}")
    message.add_attachment(cda, maintype="text", subtype="xml", filename="cr.xml")
    return message.as_bytes()


def count(store: Store, query: Any) -> int:
    async def work(session: Any) -> int:
        return int((await session.execute(query)).scalar_one())
    return store.run(work)


def test_upstream_messages_are_imported_and_filed_once_across_a_restart(tmp_path: Path, pki: PKIFiles,
                                                                        store_url: str):
    store = Store(store_url)
    for address in (LAB, UPSTREAM, RESULTS):
        store.add_mailbox(address, "ORG")
    store.add_identity()
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, message_size=5_000_000)
    (tmp_path / "upstream-password").write_text("secret-password\n")
    with gateway.config_path.open("a") as config:
        config.write(f'\n[[upstream]]\nname = "operateur"\nhost = "127.0.0.1"\nport = {gateway.imaps_port}\n'
                     f'username = "{UPSTREAM}"\npassword_file = "{tmp_path / "upstream-password"}"\n'
                     f'ca_file = "{pki.ca_bundle}"\ndeliver_to = "{RESULTS}"\nidle_seconds = 20\n')
    gateway.start()
    imported = select(func.count()).select_from(UpstreamMessage)
    filed = select(func.count()).select_from(PatientDocument)
    try:
        with gateway.smtp(LAB) as client:
            for n in range(3):
                client.sendmail(LAB, [UPSTREAM], lab_report(n))
        wait_until(lambda: count(store, imported) >= 1, what="a first upstream import")
        gateway.kill()  # in the middle: some imported, perhaps one committed but not yet marked upstream
        gateway.start()
        with gateway.smtp(LAB) as client:
            for n in range(3, 5):
                client.sendmail(LAB, [UPSTREAM], lab_report(n))
        wait_until(lambda: count(store, filed) >= 5 and count(store, imported) >= 5, what="five imported and filed")
        marked = (select(func.count()).select_from(Delivery).join(Folder, Folder.id == Delivery.folder_id)
                  .join(Mailbox, Mailbox.id == Folder.mailbox_id)
                  .where(Mailbox.address == UPSTREAM, Delivery.flags.contains("$GatewayImported")))
        wait_until(lambda: count(store, marked) == 5, what="five upstream messages marked imported")
    finally:
        gateway.stop()
    assert count(store, imported) == 5
    assert count(store, filed) == 5
    assert len(store.messages_in(RESULTS)) == 5
    assert len(store.events("upstream.imported")) == 5
