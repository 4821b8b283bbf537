"""[metrics] and [autoconfig]: the operations HTTP listener(s) of gateway/ops.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.listeners import Listen, _listen
from gateway.config.reader import ConfigError, _Reader


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: where Prometheus scrapes ``/metrics`` and probes ask ``/healthz`` and ``/readyz``."""

    listen: Listen


@dataclass(frozen=True)
class AutoconfigSettings:
    """``[autoconfig]``: Thunderbird's config-v1.1 and Outlook's autodiscover documents, built from the listeners.

    ``listen`` absent: served on ``[metrics] listen``. ``tls``: the listener speaks HTTPS with ``[tls]``'s
    certificate (otherwise a reverse proxy terminates TLS in front of it).
    """

    listen: Listen | None = None
    tls: bool = False
    display_name: str = "MSSanté"


def _ops_sections(root: _Reader) -> tuple[MetricsSettings | None, AutoconfigSettings | None]:
    """[metrics] and [autoconfig]: the operations HTTP listener(s) of gateway/ops."""
    metrics: MetricsSettings | None = None
    met = root.table("metrics")
    if met is not None:
        listen = _listen(met, "listen")
        if listen is None:
            raise ConfigError("Configuration key 'metrics.listen' is missing; it must look like 'host:port' "
                              "(remove [metrics] to turn the endpoint off).")
        met.finish()
        metrics = MetricsSettings(listen)
    autoconfig: AutoconfigSettings | None = None
    auto = root.table("autoconfig")
    if auto is not None:
        own = _listen(auto, "listen")
        if own is None and metrics is None:
            raise ConfigError("Configuration key 'autoconfig.listen' is missing; it must look like 'host:port' "
                              "when there is no [metrics] listener to share.")
        auto.check("listen", own is None or metrics is None or own != metrics.listen,
                   "must differ from metrics.listen (leave it out to share that listener)")
        tls = auto.get("tls", bool, False)
        auto.check("tls", not tls or own is not None, "needs autoconfig.listen (the metrics listener is plain HTTP)")
        name = auto.get("display_name", str, "MSSanté")
        auto.check("display_name", 0 < len(name) <= 100 and name.isprintable(),
                   "must be a printable name of 1 to 100 characters")
        auto.finish()
        autoconfig = AutoconfigSettings(own, tls, name)
    return metrics, autoconfig
