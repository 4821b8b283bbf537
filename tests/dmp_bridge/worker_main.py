"""A DMP outbox worker in its own process, for the crash test: ``python worker_main.py DB_URL SIM_URL PKI_DIR LEASE``.

It prints ``ready`` once running and then keeps depositing until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dmp_bridge.dmp_support import policy

from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.soap import DmpClient, Endpoint, client_ssl_context
from gateway.pki import Issued
from gateway.store import db
from gateway.store.queue import Backoff


def load(folder: Path, stem: str) -> Issued:
    certs = x509.load_pem_x509_certificates((folder / f"{stem}.crt").read_bytes())
    key = serialization.load_pem_private_key((folder / f"{stem}.key").read_bytes(), None)
    return Issued(certs[0], key, tuple(certs[1:]))  # type: ignore[arg-type]


async def main(db_url: str, sim_url: str, folder: Path, lease: float) -> None:
    engine = db.create_engine(db_url)
    client_tls = load(folder, "structure-tls")
    signer = load(folder, "structure-signing")
    ctx = client_ssl_context(client_tls, (folder / "ca-bundle.crt").read_bytes())
    client = DmpClient(Endpoint(f"{sim_url}/repository", f"{sim_url}/registry", ctx, 120.0), signer)
    worker = OutboxWorker(db.sessionmaker(engine), Depositor(client, signer, policy()), policy(), concurrency=4,
                          lease=lease, backoff=Backoff(0.1, 2, 1), poll_interval=0.05, worker_id="child")
    print("ready", flush=True)
    await worker.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])))
