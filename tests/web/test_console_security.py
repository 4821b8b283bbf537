"""The console's gate: no page or action without a session (R18 needs a person), CSRF on every form, signed
session cookies (another instance's secret is refused), 30-minute idle expiry, the CSP, TLS ≥ 1.2, the login
throttle, and a patient's mailbox credentials opening nothing."""

from __future__ import annotations

import ssl
import warnings
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update
from support.console import (
    PASSWORD,
    ConsoleServer,
    csrf_of,
    get,
    login,
    post,
    start_console,
    stop_console,
    write_config,
)
from support.pki import HOSTNAME, PKIFiles

from gateway.web.app import CSP, SESSION_COOKIE
from gateway.web.models import ConsoleSession

PAGES = ["/", "/a-classer", "/a-classer/1", "/a-classer/1/pdf", "/dossiers", "/dossiers/1", "/documents/1/cda",
         "/dmp", "/dmp/1", "/identites", "/conversations", "/boites", "/tableau-de-bord", "/journal",
         "/journal.csv"]
ACTIONS = ["/a-classer/1/classer", "/a-classer/1/rejeter", "/identites", "/identites/1/insi", "/dmp/1/relancer",
           "/dmp/confirmer", "/boites/1/actif", "/conversations/1/reponses", "/deconnexion"]


async def test_no_page_opens_without_a_session(console: ConsoleServer) -> None:
    async with console.client() as client:
        for path in PAGES:
            status, _, response = await get(client, path, follow=False)
            assert status == 303 and response.headers["Location"] == "/connexion", path
        status, text, _ = await get(client, "/connexion")
        assert status == 200 and 'name="mot_de_passe"' in text


async def test_no_action_is_accepted_without_a_session(console: ConsoleServer) -> None:
    async with console.client() as client:
        for path in ACTIONS:
            status, _, _ = await post(client, path, {"csrf": "x", "identite": "1", "motif": "m"}, follow=False)
            assert status == 401, path


async def test_local_login_needs_password_and_totp(console: ConsoleServer) -> None:
    user = await console.add_user("secretariat")
    async with console.client() as client:
        assert (await login(client, user, code="000000"))[0] == 401
        assert (await login(client, user, password="pas-le-bon-mot-de-passe"))[0] == 401
        status, text = await login(client, user)
        assert status == 200 and "À classer" in text and user.username in text
    events = await console.events("console.login")
    assert [e.outcome for e in events] == ["refused", "refused", "ok"]
    assert events[-1].actor == f"console:{user.username}"


