"""The session's table of SMTP verbs, which tells the session which command is running.

aiosmtpd looks a command's method up in ``SMTP._smtp_methods`` and awaits it. The gateway needs the command in
progress when something fails (``handle_exception`` answers ``454 4.7.0`` during AUTH and ``451 4.3.0``
otherwise; the idle timeout's log line names it). :class:`TrackedVerbs` keeps aiosmtpd's table as it is and
wraps only the method a command looks up (:class:`RunningVerb`: one small object a command, not one closure
per verb and connection), which still answers for the method's attributes, so ``HELP`` finds each verb's syntax.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Any


class RunningVerb:
    """A verb's method bound to the session that runs it: sets ``session.command`` for the command's duration."""

    __slots__ = ("method", "session", "verb")

    def __init__(self, session: Any, verb: str, method: Any) -> None:
        self.session, self.verb, self.method = session, verb, method

    async def __call__(self, arg: str | None) -> None:
        self.session.command = self.verb
        await self.method(arg)  # on an exception the name stays, for handle_exception's reply
        self.session.command = None

    def __getattr__(self, name: str) -> Any:  # __smtp_syntax__ and the rest, for HELP
        return getattr(self.method, name)


class TrackedVerbs(dict[str, Any]):
    """aiosmtpd's ``{verb: bound method}``; :meth:`get` (how aiosmtpd finds a command's method) wraps it."""

    __slots__ = ("session",)

    def __init__(self, session: Any, methods: dict[str, Any]) -> None:
        super().__init__(methods)
        self.session = session

    def get(self, verb: str, default: Any = None) -> Any:  # type: ignore[override]
        method = dict.get(self, verb)
        return default if method is None else RunningVerb(self.session, verb, method)
