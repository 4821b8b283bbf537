"""Group commit under concurrent submissions: every message of a shared batch is filed where its own
envelope says, with its own bytes (the batch's ids are matched to its rows, gateway/store/bulk.py).

A real gateway process, 12 senders submitting at once over STARTTLS with aiosmtplib, each to its own recipient.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib
from support.process import GatewayProcess
from support.store import Store

SENDERS = 12
ROUNDS = 5
PASSWORD = "secret-password"


def _people(index: int) -> tuple[str, str]:
    return f"sender{index}@pro.gateway.test", f"reader{index}@pro.gateway.test"


def _filler(index: int) -> str:
    """A body whose length says whose message it is."""
    return f"{index:02d}" * 20 * (index + 1) + "\r\n"


async def _submit(gateway: GatewayProcess, index: int) -> None:
    sender, reader = _people(index)
    context = ssl.create_default_context(cafile=str(gateway.pki.ca_bundle))
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_port, tls_context=context, start_tls=True,
                             timeout=60)
    await client.connect()
    await client.login(sender, PASSWORD)
    for round_ in range(ROUNDS):
        body = f"From: {sender}\r\nTo: {reader}\r\nSubject: {index}-{round_}\r\n\r\n{_filler(index)}"
        await client.sendmail(sender, [reader], body.encode())
    await client.quit()


async def _all(gateway: GatewayProcess) -> None:
    await asyncio.gather(*(_submit(gateway, i) for i in range(SENDERS)))


def test_each_message_of_concurrent_batches_is_filed_for_its_own_recipient(gateway: GatewayProcess) -> None:
    store = Store(gateway.store_url)
    for index in range(SENDERS):
        for address in _people(index):
            store.add_mailbox(address, password=PASSWORD)
    asyncio.run(_all(gateway))
    for index in range(SENDERS):
        sender, reader = _people(index)
        inbox = store.messages_in(reader)
        sent = store.messages_in(sender, "Sent")
        assert [m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in inbox] == \
            [f"{index}-{r}".encode() for r in range(ROUNDS)]
        assert all(f"From: {sender}".encode() in m and m.endswith(f"\r\n\r\n{_filler(index)}".encode())
                   for m in inbox)
        assert len(sent) == ROUNDS and all(f"To: {reader}".encode() in m for m in sent)