async def test_every_response_carries_the_csp_and_the_cookie_is_secure(console: ConsoleServer) -> None:
    user = await console.add_user("admin")
    async with console.client() as client:
        _, page, response = await get(client, "/connexion")
        assert response.headers["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert "<script>" not in page and "style=" not in page and " on" not in page.replace(" one", "")
        async with client.post("/connexion", server_hostname=HOSTNAME, allow_redirects=False, data={
                "csrf": csrf_of(page), "identifiant": user.username, "mot_de_passe": PASSWORD,
                "code": user.code()}) as answer:
            assert answer.status == 303
            cookie = answer.cookies[SESSION_COOKIE]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
        for path in [*PAGES[:2], "/boites", "/tableau-de-bord", "/journal"]:
            status, text, response = await get(client, path)
            assert status == 200, path
            assert response.headers["Content-Security-Policy"] == CSP
            assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
            assert "<script>" not in text and 'style="' not in text


async def test_a_form_without_the_session_csrf_token_is_refused(console: ConsoleServer) -> None:
    user = await console.add_user("admin")
    async with console.client() as client:
        await login(client, user)
        for data in ({}, {"csrf": "forged"}):
            status, _, _ = await post(client, "/identites", {**data, "matricule": "279035121518989"}, follow=False)
            assert status == 403
        _, page, _ = await get(client, "/identites")
        status, _, _ = await post(client, "/identites", {"csrf": csrf_of(page), "matricule": "1"}, follow=False)
        assert status == 303  # accepted as a form (and refused as an identity, with a sentence)
        _, page, _ = await get(client, "/identites")
        assert "Identité refusée" in page


async def test_the_login_form_needs_its_own_csrf_token(console: ConsoleServer) -> None:
    user = await console.add_user("admin")
    async with console.client() as client:
        status, _, _ = await post(client, "/connexion", {"identifiant": user.username, "mot_de_passe": PASSWORD,
                                                         "code": user.code()}, follow=False)
        assert status == 403


async def test_instances_on_one_store_share_sessions_and_refuse_another_secret(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    """Several gateway instances on one store (SQLite file or PostgreSQL): a session opened on one is open on
    any other with the same secret, and a cookie signed with another instance's secret opens nothing."""
    first = await start_console(write_config(tmp_path / "first", pki, store_url), pki)
    same = await start_console(write_config(tmp_path / "same", pki, store_url), pki)
    other = await start_console(write_config(tmp_path / "other", pki, store_url,
                                             secret="un-autre-secret-d-une-autre-instance-9876543210"), pki)
    try:
        user = await first.add_user("secretariat")
        async with first.client() as client:
            await login(client, user)
            cookie = next(c for c in client.cookie_jar if c.key == SESSION_COOKIE).value
        async with other.client() as client:
            client.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
            status, _, _ = await get(client, "/a-classer", follow=False)
            assert status == 303
        async with same.client() as client:
            client.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
            status, page, _ = await get(client, "/a-classer", follow=False)
            assert status == 200 and user.username in page
            _, page, _ = await post(client, "/deconnexion", {"csrf": csrf_of(page)}, follow=False)
        async with first.client() as client:  # logged out on one instance: out everywhere
            client.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
            assert (await get(client, "/a-classer", follow=False))[0] == 303
    finally:
        for server in (first, same, other):
            await stop_console(server)


async def test_a_session_idle_for_thirty_minutes_is_over(console: ConsoleServer) -> None:
    assert console.config.web is not None and console.config.web.idle_timeout == 1800
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        async with console.sessions() as session, session.begin():
            row = (await session.execute(select(ConsoleSession))).scalar_one()
            await session.execute(update(ConsoleSession).values(last_seen=row.last_seen - timedelta(minutes=29)))
        assert (await get(client, "/a-classer", follow=False))[0] == 200  # used: the idle clock starts again
        async with console.sessions() as session, session.begin():
            row = (await session.execute(select(ConsoleSession))).scalar_one()
            await session.execute(update(ConsoleSession).values(last_seen=row.last_seen - timedelta(minutes=31)))
        status, _, response = await get(client, "/a-classer", follow=False)
        assert status == 303 and response.headers["Location"] == "/connexion"
    async with console.sessions() as session:
        assert (await session.execute(select(ConsoleSession))).first() is None


async def test_a_patient_mailbox_credentials_do_not_open_the_console(console: ConsoleServer) -> None:
    await console.add_mailbox("279035121518989@patient.gateway.test", "PAT")
    await console.add_mailbox("docteur@pro.gateway.test", "PER")
    async with console.client() as client:
        _, page, _ = await get(client, "/connexion")
        for name in ("279035121518989@patient.gateway.test", "279035121518989", "docteur@pro.gateway.test"):
            status, text, _ = await post(client, "/connexion", {"csrf": csrf_of(page), "identifiant": name,
                                                                "mot_de_passe": PASSWORD, "code": "123456"})
            assert status == 401 and "incorrect" in text
            page = text
        assert (await get(client, "/a-classer", follow=False))[0] == 303


async def test_failed_logins_are_throttled_in_the_store(console: ConsoleServer) -> None:
    user = await console.add_user("secretariat")
    async with console.client() as client:
        for _ in range(3):  # failed_logins = 3 in the test configuration
            assert (await login(client, user, code="000000"))[0] == 401
        status, text = await login(client, user)
        assert status == 429 and "essais manqués" in text


async def test_a_secretary_cannot_open_boites_nor_act_on_mailboxes(console: ConsoleServer) -> None:
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        status, text, _ = await get(client, "/boites")
        assert status == 403 and "Accès refusé" in text and 'href="/boites"' not in text
        _, page, _ = await get(client, "/a-classer")
        status, _, _ = await post(client, "/boites/1/actif", {"csrf": csrf_of(page), "actif": "0"}, follow=False)
        assert status == 403
        assert (await get(client, "/journal"))[0] == 403


async def test_disabling_an_account_ends_its_sessions(console: ConsoleServer) -> None:
    from gateway.web import accounts

    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        async with console.sessions() as session, session.begin():
            await accounts.set_active(session, user.username, False, "test")
        assert (await get(client, "/a-classer", follow=False))[0] == 303


async def test_the_listener_refuses_tls_below_1_2(console: ConsoleServer) -> None:
    context = ssl.create_default_context(cafile=str(console.pki.ca_bundle))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the point is to offer what is deprecated
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    async with aiohttp.ClientSession(console.url, connector=aiohttp.TCPConnector(ssl=context)) as client:
        with pytest.raises(aiohttp.ClientError):
            await get(client, "/connexion")
