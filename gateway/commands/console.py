"""``gateway console-user``: the staff console's accounts — ``add``, ``list``, ``disable``, ``enable``.

``add NAME --role secretariat|dmp|admin`` with a password (``--password-stdin`` or ``--ask-password``) prints
the TOTP secret and its ``otpauth://`` URI to enrol in an authenticator application: a local login needs the
password and the current code. ``--psc-id`` links the account to a Pro Santé Connect identity (the provider's
subject, the professional's national id) for OIDC logins. Disabling ends the account's sessions at once on
every instance. Every change is traced (R18) with ``--actor``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.web.models import ROLES


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    console = with_config(sub.add_parser("console-user", help="the web console's staff accounts"))
    console.add_argument("action", choices=["add", "list", "disable", "enable"],
                         help="add prints the TOTP secret to enrol; disable ends the account's sessions")
    console.add_argument("username", nargs="?", help="add, disable, enable: the account's user name")
    console.add_argument("--role", choices=ROLES, help="add: secretariat (review, records), dmp (deposits), admin")
    console.add_argument("--name", default="", help="add: the person's name as pages show it")
    console.add_argument("--psc-id", help="add: the Pro Santé Connect subject (national id) for OIDC logins")
    console.add_argument("--password", help="add: password (prefer --password-stdin)")
    console.add_argument("--password-stdin", action="store_true", help="add: read the password from standard input")
    console.add_argument("--ask-password", action="store_true", help="add: ask for the password on the terminal")
    console.set_defaults(func=cmd_console, needs={"add": ["username", "role"], "disable": ["username"],
                                                  "enable": ["username"]})


def cmd_console(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config, print_rows, read_password, run_in_store
    from gateway.web import accounts

    cfg = load_config(args)
    actor = f"cli:{args.actor}"

    async def add(session: AsyncSession) -> str:
        user_id, secret = await accounts.add_user(session, args.username, args.role, password=read_password(args),
                                                  actor=actor, display_name=args.name, psc_id=args.psc_id)
        text = f"Console account {user_id} created ({args.role})."
        if secret is not None:
            text += (f"\nTOTP secret (enrol it in an authenticator application): {secret}"
                     f"\n{accounts.totp_uri(args.username.lower(), secret)}")
        return text

    async def list_(session: AsyncSession) -> None:
        print_rows([{"id": u.id, "username": u.username, "name": u.display_name, "role": u.role, "active": u.active,
                     "password": bool(u.password_hash), "psc_id": u.psc_id or "",
                     "last_login_at": u.last_login_at} for u in await accounts.list_users(session)], args.json)

    async def set_active(session: AsyncSession, active: bool) -> str:
        user_id = await accounts.set_active(session, args.username, active, actor)
        return f"Console account {user_id} {'enabled' if active else 'disabled; its sessions are closed'}."

    work = {"add": add, "list": list_, "disable": lambda s: set_active(s, False),
            "enable": lambda s: set_active(s, True)}[args.action]
    try:
        message = run_in_store(cfg, work)
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    if message:
        print(message)
    return 0
