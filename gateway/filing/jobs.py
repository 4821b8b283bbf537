"""Filing jobs: created in the transaction that delivers a message, for the mailboxes configured for filing.

The table, its states and the effect that creates jobs are the store's (gateway/store/jobs.py); which
recipient is filed is routing's (gateway/routing/policy.wants_filing).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from gateway.config import Config
from gateway.routing.delivery import may_carry_documents
from gateway.routing.policy import wants_filing
from gateway.store.jobs import DEPOSIT, DONE, FAILED, FILE, PENDING, jobs

__all__ = ["DEPOSIT", "DONE", "FAILED", "FILE", "PENDING", "jobs", "may_carry_documents", "wants_deposit",
           "wants_filing"]


def wants_deposit(config: Config, sender_is_patient: bool, raw: bytes) -> bool:
    """R12: only what the structure's professionals send is considered for the DMP."""
    return config.dmp is not None and not sender_is_patient and may_carry_documents(raw)
