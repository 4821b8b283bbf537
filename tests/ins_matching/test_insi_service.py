"""INSi as a real interface (R9): ``gateway identity insi`` with ``[insi] mode = "service"`` asks
``gateway insi-simulator``, a separate process, over mutual TLS: found, none, several, an obsolete matricule
moved to its principal one (R8), the service down or answering garbage (the identity unchanged, the error traced),
a client without a certificate refused; identities a structure adds from a file; ``[insi]`` checked at start."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from support.store import Store

from gateway.config import ConfigError, load
from gateway.ins_matching import insi_messages as m
from gateway.ins_matching.identities import Traits
from gateway.ins_matching.insi import HOMONYM_A, OBSOLETE_MATRICULE, PRINCIPAL, TEST_PATIENT
from gateway.ins_matching.insi_client import InsiClient, InsiUnavailable, client_context
from gateway.pki import DevelopmentPKI

#: A test identity a structure adds in its own file (checksum-valid NIR of the test series).
ADDED = ("269054958815780", "DUPONT", "MARIE CLAIRE", "1969-05-12", "F", "49588")
CLI = [sys.executable, "-m", "gateway.cli"]


@dataclass
class Insi:
    url: str
    folder: Path
    process: subprocess.Popen[str]


def _start(folder: Path, *extra: str) -> Insi:
    pki = DevelopmentPKI.load(folder / "pki")
    server = folder / "pki" / "insi.crt"
    if not server.exists():
        pki.server("insi.test").write(server, folder / "pki" / "insi.key")
    process = subprocess.Popen(
        [*CLI, "insi-simulator", "--listen", "127.0.0.1:0", "--certificate", str(server),
         "--key", str(folder / "pki" / "insi.key"), "--ca", str(folder / "pki" / "ca-bundle.crt"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "listening on" in line or not line:
            break
    assert "listening on" in line, line
    return Insi(line.split("listening on ", 1)[1].split()[0], folder, process)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A development configuration (store, PKI) with the structure's INSi client certificate, and a file of
    identities the structure adds."""
    from gateway.devsetup import write_config, write_pki

    pki = write_pki(tmp_path / "pki", "mail.gateway.test")
    pki.software("structure-insi").write(tmp_path / "pki" / "insi-client.crt", tmp_path / "pki" / "insi-client.key")
    config = write_config(tmp_path)
    matricule, name, first, born, sex, place = ADDED
    people = tmp_path / "structure-identities.toml"
    people.write_text(f'[[person]]\nmatricule = "{matricule}"\noid = "1.2.250.1.213.1.4.10"\nbirth_name = "{name}"\n'
                      f'first_names = "{first}"\nbirth_date = "{born}"\nsex = "{sex}"\nbirth_place = "{place}"\n')
    yield config, people


def _with_service(config: Path, url: str) -> None:
    base = config.read_text()
    if "[insi]" in base:
        base = base.split("\n[insi]", 1)[0]
    config.write_text(base + f'\n[insi]\nmode = "service"\nurl = "{url}"\nclient_certificate = "pki/insi-client.crt"\n'
                      'client_key = "pki/insi-client.key"\nca_file = "pki/ca-bundle.crt"\ntimeout = 3\n')


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--config", str(config)], capture_output=True, text=True, timeout=60)


def _add(config: Path, matricule: str, t: Traits) -> None:
    done = _run(config, "identity", "add", "--matricule", matricule, "--oid", "1.2.250.1.213.1.4.10", "--birth-name",
                t.birth_name, "--first-names", t.first_names, "--birth-date", t.birth_date, "--sex", t.sex,
                "--birth-place", t.birth_place)
    assert done.returncode == 0, done.stderr


def _store(config: Path) -> Store:
    return Store(f"sqlite+aiosqlite:///{config.parent / 'gateway.sqlite3'}")


@pytest.mark.slow  # starts a process
def test_identity_insi_asks_the_service_over_mutual_tls_found_none_several_and_obsolete(setup) -> None:  # type: ignore[no-untyped-def]
    config, people = setup
    insi = _start(config.parent, "--identities", str(people))
    try:
        _with_service(config, insi.url)
        _add(config, TEST_PATIENT.matricule, TEST_PATIENT.traits)                       # 1: found
        _add(config, HOMONYM_A.matricule, Traits("DURAND", "PAUL", "1980-07-01", "M", "75112"))  # 2: none
        _add(config, OBSOLETE_MATRICULE, PRINCIPAL.traits)                              # 3: obsolete → principal
        _add(config, ADDED[0], Traits(*ADDED[1:]))                                     # 4: from the structure's file
        assert "found; identity 1 is now récupérée" in _run(config, "identity", "insi", "1").stdout
        assert "none; identity 2 is now provisoire" in _run(config, "identity", "insi", "2").stdout
        moved = _run(config, "identity", "insi", "3")
        assert moved.returncode == 0 and "obsolete" in moved.stdout, moved.stderr
        assert "found; identity 4 is now récupérée" in _run(config, "identity", "insi", "4").stdout
        listing = _run(config, "identity", "list", "--json").stdout
        assert f'"replaced_by": "{PRINCIPAL.matricule}"' in listing
        assert [e.outcome for e in _store(config).events("identity.insi")] == ["found", "none", "found", "found"]
    finally:
        insi.process.terminate()
        insi.process.wait(10)


