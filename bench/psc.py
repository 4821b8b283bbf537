"""Benchmark: Pro Santé Connect token verifications and OAUTHBEARER logins per second, with cached keys.

1. Pure verification on one core: :class:`gateway.psc.tokens.TokenVerifier` against the PSC simulator's JWKS
   (fetched once, then cached), ``--verifications`` tokens one after the other (signature RS256 + claims); then
   the whole :class:`gateway.psc.login.PscLogin` (verification and the grant lookup in the store).
2. Full logins: a real gateway process with one worker (one core) on SQLite (or --store-url), a new TLS
   connection per login (SMTP: STARTTLS, AUTH OAUTHBEARER, QUIT; IMAP: STARTTLS, AUTHENTICATE OAUTHBEARER with
   SASL-IR, LOGOUT), --concurrency at a time. Every login verifies its token: the gateway keeps no token cache.

    .venv/bin/python bench/psc.py --verifications 5000 --logins 1000 --concurrency 16

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mail import PRO  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.psc import MARCEL, grant, psc_config  # noqa: E402
from support.store import Store  # noqa: E402
from support.workers import configure  # noqa: E402

from gateway.config.psc import PscSettings  # noqa: E402
from gateway.psc.login import PscLogin  # noqa: E402
from gateway.psc.sasl import BearerResponse, oauthbearer_response  # noqa: E402
from gateway.psc.simulator import DEFAULT_DATA, Simulator, load_data, server_context  # noqa: E402
from gateway.psc.tokens import TokenVerifier  # noqa: E402
from gateway.store import db  # noqa: E402


class _Provider:
    """What support.psc.psc_config reads: the simulator's issuer."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.issuer = sim.issuer


def start_simulator(cert: Path, key: Path) -> tuple[Simulator, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    sim = Simulator(*load_data(DEFAULT_DATA), token_ttl=3600)
    asyncio.run_coroutine_threadsafe(sim.start("127.0.0.1", 0, server_context(cert, key)), loop).result(30)
    return sim, loop


def token_for(sim: Simulator) -> str:
    pro = sim.professional("marcel")
    assert pro is not None
    return sim.sign(sim.access_claims(pro, "mail-client", "openid scope_all"))


async def pure(settings: PscSettings, url: str, token: str, count: int) -> None:
    verifier = TokenVerifier(settings)
    await verifier.verify(token)  # fetches discovery and JWKS once
    started = time.perf_counter()
    for _ in range(count):
        await verifier.verify(token)
    elapsed = time.perf_counter() - started
    print(f"{'verification (RS256)':<28} {count / elapsed:9.0f} /s   {elapsed / count * 1e6:7.1f} µs each   "
          f"(JWKS fetched {verifier.fetches} time)")
    engine = db.create_engine(url)
    login = PscLogin(settings, db.read_sessionmaker(engine), verifier)
    response = BearerResponse(PRO, token)
    await login.login("OAUTHBEARER", response, "127.0.0.1", "bench")
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # the bench's own lines only
    started = time.perf_counter()
    for _ in range(count):
        result = await login.login("OAUTHBEARER", response, "127.0.0.1", "bench")
    elapsed = time.perf_counter() - started
    assert result.account is not None
    print(f"{'PscLogin (+ grant lookup)':<28} {count / elapsed:9.0f} /s   {elapsed / count * 1e6:7.1f} µs each")
    await verifier.close()
    await engine.dispose()


async def smtp_login(port: int, tls: ssl.SSLContext, blob: str) -> float:
    started = time.perf_counter()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls, start_tls=True, timeout=60)
    await client.connect()
    await client.ehlo()
    reply = await client.execute_command(b"AUTH", b"OAUTHBEARER", blob.encode())
    assert reply.code == 235, reply
    elapsed = time.perf_counter() - started
    await client.quit()
    return elapsed


async def imap_login(port: int, tls: ssl.SSLContext, blob: str) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b"a STARTTLS\r\n")
    while not (await reader.readline()).startswith(b"a OK"):
        pass
    await writer.start_tls(tls, server_hostname="127.0.0.1")
    writer.write(f"b AUTHENTICATE OAUTHBEARER {blob}\r\n".encode())
    while True:
        line = await reader.readline()
        if line.startswith(b"b "):
            assert line.startswith(b"b OK"), line
            break
    elapsed = time.perf_counter() - started
    writer.write(b"c LOGOUT\r\n")
    await writer.drain()
    writer.close()
    return elapsed


async def run(kind: str, port: int, ca: Path, blob: str, count: int, concurrency: int) -> None:
    tls = ssl.create_default_context(cafile=str(ca))
    one = smtp_login if kind == "smtp" else imap_login
    remaining = list(range(count))
    latencies: list[float] = []

    async def worker() -> None:
        while remaining:
            remaining.pop()
            latencies.append(await one(port, tls, blob))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    print(f"{kind.upper() + ' login (new TLS conn.)':<28} {count / elapsed:9.0f} /s   p50 {q[49] * 1000:6.1f} ms   "
          f"p99 {q[98] * 1000:6.1f} ms   ({count} logins in {elapsed:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifications", type=int, default=5000)
    parser.add_argument("--logins", type=int, default=1000, help="per protocol; 0 skips the gateway part")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--store-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    from support.process import GatewayProcess

    folder = Path(tempfile.mkdtemp(prefix="bench-psc-"))
    pki = make_pki(folder / "pki")
    url = args.store_url or f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
    store = Store(url)
    store.add_mailbox(PRO)
    grant(store, MARCEL, PRO)
    sim, loop = start_simulator(pki.server_cert, pki.server_key)
    token = token_for(sim)
    settings = PscSettings(sim.issuer, "gateway", audiences=("gateway", "mail-client"), required_scope="scope_all",
                           ca_file=pki.ca_bundle)
    print(f"token of {len(token)} characters, RS256 2048-bit, cached keys")
    asyncio.run(pure(settings, url, token, args.verifications))
    if args.logins:
        gateway = GatewayProcess(folder / "gw", pki, url, log_level="warning",
                                 extra_config=psc_config(_Provider(sim), pki))  # type: ignore[arg-type]
        configure(gateway, workers=1)
        text = gateway.config_path.read_text(encoding="utf-8")
        gateway.config_path.write_text(text.replace(
            "[limits]\n", "[limits]\nconnections_per_address = 10000\nconnection_rate_per_address = 1000000\n", 1),
            encoding="utf-8")
        gateway.start()
        blob = base64.b64encode(oauthbearer_response(token, PRO)).decode()
        try:
            print(f"gateway: 1 worker process, {args.concurrency} concurrent clients")
            asyncio.run(run("smtp", gateway.smtp_port, pki.ca_bundle, blob, args.logins, args.concurrency))
            asyncio.run(run("imap", gateway.imap_port, pki.ca_bundle, blob, args.logins, args.concurrency))
        finally:
            gateway.stop()
    asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
