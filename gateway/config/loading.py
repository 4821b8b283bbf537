"""Reading the file: [gateway] itself, then each section in a fixed order, into one :class:`Config`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from gateway.config.database import _database_url
from gateway.config.dmp import _card_section, _dmp_section
from gateway.config.filing import _documents_sections
from gateway.config.limits import _auth_section, _limits_section, _rules_section
from gateway.config.listeners import _listeners, _tls_section
from gateway.config.model import Config
from gateway.config.ops import _ops_sections
from gateway.config.reader import ConfigError, _domain, _positive, _Reader
from gateway.config.relay import _relay_sections
from gateway.config.web import _web_section


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


def parse(data: dict[str, Any], base_dir: Path) -> Config:
    """Validate a decoded TOML document; relative paths are resolved against ``base_dir``."""
    root = _Reader(data)
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

    def path(reader: _Reader, name: str, required: bool = True) -> Path | None:
        if not required and name not in reader._data:
            reader._seen.add(name)
            return None
        p = Path(reader.get(name, str, required=True))
        return p if p.is_absolute() else base_dir / p

    url = _database_url(root, base_dir)
    tls = _tls_section(root, path)
    submission, submissions, imap, imaps = _listeners(root)
    limits = _limits_section(root)
    auth = _auth_section(root)
    rules = _rules_section(root)

    from gateway.ins_matching.insi_settings import parse_section as insi_section

    insi_mode, insi = insi_section(root, path)
    relay, whitelist, outbound = _relay_sections(root, tls, path)
    documents, upstreams = _documents_sections(root, path, domains)
    card = _card_section(root, path, tls)
    dmp = _dmp_section(root, path)
    metrics, autoconfig = _ops_sections(root)
    web = _web_section(root, path)
    from gateway.hl7.settings import parse_section as hl7_section

    hl7 = hl7_section(root, path)
    from gateway.psc.settings import parse_section as psc_section

    psc = psc_section(root, path)
    from gateway.directory.settings import parse_section as directory_section

    directory = directory_section(root, path)
    root.finish()
    return Config(hostname, domains, patient_domain, url, tls, submission, submissions, imap, imaps,
                  limits, rules, insi_mode, log_level, base_dir, relay, whitelist, outbound,
                  documents=documents, upstreams=upstreams, card=card, dmp=dmp, auth=auth, workers=workers,
                  stop_grace=stop_grace, metrics=metrics, autoconfig=autoconfig, web=web,
                  software_reference=software_reference, log_file=log_file,
                  hl7=hl7, psc=psc, directory=directory, insi=insi)


def load(path: Path) -> Config:
    """Read and validate the configuration file at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Configuration file {str(path)!r} does not exist; run 'gateway init' to create one.") \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {str(path)!r} is not valid TOML: {exc}.") from None
    return parse(data, path.parent.resolve())
