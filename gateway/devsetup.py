"""``gateway init``: a development configuration, PKI, database and demo accounts in a git-ignored folder."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from gateway import config as config_module
from gateway.config import Config
from gateway.pki import DevelopmentPKI

DEV_HOSTNAME = "mail.gateway.test"
DEV_DOMAIN = "pro.gateway.test"
PATIENT_DOMAIN = "patient.gateway.test"
DEMO_PROFESSIONAL = f"dr.demo@{DEV_DOMAIN}"
DEMO_PATIENT_MATRICULE = "279035121518989"  # the ANS samples' test patient (INS-NIR test OID)
DEMO_PATIENT = f"{DEMO_PATIENT_MATRICULE}@{PATIENT_DOMAIN}"
#: The organisational mailbox whose documents are filed to patients' records (R10).
DEMO_FILING = f"resultats@{DEV_DOMAIN}"
#: The local DMP simulator's port in development.
DEV_DMP_PORT = 2844

CONFIG_TEMPLATE = """\
# Development configuration written by `gateway init`. See config/gateway.example.toml for every key.
[gateway]
hostname = "{hostname}"
domains = ["{domain}"]
patient_domain = "{patient_domain}"
log_level = "info"

[database]
url = "sqlite+aiosqlite:///gateway.sqlite3"

[tls]
certificate = "pki/server.crt"
private_key = "pki/server.key"
client_ca = "pki/ca-bundle.crt"

[smtp]
submission = "127.0.0.1:{smtp}"
submissions = "127.0.0.1:{smtps}"

[imap]
listen = "127.0.0.1:{imap}"
listen_tls = "127.0.0.1:{imaps}"

[rules]
allow_test_identities = true

# Mail with other operators over mutual TLS (certs/README.md). The whitelist written by `gateway init` names
# this gateway's own domains; add the domains of the operators you test with, and a route to each of them.
[whitelist]
source = "liste-blanche.xml"
cache = "liste-blanche.cache.xml"

[outbound]
use_mx = false
# routes = {{ "pro.other.test" = "127.0.0.1:2526" }}

# Prometheus metrics, /healthz and /readyz, and mail-client autoconfiguration (Thunderbird, Outlook).
[metrics]
listen = "127.0.0.1:9187"

[autoconfig]

# Documents a filing mailbox receives are filed to the patient's record (R10) or sent to review.
[documents]
filing_mailboxes = ["{filing}"]

# DMP deposits (R12-R17) go to the local DMP simulator that `make run` starts (`gateway dmp-simulator`).
[dmp]
repository_url = "https://localhost:{dmp}/repository"
registry_url = "https://localhost:{dmp}/registry"
ca_file = "pki/ca-bundle.crt"
client_certificate = "pki/structure-tls.crt"
client_key = "pki/structure-tls.key"
signing_certificate = "pki/structure-signing.crt"
signing_key = "pki/structure-signing.key"
structure_id = "1120459876"
structure_name = "Cabinet de démonstration"
source_id = "1.2.250.1.999.42"
lps_homologation = "DEV-HOMOLOGATION"
activity_sector = "SA25"
default_mode = "systematic"

# The demo professional is the author of the sample lab report (R12: only the author deposits).
[[dmp.professional]]
national_id = "801234534765"
family = "CAMPARINI"
given = "Marcel"
mailbox = "{professional}"
role = "21"
specialty = "SM05"

# The relay listener other operators deliver to (port 25 in production), client certificate required:
# [relay]
# listen = "127.0.0.1:2525"
# trust_anchors = "pki/ca-bundle.crt"
# crl = "pki/crl.pem"
"""

WHITELIST_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Development whitelist (national format: //Domaine/Nom in https://listeblanche.mssante.fr/schema). -->
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
{domains}</ListeBlanche>
"""


def write_whitelist(data: Path, domains: tuple[str, ...]) -> Path:
    path = data / "liste-blanche.xml"
    items = "".join(f"  <Domaine><Nom>{d}</Nom></Domaine>\n" for d in domains)
    path.write_text(WHITELIST_TEMPLATE.format(domains=items), encoding="utf-8")
    return path


def write_pki(folder: Path, hostname: str) -> DevelopmentPKI:
    pki = DevelopmentPKI.create()
    pki.save(folder)
    # The server certificate is also the operator certificate: it names our mail domains for the relay.
    pki.operator(hostname, (DEV_DOMAIN, PATIENT_DOMAIN)).write(folder / "server.crt", folder / "server.key")
    (folder / "crl.pem").write_bytes(pki.crl())
    # The structure's certificates for the DMP (TLS client, VIHF signature) and the DMP simulator's server one.
    pki.software("structure-tls").write(folder / "structure-tls.crt", folder / "structure-tls.key")
    pki.signing("structure-signing").write(folder / "structure-signing.crt", folder / "structure-signing.key")
    pki.server("localhost").write(folder / "dmp-simulator.crt", folder / "dmp-simulator.key")
    return pki


