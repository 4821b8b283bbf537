"""An authenticated IMAP session of one account, and the login that opens it.

Extends pymap's ``BaseSession``: the defaults make one store round trip per message; the overrides here batch
FETCH, SEARCH, STORE, COPY and MOVE into a few indexed queries and one transaction per command.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import structlog
from pymap.backend.session import BaseSession
from pymap.context import current_command, socket_info
from pymap.exceptions import (
    InvalidAuth,
    MailboxConflict,
    MailboxError,
    MailboxNotFound,
    MailboxReadOnly,
    ResponseError,
)
from pymap.flags import FlagOp, PermanentFlags, SessionFlags
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.interfaces.token import TokensInterface
from pymap.mailbox import MailboxSnapshot
from pymap.parsing.response import ResponseCode, ResponseNo
from pymap.parsing.response.code import CopyUid
from pymap.parsing.specials import FetchRequirement, ObjectId, SearchKey, SequenceSet
from pymap.parsing.specials.flag import Flag, Seen
from pymap.search import SearchCriteriaSet, SearchParams
from pymap.selected import SelectedMailbox
from pymap.token import AllTokens
from pymap.user import UserMetadata
from pysasl.creds.external import ExternalCredentials
from pysasl.creds.server import ServerCredentials

from gateway.auth.accounts import Account, Authenticator, LoginOutcome
from gateway.imap.search import prefilter
from gateway.imap.selected import StoreSelected
from gateway.imap.store import FolderData, FolderSet, Store, StoreMessage, _requirement_of

log = structlog.get_logger("gateway.imap")


class Throttled(ResponseError):
    """Too many failed logins from this address: ``NO [UNAVAILABLE]`` (RFC 5530), nothing checked."""

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(tag, b"Too many failed logins from your address; wait a few minutes and try again.",
                          ResponseCode.of(b"UNAVAILABLE"))


class Refused(MailboxError):
    """A folder operation the account may not do (``NO [CANNOT]``, RFC 5530)."""

    def __init__(self, mailbox: str, message: bytes) -> None:
        super().__init__(mailbox, message, ResponseCode.of(b"CANNOT"))


class StoreSession(BaseSession[StoreMessage]):
    """One account's view of the store."""

    def __init__(self, account: Account, config: Any, store: Store) -> None:
        super().__init__(account.address)
        self.account = account
        self._config = config
        self._folders = FolderSet(store, account.id)
        self._selected_folder: FolderData | None = None

    @property
    def config(self) -> Any:
        return self._config

    @property
    def mailbox_set(self) -> FolderSet:  # type: ignore[override]
        return self._folders

    async def _get_mailbox(self, name: str, *, try_create: bool = False) -> FolderData:  # type: ignore[override]
        try:
            return await self._folders.get_mailbox(name)
        except KeyError as exc:
            raise MailboxNotFound(name, try_create=try_create) from exc

    async def _get_selected(self, selected: SelectedMailbox) -> FolderData:  # type: ignore[override]
        # The selected folder is looked up once; if it is deleted meanwhile, update_selected notices (BYE).
        cached = self._selected_folder
        if cached is not None and cached.mailbox_id == selected.mailbox_id and cached.name == selected.lookup:
            return cached
        self._selected_folder = await self._get_mailbox(selected.lookup)
        return self._selected_folder

    # --- folders --------------------------------------------------------------------------------------------
    async def list_mailboxes(self, ref_name: str, filter_: str, subscribed: bool = False,
                             selected: SelectedMailbox | None = None
                             ) -> tuple[Iterable[tuple[str, str | None, Sequence[bytes]]], SelectedMailbox | None]:
        """LIST with RFC 6154 special-use attributes (\\Sent, \\Drafts, \\Trash, \\Archive)."""
        entries, updates = await super().list_mailboxes(ref_name, filter_, subscribed, selected)
        special = await self._folders.special_uses()
        result = []
        for name, delimiter, attributes in entries:
            extra = special.get(name)
            attrs = list(attributes) + ([extra.lstrip("\\").encode("ascii")] if extra else [])
            result.append((name, delimiter, attrs))
        return result, updates

    async def create_mailbox(self, name: str, selected: SelectedMailbox | None = None
                             ) -> tuple[ObjectId, SelectedMailbox | None]:
        try:
            return await super().create_mailbox(name, selected)
        except OverflowError:
            raise Refused(name, b"Too many folders; delete some before creating more.") from None
        except ValueError as exc:
            if str(exc) == "invalid folder name":
                raise Refused(name, b"This folder name is not allowed.") from None
            raise MailboxConflict(name) from None

    async def delete_mailbox(self, name: str, selected: SelectedMailbox | None = None) -> SelectedMailbox | None:
        try:
            return await super().delete_mailbox(name, selected)
        except PermissionError:
            raise Refused(name, b"This folder is needed by the gateway and cannot be deleted.") from None

    async def rename_mailbox(self, before_name: str, after_name: str,
                             selected: SelectedMailbox | None = None) -> SelectedMailbox | None:
        try:
            return await super().rename_mailbox(before_name, after_name, selected)
        except PermissionError:
            raise Refused(before_name, b"This folder is needed by the gateway and cannot be renamed.") from None
        except ValueError as exc:
            if str(exc) == "invalid folder name":
                raise Refused(after_name, b"This folder name is not allowed.") from None
            raise MailboxConflict(after_name) from None

    async def get_mailbox(self, name: str, selected: SelectedMailbox | None = None
                          ) -> tuple[MailboxSnapshot, SelectedMailbox | None]:
        mbx = await self._get_mailbox(name)
        return await mbx.snapshot(), await self._load_updates(selected, mbx)  # type: ignore[arg-type]

    async def select_mailbox(self, name: str, readonly: bool = False) -> tuple[MailboxSnapshot, SelectedMailbox]:
        """SELECT/EXAMINE: the folder's UIDs (cached per process for large folders) and its first unseen message."""
        mbx = await self._get_mailbox(name)
        selected = StoreSelected(mbx.mailbox_id, readonly, PermanentFlags(mbx.permanent_flags),
                                 SessionFlags(mbx.session_flags), selected_set=mbx.selected_set, lookup=name)
        uidnext = await mbx.uidnext()
        await mbx.update_selected(selected)
        return mbx.snapshot_of(selected, uidnext), selected

    # --- messages -------------------------------------------------------------------------------------------
    async def _named(self, mbx: FolderData, selected: SelectedMailbox,
                     sequence_set: SequenceSet) -> list[tuple[int, StoreMessage]]:
        """The messages a command names that are still in the store, with their current flags."""
        return [pair async for pair in mbx.find(sequence_set, selected)]

    async def fetch_messages(self, selected: SelectedMailbox, sequence_set: SequenceSet,
                             set_seen: bool) -> tuple[Iterable[tuple[int, StoreMessage]], SelectedMailbox]:
        mbx = await self._get_selected(selected)
        found = await self._named(mbx, selected, sequence_set)
        if set_seen:
            unseen = [msg.uid for _, msg in found if Seen not in msg.permanent_flags]
            if unseen:
                flags = await mbx.update_flags(unseen, frozenset({Seen}), FlagOp.ADD)
                found = [(seq, flags.get(msg.uid) or msg) for seq, msg in found]
        try:
            requirement = _requirement_of(current_command.get())
        except LookupError:
            requirement = FetchRequirement.NONE
        if requirement & FetchRequirement.CONTENT:
            loaded = await mbx.prefetch([msg for _, msg in found])
            found = [(seq, msg) for (seq, _), msg in zip(found, loaded, strict=True)]
        return found, await mbx.update_selected(selected)

    async def search_mailbox(self, selected: SelectedMailbox, keys: frozenset[SearchKey]
                             ) -> tuple[Iterable[tuple[int, StoreMessage]], SelectedMailbox]:
        """SEARCH: flags, UIDs and dates read from the store in UID ranges; headers and bodies in batches."""
        mbx = await self._get_selected(selected)
        requirement = FetchRequirement.reduce(key.requirement for key in keys)
        params = SearchParams(selected, disabled=self.config.disable_search_keys)
        search = SearchCriteriaSet(keys, params)
        conditions, exact = prefilter(keys)
        if exact:
            found = await mbx.find_uids_where(search.sequence_set, selected, conditions)
            return found, await mbx.update_selected(selected)
        if conditions:
            candidates = await mbx.find_where(search.sequence_set, selected, conditions)
        else:
            candidates = await self._named(mbx, selected, search.sequence_set)
        matches: list[tuple[int, StoreMessage]] = []
        step = 200
        for start in range(0, len(candidates), step):
            batch = candidates[start:start + step]
            loaded = [msg for _, msg in batch]
            if requirement & FetchRequirement.CONTENT:
                loaded = await mbx.prefetch(loaded)
            for (seq, msg), copy in zip(batch, loaded, strict=True):
                content = await copy.load_content(requirement)
                content.for_search = True
                if search.matches(seq, copy, content):
                    matches.append((seq, msg))  # not the copy holding the bytes
        return matches, await mbx.update_selected(selected)

    async def update_flags(self, selected: SelectedMailbox, sequence_set: SequenceSet, flag_set: frozenset[Flag],
                           mode: FlagOp = FlagOp.REPLACE
                           ) -> tuple[Iterable[tuple[int, StoreMessage]], SelectedMailbox]:
        if selected.readonly:
            raise MailboxReadOnly()
        assert isinstance(selected, StoreSelected)
        mbx = await self._get_selected(selected)
        pairs = selected.messages.get_uids(sequence_set)
        permanent = selected.permanent_flags & flag_set
        updated = await mbx.update_flags([uid for _, uid in pairs], permanent, mode)
        selected.own_flags({uid: msg.permanent_flags for uid, msg in updated.items() if msg is not None})
        result = []
        for seq, uid in pairs:
            msg = updated.get(uid)
            if msg is None:
                result.append((seq, StoreMessage.gone(uid, mbx)))
                continue
            selected.session_flags.update(uid, flag_set, mode)
            result.append((seq, msg))
        return result, await mbx.update_selected(selected)

    async def _copy(self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str,
                    move: bool) -> tuple[CopyUid | None, SelectedMailbox]:
        if move and selected.readonly:
            raise MailboxReadOnly()
        mbx = await self._get_selected(selected)
        dest = await self._get_mailbox(mailbox, try_create=True)
        if dest.folder_id == mbx.folder_id and move:
            raise Refused(mailbox, b"A message cannot be moved into the folder it is in.")
        uids = [uid for _, uid in selected.messages.get_uids(sequence_set)]
        pairs = await mbx.copy_many(uids, dest, move=move)
        copy_uid = CopyUid(dest.uid_validity, pairs) if pairs else None
        return copy_uid, await mbx.update_selected(selected)

    async def copy_messages(self, selected: SelectedMailbox, sequence_set: SequenceSet,
                            mailbox: str) -> tuple[CopyUid | None, SelectedMailbox]:
        return await self._copy(selected, sequence_set, mailbox, move=False)

    async def move_messages(self, selected: SelectedMailbox, sequence_set: SequenceSet,
                            mailbox: str) -> tuple[CopyUid | None, SelectedMailbox]:
        return await self._copy(selected, sequence_set, mailbox, move=True)


