"""The ``gateway`` command: serve, init, and the administration subcommands.

Every subcommand reads the same configuration file (``--config``, or ``$GATEWAY_CONFIG``, or
``data/gateway.toml``). Errors a person will read are one sentence; the exit status is 2 for a bad
configuration or argument and 1 for a refused operation.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import config as config_module
from gateway import logs
from gateway.config import Config, ConfigError

DEFAULT_CONFIG = "data/gateway.toml"


class CommandError(Exception):
    """An administration command refused, as one sentence."""


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG)


def load_config(args: argparse.Namespace) -> Config:
    return config_module.load(_config_path(args))


async def _with_session(cfg: Config, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Run ``work`` in one committed transaction on a migrated store."""
    from gateway.store import db

    await db.migrate(cfg.database_url)
    engine = db.create_engine(cfg.database_url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def run_in_store(cfg: Config, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Run ``work`` in one committed transaction on the configured store (migrated first)."""
    return asyncio.run(_with_session(cfg, work))


_run = run_in_store


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, default=str, ensure_ascii=False, indent=1))
        return
    if not rows:
        print("(none)")
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row[k]).ljust(widths[k]) for k in keys))


def print_json(value: Any) -> None:
    """One JSON document on stdout and nothing else (``--json``)."""
    print(json.dumps(value, default=str, ensure_ascii=False, indent=1))


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("mss-gateway")
    except PackageNotFoundError:
        return "0+unknown"


def _password(args: argparse.Namespace) -> str | None:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    if getattr(args, "password", None):
        return str(args.password)
    if getattr(args, "ask_password", False):
        return getpass.getpass("Password: ")
    return None


# --- serve / init ---------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """One process (``[gateway] workers = 1``) or a supervisor and its workers (gateway/process)."""
    from gateway.process.reload import read_config
    from gateway.process.worker import line_stderr

    path = _config_path(args)
    if not path.is_file():
        load_config(args)  # the usual sentence for a missing file
    text, cfg = read_config(path)
    line_stderr()
    from gateway.ops import multiprocess

    multiprocess.prepare(cfg)  # metrics of every worker process add up in one scrape
    logs.configure(cfg.log_level, path=cfg.log_file)

    def banner(*_: Any) -> None:
        if args.banner:
            from gateway.devsetup import connection_banner

            print(connection_banner(cfg, path.parent), flush=True)

    try:
        from gateway.store import db

        asyncio.run(db.check_store(cfg.database_url))  # never create the store a mistyped key names
        if cfg.workers > 1:
            from gateway.process import supervisor

            return supervisor.serve(path, text, cfg, on_ready=banner)
        from gateway.app import serve
        from gateway.process.loop import DaemonLoop
        from gateway.process.worker import forget_in_children

        forget_in_children([])

        from gateway.process.loop import named_listeners

        with asyncio.Runner(loop_factory=lambda: DaemonLoop(names=named_listeners(cfg))) as runner:
            runner.run(serve(cfg, on_ready=banner, config_path=path))
    except OSError as exc:
        print(f"gateway: cannot start a listener: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    finally:
        multiprocess.finish()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A worker process of ``gateway serve`` (started by the supervisor with its sockets and channel)."""
    from gateway.process import worker

    return worker.main(args.index, args.channel, args.listen or [], args.parent)


def cmd_init(args: argparse.Namespace) -> int:
    from gateway.devsetup import initialise

    path = initialise(Path(args.data), force=args.force)
    print(f"Development configuration written to {path}; start the gateway with: gateway serve --config {path}")
    return 0


# --- mailboxes ------------------------------------------------------------------------------------------------
def cmd_mailbox(args: argparse.Namespace) -> int:
    if args.action == "import":
        from gateway.commands import mailbox_import

        return mailbox_import.run(args)
    from gateway.auth.passwords import hash_password
    from gateway.ins_matching.nir import key_ok
    from gateway.store import mailstore
    from gateway.store.events import record
    from gateway.store.models import Mailbox

    cfg = load_config(args)
    actor = args.actor

    async def add(session: AsyncSession) -> str:
        address = args.address.lower()
        local, _, domain = address.partition("@")
        if args.kind == "PAT":
            if domain != cfg.patient_domain:
                raise CommandError(f"A patient mailbox must be at the patient domain {cfg.patient_domain}.")
            if not key_ok(local.upper()):
                raise CommandError("A patient address must be a valid 15-character INS matricule (R8).")
        elif domain not in cfg.domains:
            raise CommandError(f"{domain} is not one of this gateway's domains ({', '.join(sorted(cfg.domains))}).")
        if await mailstore.mailbox_by_address(session, address):
            raise CommandError("A mailbox with this address already exists.")
        password = _password(args)
        mailbox_id = await mailstore.create_mailbox(
            session, address, args.kind, display_name=args.name or "",
            password_hash=hash_password(password) if password else None,
            matricule=local.upper() if args.kind == "PAT" else None,
            certificate_fingerprint=(args.certificate_fingerprint or "").lower().replace(":", "") or None,
        )
        await record(session, "mailbox.added", "ok", actor=actor, mailbox_id=mailbox_id, mailbox_kind=args.kind)
        return f"Mailbox {mailbox_id} created."

    async def list_(session: AsyncSession) -> None:
        rows = (await session.execute(select(Mailbox).order_by(Mailbox.id))).scalars().all()
        print_rows([{"id": m.id, "address": m.address, "kind": m.kind, "active": m.active,
                      "password": bool(m.password_hash), "certificate": bool(m.certificate_fingerprint)}
                     for m in rows], args.json)

    async def set_active(session: AsyncSession, active: bool) -> str:
        mailbox = await mailstore.mailbox_by_address(session, args.address)
        if mailbox is None:
            raise CommandError("No mailbox has this address.")
        mailbox.active = active
        await record(session, "mailbox.enabled" if active else "mailbox.disabled", "ok", actor=actor,
                     mailbox_id=mailbox.id)
        return f"Mailbox {mailbox.id} {'enabled' if active else 'disabled'}."

    async def password(session: AsyncSession) -> str:
        mailbox = await mailstore.mailbox_by_address(session, args.address)
        if mailbox is None:
            raise CommandError("No mailbox has this address.")
        secret = _password(args)
        if not secret:
            raise CommandError("Give the new password with --password-stdin or --ask-password.")
        mailbox.password_hash = hash_password(secret)
        await record(session, "mailbox.password", "changed", actor=actor, mailbox_id=mailbox.id)
        return f"Password of mailbox {mailbox.id} changed."

    action: Callable[[AsyncSession], Awaitable[Any]] = {
        "add": add, "list": list_, "password": password,
        "disable": lambda s: set_active(s, False), "enable": lambda s: set_active(s, True),
    }[args.action]
    message = _run(cfg, action)
    if message:
        print(message)
    return 0


# --- identities -----------------------------------------------------------------------------------------------
def cmd_identity(args: argparse.Namespace) -> int:
    from gateway.ins_matching import identities
    from gateway.ins_matching.insi import InsiSimulator

    cfg = load_config(args)
    actor = args.actor

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
        identity = await identities.get(session, args.id)
        traits = identities.Traits(identity.birth_name, identity.first_names, identity.birth_date, identity.sex,
                                   identity.birth_place)
        result = await InsiSimulator().verify(identity.matricule, traits)
        if result.replaced and result.identity is not None:
            new_id = await identities.replace_matricule(
                session, identity.matricule, result.replaced, result.identity.oid, actor)
            status = await identities.record_insi(session, new_id, "found", actor)
            return (f"INSi: the matricule is obsolete; identity {new_id} holds the principal one, status {status}"
                    " (R8).")
        status = await identities.record_insi(session, args.id, result.outcome, actor)
        return f"INSi: {result.outcome}; identity {args.id} is now {status}."

    async def document(session: AsyncSession) -> str:
        status = await identities.record_document(session, args.id, args.kind, actor)
        return f"Document {args.kind} recorded; identity {args.id} is now {status}."

    action = {"add": add, "list": list_, "show": show, "insi": insi, "document": document}[args.action]
    try:
        message = _run(cfg, action)
    except identities.IdentityError as exc:
        raise CommandError(str(exc)) from None
    if message:
        print(message)
    return 0


# --- conversations --------------------------------------------------------------------------------------------
def cmd_conversation(args: argparse.Namespace) -> int:
    from gateway.routing import conversations
    from gateway.store import mailstore
    from gateway.store.models import Conversation

    cfg = load_config(args)

    async def list_(session: AsyncSession) -> None:
        professional_id = None
        if args.mailbox:
            mailbox = await mailstore.mailbox_by_address(session, args.mailbox)
            if mailbox is None:
                raise CommandError("No mailbox has this address.")
            professional_id = mailbox.id
        rows = await conversations.list_conversations(session, professional_id)
        print_rows([{"id": c.id, "professional_id": c.professional_id, "matricule": c.matricule,
                      "state": c.state, "replies_blocked": c.replies_blocked, "updated_at": c.updated_at}
                     for c in rows], args.json)

    async def show(session: AsyncSession) -> None:
        conversation = await session.get(Conversation, args.id)
        if conversation is None:
            raise CommandError(f"No conversation has id {args.id}.")
        events = await conversations.history(session, args.id)
        history = [{"at": e.at, "event": e.kind, "rule": e.rule, "outcome": e.outcome,
                    "message_id": e.message_id or ""} for e in events]
        if args.json:
            print_json({"id": conversation.id, "professional_id": conversation.professional_id,
                        "remote_professional": conversation.remote_professional,
                        "matricule": conversation.matricule, "state": conversation.state,
                        "replies_blocked": conversation.replies_blocked, "opened_at": conversation.opened_at,
                        "updated_at": conversation.updated_at, "events": history})
            return
        print(f"Conversation {conversation.id}: state {conversation.state}, replies "
              f"{'blocked' if conversation.replies_blocked else 'allowed'}")
        print_rows(history, False)

    async def block(session: AsyncSession, blocked: bool) -> str:
        conversation = await session.get(Conversation, args.id)
        if conversation is None:
            raise CommandError(f"No conversation has id {args.id}.")
        await conversations.set_replies_blocked(session, conversation, blocked, args.actor)
        return f"Replies {'blocked' if blocked else 'allowed'} in conversation {args.id} (R3)."

    action: Callable[[AsyncSession], Awaitable[Any]] = {
        "list": list_, "show": show,
        "block": lambda s: block(s, True), "unblock": lambda s: block(s, False),
    }[args.action]
    message = _run(cfg, action)
    if message:
        print(message)
    return 0


# --- development PKI ----------------------------------------------------------------------------------------------
def cmd_pki(args: argparse.Namespace) -> int:
    """The development PKI standing in for IGC-Santé: never for production, never committed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from gateway.pki import DevelopmentPKI

    folder = Path(args.dir)
    if args.action == "init":
        if (folder / "root-ca.crt").exists() and not args.force:
            raise CommandError(f"A PKI already exists in {folder}; use --force to replace it.")
        pki = DevelopmentPKI.create(args.ca_name)
        pki.save(folder)
        (folder / "crl.pem").write_bytes(pki.crl())
        print(f"Root and intermediate CA written to {folder}; trust anchors: {folder / 'ca-bundle.crt'}")
        return 0
    if args.action == "fingerprint":
        cert = x509.load_pem_x509_certificates(Path(args.name).read_bytes())[0]
        print(cert.fingerprint(hashes.SHA256()).hex())
        return 0
    if not (folder / "intermediate-ca.key").exists():
        raise CommandError(f"No development PKI in {folder}; create one with 'gateway pki init --dir {folder}'.")
    pki = DevelopmentPKI.load(folder)
    revoked_list = folder / "revoked.pem"
    if args.action in ("revoke", "crl"):
        revoked = x509.load_pem_x509_certificates(revoked_list.read_bytes()) if revoked_list.exists() else []
        if args.action == "revoke":
            cert = x509.load_pem_x509_certificates(Path(args.name).read_bytes())[0]
            revoked.append(cert)
            with revoked_list.open("ab") as out:
                out.write(cert.public_bytes(_pem()))
        (folder / "crl.pem").write_bytes(pki.crl(tuple(revoked)))
        print(f"Revocation list with {len(revoked)} certificate(s) written to {folder / 'crl.pem'}")
        return 0
    name = args.name
    if args.action == "server":
        issued = pki.server(name)
    elif args.action == "operator":
        issued = pki.operator(name, tuple(args.domain or ()))
    elif args.action == "client":
        issued = pki.software(name)
    else:
        issued = pki.signing(name)
    stem = args.out or name.replace("@", "_").replace(" ", "_").replace("/", "_")
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    issued.write(cert_path, key_path)
    print(f"{args.action} certificate written to {cert_path} (key {key_path})")
    print(f"SHA-256 fingerprint: {issued.fingerprint()}")
    return 0


def _pem() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


# --- outbound queue ---------------------------------------------------------------------------------------------
def cmd_queue(args: argparse.Namespace) -> int:
    from gateway.smtp import outbound

    cfg = load_config(args)

    async def list_(session: AsyncSession) -> None:
        rows = await outbound.list_queue(session, args.state)
        print_rows([{"id": r.id, "message_id": r.message_id, "recipient": r.recipient, "state": r.state,
                      "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                      "last_reply": (r.last_reply or "")[:60]} for r in rows], args.json)

    async def retry(session: AsyncSession) -> str:
        count = await outbound.retry_now(session, args.ids or None)
        return f"{count} queued recipient(s) will be tried again at once."

    action: Callable[[AsyncSession], Awaitable[Any]] = {"list": list_, "retry": retry}[args.action]
    message = _run(cfg, action)
    if message:
        print(message)
    return 0


# --- parser ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Secure health-messaging gateway (MSSanté).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the gateway's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help=f"configuration file (default $GATEWAY_CONFIG or {DEFAULT_CONFIG})")
        p.add_argument("--actor", default=os.environ.get("USER", "admin"), help="who does this (for the trail)")
        p.add_argument("--json", action="store_true", help="list, show: print JSON only (for scripts)")
        return p

    serve = with_config(sub.add_parser("serve", help="run the gateway"))
    serve.add_argument("--banner", action="store_true", help="print how to connect once listening")
    serve.set_defaults(func=cmd_serve)
    worker = with_config(sub.add_parser("worker", help="(started by 'gateway serve': one worker process)"))
    worker.add_argument("--index", type=int, required=True, help="the worker's number (0 runs once-only work)")
    worker.add_argument("--channel", type=int, required=True, help="file descriptor of the supervisor's channel")
    worker.add_argument("--parent", type=int, required=True, help="the supervisor's process id")
    worker.add_argument("--listen", action="append", help="KEY=FD of an inherited listening socket")
    worker.set_defaults(func=cmd_worker)

    init = sub.add_parser("init", help="create a development configuration, PKI, database and demo accounts")
    init.add_argument("--data", default="data", help="data folder (git-ignored)")
    init.add_argument("--force", action="store_true", help="overwrite an existing configuration")
    init.set_defaults(func=cmd_init)

    mailbox = with_config(sub.add_parser("mailbox", help="add, list, disable, import mailboxes, set passwords"))
    mailbox.add_argument("action", choices=["add", "list", "disable", "enable", "password", "import"],
                         help="import: create every account of a CSV file (columns address, kind, password or "
                              "password_hash, display_name)")
    mailbox.add_argument("address", nargs="?", help="the mailbox's address; import: the CSV file")
    mailbox.add_argument("--kind", choices=["PER", "ORG", "APP", "PAT"], default="PER",
                         help="add: professional, organisational, applicative or patient mailbox (default PER)")
    mailbox.add_argument("--name", help="add: display name")
    mailbox.add_argument("--password", help="password (prefer --password-stdin)")
    mailbox.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    mailbox.add_argument("--ask-password", action="store_true", help="ask for the password on the terminal")
    mailbox.add_argument("--skip-bad", action="store_true",
                         help="import: create the good lines even when others have errors (reported by line)")
    mailbox.add_argument("--workers", type=int, metavar="N",
                         help="import: processes hashing passwords (default one per core)")
    mailbox.add_argument("--certificate-fingerprint", help="SHA-256 of a client certificate (software login)")
    mailbox.set_defaults(func=cmd_mailbox)

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

    conversation = with_config(sub.add_parser("conversation", help="patient conversations (R1–R5)"))
    conversation.add_argument("action", choices=["list", "show", "block", "unblock"],
                              help="block, unblock: the patient's replies in the conversation (R3)")
    conversation.add_argument("id", nargs="?", type=int, help="the conversation (show, block, unblock)")
    conversation.add_argument("--mailbox", help="only this professional mailbox's conversations")
    conversation.set_defaults(func=cmd_conversation)

    pki = sub.add_parser("pki", help="development PKI standing in for IGC-Santé (never for production)")
    pki.add_argument("action", choices=["init", "server", "operator", "client", "signing", "revoke", "crl",
                                        "fingerprint"], help="init the CAs, issue a certificate, revoke one, "
                                                             "write the CRL, or print a fingerprint")
    pki.add_argument("name", nargs="?", help="host name, software name, or certificate file (revoke, fingerprint)")
    pki.add_argument("--dir", default="data/pki", help="PKI folder (git-ignored)")
    pki.add_argument("--domain", action="append", help="operator: a mail domain the certificate names (repeat)")
    pki.add_argument("--out", help="file stem for the certificate and key (default: from the name)")
    pki.add_argument("--ca-name", default="Gateway Test", help="init: name of the CAs")
    pki.add_argument("--force", action="store_true", help="init: replace an existing PKI")
    pki.set_defaults(func=cmd_pki)

    queue = with_config(sub.add_parser("queue", help="outbound queue to other operators"))
    queue.add_argument("action", choices=["list", "retry"], help="retry: try queued recipients again now")
    queue.add_argument("ids", nargs="*", type=int, help="retry: only these queue ids")
    queue.add_argument("--state", choices=["queued", "sent", "failed"], help="list: only this state")
    queue.set_defaults(func=cmd_queue)
    from gateway.commands import dmp, dns_records, documents, throttle

    documents.register(sub, with_config)
    dns_records.register(sub, with_config)
    dmp.register(sub, with_config)
    throttle.register(sub, with_config)
    from gateway.commands import directory

    directory.register(sub, with_config)
    from gateway.commands import backup, mail_transfer, manpages, migrate

    migrate.register(sub, with_config)
    mail_transfer.register(sub, with_config)
    backup.register(sub, with_config)
    manpages.register(sub, with_config)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=f"{help_text}; see 'gateway {name} --help'", add_help=False)
    return parser


_REQUIRED: dict[tuple[str, str | None], list[str]] = {
    ("mailbox", "add"): ["address"], ("mailbox", "disable"): ["address"], ("mailbox", "enable"): ["address"],
    ("mailbox", "password"): ["address"],
    ("identity", "add"): ["matricule", "birth_name", "first_names", "birth_date", "sex", "birth_place"],
    ("identity", "show"): ["id"], ("identity", "insi"): ["id"], ("identity", "document"): ["id", "kind"],
    ("pki", "server"): ["name"], ("pki", "operator"): ["name"], ("pki", "client"): ["name"],
    ("pki", "signing"): ["name"], ("pki", "revoke"): ["name"], ("pki", "fingerprint"): ["name"],
    ("conversation", "show"): ["id"], ("conversation", "block"): ["id"], ("conversation", "unblock"): ["id"],
}


#: Command groups with their own parser, handed the rest of the command line as is.
DELEGATED = {
    "card-agent": ("gateway.card.agent", "the workstation's smart-card agent"),
    "card": ("gateway.card.admin", "register, list, deactivate card agents"),
    "dmp-simulator": ("gateway.dmp_bridge.simulator", "a local DMP speaking ITI-41/ITI-18 for development and tests"),
    "psc-simulator": ("gateway.psc.simulator", "a local Pro Sante Connect (OpenID Connect) for development and tests"),
    "directory-simulator": ("gateway.directory.simulator", "a local Annuaire Santé (FHIR) for development and tests"),
    "dev-stack": ("gateway.devstack", "the development stack: DMP simulator, gateway and demo (make run)"),
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; a reader that closed the pipe (``gateway mailbox list | head -1``) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Nothing more can be written; point stdout at /dev/null so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "worker"):
        logs.configure("warning")  # the trail is in the store; the command prints its own one-line result
    for name in _REQUIRED.get((args.command, getattr(args, "action", None)), []):
        if getattr(args, name, None) in (None, ""):
            parser.error(f"'{args.command} {args.action}' needs {name.replace('_', '-')}")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # The importable module's main: command modules raise gateway.cli.CommandError, which is not the class
    # of this __main__ module when run with ``python -m gateway.cli``.
    from gateway import cli

    sys.exit(cli.main())