def write_config(data: Path, ports: tuple[int, int, int, int] = (2587, 2465, 2143, 2993), **overrides: str) -> Path:
    smtp, smtps, imap, imaps = ports
    text = CONFIG_TEMPLATE.format(hostname=DEV_HOSTNAME, domain=DEV_DOMAIN, patient_domain=PATIENT_DOMAIN,
                                  smtp=smtp, smtps=smtps, imap=imap, imaps=imaps, filing=DEMO_FILING,
                                  dmp=DEV_DMP_PORT, professional=DEMO_PROFESSIONAL)
    for key, value in overrides.items():
        text = text.replace('url = "sqlite+aiosqlite:///gateway.sqlite3"', f'url = "{value}"') \
            if key == "database_url" else text
    path = data / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _demo_accounts(cfg: Config, data: Path) -> bool:
    """Create the demo mailboxes; True when the demo patient's identity is still to be qualified."""
    from gateway.auth.passwords import hash_password
    from gateway.ins_matching import identities
    from gateway.store import db, mailstore

    await db.create_database(cfg.database_url)  # the daemon never creates the store it is given
    await db.migrate(cfg.database_url)
    engine = db.create_engine(cfg.database_url)
    lines = []
    async with db.sessionmaker(engine)() as session, session.begin():
        for address, kind in ((DEMO_PROFESSIONAL, "PER"), (DEMO_PATIENT, "PAT"), (DEMO_FILING, "ORG")):
            if await mailstore.mailbox_by_address(session, address) is None:
                password = secrets.token_urlsafe(12)
                await mailstore.create_mailbox(
                    session, address, kind, password_hash=hash_password(password),
                    matricule=DEMO_PATIENT_MATRICULE if kind == "PAT" else None)
                lines.append(f"{address} {password}")
        missing = await identities.find(session, DEMO_PATIENT_MATRICULE) is None
    await engine.dispose()
    if lines:
        accounts = data / "dev-accounts.txt"
        accounts.touch(mode=0o600, exist_ok=True)
        with accounts.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    return missing


def qualify_demo_patient(config: Path) -> list[str]:
    """R7: the demo patient becomes ``qualifiée`` through the commands a person runs (``gateway identity add``,
    ``insi``, ``document``), each printed before it runs so that the demo teaches the real steps. Returns the
    commands run."""
    import re
    import shlex
    import subprocess
    import sys

    from gateway.ins_matching.insi import TEST_PATIENT

    t = TEST_PATIENT.traits
    steps = [["identity", "add", "--matricule", TEST_PATIENT.matricule, "--oid", TEST_PATIENT.oid,
              "--birth-name", t.birth_name, "--first-names", t.first_names, "--birth-date", t.birth_date,
              "--sex", t.sex, "--birth-place", t.birth_place]]
    shown = []
    identity_id = ""
    for index in range(3):
        argv = steps[index] if index == 0 else (
            ["identity", "insi", identity_id] if index == 1 else
            ["identity", "document", identity_id, "--kind", "passport"])
        argv = [*argv, "--config", str(config), "--actor", "gateway init"]
        line = "gateway " + shlex.join(argv)
        print(f"$ {line}", flush=True)
        # The command line itself, as a person would type it (a process of its own).
        done = subprocess.run([sys.executable, "-m", "gateway.cli", *argv], capture_output=True, text=True,
                              check=False)
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            raise RuntimeError(f"{line} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        shown.append(line)
        if index == 0:
            found = re.search(r"Identity (\d+) added", done.stdout)
            if found is None:
                raise RuntimeError(f"{line} did not name the identity it added.")
            identity_id = found.group(1)
    return shown


async def _store_exists(url: str) -> bool:
    from gateway.store import db

    try:
        await db.check_store(url)
    except db.StoreUnavailable:
        return False
    return True


def initialise(data: Path, force: bool = False) -> Path:
    """Create ``data/`` with PKI, configuration, a migrated SQLite store and two demo accounts.

    An existing configuration is kept (unless ``force``), but the store it names is created if missing:
    ``gateway serve`` refuses a ``database.url`` that names no store.
    """
    data.mkdir(parents=True, exist_ok=True)
    path = data / "gateway.toml"
    if path.exists() and not force:
        cfg = config_module.load(path)
        if not asyncio.run(_store_exists(cfg.database_url)) and asyncio.run(_demo_accounts(cfg, data)):
            qualify_demo_patient(path)
        return path
    write_pki(data / "pki", DEV_HOSTNAME)
    write_config(data)
    write_whitelist(data, (DEV_DOMAIN, PATIENT_DOMAIN))
    cfg = config_module.load(path)
    if asyncio.run(_demo_accounts(cfg, data)):
        qualify_demo_patient(path)
    return path


def connection_banner(cfg: Config, data: Path) -> str:
    accounts = (data / "dev-accounts.txt")
    lines = accounts.read_text(encoding="utf-8").splitlines() if accounts.exists() else []
    smtp_port = cfg.submission.port if cfg.submission else 2587
    out = [
        "",
        "The gateway is running.",
        f"  SMTP submission  {cfg.submission} (STARTTLS)   and  {cfg.submissions} (implicit TLS)",
        f"  IMAP             {cfg.imap} (STARTTLS)   and  {cfg.imaps} (implicit TLS)",
        f"  CA certificate   {data / 'pki' / 'ca-bundle.crt'} (trust it in your mail client)",
        "  Demo accounts (login = address):",
        *[f"    {line}" for line in lines],
        "  Try it:",
        f"    curl --ssl-reqd --cacert {data / 'pki' / 'ca-bundle.crt'} smtp://127.0.0.1:{smtp_port} \\",
        f"         --user '{DEMO_PROFESSIONAL}:<password>' --mail-from {DEMO_PROFESSIONAL} \\",
        f"         --mail-rcpt {DEMO_PATIENT} --upload-file message.eml",
        "",
    ]
    return "\n".join(out)
