"""Reading and filing mail over IMAP (RFC 9051 / 3501) on SQLite and PostgreSQL, through real TLS sockets."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import zipfile
from email.message import EmailMessage
from email.policy import SMTP

import aioimaplib
from imap.imap_support import ALICE, BOB, PASSWORD, ImapHarness, message

from gateway.samples import samples_dir

SAMPLES = samples_dir() / "cda"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def health_message() -> tuple[bytes, bytes, bytes]:
    """A lab result as practice software sends it: text, the CDA, a PDF and an IHE XDM zip."""
    cda = (SAMPLES / "DOC_NON_STRUCTURE_CDA-R2-N1.xml").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<SubmitObjectsRequest/>")
        archive.writestr("IHE_XDM/SUBSET01/DOC0001.XML", cda)
        archive.writestr("INDEX.HTM", b"<html></html>")
    xdm = buffer.getvalue()
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["To"], msg["Subject"] = BOB, ALICE, "XDM/1.0/DDM+Compte rendu"
    msg["Message-ID"] = "<cda-1@pro.gateway.test>"
    msg["X-MSS-CODECDA"] = "11502-2"
    msg.set_content("Veuillez trouver le compte rendu.")
    msg.add_attachment(cda, maintype="text", subtype="xml", filename="CR-BIO.xml")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="CR-BIO.pdf")
    msg.add_attachment(xdm, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg.as_bytes(), cda, xdm


def uids_of(data: list[bytes | None]) -> list[int]:
    return [int(u) for u in (data[0] or b"").split()]


def test_delivered_message_reads_byte_exact_with_flags_and_uid(imap: ImapHarness):
    raw = message("Premier message", "Bonjour docteur.")
    uid = imap.deliver(ALICE, raw)
    with imap.imaps() as client:
        typ, data = client.select("INBOX")
        assert typ == "OK" and data == [b"1"]
        typ, fetched = client.uid("FETCH", str(uid), "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        head, body = fetched[0]  # type: ignore[misc]
        assert body == raw and b"FLAGS (\\Recent)" in head and f"RFC822.SIZE {len(raw)}".encode() in head
        # PEEK did not set \Seen; BODY[] does (RFC 9051 6.4.5)
        client.uid("FETCH", str(uid), "(BODY[TEXT])")
        typ, flags = client.uid("FETCH", str(uid), "(FLAGS)")
        assert b"\\Seen" in flags[0]  # type: ignore[operator]


def test_flags_and_keywords_persist_and_search_uses_them(imap: ImapHarness):
    for n in range(3):
        imap.deliver(ALICE, message(f"Message {n}"))
    with imap.imaps() as client:
        client.select("INBOX")
        assert client.store("2", "+FLAGS", "(\\Flagged $Urgent)")[0] == "OK"
        assert client.store("3", "+FLAGS.SILENT", "(\\Seen)")[0] == "OK"
    with imap.imaps() as client:  # a new session sees what the store kept
        client.select("INBOX")
        assert uids_of(client.uid("SEARCH", None, "FLAGGED")[1]) == [2]
        assert uids_of(client.uid("SEARCH", None, "KEYWORD", "$Urgent")[1]) == [2]
        assert uids_of(client.uid("SEARCH", None, "UNSEEN")[1]) == [1, 2]
        assert uids_of(client.uid("SEARCH", None, "SUBJECT", '"Message 1"')[1]) == [2]
        assert uids_of(client.uid("SEARCH", None, "BODY", "message")[1]) == [1, 2, 3]
        _typ, flags = client.fetch("2", "(FLAGS)")
        assert b"\\Flagged" in flags[0] and b"$Urgent" in flags[0]  # type: ignore[operator]
        client.store("2", "-FLAGS", "($Urgent)")
        assert uids_of(client.uid("SEARCH", None, "KEYWORD", "$Urgent")[1]) == []


def test_move_then_expunge_and_r18_trail(imap: ImapHarness):
    for n in range(3):
        imap.deliver(ALICE, message(f"Message {n}"))
    with imap.imaps() as client:
        client.select("INBOX")
        typ, _data = client.uid("MOVE", "2", "Archive")
        assert typ == "OK"
        assert client.response("EXPUNGE")[1] == [b"2"]  # RFC 6851: the source message is expunged at once
        assert uids_of(client.uid("SEARCH", None, "ALL")[1]) == [1, 3]
        client.store("1", "+FLAGS", "(\\Deleted)")
        typ, expunged = client.expunge()
        assert typ == "OK" and expunged == [b"1"]
        assert uids_of(client.uid("SEARCH", None, "ALL")[1]) == [3]
        client.select("Archive")
        typ, fetched = client.fetch("1", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Message 1" in fetched[0][1]  # type: ignore[index]
        typ, _ = client.uid("COPY", "1", "Trash")
        copyuid = client.response("COPYUID")[1][0]
        assert typ == "OK" and copyuid is not None and copyuid.split()[1:] == [b"1", b"1"]  # RFC 4315
    with imap.imaps() as client:
        assert client.status("INBOX", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")  # type: ignore[union-attr]
        assert client.status("Trash", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")  # type: ignore[union-attr]
    trail = imap.events("imap.")
    alice = imap.accounts[ALICE]
    assert [(kind, mailbox, detail["count"]) for kind, mailbox, detail in trail] == [
        ("imap.moved", alice, 1), ("imap.expunged", alice, 1)]


def test_append_a_draft_is_stored_byte_exact_with_appenduid(imap: ImapHarness):
    draft = message("Brouillon", "A terminer.")
    with imap.imaps() as client:
        typ, data = client.append("Drafts", "(\\Draft \\Seen)", None, draft)
        assert typ == "OK"
        match = re.search(rb"APPENDUID (\d+) (\d+)", data[0])  # type: ignore[arg-type]
        assert match is not None
        client.select("Drafts")
        typ, fetched = client.uid("FETCH", match.group(2).decode(), "(FLAGS BODY.PEEK[])")
        assert fetched[0][1] == draft and b"\\Draft" in fetched[0][0]  # type: ignore[index]


def test_uids_and_uidvalidity_survive_a_restart(imap: ImapHarness):
    imap.deliver(ALICE, message("Avant"))
    imap.deliver(ALICE, message("Avant 2"))
    with imap.imaps() as client:
        client.select("INBOX")
        before = client.response("UIDVALIDITY")[1]
        client.store("1", "+FLAGS", "(\\Deleted)")
        client.expunge()
    imap.restart()
    imap.deliver(ALICE, message("Apres"))
    with imap.imaps() as client:
        client.select("INBOX")
        assert client.response("UIDVALIDITY")[1] == before
        assert uids_of(client.uid("SEARCH", None, "ALL")[1]) == [2, 3]


def test_bodystructure_and_parts_of_a_cda_pdf_xdm_message(imap: ImapHarness):
    raw, cda, xdm = health_message()
    imap.deliver(ALICE, raw)
    with imap.imaps() as client:
        client.select("INBOX")
        typ, data = client.fetch("1", "(BODYSTRUCTURE)")
        structure = data[0]
        assert typ == "OK" and isinstance(structure, bytes)
        assert b'"mixed"' in structure.lower() or b'"MIXED"' in structure
        for needle in (b'"xml"', b'"pdf"', b'"zip"', b'"base64"'):
            assert needle in structure.lower()
        # body-fld-dsp is a list with its parameters (RFC 9051 section 9)
        assert b'("attachment" ("filename" "IHE_XDM.ZIP"))' in structure
        assert b'("attachment" ("filename" "CR-BIO.pdf"))' in structure
        typ, part = client.fetch("1", "(BODY.PEEK[2] BODY.PEEK[4] BODY.PEEK[3.MIME])")
        assert base64.b64decode(part[0][1]) == cda  # type: ignore[index]
        assert base64.b64decode(part[1][1]) == xdm  # type: ignore[index]
        assert b"application/pdf" in part[2][1]  # type: ignore[index]
        typ, header = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-MSS-CODECDA)])")
        assert b"11502-2" in header[0][1]  # type: ignore[index]


def test_one_account_cannot_see_or_select_another_accounts_mail(imap: ImapHarness):
    imap.deliver(BOB, message("Pour Bob seulement"))
    with imap.imaps() as client:
        client.select("INBOX")
        assert uids_of(client.uid("SEARCH", None, "ALL")[1]) == []
        for name in ("bob@pro.gateway.test/INBOX", "../bob/INBOX", "#shared/INBOX", "Other Users/bob"):
            assert client.select(f'"{name}"')[0] == "NO"
        assert client.status("INBOX", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 0)")  # type: ignore[union-attr]
    with imap.imaps(BOB) as client:
        client.select("INBOX")
        assert uids_of(client.uid("SEARCH", None, "ALL")[1]) == [1]


def test_folders_special_use_create_rename_delete(imap: ImapHarness):
    with imap.imaps() as client:
        _typ, listing = client.list()
        joined = b"\n".join(x for x in listing if isinstance(x, bytes))
        for name, attr in (b"Sent", b"\\Sent"), (b"Drafts", b"\\Drafts"), (b"Trash", b"\\Trash"):
            assert re.search(rb"\(.*" + re.escape(attr) + rb".*\) \"/\" " + name, joined)
        assert client.create("Patients/Dupont")[0] == "OK"
        assert client.create("Patients/Dupont")[0] == "NO"
        assert client.rename("Patients", "Dossiers")[0] == "OK"
        _typ, listing = client.list()
        names = b"\n".join(x for x in listing if isinstance(x, bytes))
        assert b"Dossiers/Dupont" in names and b"Patients" not in names
        assert client.delete("Sent")[0] == "NO"
        assert client.delete("Dossiers/Dupont")[0] == "OK"
        assert client.create("../escape")[0] == "NO"


async def test_aioimaplib_reads_flags_and_moves(imap: ImapHarness):
    for n in range(2):
        await asyncio.to_thread(imap.deliver, ALICE, message(f"Async {n}"))
    client = aioimaplib.IMAP4_SSL("127.0.0.1", imap.imaps_port, ssl_context=imap.client_context(), timeout=30)
    await client.wait_hello_from_server()
    assert (await client.login(ALICE, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    response = await client.uid("fetch", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert response.result == "OK" and b"Async 1" in b"".join(
        x for x in response.lines if isinstance(x, (bytes, bytearray)))
    assert (await client.uid("store", "1", "+FLAGS", "(\\Seen)")).result == "OK"
    assert (await client.uid("move", "1", "Archive")).result == "OK"
    search = await client.uid_search("ALL")
    assert search.result == "OK" and search.lines[0].split() == [b"2"]
    await client.logout()


def test_cached_view_of_a_large_folder_follows_changes_between_selects(imap: ImapHarness, monkeypatch):
    """The per-process view cache (large folders) must show deliveries, flag changes and expunges made since."""
    monkeypatch.setattr("gateway.imap.view.store.CACHE_MIN_MESSAGES", 2)
    for n in range(4):
        imap.deliver(ALICE, message(f"Cache {n}"))
    with imap.imaps() as client:
        assert client.select("INBOX")[1] == [b"4"]  # loads and caches the view
        client.close()
        imap.deliver_elsewhere(ALICE, message("Cache 4"))  # another process: no in-process signal
        client.select("INBOX")
        client.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
        client.expunge()
        client.uid("STORE", "3", "+FLAGS", "(\\Seen)")
        client.close()
    with imap.imaps() as client:
        _typ, data = client.select("INBOX")
        assert data == [b"4"]
        assert uids_of(client.uid("SEARCH", None, "ALL")[1]) == [1, 3, 4, 5]
        assert uids_of(client.uid("SEARCH", None, "SEEN")[1]) == [3]
        _typ, fetched = client.uid("FETCH", "5", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Cache 4" in fetched[0][1]  # type: ignore[index]


def test_a_long_body_is_found_by_search_body_before_and_after_it_is_indexed(imap: ImapHarness):
    from sqlalchemy import func, select
    from support.wait import wait_until

    from gateway.store.anatomy import INLINE_BODY, MessageTextPending

    line = "Résultats de biologie dans les normes.\r\n"
    long_text = line * (INLINE_BODY // len(line) + 100) + "Potassium à contrôler."
    imap.deliver(ALICE, message("Court", "Potassium ? Non, rien."))
    imap.deliver(ALICE, message("Long", long_text))

    async def pending(session: object) -> int:
        return int((await session.execute(  # type: ignore[attr-defined]
            select(func.count()).select_from(MessageTextPending))).scalar_one())
    with imap.imaps() as client:
        client.select("INBOX")
        # Found whether the indexer has written the long body yet or not: SEARCH reads it meanwhile
        assert uids_of(client.uid("SEARCH", None, "BODY", '"POTASSIUM A"')[1]) == []  # no accent folding
        assert uids_of(client.uid("SEARCH", None, "BODY", "potassium")[1]) == [1, 2]
        assert uids_of(client.uid("SEARCH", None, "BODY", '"dans les normes"')[1]) == [2]
        wait_until(lambda: imap.run(pending) == 0, timeout=30, what="the long body indexed")
        assert uids_of(client.uid("SEARCH", None, "BODY", "potassium")[1]) == [1, 2]
        assert uids_of(client.uid("SEARCH", None, "BODY", '"dans les normes"')[1]) == [2]
        assert uids_of(client.uid("SEARCH", None, "TEXT", "Long")[1]) == [2]
