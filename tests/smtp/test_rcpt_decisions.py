"""A session reusing its recipients' acceptance for a moment (SubmissionHandler._decide) still sees a change
of the directory or of an identity made meanwhile: within the reuse delay, never later (R4).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import smtplib
import time
from typing import Any

import pytest
from sqlalchemy import update
from support.mail import PATIENT, PRO, PRO2, message
from support.process import GatewayProcess
from support.store import Store

from gateway.ins_matching.insi import TEST_PATIENT
from gateway.store.models import Identity, Mailbox

pytestmark = pytest.mark.slow


@pytest.fixture
def people(gateway: GatewayProcess) -> Store:
    store = Store(gateway.store_url)
    for address in (PRO, PRO2):
        store.add_mailbox(address, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()  # qualifiée
    return store


def _first_refusal(client: smtplib.SMTP, recipient: str) -> tuple[int, bytes]:
    """RCPT to ``recipient`` in fresh transactions of the same session until it is refused: at the latest
    once the acceptance it reused is :data:`DECISION_REUSE` old; the 10 s bound only ends a broken run."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        client.mail(PRO)
        code, text = client.rcpt(recipient)
        client.rset()
        if code >= 400:
            return code, text
    raise AssertionError(f"RCPT {recipient} still accepted 10 s after the change")


def _change(store: Store, statement: Any) -> None:
    async def work(session: Any) -> None:
        await session.execute(statement)
    store.run(work)


def test_a_mailbox_disabled_during_a_session_is_refused_within_the_reuse_delay(
        gateway: GatewayProcess, people: Store) -> None:
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2], message(PRO, PRO2))
        _change(people, update(Mailbox).where(Mailbox.address == PRO2).values(active=False))
        code, _text = _first_refusal(client, PRO2)
    assert code == 550
    assert len(people.messages_in(PRO2)) == 1


def test_r4_an_identity_no_longer_qualified_during_a_session_is_refused_within_the_reuse_delay(
        gateway: GatewayProcess, people: Store) -> None:
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PATIENT], message(PRO, PATIENT))
        _change(people, update(Identity).where(Identity.matricule == TEST_PATIENT.matricule)
                .values(status="provisoire"))
        code, _text = _first_refusal(client, PATIENT)
    assert code == 550
    assert [e.rule for e in people.events("rcpt.refused.not_qualified")] == ["R4"]
