"""``gateway throttle``: the failed logins the gateway holds against client addresses, and lifting a block.

``list`` shows, per client address and account name, the failures within ``[limits] failed_login_window`` and
whether logins are refused now (``account``: that account from that address; ``address``: every account from
it). ``clear ADDRESS [--account NAME]`` forgets them: the failures are in the store, so every gateway process
accepts logins from the address again at once. Every clear is traced (R18) with ``--actor``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    throttle = with_config(sub.add_parser("throttle", help="failed logins held against client addresses"))
    throttle.add_argument("action", choices=["list", "clear"],
                          help="list the failed logins held, or clear those of a client address")
    throttle.add_argument("address", nargs="?", help="clear: the client IP address")
    throttle.add_argument("--account", help="clear: only this account's failures from the address")
    throttle.set_defaults(func=cmd_throttle)


def cmd_throttle(args: argparse.Namespace) -> int:
    from gateway.auth.throttle import LoginThrottle
    from gateway.commands.common import CommandError, load_config, print_rows, run_in_store
    from gateway.store.events import record

    cfg = load_config(args)
    limits = cfg.limits
    throttle = LoginThrottle(limits.failed_logins, limits.failed_login_window, limits.failed_logins_per_address)
    if args.action == "clear":
        if not args.address:
            raise CommandError("'throttle clear' needs the client address, as 'gateway throttle list' shows it.")
        try:
            client = str(ipaddress.ip_address(args.address.strip("[]")))
        except ValueError:
            raise CommandError(f"{args.address!r} is not an IP address; give it as 'gateway throttle list' "
                               "shows it.") from None

    async def work(session: AsyncSession) -> str | None:
        if args.action == "list":
            print_rows(await throttle.list_blocks(session), args.json)
            return None
        count = await throttle.clear(session, client, args.account)
        await record(session, "auth.throttle", "cleared", actor=args.actor, client=client,
                     account_given=args.account is not None, failures=count)
        scope = "for that account " if args.account else ""
        return (f"{count} failed login(s) from {client} {scope}forgotten; logins from it are accepted again."
                if count else f"No failed login from {client} {scope}is held; nothing to clear.")

    message = run_in_store(cfg, work)
    if message:
        print(message)
    return 0
