"""``gateway review`` and ``gateway documents``: the review queue (R10, R11) and the patient record."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    review = with_config(sub.add_parser("review", help="documents waiting for a person (R10, R11)"))
    review.add_argument("action", choices=["list", "show", "resolve", "reject"],
                        help="resolve: file the document to --identity; reject: keep it out of every record")
    review.add_argument("id", nargs="?", type=int, help="the review item (show, resolve, reject)")
    review.add_argument("--all", action="store_true", help="list resolved and rejected items too")
    review.add_argument("--identity", type=int, help="resolve: the identity to file the document to")
    review.add_argument("--reason", help="why (required to resolve or reject)")
    review.add_argument("--save", type=Path, help="show: write the document's bytes to this file")
    review.set_defaults(func=cmd_review)

    documents = with_config(sub.add_parser("documents", help="documents filed in a patient's record"))
    documents.add_argument("action", choices=["list", "get"], help="list a patient's documents, or get one")
    documents.add_argument("id", type=int, help="list: identity id; get: document id")
    documents.add_argument("--save", type=Path, help="get: write the document's bytes to this file")
    documents.set_defaults(func=cmd_documents)


def cmd_review(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config, print_rows, run_in_store
    from gateway.ins_matching import record

    cfg = load_config(args)
    if args.action != "list" and args.id is None:
        raise CommandError(f"'review {args.action}' needs the review item's id.")
    if args.action in ("resolve", "reject") and not args.reason:
        raise CommandError(f"'review {args.action}' needs --reason: every decision is traced with why (R18).")

    async def work(session: AsyncSession) -> str | None:
        if args.action == "list":
            items = await record.list_reviews(session, status=None if args.all else record.OPEN)
            print_rows([{"id": i.id, "code": i.code, "status": i.status, "title": i.title or "",
                         "type": i.type_code or "", "source": i.source, "created_at": i.created_at,
                         "reason": i.reason if args.json else i.reason[:160]}
                        for i in items], args.json)
            return None
        if args.action == "show":
            item = await record.show_review(session, args.id)
            s = item.summary
            if args.json:
                if args.save:
                    args.save.write_bytes(item.content)
                print(json.dumps({"id": s.id, "code": s.code, "rule": s.rule, "status": s.status, "reason": s.reason,
                                  "title": s.title, "type": s.type_code, "matricule": item.matricule,
                                  "message_id": item.message_id, "candidate_identity_id": s.candidate_identity_id,
                                  "saved_to": str(args.save) if args.save else None},
                                 default=str, ensure_ascii=False, indent=1))
                return None
            print(f"Review {s.id}: code {s.code} ({s.rule}), {s.status}; {s.reason}")
            print(f"  document: {s.title or '(no title)'} type {s.type_code or '?'}, matricule "
                  f"{item.matricule or '(none)'}, message {item.message_id or '-'}")
            if s.candidate_identity_id:
                print(f"  candidate identity (R11, to verify with INSi): {s.candidate_identity_id}")
            if args.save:
                args.save.write_bytes(item.content)
                print(f"  saved to {args.save}")
            return None
        if args.action == "resolve":
            if args.identity is None:
                raise CommandError("'review resolve' needs --identity ID (the patient to file the document to).")
            await record.resolve_review(session, args.id, args.identity, args.actor, args.reason)
            return f"Review {args.id} resolved: document filed to identity {args.identity}."
        await record.reject_review(session, args.id, args.actor, args.reason)
        return f"Review {args.id} rejected."

    try:
        message = run_in_store(cfg, work)
    except record.RecordError as exc:
        raise CommandError(str(exc)) from None
    if message:
        print(message)
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    from gateway.commands.common import load_config, print_rows, run_in_store
    from gateway.ins_matching import record

    cfg = load_config(args)

    async def work(session: AsyncSession) -> None:
        if args.action == "list":
            docs = await record.documents_of(session, args.id)
            print_rows([{"id": d.id, "type": d.type_code or "", "title": d.title or "", "date": d.effective_time or "",
                         "version": d.version or "", "superseded_by": d.superseded_by or "", "filed_at": d.filed_at}
                        for d in docs], args.json)
            return
        content = await record.document_content(session, args.id)
        if args.save:
            args.save.write_bytes(content)
            print(f"Document {args.id} saved to {args.save} ({len(content)} bytes).")
        else:
            sys.stdout.buffer.write(content)

    run_in_store(cfg, work)
    return 0
