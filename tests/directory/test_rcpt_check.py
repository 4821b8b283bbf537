"""The optional RCPT check (``[directory] check_recipients``) through a real gateway and smtplib, on SQLite and
PostgreSQL: a remote MSSanté address the Annuaire Santé does not publish is refused with 550 5.1.1 when the
check is on, accepted when it is off (the default), and a directory that cannot answer does not stop mail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from directory.directory_support import SimulatorProcess
from support.pki import PKIFiles
from support.process import free_port
from support.relay import OperatorProcess, write_whitelist
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SENDER = "dr.house@pro.a.test"
PUBLISHED = "sophie.martin@pro.b.test"
UNPUBLISHED = "nobody@pro.b.test"
RED_LISTED = "claire.soignant@pro.b.test"


def _gateway(tmp_path: Path, pki: PKIFiles, store_url: str, annuaire: SimulatorProcess, check: bool | None,
             base_url: str | None = None) -> OperatorProcess:
    setting = "" if check is None else f"check_recipients = {'true' if check else 'false'}"
    extra = (f'[directory]\nbase_url = "{base_url or annuaire.base_url}"\napi_key_file = "{annuaire.key_path}"\n'
             f'ca_file = "{pki.ca_bundle}"\ntimeout = 2\n{setting}\n')
    whitelist = write_whitelist(tmp_path)
    gw = OperatorProcess(tmp_path / "a", pki, store_url, "a", relay_port=free_port(), whitelist=whitelist,
                         routes={"b": free_port()}, extra=extra)
    Store(store_url).add_mailbox(SENDER)
    return gw


@pytest.fixture
def started() -> Iterator[list[OperatorProcess]]:
    running: list[OperatorProcess] = []
    yield running
    for gw in running:
        gw.stop()


def _rcpt(gw: OperatorProcess, address: str) -> tuple[int, bytes]:
    with gw.smtp(SENDER) as client:
        client.mail(SENDER)
        code, text = client.rcpt(address)
        client.rset()
        return code, text


def test_rcpt_check_on_refuses_an_unpublished_remote_address_with_5_1_1(
        tmp_path: Path, pki: PKIFiles, store_url: str, annuaire: SimulatorProcess,
        started: list[OperatorProcess]) -> None:
    gw = _gateway(tmp_path, pki, store_url, annuaire, check=True)
    started.append(gw.start())
    assert _rcpt(gw, PUBLISHED)[0] == 250
    code, text = _rcpt(gw, UNPUBLISHED)
    assert code == 550 and text.startswith(b"5.1.1") and b"not published in the Annuaire Sante" in text
    assert _rcpt(gw, RED_LISTED)[0] == 550  # a red-listed mailbox is not published


def test_rcpt_check_off_by_default_accepts_what_the_whitelist_allows(
        tmp_path: Path, pki: PKIFiles, store_url: str, annuaire: SimulatorProcess,
        started: list[OperatorProcess]) -> None:
    gw = _gateway(tmp_path, pki, store_url, annuaire, check=None)
    started.append(gw.start())
    assert _rcpt(gw, UNPUBLISHED)[0] == 250


def test_rcpt_check_with_the_directory_unreachable_accepts(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str, annuaire: SimulatorProcess,
        started: list[OperatorProcess]) -> None:
    gw = _gateway(tmp_path, pki, sqlite_url, annuaire, check=True,
                  base_url=f"https://127.0.0.1:{free_port()}/fhir/v2")
    started.append(gw.start())
    assert _rcpt(gw, UNPUBLISHED)[0] == 250
    gw.wait_log("directory.rcpt_check")


def test_rcpt_check_leaves_local_recipients_alone(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str, annuaire: SimulatorProcess,
        started: list[OperatorProcess]) -> None:
    gw = _gateway(tmp_path, pki, sqlite_url, annuaire, check=True)
    Store(sqlite_url).add_mailbox("colleague@pro.a.test")
    started.append(gw.start())
    requests_before = annuaire_requests(annuaire)
    assert _rcpt(gw, "colleague@pro.a.test")[0] == 250
    assert annuaire_requests(annuaire) == requests_before


def annuaire_requests(annuaire: SimulatorProcess) -> int:
    """The simulator's request count (its admin endpoint answers it with an empty fault list)."""
    import http.client
    import json

    from directory.directory_support import API_KEY

    from gateway.directory.client import API_KEY_HEADER

    connection = http.client.HTTPSConnection("127.0.0.1", annuaire.port, context=annuaire.context(), timeout=10)
    try:
        connection.request("POST", "/_admin/fault", json.dumps({"mode": "down", "count": 0}),
                           {API_KEY_HEADER: API_KEY, "Content-Type": "application/json"})
        return int(json.loads(connection.getresponse().read())["requests"])
    finally:
        connection.close()


