"""[gateway]: the gateway's names and domains, its logs, worker processes and stop grace, its X-MSS-NIL.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from gateway.config.reader import _domain, _positive, _Reader


def _default_software_reference() -> str:
    """``mss-gateway/<version>``: the X-MSS-NIL of a gateway whose configuration names no other."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"mss-gateway/{version('mss-gateway')}"
    except PackageNotFoundError:
        return "mss-gateway"


#: Most worker processes ``[gateway] workers`` may ask for.
MAX_WORKERS = 64


def default_workers() -> int:
    """One worker process per core this process may run on (``[gateway] workers`` when absent)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, min(MAX_WORKERS, len(affinity(0)) if affinity else (os.cpu_count() or 1)))


class _General(NamedTuple):
    hostname: str
    domains: frozenset[str]
    patient_domain: str
    log_level: str
    workers: int
    stop_grace: float
    log_file: Path | None
    software_reference: str


def _gateway_section(root: _Reader, base_dir: Path) -> _General:
    """[gateway]: required first, so that every other section can name the domains it refers to."""
    gw = root.table("gateway", required=True)
    assert gw is not None
    hostname = gw.get("hostname", str, required=True)
    domains_raw = gw.get("domains", list, required=True)
    gw.check("domains", bool(domains_raw) and all(isinstance(d, str) for d in domains_raw),
             "must be a non-empty list of domain names")
    domains = frozenset(_domain(gw, "domains", d) for d in domains_raw)
    patient_domain = _domain(gw, "patient_domain", gw.get("patient_domain", str, required=True))
    gw.check("patient_domain", patient_domain not in domains, "must differ from every professional domain")
    log_level = gw.get("log_level", str, "info")
    gw.check("log_level", log_level in {"debug", "info", "warning", "error"},
             "must be one of debug, info, warning, error")
    workers = gw.get("workers", int, default_workers())
    gw.check("workers", 0 < workers <= MAX_WORKERS, f"must be between 1 and {MAX_WORKERS}")
    stop_grace = _positive(gw, "stop_grace", 30.0, float)
    log_file_raw = gw.get("log_file", str, "")
    log_file = (base_dir / log_file_raw) if log_file_raw else None
    gw.check("log_file", log_file is None or log_file.parent.is_dir(), "must be a file in an existing folder")
    software_reference = gw.get("software_reference", str, _default_software_reference()).strip()
    gw.check("software_reference", 0 < len(software_reference) <= 200 and software_reference.isprintable(),
             "must be 1 to 200 printable characters on one line (it is the X-MSS-NIL header)")
    gw.finish()
    return _General(hostname, domains, patient_domain, log_level, workers, stop_grace, log_file, software_reference)
