"""``gateway serve`` with ``[metrics]``: a scrape after real SMTP traffic shows the counters that traffic caused,
and the probes answer from the running daemon (its worker processes added up in one scrape)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.process import GatewayProcess, free_port
from support.store import Store
from support.wait import wait_until

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SENDER = "dr.metrics@pro.gateway.test"
COLLEAGUE = "dr.collegue@pro.gateway.test"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_scrape_after_submissions_counts_them_and_the_probes_answer(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    store = Store(store_url)
    store.add_mailbox(SENDER)
    store.add_mailbox(COLLEAGUE)
    port = free_port()
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, extra_config=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    gateway.start()
    try:
        assert _get(port, "/healthz")[0] == 200
        wait_until(lambda: _get(port, "/readyz")[0] == 200, 30, "/readyz to answer 200", interval=0.1)
        with gateway.smtp(SENDER) as client:
            for n in range(3):
                client.sendmail(SENDER, [COLLEAGUE], f"From: {SENDER}\r\nTo: {COLLEAGUE}\r\nSubject: {n}\r\n\r\n"
                                                     "Texte.\r\n".encode())
            client.mail(SENDER)
            code, _ = client.rcpt("279035121518988@patient.gateway.test")  # wrong key: refused (R8)
            assert code == 550
            client.rset()
        status, text = _get(port, "/metrics")
        assert status == 200
        assert _sample(text, "gateway_rule_decisions_total", rule="R8") >= 1, text
        assert _sample(text, "gateway_smtp_transactions_total", listener="submission", outcome="accepted") == 3
        assert _sample(text, "gateway_logins_total", protocol="smtp", outcome="ok") >= 1
        assert _sample(text, "gateway_store_up") == 1
        assert "279035121518988" not in text and SENDER not in text  # no address or INS in any label
    finally:
        gateway.stop()
