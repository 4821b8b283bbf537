"""The national whitelist: namespace, Unicode names as IDNA, hostile XML refused, last good copy kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.relay import whitelist_xml

from gateway.config import TrustedDomains, WhitelistSettings
from gateway.trust.whitelist import WhitelistError, WhitelistLoader, covering_domain, idna_domain, parse

NS = "https://listeblanche.mssante.fr/schema"


def test_domains_are_read_from_domaine_nom_in_the_namespace():
    xml = (f'<ListeBlanche xmlns="{NS}"><Domaine><Nom>CH-Exemple.MSSante.fr.</Nom></Domaine>'
           "<Domaine><Nom> labo.test </Nom><Autre><Nom>ignored.test</Nom></Autre></Domaine>"
           '<Nom xmlns="urn:other">other.test</Nom></ListeBlanche>').encode()
    assert parse(xml) == frozenset({"ch-exemple.mssante.fr", "labo.test"})


def test_unicode_domain_names_become_idna():
    assert parse(whitelist_xml(["clinique-épinal.test"])) == frozenset({"xn--clinique-pinal-jkb.test"})
    assert idna_domain("hôpital.fr") == "xn--hpital-ixa.fr"


@pytest.mark.parametrize("name", ["", "localhost", "a..b", "bad domain.test", "-x.test", "x" * 64 + ".test"])
def test_names_that_are_not_domains_are_skipped(name: str):
    assert idna_domain(name) is None


def test_names_outside_the_namespace_do_not_count():
    with pytest.raises(WhitelistError, match="no valid domain"):
        parse(b"<ListeBlanche><Domaine><Nom>a.test</Nom></Domaine></ListeBlanche>")


def test_entities_and_dtds_are_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<ListeBlanche xmlns="' + NS.encode() + b'"><Domaine><Nom>&b;.test</Nom></Domaine></ListeBlanche>')
    with pytest.raises(WhitelistError):
        parse(bomb)
    external = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
                b'<ListeBlanche xmlns="' + NS.encode() + b'"><Domaine><Nom>&x;</Nom></Domaine></ListeBlanche>')
    with pytest.raises(WhitelistError):
        parse(external)


def test_size_is_bounded():
    with pytest.raises(WhitelistError, match="larger"):
        parse(whitelist_xml(["a.test"] * 1000), max_size=1000)


def test_malformed_xml_is_refused():
    with pytest.raises(WhitelistError, match="well-formed"):
        parse(b"<ListeBlanche><Domaine>")


def test_covering_domain_walks_up_the_labels():
    domains = frozenset({"b.test"})
    assert covering_domain("mx.b.test", domains) == "b.test"
    assert covering_domain("b.test", domains) == "b.test"
    assert covering_domain("evilb.test", domains) is None
    assert covering_domain("b.test.evil", domains) is None


async def test_a_failed_refresh_keeps_the_last_good_list(tmp_path: Path):
    source, cache = tmp_path / "wl.xml", tmp_path / "cache" / "wl.xml"
    source.write_bytes(whitelist_xml(["a.test", "b.test"]))
    trusted = TrustedDomains()
    loader = WhitelistLoader(WhitelistSettings(str(source), cache=cache), trusted)
    assert await loader.refresh()
    assert trusted.domains == {"a.test", "b.test"} and cache.read_bytes() == source.read_bytes()
    for broken in (b"<not xml", b"<ListeBlanche/>"):
        source.write_bytes(broken)
        assert not await loader.refresh()
        assert trusted.domains == {"a.test", "b.test"}
    source.unlink()
    assert not await loader.refresh()
    assert "b.test" in trusted and loader.failures == 3
    source.write_bytes(whitelist_xml(["c.test"]))
    assert await loader.refresh() and trusted.domains == {"c.test"}


async def test_a_restart_with_the_source_down_uses_the_cached_copy(tmp_path: Path):
    cache = tmp_path / "wl-cache.xml"
    cache.write_bytes(whitelist_xml(["cached.test"]))
    trusted = TrustedDomains()
    loader = WhitelistLoader(WhitelistSettings(str(tmp_path / "missing.xml"), cache=cache), trusted)
    await loader.start()
    try:
        assert "cached.test" in trusted
    finally:
        await loader.stop()


async def test_periodic_refresh_picks_up_changes(tmp_path: Path):
    source = tmp_path / "wl.xml"
    source.write_bytes(whitelist_xml(["a.test"]))
    trusted = TrustedDomains()
    loader = WhitelistLoader(WhitelistSettings(str(source), refresh_interval=0.05), trusted)
    await loader.start()
    try:
        source.write_bytes(whitelist_xml(["new.test"]))
        async with asyncio.timeout(10):
            while "new.test" not in trusted:
                await asyncio.sleep(0.02)
    finally:
        await loader.stop()


async def test_whitelist_from_an_https_url(tmp_path: Path, pki: PKIFiles, monkeypatch: pytest.MonkeyPatch):
    """Fetched over verified TLS (system trust store; here the test CA via SSL_CERT_FILE), size-bounded."""
    import http.server
    import ssl
    import threading

    payload = {"body": whitelist_xml(["url.test"])}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(payload["body"])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_bundle))
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/liste-blanche.xml"
        trusted = TrustedDomains()
        loader = WhitelistLoader(WhitelistSettings(url, max_size=4096), trusted)
        assert await loader.refresh() and trusted.domains == {"url.test"}
        payload["body"] = whitelist_xml(["big.test"] * 500)  # larger than max_size: refused, last good kept
        assert not await loader.refresh() and trusted.domains == {"url.test"}
    finally:
        server.shutdown()
