"""[auth] and the [limits] keys of gateway.auth: defaults, and one sentence naming a bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import AuthSettings, ConfigError, parse


def _config(tmp_path: Path, **tables: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "c.pem").write_text("x")
    data: dict[str, Any] = {
        "gateway": {"hostname": "mail.gateway.test", "domains": ["pro.gateway.test"],
                    "patient_domain": "patient.gateway.test"},
        "database": {"url": "sqlite+aiosqlite:///g.sqlite3"},
        "tls": {"certificate": "c.pem", "private_key": "c.pem"},
        "smtp": {"submission": "127.0.0.1:2587"},
    }
    data.update(tables)
    return data


def test_defaults_are_owasps_argon2id_and_a_short_cache(tmp_path: Path) -> None:
    cfg = parse(_config(tmp_path), tmp_path)
    assert cfg.auth == AuthSettings(7168, 5, 1, 300.0, 10_000)
    assert (cfg.limits.failed_logins, cfg.limits.failed_logins_per_address) == (5, 30)
    assert (cfg.limits.connections_per_address, cfg.limits.connection_rate_per_address) == (50, 0)


def test_settings_are_read(tmp_path: Path) -> None:
    cfg = parse(_config(tmp_path, auth={"argon2_memory_kib": 65536, "argon2_time_cost": 3, "cache_ttl": 0},
                        limits={"failed_logins_per_address": 100, "messages_per_minute": 10}), tmp_path)
    assert (cfg.auth.argon2_memory_kib, cfg.auth.argon2_time_cost, cfg.auth.cache_ttl) == (65536, 3, 0.0)
    assert cfg.limits.failed_logins_per_address == 100 and cfg.limits.messages_per_minute == 10


@pytest.mark.parametrize(("tables", "message"), [
    ({"auth": {"argon2_memory_kib": 4}}, "Configuration key 'auth.argon2_memory_kib' must be at least 8 KiB"),
    ({"auth": {"argon2_time_cost": 0}}, "Configuration key 'auth.argon2_time_cost' must be greater than zero."),
    ({"auth": {"cache_ttl": -1}}, "Configuration key 'auth.cache_ttl' must be between 0"),
    ({"auth": {"cache": 1}}, "Configuration key 'auth.cache' is not a known setting."),
    ({"limits": {"failed_logins": 10, "failed_logins_per_address": 5}},
     "Configuration key 'limits.failed_logins_per_address' must not be below failed_logins"),
    ({"limits": {"connections_per_address": 0}},
     "Configuration key 'limits.connections_per_address' must be greater than zero."),
])
def test_a_bad_key_is_named_in_one_sentence(tmp_path: Path, tables: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(_config(tmp_path, **tables), tmp_path)
    assert str(caught.value).startswith(message) and str(caught.value).count(". ") == 0
