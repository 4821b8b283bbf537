"""Pro Santé Connect login (OpenID Connect code flow with PKCE) against the PSC simulator in this event loop:
a professional with a console account gets a session; a PSC identity with no account, a callback from another
browser, and a replayed state get nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support.console import ConsoleServer, get, start_console, stop_console, write_config
from support.pki import PKIFiles

from gateway.psc.simulator import DEFAULT_DATA, Simulator, load_data, server_context
from gateway.web.app import SESSION_COOKIE

MARCEL = "801234534765"


@pytest.fixture
async def psc(tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> AsyncIterator[tuple[ConsoleServer, Simulator]]:
    simulator = Simulator(*load_data(DEFAULT_DATA))
    await simulator.start("127.0.0.1", 0, server_context(pki.server_cert, pki.server_key))
    folder = tmp_path / "gw"
    path = write_config(folder, pki, sqlite_url)
    text = path.read_text(encoding="utf-8")
    port = text.split('[web]\nlisten = "127.0.0.1:')[1].split('"')[0]
    path.write_text(text + f"""
[web.oidc]
issuer = "{simulator.issuer}"
client_id = "web-console"
client_secret = "web-console-dev-secret"
public_url = "https://127.0.0.1:{port}"
ca_file = "{pki.ca_bundle}"
subject_claim = "preferred_username"
""", encoding="utf-8")
    server = await start_console(path, pki)
    yield server, simulator
    await stop_console(server)
    await simulator.stop()


async def authorize(client, who: str) -> str:  # type: ignore[no-untyped-def]
    """Our redirect to the provider, then the provider's (``login_hint`` stands for the person's click)."""
    status, _, response = await get(client, "/connexion/psc", follow=False)
    assert status == 303
    target = response.headers["Location"]
    query = parse_qs(urlsplit(target).query)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert query["client_id"] == ["web-console"] and "nonce" in query and "state" in query
    async with client.get(f"{target}&{urlencode({'login_hint': who})}", allow_redirects=False) as answer:
        assert answer.status in (302, 303)
        return str(answer.headers["Location"])


async def test_a_professional_with_an_account_logs_in_through_psc(psc: tuple[ConsoleServer, Simulator]) -> None:
    console, _ = psc
    await console.add_user("dmp", "marcel", password=None, psc_id=MARCEL)
    async with console.client() as client:
        callback = await authorize(client, "marcel")
        assert callback.startswith(console.url + "/connexion/psc/retour?")
        status, page, _ = await get(client, callback)
        assert status == 200 and 'data-suivre="1"' in page
        assert any(c.key == SESSION_COOKIE for c in client.cookie_jar)
        status, page, _ = await get(client, "/dmp")
        assert status == 200 and "Personne marcel" in page
    login = (await console.events("console.login"))[-1]
    assert (login.outcome, login.actor, login.detail["method"]) == ("ok", "console:marcel", "psc")


async def test_a_psc_identity_without_a_console_account_is_refused(psc: tuple[ConsoleServer, Simulator]) -> None:
    console, _ = psc
    async with console.client() as client:
        callback = await authorize(client, "jean")
        status, text, _ = await get(client, callback)
        assert status == 403 and "pas de compte" in text
        assert (await get(client, "/a-classer", follow=False))[0] == 303
    assert (await console.events("console.login"))[-1].outcome == "refused"


async def test_a_callback_in_another_browser_or_replayed_is_refused(psc: tuple[ConsoleServer, Simulator]) -> None:
    console, _ = psc
    await console.add_user("dmp", "marcel", password=None, psc_id=MARCEL)
    async with console.client() as client:
        callback = await authorize(client, "marcel")
    async with console.client() as other:  # no login cookie of ours: the state was not started here
        status, _, _ = await get(other, callback)
        assert status == 403
    async with console.client() as client:
        callback = await authorize(client, "marcel")
        assert (await get(client, callback))[0] == 200
        client.cookie_jar.clear_domain("127.0.0.1")
        status, _, _ = await get(client, callback)  # the state is used up (and the cookie gone)
        assert status == 403