class StoreIdentity(IdentityInterface):
    """The authenticated account; opens its session (pymap's identity interface)."""

    def __init__(self, account: Account, config: Any, store: Store) -> None:
        self.account = account
        self._config = config
        self._store = store

    @property
    def name(self) -> str:
        return self.account.address

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @asynccontextmanager
    async def new_session(self) -> AsyncIterator[StoreSession]:
        yield StoreSession(self.account, self._config, self._store)

    async def new_token(self, *, expiration: datetime | None = None) -> str | None:
        return None

    async def get(self) -> UserMetadata:
        return UserMetadata(self._config, self.account.address)

    async def set(self, metadata: UserMetadata) -> int | None:
        raise InvalidAuth("Accounts are managed by the gateway's administration commands.")

    async def delete(self) -> None:
        raise InvalidAuth("Accounts are managed by the gateway's administration commands.")


class _SecretCapture:
    """Receives the password from pysasl's public ``verify`` API so our authenticator can check it."""

    def __init__(self, authcid: str) -> None:
        self.authcid = authcid
        self.secret: str | None = None

    def compare_authcid(self, authcid: str) -> bool:
        return True

    def compare_secret(self, secret: str) -> bool:
        self.secret = secret
        return True

    def get_clear_secret(self) -> str | None:
        return None


