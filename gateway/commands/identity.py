"""``gateway identity``: patient identities and their qualification (R7), INSi checks (R8).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.commands.common import CommandError, load_config, print_json, print_rows, run_in_store


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """The parsers of this group, added to ``gateway``'s subcommands."""
    identity = with_config(sub.add_parser("identity", help="patient identities and their qualification (R7)"))
    identity.add_argument("action", choices=["add", "list", "show", "insi", "document"],
                          help="insi: check with the INSi service; document: record an identity document check")
    identity.add_argument("id", nargs="?", type=int, help="the identity (show, insi, document)")
    identity.add_argument("--matricule", help="add: the INS matricule (15 characters)")
    identity.add_argument("--oid", default="1.2.250.1.213.1.4.8", help="add: the matricule's OID (NIR by default)")
    identity.add_argument("--birth-name", help="add: birth name")
    identity.add_argument("--first-names", help="add: first names, space separated")
    identity.add_argument("--birth-date", help="YYYY-MM-DD")
    identity.add_argument("--sex", choices=["M", "F", "U"], help="add: sex")
    identity.add_argument("--birth-place", help="INSEE code")
    identity.add_argument("--kind", help="identity document checked: identity_card, passport, residence_permit, "
                                         "family_booklet, driving_licence, health_card, other")
    identity.set_defaults(func=cmd_identity)
    # What each action needs beyond argparse's own checks (cli.py reports the first one missing).
    identity.set_defaults(needs={
        "add": ["matricule", "birth_name", "first_names", "birth_date", "sex", "birth_place"], "show": ["id"],
        "insi": ["id"], "document": ["id", "kind"]})


def cmd_identity(args: argparse.Namespace) -> int:
    from gateway.ins_matching import identities
    from gateway.ins_matching.insi import service_for

    cfg = load_config(args)
    actor = args.actor
    unanswered: list[str] = []

    async def add(session: AsyncSession) -> str:
        traits = identities.Traits(args.birth_name, args.first_names, args.birth_date, args.sex, args.birth_place)
        identity_id = await identities.add_identity(
            session, args.matricule.upper(), args.oid, traits, actor, cfg.rules.allow_test_identities)
        return f"Identity {identity_id} added as provisoire."

    async def list_(session: AsyncSession) -> None:
        rows = await identities.list_identities(session)
        print_rows([{"id": i.id, "matricule": i.matricule, "oid": i.oid, "birth_name": i.birth_name,
                      "first_name": i.first_name, "birth_date": i.birth_date, "sex": i.sex, "status": i.status,
                      "replaced_by": i.replaced_by or ""} for i in rows], args.json)

    async def show(session: AsyncSession) -> None:
        identity = await identities.get(session, args.id)
        evidence = await identities.evidence_of(session, args.id)
        steps = [{"step": e.kind, "result": e.detail, "by": e.actor, "at": e.at} for e in evidence]
        if args.json:
            print_json({"id": identity.id, "matricule": identity.matricule, "oid": identity.oid,
                        "status": identity.status, "birth_name": identity.birth_name,
                        "first_names": identity.first_names, "birth_date": identity.birth_date, "sex": identity.sex,
                        "birth_place": identity.birth_place, "replaced_by": identity.replaced_by,
                        "evidence": steps})
            return
        print(f"Identity {identity.id}: {identity.matricule} ({identity.oid}), status {identity.status}")
        print(f"  {identity.birth_name}, {identity.first_names}, born {identity.birth_date}, sex {identity.sex},"
              f" birth place {identity.birth_place}")
        print_rows(steps, False)

    async def insi(session: AsyncSession) -> str:
        from gateway.ins_matching.insi_check import ask_insi

        check = await ask_insi(session, args.id, service_for(cfg), actor)
        if check.error is not None:
            unanswered.append(check.error)
            return ""
        if check.replaced:
            return (f"INSi: the matricule is obsolete; identity {check.identity_id} holds the principal one, status "
                    f"{check.status} (R8).")
        return f"INSi: {check.outcome}; identity {args.id} is now {check.status}."

    async def document(session: AsyncSession) -> str:
        status = await identities.record_document(session, args.id, args.kind, actor)
        return f"Document {args.kind} recorded; identity {args.id} is now {status}."

    action = {"add": add, "list": list_, "show": show, "insi": insi, "document": document}[args.action]
    try:
        message = run_in_store(cfg, action)
    except identities.IdentityError as exc:
        raise CommandError(str(exc)) from None
    if unanswered:
        raise CommandError(f"{unanswered[0]} Identity {args.id} is unchanged; try again later.")
    if message:
        print(message)
    return 0
