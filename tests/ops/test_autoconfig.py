"""Mail-client autoconfiguration: Thunderbird's config-v1.1 and Outlook's Autodiscover, parsed with lxml and
checked against the configured listeners; hostile and foreign requests get precise refusals."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from lxml import etree
from ops.ops_support import PATIENT, PRO, free_port, make_config, running
from support.pki import HOSTNAME, PKIFiles

from gateway.config import ConfigError
from gateway.ops import autoconfig

NS = {"r": autoconfig.RESPONSE_NS, "o": autoconfig.OUTLOOK_NS}
PATIENT_ADDRESS = f"279035121518989@{PATIENT}"


def _request(address: str, schema: str = autoconfig.OUTLOOK_NS) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>'
            f'<Autodiscover xmlns="{autoconfig.REQUEST_NS}"><Request><EMailAddress>{address}</EMailAddress>'
            f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request></Autodiscover>").encode()


def _servers(document: bytes) -> list[tuple[str, str, str, str, str, str]]:
    root = etree.fromstring(document)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    found = []
    for server in root.iterfind("emailProvider/*[@type]"):
        found.append((server.tag, server.get("type"), server.findtext("hostname"), server.findtext("port"),
                      server.findtext("socketType"), server.findtext("authentication") + "|"
                      + server.findtext("username")))
    return found


async def test_thunderbird_config_lists_implicit_tls_first_with_the_address_as_user_name(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path, autoconfig={"display_name": "Clinique Test"})
    async with running(config) as gw:
        status, body, headers = await gw.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                                             headers={"Host": f"autoconfig.{PRO}"})
        assert status == 200 and headers["Content-Type"].startswith("application/xml")
        document = body.encode()
        status2, body2, _ = await gw.get("/mail/config-v1.1.xml", params={"emailaddress": PATIENT_ADDRESS})
    assert _servers(document) == [
        ("incomingServer", "imap", HOSTNAME, "2993", "SSL", "password-cleartext|%EMAILADDRESS%"),
        ("incomingServer", "imap", HOSTNAME, "2143", "STARTTLS", "password-cleartext|%EMAILADDRESS%"),
        ("outgoingServer", "smtp", HOSTNAME, "2465", "SSL", "password-cleartext|%EMAILADDRESS%"),
        ("outgoingServer", "smtp", HOSTNAME, "2587", "STARTTLS", "password-cleartext|%EMAILADDRESS%"),
    ]
    root = etree.fromstring(document)
    assert root.find("emailProvider").get("id") == PRO
    assert [d.text for d in root.iterfind("emailProvider/domain")] == ["lab.gateway.test", PRO, PATIENT]
    assert root.findtext("emailProvider/displayShortName") == "Clinique Test"
    assert status2 == 200 and etree.fromstring(body2.encode()).find("emailProvider").get("id") == PATIENT
    assert "279035121518989" not in body2  # the placeholder, never the INS back


async def test_thunderbird_offers_only_configured_listeners(tmp_path: Path, pki: PKIFiles,
                                                            migrated_sqlite: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path, autoconfig={},
                         smtp={"submissions": "127.0.0.1:2465"}, imap={"listen_tls": "127.0.0.1:2993"})
    async with running(config) as gw:
        _, body, _ = await gw.get("/mail/config-v1.1.xml")
    assert [(s[1], s[4]) for s in _servers(body.encode())] == [("imap", "SSL"), ("smtp", "SSL")]


async def test_thunderbird_refuses_an_address_of_another_domain_or_malformed(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path, autoconfig={})
    async with running(config) as gw:
        for address in ("someone@elsewhere.example", "no-at-sign", "a@b@" + PRO, "x" * 400 + "@" + PRO,
                        f"<a>@{PRO}"):
            status, body, _ = await gw.get("/mail/config-v1.1.xml", params={"emailaddress": address})
            assert (status, body) == (404, "This address is not served here.\n"), address


async def test_outlook_autodiscover_answers_imap_and_smtp_settings_for_our_address(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path, autoconfig={})
    address = f"dr.martin@{PRO}"
    async with running(config) as gw:
        for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
            async with gw.client.post(gw.url(path), data=_request(address),
                                      headers={"Content-Type": "text/xml"}) as response:
                assert response.status == 200 and response.content_type == "text/xml"
                root = etree.fromstring(await response.read())
        async with gw.client.get(gw.url("/autodiscover/autodiscover.xml")) as response:
            assert response.status == 405
    assert root.tag == f"{{{autoconfig.RESPONSE_NS}}}Autodiscover"
    account = root.find("o:Response/o:Account", NS)
    assert account.findtext("o:AccountType", namespaces=NS) == "email"
    assert account.findtext("o:Action", namespaces=NS) == "settings"
    protocols = [(p.findtext("o:Type", namespaces=NS), p.findtext("o:Server", namespaces=NS),
                  p.findtext("o:Port", namespaces=NS), p.findtext("o:Encryption", namespaces=NS),
                  p.findtext("o:LoginName", namespaces=NS), p.findtext("o:SPA", namespaces=NS),
                  p.findtext("o:AuthRequired", namespaces=NS)) for p in account.iterfind("o:Protocol", NS)]
    assert protocols == [
        ("IMAP", HOSTNAME, "2993", "SSL", address, "off", "on"),
        ("IMAP", HOSTNAME, "2143", "TLS", address, "off", "on"),
        ("SMTP", HOSTNAME, "2465", "SSL", address, "off", "on"),
        ("SMTP", HOSTNAME, "2587", "TLS", address, "off", "on"),
    ]


@pytest.mark.parametrize(("body", "status", "code"), [
    (_request("someone@elsewhere.example"), 404, "600"),
    (_request(f"dr.martin@{PRO}", "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/"
                                  "responseschema/2006"), 200, "601"),
    (b"<Autodiscover><Request>", 400, "600"),
    (b"<Other/>", 400, "600"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
     b'<Autodiscover xmlns="' + autoconfig.REQUEST_NS.encode() + b'"><Request><EMailAddress>&e;</EMailAddress>'
     b"</Request></Autodiscover>", 400, "600"),
    (b"<a>" + b"x" * (autoconfig.MAX_REQUEST + 10) + b"</a>", 413, "600"),
])
async def test_autodiscover_refuses_foreign_unsupported_malformed_entity_and_oversized_requests(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str, body: bytes, status: int, code: str) -> None:
    config = make_config(pki, migrated_sqlite, tmp_path, autoconfig={})
    async with running(config) as gw:
        async with gw.client.post(gw.url("/autodiscover/autodiscover.xml"), data=body) as response:
            got, document = response.status, await response.read()
    assert got == status
    error = etree.fromstring(document).find("r:Response/r:Error", NS)
    assert error is not None and error.findtext("r:ErrorCode", namespaces=NS) == code
    assert b"root:" not in document


async def test_a_separate_https_autoconfig_listener_serves_no_metrics(
        tmp_path: Path, pki: PKIFiles, migrated_sqlite: str) -> None:
    port = free_port()
    config = make_config(pki, migrated_sqlite, tmp_path, autoconfig={"listen": f"127.0.0.1:{port}", "tls": True})
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    async with running(config) as gw:
        assert gw.service.autoconfig_port == port and gw.service.port != port
        base = f"https://127.0.0.1:{port}"
        async with gw.client.get(f"{base}/mail/config-v1.1.xml", ssl=context, server_hostname=HOSTNAME) as response:
            assert response.status == 200
            assert _servers(await response.read())[0][4] == "SSL"
        for path in ("/metrics", "/readyz"):
            async with gw.client.get(f"{base}{path}", ssl=context, server_hostname=HOSTNAME) as response:
                assert response.status == 404, path
        assert (await gw.get("/mail/config-v1.1.xml"))[0] == 404  # not on the metrics listener any more
        assert (await gw.get("/metrics"))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            async with gw.client.get(f"http://127.0.0.1:{port}/healthz") as response:
                await response.read()


@pytest.mark.parametrize(("tables", "message"), [
    ({"metrics": {}}, "Configuration key 'metrics.listen' is missing"),
    ({"metrics": {"listen": "9187"}}, "Configuration key 'metrics.listen' must look like 'host:port'"),
    ({"metrics": {"listen": "127.0.0.1:9187", "path": "/m"}}, "Configuration key 'metrics.path' is not a known"),
    ({"metrics": None, "autoconfig": {}}, "Configuration key 'autoconfig.listen' is missing"),
    ({"autoconfig": {"tls": True}}, "Configuration key 'autoconfig.tls' needs autoconfig.listen"),
    ({"autoconfig": {"tls": "yes", "listen": "0.0.0.0:8443"}}, "Configuration key 'autoconfig.tls' must be a bool"),
    ({"autoconfig": {"display_name": ""}}, "Configuration key 'autoconfig.display_name' must be a printable"),
])
def test_a_bad_metrics_or_autoconfig_key_is_named_in_one_sentence(
        tmp_path: Path, pki: PKIFiles, tables: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_config(pki, "sqlite+aiosqlite:///x.sqlite3", tmp_path, **tables)  # type: ignore[arg-type]


def test_without_metrics_and_autoconfig_the_sections_are_off(tmp_path: Path, pki: PKIFiles) -> None:
    config = make_config(pki, "sqlite+aiosqlite:///x.sqlite3", tmp_path, metrics=None)  # type: ignore[arg-type]
    assert config.metrics is None and config.autoconfig is None
