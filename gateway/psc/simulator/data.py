"""The simulator's test professionals and OIDC clients: the built-in set and the TOML file that replaces it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

DEFAULT_DATA = """\
# Test professionals (the same national ids as the Annuaire Santé simulator's) and OIDC clients.
[[professional]]
user = "marcel"
national_id = "801234534765"
family = "CAMPARINI"
given = "Marcel"
profession = "21"
specialty = "SM03"

[[professional]]
user = "jean"
national_id = "801234567897"
family = "MEDECIN"
given = "Jean"
profession = "10"
specialty = "SM54"

[[professional]]
user = "claire"
national_id = "810100000011"
family = "SOIGNANT"
given = "Claire"
profession = "60"

[[professional]]
user = "paul"
national_id = "899700000019"
family = "ABSENT"
given = "Paul"
profession = "10"
specialty = "SM26"

[[client]]
client_id = "gateway"
secret = "gateway-dev-secret"

[[client]]
client_id = "web-console"
secret = "web-console-dev-secret"

[[client]]
client_id = "mail-client"
# no secret: a public client (a mail program), PKCE required
"""


@dataclass(frozen=True)
class Professional:
    user: str
    national_id: str
    family: str
    given: str
    profession: str = ""
    specialty: str = ""


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str = ""
    #: Allowed redirect URIs; empty = any http(s) URI (development).
    redirect_uris: tuple[str, ...] = ()


class DataError(ValueError):
    """The data file is not what the simulator reads (one sentence naming the entry)."""


def load_data(text: str) -> tuple[list[Professional], list[Client]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"The data file is not valid TOML: {exc}.") from None
    pros, clients = [], []
    for i, p in enumerate(data.get("professional", [])):
        try:
            pros.append(Professional(str(p["user"]), str(p["national_id"]), str(p["family"]), str(p["given"]),
                                     str(p.get("profession", "")), str(p.get("specialty", ""))))
        except (KeyError, TypeError):
            raise DataError(f"professional {i + 1} needs user, national_id, family and given.") from None
    for i, c in enumerate(data.get("client", [])):
        try:
            clients.append(Client(str(c["client_id"]), str(c.get("secret", "")),
                                  tuple(str(u) for u in c.get("redirect_uris", []))))
        except (KeyError, TypeError):
            raise DataError(f"client {i + 1} needs client_id.") from None
    if not pros or not clients:
        raise DataError("The data file needs at least one [[professional]] and one [[client]].")
    return pros, clients
