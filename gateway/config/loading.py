"""Reading the file: [gateway] first, then each section in a fixed order, into one :class:`Config`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gateway.config.database import _database_url
from gateway.config.directory import parse_section as directory_section
from gateway.config.dmp import _card_section, _dmp_section
from gateway.config.filing import _documents_sections
from gateway.config.general import _gateway_section
from gateway.config.hl7 import parse_section as hl7_section
from gateway.config.insi import parse_section as insi_section
from gateway.config.limits import _auth_section, _limits_section, _rules_section
from gateway.config.listeners import _listeners, _tls_section
from gateway.config.model import Config
from gateway.config.ops import _ops_sections
from gateway.config.psc import parse_section as psc_section
from gateway.config.reader import ConfigError, _Reader
from gateway.config.relay import _relay_sections
from gateway.config.web import _web_section


def parse(data: dict[str, Any], base_dir: Path) -> Config:
    """Validate a decoded TOML document; relative paths are resolved against ``base_dir``."""
    root = _Reader(data)
    general = _gateway_section(root, base_dir)
    domains = general.domains

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
    insi_mode, insi = insi_section(root, path)
    relay, whitelist, outbound = _relay_sections(root, tls, path)
    documents, upstreams = _documents_sections(root, path, domains)
    card = _card_section(root, path, tls)
    dmp = _dmp_section(root, path)
    metrics, autoconfig = _ops_sections(root)
    web = _web_section(root, path)
    hl7 = hl7_section(root, path)
    psc = psc_section(root, path)
    directory = directory_section(root, path)
    root.finish()
    return Config(general.hostname, domains, general.patient_domain, url, tls, submission, submissions, imap, imaps,
                  limits, rules, insi_mode, general.log_level, base_dir, relay, whitelist, outbound,
                  documents=documents, upstreams=upstreams, card=card, dmp=dmp, auth=auth, workers=general.workers,
                  stop_grace=general.stop_grace, metrics=metrics, autoconfig=autoconfig, web=web,
                  software_reference=general.software_reference, log_file=general.log_file,
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
