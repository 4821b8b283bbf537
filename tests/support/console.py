"""Console test helpers: the console served in the test's own event loop over real TLS (test PKI), on an
ephemeral loopback port, and an HTTPS client with its cookie jar; accounts are made with the same function as
``gateway console-user``."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
from sqlalchemy import select

from gateway import config as config_module
from gateway.auth.passwords import hash_password
from gateway.config import Config
from gateway.store import db, mailstore
from gateway.store.models import Event
from gateway.web import accounts
from gateway.web.app import WebService, start_web
from support.pki import HOSTNAME, PKIFiles
from support.process import CONFIG, free_port

SECRET = "une-phrase-secrete-de-test-assez-longue-0123456789"
PASSWORD = "mot-de-passe-de-test-1"
WEB = '\n[web]\nlisten = "127.0.0.1:{port}"\nsession_secret = "{secret}"\n{more}'


def write_config(folder: Path, pki: PKIFiles, url: str, *, secret: str = SECRET, more: str = "",
                 extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gateway.toml"
    text = CONFIG.format(hostname=HOSTNAME, url=url, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_bundle,
                         smtp=free_port(), smtps=free_port(), imap=free_port(), imaps=free_port(),
                         message_size=1_048_576, extra=extra, log_level="info")
    path.write_text(text + WEB.format(port=free_port(), secret=secret, more=more), encoding="utf-8")
    return path


@dataclass(frozen=True)
class User:
    username: str
    password: str
    secret: str | None
    role: str

    def code(self) -> str:
        assert self.secret is not None
        return pyotp.TOTP(self.secret).now()


@dataclass
class ConsoleServer:
    config: Config
    engine: Any
    sessions: Any
    service: WebService
    pki: PKIFiles
    users: list[User] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.service.port}"

    async def add_user(self, role: str, username: str | None = None, password: str | None = PASSWORD,
                       psc_id: str | None = None) -> User:
        name = username or f"{role}{len(self.users) + 1}"
        async with self.sessions() as session, session.begin():
            _, secret = await accounts.add_user(session, name, role, password=password, actor="test",
                                                display_name=f"Personne {name}", psc_id=psc_id)
        user = User(name, password or "", secret, role)
        self.users.append(user)
        return user

    async def events(self, prefix: str = "") -> list[Event]:
        async with self.sessions() as session:
            query = select(Event).where(Event.kind.startswith(prefix)).order_by(Event.id)
            return list((await session.execute(query)).scalars())

    async def add_mailbox(self, address: str, kind: str, password: str = PASSWORD) -> int:
        async with self.sessions() as session, session.begin():
            return await mailstore.create_mailbox(session, address, kind, password_hash=hash_password(password),
                                                  matricule=address.split("@")[0] if kind == "PAT" else None)

    def client(self) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return aiohttp.ClientSession(self.url, connector=aiohttp.TCPConnector(ssl=context),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))


async def start_console(config_path: Path, pki: PKIFiles) -> ConsoleServer:
    config = config_module.load(config_path)
    await db.migrate(config.database_url)
    engine = db.create_engine(config.database_url)
    sessions = db.sessionmaker(engine)
    service = await start_web(config, sessions)
    return ConsoleServer(config, engine, sessions, service, pki)


async def stop_console(server: ConsoleServer) -> None:
    await server.service.close()
    await server.engine.dispose()


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def get(client: aiohttp.ClientSession, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
    async with client.get(path, server_hostname=HOSTNAME, allow_redirects=kwargs.pop("follow", True),
                          **kwargs) as response:
        return response.status, await response.text(), response


async def post(client: aiohttp.ClientSession, path: str, data: dict[str, str],
               follow: bool = True) -> tuple[int, str, aiohttp.ClientResponse]:
    async with client.post(path, data=data, server_hostname=HOSTNAME, allow_redirects=follow) as response:
        return response.status, await response.text(), response


async def login(client: aiohttp.ClientSession, user: User, code: str | None = None,
                password: str | None = None) -> tuple[int, str]:
    _, page, _ = await get(client, "/connexion")
    status, text, _ = await post(client, "/connexion", {
        "csrf": csrf_of(page), "identifiant": user.username, "mot_de_passe": password or user.password,
        "code": code if code is not None else user.code()})
    return status, text
