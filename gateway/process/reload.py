"""Reloading the configuration (SIGHUP): read, validate, and say which changes need a restart.

A new file is refused as a whole when it does not validate or when its certificate and key cannot be loaded;
the refusal is one log sentence naming the key and the configuration in effect stays.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import dataclasses
import ssl
import tomllib
from pathlib import Path

from gateway import config as config_module
from gateway.config import Config, ConfigError
from gateway.tlsctx import check_server_settings

#: Settings read once at start: changing them takes a restart (the reload applies the others).
RESTART_KEYS = ("database_url", "submission", "submissions", "imap", "imaps", "relay", "card", "workers",
                "upstreams", "dmp", "documents", "outbound", "metrics", "autoconfig", "psc")
#: How the configuration's fields are named in the file, for log lines.
_FILE_NAMES = {"database_url": "database.url", "submission": "smtp.submission", "submissions": "smtp.submissions",
               "imap": "imap.listen", "imaps": "imap.listen_tls", "workers": "gateway.workers",
               "stop_grace": "gateway.stop_grace", "log_level": "gateway.log_level", "hostname": "gateway.hostname",
               "domains": "gateway.domains", "patient_domain": "gateway.patient_domain", "upstreams": "upstream",
               "metrics": "metrics.listen"}


def parse_text(text: str, base_dir: Path, name: str) -> Config:
    """Validate configuration ``text`` (file ``name``), relative paths against ``base_dir``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {name!r} is not valid TOML: {exc}.") from None
    return config_module.parse(data, base_dir)


def read_config(path: Path) -> tuple[str, Config]:
    """The file's text and its validated configuration, the TLS files included; raises :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Configuration file {str(path)!r} cannot be read: {exc.strerror or exc}.") from None
    new = parse_text(text, path.parent.resolve(), str(path))
    check_tls(new)
    return text, new


def check_tls(new: Config) -> None:
    try:
        check_server_settings(new.tls)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"Configuration key 'tls.certificate' names a certificate that cannot be used with "
                          f"'tls.private_key' ({reason}).") from None


def changed_keys(old: Config, new: Config) -> list[str]:
    """The settings that differ, named as in the file where the name differs."""
    return [_FILE_NAMES.get(f.name, f.name) for f in dataclasses.fields(Config)
            if f.compare and getattr(old, f.name) != getattr(new, f.name)]


def restart_keys(old: Config, new: Config) -> list[str]:
    return [_FILE_NAMES.get(name, name) for name in RESTART_KEYS if getattr(old, name) != getattr(new, name)]