class StoreLogin(LoginInterface):
    """LOGIN and AUTHENTICATE PLAIN through the gateway's one authenticator (same accounts and throttle as SMTP)."""

    def __init__(self, config: Any, store: Store, authenticator: Authenticator) -> None:
        self._config = config
        self._store = store
        self._authenticator = authenticator
        self._tokens = AllTokens(config)

    @property
    def tokens(self) -> TokensInterface:
        return self._tokens

    async def authenticate(self, credentials: ServerCredentials) -> StoreIdentity:
        if isinstance(credentials, ExternalCredentials):
            return await self._external(credentials)
        capture = _SecretCapture(credentials.authcid)
        credentials.verify(capture)
        secret = capture.secret
        if secret is None:
            raise InvalidAuth()
        try:
            client = str(socket_info.get().peername_ip or "unknown")
        except LookupError:
            client = "unknown"
        result = await self._authenticator.login(credentials.authcid, secret, client, "imap")
        if result.outcome is LoginOutcome.THROTTLED:
            raise Throttled()
        if result.outcome is not LoginOutcome.OK or result.account is None:
            raise InvalidAuth("Wrong user name or password.")
        return StoreIdentity(result.account, self._config, self._store)

    async def _external(self, credentials: ExternalCredentials) -> StoreIdentity:
        """SASL EXTERNAL: the mailbox bound to the TLS client certificate (software accounts, issue 5)."""
        from gateway.imap.connection import CURRENT_WRITER
        from gateway.trust.certificates import login_external

        writer = CURRENT_WRITER.get()
        ssl_object = writer.get_extra_info("ssl_object") if writer is not None else None
        try:
            client = str(socket_info.get().peername_ip or "unknown")
        except LookupError:
            client = "unknown"
        result = await login_external(self._authenticator, ssl_object, credentials.authzid, client, "imap")
        if not isinstance(result, Account):
            if result.code == 454:
                raise Throttled()
            raise InvalidAuth(result.text)
        return StoreIdentity(result, self._config, self._store)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> StoreIdentity:
        assert isinstance(authenticated, StoreIdentity)
        if authzid and authzid.lower() != authenticated.account.address:
            raise InvalidAuth("A login cannot act as another account.")
        return authenticated
