"""A session's trail of refusals, bounded: an abusive session cannot grow the event table (R18 stays readable).

The first :data:`RECORDED_PER_REASON` refusals of one reason in one SMTP session are recorded one row each, as
before; the rest are only counted, and when the session ends one more row of that reason carries ``count``,
the number of refusals it stands for. So a session writes at most ``RECORDED_PER_REASON + 1`` refusal rows
per reason, whatever it sends.

The trail lives on the aiosmtpd session object, never in a table keyed by session: it goes with the session.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Refusals of one reason recorded one by one in a session before they are only counted.
RECORDED_PER_REASON = 3


@dataclass
class Withheld:
    """Refusals of one reason not yet recorded: how many, and the last one's event fields."""

    count: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class RefusalTrail:
    seen: dict[str, int] = field(default_factory=dict)
    withheld: dict[str, Withheld] = field(default_factory=dict)

    def admit(self, reason: str, **fields: Any) -> bool:
        """Whether this refusal is recorded now; if not, it is counted (its fields kept for the summary row)."""
        seen = self.seen.get(reason, 0) + 1
        self.seen[reason] = seen
        if seen <= RECORDED_PER_REASON:
            return True
        entry = self.withheld.setdefault(reason, Withheld())
        entry.count += 1
        entry.fields = fields
        return False

    def take(self) -> list[tuple[str, Withheld]]:
        """The summary rows due at the end of the session (each reason once), and the trail emptied."""
        due = list(self.withheld.items())
        self.withheld.clear()
        self.seen.clear()
        return due


def trail_of(session: Any) -> RefusalTrail:
    """The session's trail, created on first use."""
    trail: RefusalTrail | None = getattr(session, "refusal_trail", None)
    if trail is None:
        trail = RefusalTrail()
        session.refusal_trail = trail
    return trail
