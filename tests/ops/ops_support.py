"""Helpers for the operations listener's tests: a configuration, a running service over a real store, HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from support.pki import HOSTNAME, PKIFiles
from support.ports import free_port

from gateway.config import Config, parse
from gateway.ops.health import Listeners
from gateway.ops.http import HttpService, start_http
from gateway.store import db

PRO = "pro.gateway.test"
PATIENT = "patient.gateway.test"


def config_data(pki: PKIFiles, url: str, **tables: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"hostname": HOSTNAME, "domains": [PRO, "lab.gateway.test"], "patient_domain": PATIENT},
        "database": {"url": url},
        "tls": {"certificate": str(pki.server_cert), "private_key": str(pki.server_key)},
        "smtp": {"submission": "127.0.0.1:2587", "submissions": "127.0.0.1:2465"},
        "imap": {"listen": "127.0.0.1:2143", "listen_tls": "127.0.0.1:2993"},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
    }
    data.update(tables)
    return {k: v for k, v in data.items() if v is not None}


def make_config(pki: PKIFiles, url: str, base: Path, **tables: dict[str, Any]) -> Config:
    return parse(config_data(pki, url, **tables), base)


@dataclass
class Running:
    config: Config
    service: HttpService
    listeners: Listeners
    sessions: Any
    client: aiohttp.ClientSession

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.service.port}{path}"

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
        async with self.client.get(self.url(path), **kwargs) as response:
            return response.status, await response.text(), response.headers

    async def metrics(self) -> str:
        status, body, _ = await self.get("/metrics")
        assert status == 200, body
        return body


@asynccontextmanager
async def running(config: Config, listeners: Listeners | None = None) -> AsyncIterator[Running]:
    """The HTTP service of ``config`` over its store, and a client; everything closed afterwards."""
    engine = db.create_engine(config.database_url)
    sessions = db.sessionmaker(engine)
    listeners = listeners if listeners is not None else Listeners()
    service = await start_http(config, sessions, listeners)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
            yield Running(config, service, listeners, sessions, client)
    finally:
        await service.close()
        await engine.dispose()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text exposition, or None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None
