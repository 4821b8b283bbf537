"""``gateway pki``: the development PKI standing in for IGC-Santé (never for production).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.commands.common import CommandError


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """The parsers of this group, added to ``gateway``'s subcommands."""
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
    # What each action needs beyond argparse's own checks (cli.py reports the first one missing).
    pki.set_defaults(needs={"server": ["name"], "operator": ["name"], "client": ["name"], "signing": ["name"],
        "revoke": ["name"], "fingerprint": ["name"]})


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
