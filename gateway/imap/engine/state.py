"""Connection states (RFC 9051 3) and the outcomes a command handler raises.

A handler returns normally for ``OK`` (optionally with a code and text) or raises :class:`No` / :class:`Bad`
with an RFC 5530 response code; :class:`Bye` ends the connection after its untagged ``BYE``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True)
class Done:
    """A tagged ``OK`` with an optional response code (``APPENDUID 7 12``) and text."""

    text: str = "done"
    code: str | None = None


class CommandFailed(Exception):
    """A tagged ``NO`` or ``BAD``."""

    status = "NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class No(CommandFailed):
    status = "NO"


class Bad(CommandFailed):
    status = "BAD"


class Bye(Exception):
    """Close the connection after ``* BYE [code] text`` (RFC 9051 7.1.5)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class Answered(Done):
    """The handler wrote its tagged answer itself (STARTTLS, COMPRESS: what follows changes the stream)."""


ANSWERED = Answered()
