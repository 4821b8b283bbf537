"""R14 end to end: a professional in "patient present" mode submits two documents for the patient; the first,
while the patient's Vitale card is in the workstation's reader, is queued for the DMP; the second, after the
card was taken out, is filed locally and not deposited. Real PC/SC stack, real agent, real endpoint; the DMP
bridge decides with the card readers' presence source (``gateway.dmp_bridge.presence.card_presence``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from card.cardkit import CardGateway, PcscStack, RunningAgent, inserted, make_card_gateway, write_config
from dmp_bridge.dmp_support import BIOLOGIST, policy, sample, variant
from support.pki import PKIFiles

from gateway.dmp_bridge.bridge import Considered, consider_message
from gateway.dmp_bridge.presence import card_presence
from gateway.dmp_bridge.rules import AccessMode
from gateway.ins_matching.insi import TEST_PATIENT

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

VITALE2 = "3B751300004509EA9000"
PDF_CDA = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"


def mail(cda: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = BIOLOGIST.mailbox
    message["To"] = f"{TEST_PATIENT.matricule}@patient.gateway.test"
    message["Subject"] = "Compte rendu"
    message.set_content("Compte rendu joint.")
    message.add_attachment(cda, maintype="application", subtype="xml", filename="CDA.xml")
    return message.as_bytes()


@pytest.fixture
async def biologist_gateway(sqlite_url: str, pki: PKIFiles, tmp_path: Path) -> AsyncIterator[CardGateway]:
    gw = await make_card_gateway(sqlite_url, pki, tmp_path / "gw", professional=BIOLOGIST.mailbox)
    await gw.listen()
    yield gw
    await gw.close()


async def submit(gw: CardGateway, raw: bytes) -> Considered:
    async with gw.sessions() as session, session.begin():
        [considered] = await consider_message(
            session, None, raw, BIOLOGIST.mailbox, [], policy=policy(default_mode=AccessMode.PRESENCE),
            sender_mailbox_id=gw.pro, presence=card_presence())
    return considered


async def test_r14_document_deposited_while_the_card_is_in_and_not_after_removal(
        pcsc: PcscStack, biologist_gateway: CardGateway, tmp_path: Path):
    gw = biologist_gateway
    config, path = write_config(gw, tmp_path, gw.port)
    with RunningAgent(config, path) as running:
        card = pcsc.insert(VITALE2)
        assert await inserted(gw) == ["vitale"]
        assert await asyncio.to_thread(running.bind, TEST_PATIENT.matricule, "secretary") == 0

        first = await submit(gw, mail(sample(PDF_CDA)))
        assert first.job_id is not None, first.plan.refusal

        pcsc.remove(card)

        async def absent() -> bool:
            return not await gw.present()
        await gw.until(absent, "the presence window to close")

        second = await submit(gw, mail(variant(sample(PDF_CDA), unique_id="1.2.250.1.999.42.7.2")))
        assert second.job_id is None
        assert second.plan.refusal is not None
        assert (second.plan.refusal.rule, second.plan.refusal.code) == ("R14", "patient_absent")
    kinds = [e.kind for e in await gw.events("") if e.kind.startswith(("card.presence", "dmp.deposit"))]
    assert kinds == ["card.presence.opened", "dmp.deposit.queued", "card.presence.closed",
                     "dmp.deposit.not_deposited"]
