"""Migration auth_0001 creates exactly the table gateway.auth.models describes (SQLite and PostgreSQL)."""

from __future__ import annotations

from support.migrations import migration_differences

import gateway.auth.models  # noqa: F401  (registers auth_failures)


def test_auth_migration_matches_the_model(store_url: str) -> None:
    assert migration_differences(store_url, ["auth_failures"]) == []
