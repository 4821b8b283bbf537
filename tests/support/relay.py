"""Two (or more) operators for relay tests: gateway processes with their own domains, stores and certificates.

Each :class:`OperatorProcess` is a real ``gateway serve`` (see :class:`support.process.GatewayProcess`) whose
configuration names its own domains (``pro.<name>.test``, ``patient.<name>.test``), an operator certificate
from the shared test PKI, a relay listener, the whitelist file and static routes to the other operators.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.pki import Issued
from gateway.store.models import OutboundRecipient
from support.pki import PKIFiles
from support.postgres import databases
from support.process import GatewayProcess, accepts, free_port
from support.store import Store
from support.wait import wait_until

T = TypeVar("T")
WHITELIST_NS = "https://listeblanche.mssante.fr/schema"

CONFIG = """\
[gateway]
hostname = "mx.{name}.test"
domains = ["pro.{name}.test"]
patient_domain = "patient.{name}.test"
log_level = "{log_level}"

[database]
url = "{url}"

[tls]
certificate = "{cert}"
private_key = "{key}"
client_ca = "{ca}"

[smtp]
submission = "127.0.0.1:{smtp}"
submissions = "127.0.0.1:{smtps}"

[limits]
message_size = 1048576
failed_logins = 5

[rules]
allow_test_identities = true
remote_patient_domains = [{remote_patients}]

[relay]
listen = "127.0.0.1:{relay}"
trust_anchors = "{ca}"
{crl}

[whitelist]
source = "{whitelist}"
refresh_interval = {refresh}

[outbound]
routes = {{ {routes} }}
retry_schedule = {retry}
poll_interval = 0.2
max_age = {max_age}
connect_timeout = 30
command_timeout = 30
lease = {lease}
concurrency = {concurrency}
{extra}
"""



def whitelist_xml(domains: list[str]) -> bytes:
    items = "".join(f"<Domaine><Nom>{d}</Nom><Operateur>Test</Operateur></Domaine>" for d in domains)
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListeBlanche xmlns="{WHITELIST_NS}">{items}'
            "</ListeBlanche>").encode()


def operator_domains(name: str) -> tuple[str, str]:
    return f"pro.{name}.test", f"patient.{name}.test"


class OperatorProcess(GatewayProcess):
    """A gateway acting as operator ``name``; routes maps a peer name to its relay port."""

    def __init__(self, folder: Path, pki: PKIFiles, store_url: str, name: str, *, relay_port: int,
                 whitelist: Path, routes: dict[str, int], retry: str = "[0.5, 1, 2]", max_age: float = 600,
                 lease: float = 30, concurrency: int = 20, crl: Path | None = None, refresh: float = 3600,
                 extra: str = "", log_level: str = "info") -> None:
        super().__init__(folder, pki, store_url, log_level=log_level)
        self.name = name
        self.domain, self.patient_domain = operator_domains(name)
        self.relay_port = relay_port
        self.certificate: Issued = pki.pki.operator(f"mx.{name}.test", (self.domain, self.patient_domain))
        cert, key = folder / "operator.crt", folder / "operator.key"
        self.certificate.write(cert, key)
        route_lines = []
        for peer, port in routes.items():
            for domain in operator_domains(peer):
                route_lines.append(f'"{domain}" = "127.0.0.1:{port}"')
        self.config_path.write_text(CONFIG.format(
            name=name, log_level=log_level, url=store_url, cert=cert, key=key, ca=pki.ca_bundle,
            smtp=self.smtp_port, smtps=self.smtps_port, relay=relay_port,
            crl=f'crl = "{crl}"' if crl else "", whitelist=whitelist, refresh=refresh,
            routes=", ".join(route_lines),
            remote_patients=", ".join(f'"{operator_domains(peer)[1]}"' for peer in routes),
            retry=retry, max_age=max_age, lease=lease, concurrency=concurrency,
            extra=extra), encoding="utf-8")

    def start(self) -> OperatorProcess:
        """Start, then wait for the relay port too (the base class may see only the submission ports)."""
        super().start()
        wait_for(lambda: accepts(self.relay_port), timeout=30, interval=0.05)
        return self

    def address(self, local: str) -> str:
        return f"{local}@{self.domain}"

    def patient(self, matricule: str) -> str:
        return f"{matricule}@{self.patient_domain}"

    def relay_client(self, certificate: Issued | None, folder: Path, timeout: float = 20) -> smtplib.SMTP:
        """An SMTP client on the relay port, after STARTTLS presenting ``certificate`` (or none)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if certificate is not None:
            stem = folder / f"client-{uuid.uuid4().hex[:8]}"
            certificate.write(stem.with_suffix(".crt"), stem.with_suffix(".key"))
            context.load_cert_chain(str(stem.with_suffix(".crt")), str(stem.with_suffix(".key")))
        client = smtplib.SMTP("127.0.0.1", self.relay_port, timeout=timeout)
        client.ehlo("peer.test")
        client.starttls(context=context)
        client.ehlo("peer.test")
        return client


def postgres_databases(base_url: str, count: int) -> Iterator[list[str]]:
    """``count`` fresh PostgreSQL databases on the test server, dropped afterwards (tests/support/postgres.py)."""
    yield from databases(count, "gw_relay")


@dataclass
class Pair:
    """Operators A and B, their stores, and the whitelist file they share."""

    a: OperatorProcess
    b: OperatorProcess
    store_a: Store
    store_b: Store
    whitelist: Path

    def stop(self) -> None:
        for process in (self.a, self.b):
            process.stop()
            print(f"--- operator {process.name}\n" + "\n".join(process.log_lines[-40:]))


def write_whitelist(folder: Path, names: tuple[str, ...] = ("a", "b")) -> Path:
    path = folder / "liste-blanche.xml"
    path.write_bytes(whitelist_xml([d for n in names for d in operator_domains(n)]))
    return path


def make_pair(tmp_path: Path, pki: PKIFiles, urls: list[str], start_b: bool = True, **options: Any) -> Pair:
    """A and B with routes to each other; B is left stopped when ``start_b`` is false (remote down)."""
    whitelist = write_whitelist(tmp_path)
    port_a, port_b = free_port(), free_port()
    a = OperatorProcess(tmp_path / "a", pki, urls[0], "a", relay_port=port_a, whitelist=whitelist,
                        routes={"b": port_b}, **options)
    b = OperatorProcess(tmp_path / "b", pki, urls[1], "b", relay_port=port_b, whitelist=whitelist,
                        routes={"a": port_a}, **options)
    pair = Pair(a, b, Store(urls[0]), Store(urls[1]), whitelist)
    pair.store_a.run(_noop)  # migrate before the daemons start, as an operator would
    pair.store_b.run(_noop)
    a.start()
    if start_b:
        b.start()
    return pair


async def _noop(_session: object) -> None:
    return None


def queue_rows(store: Store) -> list[OutboundRecipient]:
    async def work(s: AsyncSession) -> list[OutboundRecipient]:
        return list((await s.execute(select(OutboundRecipient).order_by(OutboundRecipient.id))).scalars().all())
    return store.run(work)


#: The poll-until of tests/support/wait.py, under the name the relay tests use.
wait_for = wait_until


__all__ = ["OperatorProcess", "Pair", "free_port", "make_pair", "operator_domains", "postgres_databases",
           "queue_rows", "wait_for", "whitelist_xml", "write_whitelist"]