@pytest.mark.slow  # starts a process
async def test_the_client_reads_several_and_the_carte_vitale_search(setup) -> None:  # type: ignore[no-untyped-def]
    config, _ = setup
    insi = _start(config.parent)
    try:
        pki = config.parent / "pki"
        client = InsiClient(insi.url, client_context(str(pki / "insi-client.crt"), str(pki / "insi-client.key"),
                                                     str(pki / "ca-bundle.crt")), 5)
        assert (await client.search(HOMONYM_A.traits)).outcome == "several"
        found = await client.search(Traits("pat-trois", "Dominique Marie-Louise", "1979-03-28", "F", "51215"))
        assert found.outcome == "found" and found.identity is not None
        assert found.identity.matricule == TEST_PATIENT.matricule
        card = await client.search_by_card(TEST_PATIENT.matricule, TEST_PATIENT.traits.birth_date)
        assert card.outcome == "found"
        assert (await client.search_by_card(TEST_PATIENT.matricule, "1980-01-01")).outcome == "none"
        anonymous = InsiClient(insi.url, _no_certificate(pki / "ca-bundle.crt"), 5)
        with pytest.raises(InsiUnavailable):  # mutual TLS: no certificate, no answer
            await anonymous.search(TEST_PATIENT.traits)
    finally:
        insi.process.terminate()
        insi.process.wait(10)


def _no_certificate(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("fault", ["unavailable", "garbled", "fault", None])
def test_a_service_down_leaves_the_identity_unchanged_and_traces_the_error(setup, fault: str | None) -> None:  # type: ignore[no-untyped-def]
    config, _ = setup
    _add(config, TEST_PATIENT.matricule, TEST_PATIENT.traits)
    insi = None
    if fault is None:  # nothing listens at all
        _with_service(config, "https://127.0.0.1:9/insi")
    else:
        insi = _start(config.parent, "--fault", f"{fault}:5")
        _with_service(config, insi.url)
    try:
        done = _run(config, "identity", "insi", "1")
        assert done.returncode == 1 and "unchanged" in done.stderr and "Traceback" not in done.stderr, done.stderr
        shown = _run(config, "identity", "show", "1", "--json").stdout
        assert '"status": "provisoire"' in shown and '"evidence": []' in shown
        (event,) = _store(config).events("identity.insi")
        assert event.outcome == "unavailable" and event.rule == "R9" and event.detail["error"]
    finally:
        if insi is not None:
            insi.process.terminate()
            insi.process.wait(10)


@pytest.mark.parametrize("text, key", [
    ('mode = "national"', "insi.mode"),
    ('mode = "service"\nurl = "http://insi.test"', "insi.url"),
    ('mode = "service"\nurl = "https://insi.test"', "insi.client_certificate"),
    ('mode = "service"\nurl = "https://insi.test"\nclient_certificate = "nope.crt"\nclient_key = "x"\n'
     'ca_file = "y"', "insi.client_certificate"),
    ('color = "blue"', "insi.color"),
])
def test_a_wrong_insi_setting_stops_the_start_naming_its_key(setup, text: str, key: str) -> None:  # type: ignore[no-untyped-def]
    config, _ = setup
    config.write_text(config.read_text() + f"\n[insi]\n{text}\n")
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        load(config)


def test_insi_messages_are_bounded_and_refuse_what_is_not_an_operation() -> None:
    with pytest.raises(m.InsiMessageError):
        m.parse(b"<x/>" * (m.MAX_MESSAGE // 4 + 1))
    with pytest.raises(m.InsiMessageError):
        m.read_request(m.parse(m.envelope(etree.Element(f"{{{m.NS_INSI}}}supprimerIns"))))
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(m.InsiMessageError):
        m.parse(bomb)
    ans = m.Answer(m.CR_FOUND, m.Person(PRINCIPAL.matricule, PRINCIPAL.oid, PRINCIPAL.traits), (OBSOLETE_MATRICULE,))
    read = m.read_answer(m.parse(m.answer(m.OP_VERIFY, ans)), m.OP_VERIFY)
    assert read == ans
