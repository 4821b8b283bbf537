"""*À classer*, *Dossiers* and *Identités* through HTTPS with a real client: every decision goes through
gateway/ins_matching (record.py, identities.py) and is an event naming the person (R18)."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import zipfile
from collections.abc import Iterator

import structlog
from sqlalchemy import func, select
from support.console import ConsoleServer, csrf_of, get, login, post

from gateway import logs
from gateway.documents.cda import read_header
from gateway.ins_matching import identities
from gateway.ins_matching.insi import TEST_PATIENT
from gateway.ins_matching.matching import Review
from gateway.ins_matching.record import DocumentReview, PatientDocument, open_review
from gateway.samples import samples_dir

SAMPLES = samples_dir() / "cda"
BIO = SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
PDF_CDA = SAMPLES / "DOC_NON_STRUCTURE_CDA-R2-N1.xml"


async def review_of(console: ConsoleServer, path: object, code: int = 904, reason: str = "Traits discordants.",
                    candidate: object = None) -> int:
    content = path.read_bytes()  # type: ignore[attr-defined]
    async with console.sessions() as session, session.begin():
        return await open_review(session, Review(code, reason, candidate=candidate), content,
                                 read_header(content, validate=False))


async def identity(console: ConsoleServer, qualified: bool, matricule: str = TEST_PATIENT.matricule,
                   traits: identities.Traits = TEST_PATIENT.traits) -> int:
    async with console.sessions() as session, session.begin():
        new_id = await identities.add_identity(session, matricule, TEST_PATIENT.oid, traits, "test", allow_test=True)
        if qualified:
            await identities.record_insi(session, new_id, "found", "test")
            await identities.record_document(session, new_id, "passport", "test")
        return new_id


async def filed(console: ConsoleServer) -> int:
    async with console.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(PatientDocument))).scalar_one())


async def status_of(console: ConsoleServer, review_id: int) -> str:
    async with console.sessions() as session:
        review = await session.get(DocumentReview, review_id)
        assert review is not None
        return review.status


async def test_r7_nothing_is_filed_to_an_identity_that_is_not_qualifiee(console: ConsoleServer) -> None:
    identity_id = await identity(console, qualified=False)
    review_id = await review_of(console, BIO)
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, f"/a-classer/{review_id}")
        assert f'value="{identity_id}" disabled' in page and "non qualifiée" in page
        _, text, _ = await post(client, f"/a-classer/{review_id}/classer",
                                {"csrf": csrf_of(page), "identite": str(identity_id), "motif": "c'est elle"})
    assert "identité qualifiée (R7)" in text
    assert await filed(console) == 0 and await status_of(console, review_id) == "open"


async def test_r10_r18_a_secretary_files_one_document_and_rejects_another_both_in_her_name(
        console: ConsoleServer) -> None:
    identity_id = await identity(console, qualified=True)
    first, second = await review_of(console, BIO), await review_of(console, PDF_CDA, code=902)
    user = await console.add_user("secretariat", "sophie")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, f"/a-classer/{first}")
        assert 'class="ecart"' not in page  # the traits agree with the candidate's here
        for data, wanted in (({"identite": str(identity_id)}, "motif du classement"), ({"motif": "x"}, "Choisissez")):
            _, text, _ = await post(client, f"/a-classer/{first}/classer", {"csrf": csrf_of(page), **data})
            assert wanted in text
        _, text, _ = await post(client, f"/a-classer/{first}/classer",
                                {"csrf": csrf_of(page), "identite": str(identity_id), "motif": "vérifié au téléphone"})
        assert "Document classé dans le dossier de PAT-TROIS" in text
        _, text, _ = await post(client, f"/a-classer/{second}/rejeter", {"csrf": csrf_of(text), "motif": " "})
        assert "Indiquez pourquoi" in text
        _, text, _ = await post(client, f"/a-classer/{second}/rejeter",
                                {"csrf": csrf_of(text), "motif": "Adressé par erreur"})
        assert f"Document n° {second} rejeté" in text and "Aucun document à classer" in text
    assert await status_of(console, first) == "resolved" and await status_of(console, second) == "rejected"
    trail = {e.kind: e.actor for e in await console.events("document.")}
    assert trail["document.review_resolved"] == trail["document.review_rejected"] == "console:sophie"
    assert trail["document.filed"] == "console:sophie"


async def test_the_queue_shows_code_reason_and_filters_by_code(console: ConsoleServer) -> None:
    await review_of(console, BIO, code=904)
    await review_of(console, PDF_CDA, code=902, reason="Patient inconnu du référentiel.")
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, "/a-classer")
        assert "(2)" in page and "INS ou traits discordants" in page and "Patient inconnu" in page
        assert "904 — INS ou traits discordants avec l&#39;identité enregistrée (1)" in page
        _, page, _ = await get(client, "/a-classer?code=902")
        table = page[page.index('id="file"'):]
        assert "Patient inconnu" in table and "discordants" not in table


async def test_the_pdf_of_a_level_1_cda_is_shown_inline_and_the_original_downloads(console: ConsoleServer) -> None:
    review_id = await review_of(console, PDF_CDA, code=902)
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, f"/a-classer/{review_id}")
        assert f'<iframe class="pdf" src="/a-classer/{review_id}/pdf"' in page
        async with client.get(f"/a-classer/{review_id}/pdf") as response:
            assert response.status == 200 and response.content_type == "application/pdf"
            assert response.headers["Content-Disposition"].startswith("inline")
            assert (await response.read()).startswith(b"%PDF")
        async with client.get(f"/a-classer/{review_id}/original") as response:
            assert response.headers["Content-Disposition"].startswith("attachment")
            assert await response.read() == PDF_CDA.read_bytes()
        assert (await get(client, f"/a-classer/{(await review_of(console, BIO))}/pdf"))[0] == 404


async def test_r11_an_unknown_patient_is_proposed_as_a_provisoire_identity_not_filed(console: ConsoleServer) -> None:
    review_id = await review_of(console, BIO, code=902)
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, f"/a-classer/{review_id}")
        _, text, response = await post(client, f"/a-classer/{review_id}/proposer", {"csrf": csrf_of(page)})
        assert "/dossiers/" in str(response.url) and "provisoire" in text
    async with console.sessions() as session:
        found = await identities.find(session, TEST_PATIENT.matricule)
        assert found is not None and found.status == "provisoire" and found.birth_name == "PAT-TROIS"
    assert await filed(console) == 0 and await status_of(console, review_id) == "open"


async def test_dossiers_find_a_patient_and_serve_the_filed_documents(console: ConsoleServer) -> None:
    identity_id = await identity(console, qualified=True)
    async with console.sessions() as session, session.begin():
        from gateway.ins_matching.record import file_document

        document_id = await file_document(session, identity_id, PDF_CDA.read_bytes(),
                                          read_header(PDF_CDA.read_bytes(), validate=False))
    user = await console.add_user("dmp")
    async with console.client() as client:
        await login(client, user)
        for query in ("pat-trois", "28/03/1979", TEST_PATIENT.matricule):
            _, page, _ = await get(client, f"/dossiers?q={query}")
            assert f'href="/dossiers/{identity_id}"' in page, query
        _, page, _ = await get(client, f"/dossiers/{identity_id}")
        assert "qualifiée" in page and "passeport" in page.lower() and f"/documents/{document_id}/xdm" in page
        async with client.get(f"/documents/{document_id}/xdm") as response:
            names = zipfile.ZipFile(io.BytesIO(await response.read())).namelist()
            assert any(n.upper().endswith("METADATA.XML") for n in names)
        async with client.get(f"/documents/{document_id}/pdf") as response:
            assert response.content_type == "application/pdf"
        async with client.get(f"/documents/{document_id}/cda") as response:
            assert await response.read() == PDF_CDA.read_bytes()


async def test_r7_identites_add_then_qualify_with_a_document_and_insi(console: ConsoleServer) -> None:
    user = await console.add_user("secretariat", "accueil")
    traits = TEST_PATIENT.traits
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, "/identites")
        _, page, response = await post(client, "/identites", {
            "csrf": csrf_of(page), "matricule": TEST_PATIENT.matricule, "oid": TEST_PATIENT.oid,
            "nom": traits.birth_name, "prenoms": traits.first_names, "naissance": "28/03/1979", "sexe": traits.sex,
            "lieu": traits.birth_place})
        assert "provisoire" in page
        path = response.url.path
        _, page, _ = await post(client, f"/identites/{path.rsplit('/', 1)[1]}/piece",
                                {"csrf": csrf_of(page), "piece": "passport"})
        assert "statut : validée" in page
        _, page, _ = await post(client, f"/identites/{path.rsplit('/', 1)[1]}/insi", {"csrf": csrf_of(page)})
        assert "INSi : identité trouvée ; statut : qualifiée" in page
    statuses = [e.outcome for e in await console.events("identity.status")]
    assert statuses == ["validée", "qualifiée"]
    assert {e.actor for e in await console.events("identity.")} == {"console:accueil"}


async def test_r18_the_journal_filters_by_actor_and_exports_csv(console: ConsoleServer) -> None:
    await identity(console, qualified=True)
    admin = await console.add_user("admin", "chef")
    async with console.client() as client:
        await login(client, admin)
        _, page, _ = await get(client, "/journal?acteur=test&type=identity.")
        table = page[page.index('id="evenements"'):]
        assert "identity.added" in table and "console.login" not in table
        async with client.get("/journal.csv?type=identity.") as response:
            assert response.content_type == "text/csv"
            rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig")), delimiter=";"))
        assert rows[0][:3] == ["id", "date", "type"] and {r[2] for r in rows[1:]} == {
            "identity.added", "identity.insi", "identity.document", "identity.status"}


async def test_a_pdf_attached_beside_the_cda_is_shown_inline(console: ConsoleServer) -> None:
    from email.message import EmailMessage

    from gateway.documents.cda_body import non_xml_body
    from gateway.store.mailstore import StoredMessage, store_message

    readable = non_xml_body(PDF_CDA.read_bytes())
    assert readable is not None
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "laboratoire@pro.gateway.test", "resultats@pro.gateway.test", "CR"
    mail.set_content("Compte rendu.")
    mail.add_attachment(BIO.read_bytes(), maintype="text", subtype="xml", filename="CR.xml")
    mail.add_attachment(readable, maintype="application", subtype="pdf", filename="CR.pdf")
    content = BIO.read_bytes()
    async with console.sessions() as session, session.begin():
        message_id = await store_message(session, StoredMessage(mail.as_bytes(), "laboratoire@pro.gateway.test",
                                                                ["resultats@pro.gateway.test"], None, None, "CR", None))
        review_id = await open_review(session, Review(904, "Traits discordants."), content,
                                      read_header(content, validate=False), message_id=message_id)
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, f"/a-classer/{review_id}")
        assert f'src="/a-classer/{review_id}/piece/1"' in page and "CR.pdf" in page
        assert "laboratoire@pro.gateway.test" in page
        async with client.get(f"/a-classer/{review_id}/piece/1") as response:
            assert response.content_type == "application/pdf" and await response.read() == readable
            assert response.headers["Content-Disposition"].startswith("inline")
        assert (await get(client, f"/a-classer/{review_id}/piece/2"))[0] == 404


async def test_console_logs_above_debug_carry_no_name_nor_matricule(console: ConsoleServer) -> None:
    identity_id = await identity(console, qualified=True)
    review_id = await review_of(console, BIO)
    user = await console.add_user("secretariat")
    out = io.StringIO()
    with logs_to(out, "info"):  # the daemon's own configuration, whatever an earlier test left configured
        async with console.client() as client:
            await login(client, user)
            _, page, _ = await get(client, f"/a-classer/{review_id}?recherche=PAT-TROIS")
            await post(client, f"/a-classer/{review_id}/classer",
                       {"csrf": csrf_of(page), "identite": str(identity_id), "motif": "PAT-TROIS vérifiée"})
    lines = out.getvalue().splitlines()
    assert any("console_action" in line for line in lines) and any("document.filed" in line for line in lines)
    leaked = [line for line in lines if "PAT-TROIS" in line or TEST_PATIENT.matricule in line]
    assert not leaked, leaked


@contextlib.contextmanager
def logs_to(stream: io.StringIO, level: str) -> Iterator[None]:
    """The gateway's logging configuration on ``stream`` for the block, the previous one restored after."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    logs.configure(level, stream=stream)
    try:
        yield
    finally:
        structlog.configure(**saved)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(root_level)
