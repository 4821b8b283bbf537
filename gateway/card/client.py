"""The agent's HTTPS client: one event per request, with the workstation's client certificate (mutual TLS).

Blocking on purpose: the agent's sender is a thread of its own, and ``http.client`` keeps the connection open
between events. Every failure to talk to the gateway means "retry later"; only the gateway's 400 or 422 say
that an event can never be accepted.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from gateway.card.endpoint import PATH
from gateway.card.spool import Delivery
from gateway.config import ANS_TLS12_CIPHERS

log = structlog.get_logger("gateway.card.agent")

MAX_REPLY = 16384


def client_ssl_context(certificate: Path, private_key: Path, trust_anchors: Path) -> ssl.SSLContext:
    """TLS 1.2 at least, the ANS cipher list for 1.2, the gateway verified against ``trust_anchors``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ANS_TLS12_CIPHERS)
    context.load_verify_locations(cafile=str(trust_anchors))
    context.load_cert_chain(str(certificate), str(private_key))
    return context


class GatewayClient:
    """Posts events to ``https://host:port``; reconnects as needed."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"The gateway URL must look like https://host:port, not {url!r}.")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.context = context
        self.timeout = timeout
        self._conn: http.client.HTTPSConnection | None = None
        #: The gateway's sentence about the last event it refused or deferred (shown by ``bind``).
        self.last_message = ""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(self, event: dict[str, Any]) -> Delivery:
        body = json.dumps(event, separators=(",", ":")).encode()
        for attempt in range(2):  # a kept-alive connection the server closed is retried once, fresh
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                                             timeout=self.timeout)
                self._conn.request("POST", PATH, body=body, headers={"Content-Type": "application/json"})
                response = self._conn.getresponse()
                reply = response.read(MAX_REPLY)
                status = response.status
                if response.will_close:
                    self.close()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 1 or not isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError |
                                                  BrokenPipeError):
                    log.info("card.agent.gateway_unreachable", error=type(exc).__name__)
                    return Delivery.RETRY
        message = self.last_message = _message(reply)
        if 200 <= status < 300:
            return Delivery.DELIVERED
        if status in (400, 413, 422):
            log.warning("card.agent.event_rejected", status=status, type=event.get("type"), message=message)
            return Delivery.REJECTED
        log.warning("card.agent.event_deferred", status=status, type=event.get("type"), message=message)
        return Delivery.RETRY


def _message(reply: bytes) -> str:
    try:
        data = json.loads(reply)
    except ValueError:
        return ""
    return str(data.get("message", ""))[:300] if isinstance(data, dict) else ""
