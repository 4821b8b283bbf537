"""*Boîtes* (admin): disable a mailbox (every listener refuses its next login: the account check reads
``active``), a new password shown once, a software certificate bound by fingerprint; each change an event."""

from __future__ import annotations

from support.console import ConsoleServer, csrf_of, get, login, post

from gateway.auth.passwords import verify_password
from gateway.store.models import Mailbox


async def test_an_admin_disables_a_mailbox_resets_its_password_and_binds_a_certificate(
        console: ConsoleServer) -> None:
    mailbox_id = await console.add_mailbox("logiciel@pro.gateway.test", "APP")
    admin = await console.add_user("admin", "chef")
    fingerprint = "ab" * 32
    async with console.client() as client:
        await login(client, admin)
        _, page, _ = await get(client, "/boites")
        assert "logiciel@pro.gateway.test" in page and "applicative" in page
        _, page, _ = await post(client, f"/boites/{mailbox_id}/actif", {"csrf": csrf_of(page), "actif": "0"})
        assert "désactivée" in page
        _, page, _ = await post(client, f"/boites/{mailbox_id}/mot-de-passe", {"csrf": csrf_of(page)})
        secret = page.split("(affiché une seule fois) : ")[1].split("<")[0].strip()
        _, page, _ = await post(client, f"/boites/{mailbox_id}/certificat",
                                {"csrf": csrf_of(page), "empreinte": "12:34"})
        assert "64 chiffres" in page
        _, page, _ = await post(client, f"/boites/{mailbox_id}/certificat",
                                {"csrf": csrf_of(page), "empreinte": ":".join([fingerprint[i:i + 2]
                                                                               for i in range(0, 64, 2)]).upper()})
        assert "certificat lié" in page
    async with console.sessions() as session:
        mailbox = await session.get(Mailbox, mailbox_id)
        assert mailbox is not None and not mailbox.active and mailbox.certificate_fingerprint == fingerprint
        assert await verify_password(mailbox.password_hash, secret)
    kinds = [(e.kind, e.actor) for e in await console.events("mailbox.")]
    assert kinds == [("mailbox.disabled", "console:chef"), ("mailbox.password", "console:chef"),
                     ("mailbox.certificate", "console:chef")]


async def test_r3_a_secretary_blocks_then_allows_a_patient_replies(console: ConsoleServer) -> None:
    from gateway.store.events import now
    from gateway.store.models import Conversation

    doctor = await console.add_mailbox("docteur@pro.gateway.test", "PER")
    async with console.sessions() as session, session.begin():
        conversation = Conversation(professional_id=doctor, matricule="279035121518989", state="open",
                                    replies_blocked=False, opened_at=now(), updated_at=now())
        session.add(conversation)
        await session.flush()
        conversation_id = conversation.id
    user = await console.add_user("secretariat", "sophie")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, "/conversations")
        assert "docteur@pro.gateway.test" in page and "autorisées" in page
        _, page, _ = await get(client, f"/conversations?boite={doctor + 1000}")  # another professional's: none
        assert "Aucune conversation" in page
        _, page, _ = await get(client, f"/conversations?boite={doctor}")
        assert f'href="/conversations/{conversation_id}"' in page
        _, page, _ = await get(client, f"/conversations/{conversation_id}")
        _, page, _ = await post(client, f"/conversations/{conversation_id}/reponses",
                                {"csrf": csrf_of(page), "bloquer": "1"})
        assert "bloquées (R3)" in page and "Autoriser les réponses" in page
        _, page, _ = await post(client, f"/conversations/{conversation_id}/reponses",
                                {"csrf": csrf_of(page), "bloquer": "0"})
        assert "autorisées (R3)" in page
    async with console.sessions() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None and not found.replies_blocked
    trail = [e for e in await console.events("conversation.") if e.conversation_id == conversation_id]
    assert len(trail) == 2 and {e.actor for e in trail} == {"console:sophie"}


async def test_the_admin_sees_the_settings_without_secrets_and_a_secretary_does_not(console: ConsoleServer) -> None:
    admin = await console.add_user("admin", "chef")
    secretary = await console.add_user("secretariat", "sophie")
    async with console.client() as client:
        await login(client, admin)
        status, page, _ = await get(client, "/reglages")
        assert status == 200 and "patient.gateway.test" in page and "sophie" in page and "30 minutes" in page
        assert console.config.web is not None and console.config.web.secret.decode() not in page
    async with console.client() as client:
        await login(client, secretary)
        assert (await get(client, "/reglages"))[0] == 403
