"""Framed commands to typed values (RFC 9051 9 grammar and the extensions the server offers).

:func:`parse` either returns a :mod:`gateway.imap.proto.commands` value or raises
:class:`~gateway.imap.proto.errors.ProtocolError`; nothing else escapes (the fuzz tests in
``tests/imap/proto`` hold it to that). The grammar is read left to right with compiled regexes; the only
nested constructs (search keys, lists) use loops with explicit bounds.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from gateway.imap.proto import commands as c
from gateway.imap.proto.errors import ProtocolError
from gateway.imap.proto.fetch import parse_items
from gateway.imap.proto.lexer import Cursor
from gateway.imap.proto.limits import MAX_ITEMS, MAX_LITERALS, MAX_NUMBER64, MAX_TAG
from gateway.imap.proto.reader import RawCommand
from gateway.imap.proto.search import SearchKey, parse_keys

_TAG = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+")
_VERB = re.compile(rb"[A-Za-z]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")

#: STATUS items (RFC 9051 6.3.11, RFC 7162 3.1.6 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 7889 APPENDLIMIT,
#: RFC 8474 MAILBOXID).
STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "HIGHESTMODSEQ",
        "APPENDLIMIT", "MAILBOXID",
    }
)
#: LIST selection options (RFC 5258 3.1, RFC 6154 5.1).
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
#: LIST return options (RFC 5258 3.2, RFC 6154 5.1, RFC 5819 STATUS handled apart).
LIST_RETURNS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
#: ESEARCH return options (RFC 4731 3.1, RFC 5182 2 SAVE).
SEARCH_RETURNS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
#: SORT keys (RFC 5256 3, RFC 5957 DISPLAYFROM / DISPLAYTO).
SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
#: THREAD algorithms offered (RFC 5256 3).
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
#: Search charsets the server understands; others get BADCHARSET (RFC 9051 6.4.4).
CHARSETS = frozenset({"UTF-8", "US-ASCII"})
BADCHARSET = "BADCHARSET (UTF-8 US-ASCII)"
#: Special-use attributes in their canonical case (RFC 6154 2, RFC 8457 \Important).
SPECIAL_USE = {
    name.lower(): name
    for name in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important")
}
#: RFC 2971 3.3 bounds on ID.
ID_MAX_PAIRS = 30
ID_MAX_FIELD = 30
ID_MAX_VALUE = 1024

Handler = Callable[[Cursor, str], c.BaseCommand]


def parse(raw: RawCommand, *, utf8: bool = False) -> c.BaseCommand:
    """One framed command to its typed value; ``utf8`` once UTF8=ACCEPT (or IMAP4rev2) is enabled (RFC 6855 3).

    Raises :class:`ProtocolError` with the tag when it could be read, ``None`` otherwise.
    """
    try:
        return _parse(raw, utf8)
    except ProtocolError:
        raise
    except (ValueError, IndexError, TypeError, OverflowError, AssertionError) as exc:
        # Belt and braces: the grammar raises ProtocolError itself; anything else is a malformed input we did
        # not foresee, and still only a BAD for the client.
        raise ProtocolError(raw.tag, "The command could not be parsed.") from exc


def _parse(raw: RawCommand, utf8: bool) -> c.BaseCommand:
    cur = Cursor(raw.parts, raw.tag, utf8)
    if len(raw.parts) > 2 * MAX_LITERALS + 1:
        raise cur.error(f"More than {MAX_LITERALS} literals in one command.")
    tag_match = _TAG.match(cur.buf)
    if tag_match is None:
        raise ProtocolError(None, "The command does not start with a valid tag.")
    tag = tag_match.group().decode("ascii")
    if len(tag) > MAX_TAG:
        raise ProtocolError(None, f"The tag is longer than {MAX_TAG} characters.")
    cur.tag = tag
    cur.pos = tag_match.end()
    cur.sp()
    verb = cur.match(_VERB, "a command name").group().decode("ascii").upper()
    if verb == "UID":
        cur.sp()
        sub = cur.match(_VERB, "a command after UID").group().decode("ascii").upper()
        uid_handler = _UID_COMMANDS.get(sub)
        if uid_handler is None:
            raise cur.error(f"UID {sub} is not a command.")
        return uid_handler(cur, tag, True)
    handler = _COMMANDS.get(verb)
    if handler is not None:
        return handler(cur, tag)
    seq_handler = _UID_COMMANDS.get(verb)
    if seq_handler is not None and verb != "EXPUNGE":
        return seq_handler(cur, tag, False)
    raise cur.error(f"Unknown command {verb[:40]}.")


# --- commands without arguments -----------------------------------------------------------------------------


def _bare(cls: type[c.BaseCommand]) -> Handler:
    def handler(cur: Cursor, tag: str) -> c.BaseCommand:
        cur.end()
        return cls(tag)

    return handler


# --- any state / not authenticated --------------------------------------------------------------------------


def _id(cur: Cursor, tag: str) -> c.Id:
    """ID (RFC 2971 4): ``ID ("name" "value" ...)`` or ``ID NIL``."""
    cur.sp()
    if cur.skip_word(b"NIL"):
        cur.end()
        return c.Id(tag, None)
    cur.expect(b"(", "a parenthesised list or NIL")
    params: list[tuple[str, str | None]] = []
    if not cur.skip(b")"):
        while True:
            field = cur.text(cur.string("a field name"), "ID field")
            cur.sp()
            value_bytes = cur.nstring("a field value or NIL")
            value = None if value_bytes is None else cur.text(value_bytes, "ID value")
            if len(field) > ID_MAX_FIELD or (value is not None and len(value) > ID_MAX_VALUE):
                raise cur.error("ID fields are at most 30 octets and values 1024 (RFC 2971 3.3).")
            params.append((field, value))
            if len(params) > ID_MAX_PAIRS:
                raise cur.error("ID takes at most 30 field-value pairs (RFC 2971 3.3).")
            if cur.skip(b")"):
                break
            cur.sp()
    cur.end()
    return c.Id(tag, tuple(params))


def _compress(cur: Cursor, tag: str) -> c.Compress:
    cur.sp()
    mechanism = cur.atom("a compression mechanism")
    cur.end()
    return c.Compress(tag, mechanism)


def _authenticate(cur: Cursor, tag: str) -> c.Authenticate:
    """AUTHENTICATE mechanism [SP initial-response] (RFC 9051 6.2.2, SASL-IR RFC 4959)."""
    cur.sp()
    mechanism = cur.atom("a SASL mechanism")
    initial: bytes | None = None
    if not cur.at_end():
        cur.sp()
        found = cur.match(_BASE64, "a base64 initial response or '='")
        token = found.group()
        if token == b"=":
            initial = b""
        else:
            try:
                initial = binascii.a2b_base64(token, strict_mode=True)
            except binascii.Error:
                raise cur.error("The initial response is not valid base64.") from None
    cur.end()
    return c.Authenticate(tag, mechanism, initial)


def _login(cur: Cursor, tag: str) -> c.Login:
    cur.sp()
    username = cur.astring_text("a user name")
    cur.sp()
    password = cur.astring_text("a password")
    cur.end()
    return c.Login(tag, username, password)


# --- authenticated ------------------------------------------------------------------------------------------


def _enable(cur: Cursor, tag: str) -> c.Enable:
    """ENABLE capability *(SP capability) (RFC 5161 3)."""
    names: list[str] = []
    while not cur.at_end():
        cur.sp()
        names.append(cur.atom("a capability name"))
        if len(names) > MAX_ITEMS:
            raise cur.error("Too many capabilities.")
    if not names:
        raise cur.error("ENABLE needs at least one capability.")
    return c.Enable(tag, tuple(names))


def _qresync(cur: Cursor) -> c.QResync:
    """``QRESYNC (uidvalidity modseq [known-uids [seq-match]])`` (RFC 7162 3.2.5)."""
    cur.sp()
    cur.expect(b"(", "'(' after QRESYNC")
    uidvalidity = cur.nz_number("the UIDVALIDITY")
    cur.sp()
    modseq = cur.modseq()
    known = None
    match = None
    if cur.skip(b" "):
        if cur.peek() != 0x28:
            known = cur.sequence_set(allow_saved=False)
            if known.has_star:
                raise cur.error("known-uids cannot hold '*' (RFC 7162 3.2.5).")
            cur.skip(b" ")
        if cur.skip(b"("):
            seqs = cur.sequence_set(allow_saved=False)
            cur.sp()
            uids = cur.sequence_set(allow_saved=False)
            cur.expect(b")", "')' closing the sequence match data")
            match = (seqs, uids)
    cur.expect(b")", "')' closing QRESYNC")
    return c.QResync(uidvalidity, modseq, known, match)


def _select(readonly: bool) -> Handler:
    def handler(cur: Cursor, tag: str) -> c.Select:
        """SELECT / EXAMINE mailbox [SP "(" select-param *(SP select-param) ")"] (RFC 9051 6.3.2, RFC 7162)."""
        cur.sp()
        mailbox = cur.mailbox()
        condstore = False
        qresync: c.QResync | None = None
        if not cur.at_end():
            cur.sp()
            cur.expect(b"(", "'(' opening the select parameters")
            while True:
                name = cur.atom("a select parameter")
                if name == "CONDSTORE" and not condstore:
                    condstore = True
                elif name == "QRESYNC" and qresync is None:
                    qresync = _qresync(cur)
                else:
                    raise cur.error(f"Unknown or repeated select parameter {name}.")
                if cur.skip(b")"):
                    break
                cur.sp()
        cur.end()
        return c.Select(tag, mailbox, readonly, condstore, qresync)

    return handler


def _create(cur: Cursor, tag: str) -> c.Create:
    """CREATE mailbox [SP "(" USE (attrs) ")"] (RFC 9051 6.3.4, RFC 6154 3)."""
    cur.sp()
    mailbox = cur.mailbox()
    uses: list[str] = []
    if not cur.at_end():
        cur.sp()
        cur.expect(b"(", "'(' opening the create parameters")
        while True:
            if cur.atom("a create parameter") != "USE":
                raise cur.error("The only create parameter is USE (RFC 6154 3).")
            cur.sp()
            cur.expect(b"(", "'(' opening the special-use attributes")
            while True:
                attr = cur.flag()
                if not attr.startswith("\\"):
                    raise cur.error("A special-use attribute starts with a backslash (RFC 6154 2).")
                uses.append(SPECIAL_USE.get(attr.lower(), attr))
                if len(uses) > MAX_ITEMS:
                    raise cur.error("Too many special-use attributes.")
                if cur.skip(b")"):
                    break
                cur.sp()
            if cur.skip(b")"):
                break
            cur.sp()
    cur.end()
    return c.Create(tag, mailbox, tuple(dict.fromkeys(uses)))


def _one_mailbox(cls: Callable[[str, str], c.BaseCommand]) -> Handler:
    def handler(cur: Cursor, tag: str) -> c.BaseCommand:
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, mailbox)

    return handler


def _rename(cur: Cursor, tag: str) -> c.Rename:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    new = cur.mailbox()
    cur.end()
    return c.Rename(tag, old, new)


def _status_items(cur: Cursor) -> tuple[str, ...]:
    cur.expect(b"(", "'(' opening the status items")
    items: list[str] = []
    while True:
        item = cur.atom("a status item")
        if item not in STATUS_ITEMS:
            raise cur.error(f"Unknown status item {item}.")
        items.append(item)
        if len(items) > MAX_ITEMS:
            raise cur.error("Too many status items.")
        if cur.skip(b")"):
            return tuple(dict.fromkeys(items))
        cur.sp()


def _status(cur: Cursor, tag: str) -> c.Status:
    """STATUS mailbox SP "(" status-att *(SP status-att) ")" (RFC 9051 6.3.11)."""
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    items = _status_items(cur)
    cur.end()
    return c.Status(tag, mailbox, items)


def _options(cur: Cursor, allowed: frozenset[str], what: str) -> list[str]:
    cur.expect(b"(", f"'(' opening the {what}")
    found: list[str] = []
    if cur.skip(b")"):
        return found
    while True:
        option = cur.atom(f"a {what[:-1] if what.endswith('s') else what}")
        if option not in allowed:
            raise cur.error(f"Unknown {what[:-1]} {option[:40]}.")
        found.append(option)
        if len(found) > MAX_ITEMS:
            raise cur.error(f"Too many {what}.")
        if cur.skip(b")"):
            return found
        cur.sp()


def _list(cur: Cursor, tag: str) -> c.List:
    """LIST [SP selection] SP reference SP (pattern / patterns) [SP RETURN (...)] (RFC 9051 6.3.9, RFC 5258)."""
    cur.sp()
    extended = False
    selection: list[str] = []
    if cur.peek() == 0x28:
        extended = True
        selection = _options(cur, LIST_SELECTION, "selection options")
        if "RECURSIVEMATCH" in selection and set(selection) <= {"RECURSIVEMATCH", "REMOTE"}:
            raise cur.error("RECURSIVEMATCH needs another selection option (RFC 5258 3.1).")
        cur.sp()
    reference = cur.mailbox(pattern=True)
    cur.sp()
    patterns: list[str] = []
    if cur.skip(b"("):
        extended = True
        while True:
            patterns.append(cur.mailbox(pattern=True))
            if len(patterns) > MAX_ITEMS:
                raise cur.error("Too many patterns.")
            if cur.skip(b")"):
                break
            cur.sp()
    else:
        patterns.append(cur.mailbox(pattern=True))
    returns: set[str] = set()
    status: tuple[str, ...] | None = None
    if not cur.at_end():
        cur.sp()
        if cur.atom("RETURN") != "RETURN":
            raise cur.error("Expected RETURN after the patterns (RFC 5258 3).")
        cur.sp()
        cur.expect(b"(", "'(' opening the return options")
        if not cur.skip(b")"):
            while True:
                option = cur.atom("a return option")
                if option == "STATUS" and status is None:
                    cur.sp()
                    status = _status_items(cur)
                elif option in LIST_RETURNS:
                    returns.add(option)
                else:
                    raise cur.error(f"Unknown or repeated return option {option[:40]}.")
                if cur.skip(b")"):
                    break
                cur.sp()
    cur.end()
    return c.List(
        tag, reference, tuple(patterns), frozenset(selection), frozenset(returns), status, False, extended
    )


def _lsub(cur: Cursor, tag: str) -> c.List:
    """LSUB reference SP pattern (RFC 3501 6.3.9)."""
    cur.sp()
    reference = cur.mailbox(pattern=True)
    cur.sp()
    pattern = cur.mailbox(pattern=True)
    cur.end()
    return c.List(tag, reference, (pattern,), lsub=True)


def _append(cur: Cursor, tag: str) -> c.Append:
    """APPEND mailbox 1*(SP [flag-list SP] [date-time SP] append-data) (RFC 9051 6.3.12, RFC 3502, RFC 6855 4)."""
    cur.sp()
    mailbox = cur.mailbox()
    messages: list[c.AppendMessage] = []
    while True:
        cur.sp()
        flags: frozenset[str] = frozenset()
        date = None
        if cur.peek() == 0x28:
            flags = cur.flag_list()
            cur.sp()
        if cur.peek() == 0x22:
            date = cur.date_time()
            cur.sp()
        utf8 = False
        if cur.skip_word(b"UTF8"):
            utf8 = True
            cur.sp()
            cur.expect(b"(", "'(' before the UTF8 message literal (RFC 6855 4)")
        if not cur.at_literal():
            raise cur.error("The message must be sent as a literal.")
        lit = cur.literal()
        if utf8:
            cur.expect(b")", "')' after the UTF8 message literal (RFC 6855 4)")
        if not lit.binary and b"\x00" in lit.data:
            raise cur.error("A message holding NUL must be sent as a binary literal ~{n} (RFC 3516 4.4).")
        messages.append(c.AppendMessage(flags, date, lit.data, lit.binary, utf8))
        if cur.at_end():
            return c.Append(tag, mailbox, tuple(messages))


def _getquota(cur: Cursor, tag: str) -> c.GetQuota:
    cur.sp()
    root = cur.astring_text("a quota root")
    cur.end()
    return c.GetQuota(tag, root)


def _setquota(cur: Cursor, tag: str) -> c.SetQuota:
    """SETQUOTA root SP "(" [resource SP limit *(SP resource SP limit)] ")" (RFC 9208 4.1)."""
    cur.sp()
    root = cur.astring_text("a quota root")
    cur.sp()
    cur.expect(b"(", "'(' opening the quota limits")
    limits: list[tuple[str, int]] = []
    if not cur.skip(b")"):
        while True:
            resource = cur.atom("a quota resource")
            cur.sp()
            limits.append((resource, cur.number("a quota limit", limit=MAX_NUMBER64)))
            if len(limits) > MAX_ITEMS:
                raise cur.error("Too many quota limits.")
            if cur.skip(b")"):
                break
            cur.sp()
    cur.end()
    return c.SetQuota(tag, root, tuple(limits))


# --- selected -----------------------------------------------------------------------------------------------


def _charset(cur: Cursor) -> str:
    charset = cur.astring_text("a charset").upper()
    if charset not in CHARSETS:
        raise cur.error(f"The charset {charset[:40]} is not supported.", BADCHARSET)
    return charset


def _search(cur: Cursor, tag: str, uid: bool) -> c.Search:
    """SEARCH [RETURN (...)] [CHARSET charset] keys (RFC 9051 6.4.4, RFC 4731 3.1, RFC 5182 2)."""
    cur.sp()
    returns: tuple[str, ...] | None = None
    if cur.skip_word(b"RETURN"):
        cur.sp()
        returns = tuple(dict.fromkeys(_options(cur, SEARCH_RETURNS, "return options")))
        cur.sp()
    charset = None
    if cur.skip_word(b"CHARSET"):
        cur.sp()
        charset = _charset(cur)
        cur.sp()
    key = parse_keys(cur)
    return c.Search(tag, uid, charset, key, returns)


def _fetch(cur: Cursor, tag: str, uid: bool) -> c.Fetch:
    """FETCH set items [SP "(" CHANGEDSINCE n [SP VANISHED] ")"] (RFC 9051 6.4.5, RFC 7162 3.1.4, 3.2.6)."""
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    items = parse_items(cur)
    changedsince: int | None = None
    vanished = False
    if not cur.at_end():
        cur.sp()
        cur.expect(b"(", "'(' opening the fetch modifiers")
        while True:
            name = cur.atom("a fetch modifier")
            if name == "CHANGEDSINCE" and changedsince is None:
                cur.sp()
                changedsince = cur.modseq()
            elif name == "VANISHED" and not vanished:
                vanished = True
            else:
                raise cur.error(f"Unknown or repeated fetch modifier {name[:40]}.")
            if cur.skip(b")"):
                break
            cur.sp()
    cur.end()
    if vanished and (not uid or changedsince is None):
        raise cur.error("VANISHED needs UID FETCH with CHANGEDSINCE (RFC 7162 3.2.6).")
    return c.Fetch(tag, uid, sequence, items, changedsince, vanished)


_STORE_ITEM = re.compile(rb"([+-]?)FLAGS(\.SILENT)?", re.IGNORECASE)
_STORE_MODES: dict[bytes, c.StoreMode] = {b"": "set", b"+": "add", b"-": "remove"}


def _store(cur: Cursor, tag: str, uid: bool) -> c.Store:
    """STORE set [SP (UNCHANGEDSINCE n)] SP [+-]FLAGS[.SILENT] SP flags (RFC 9051 6.4.6, RFC 7162 3.1.3)."""
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    unchangedsince: int | None = None
    if cur.skip(b"("):
        if cur.atom("UNCHANGEDSINCE") != "UNCHANGEDSINCE":
            raise cur.error("The only store modifier is UNCHANGEDSINCE (RFC 7162 3.1.3).")
        cur.sp()
        unchangedsince = cur.modseq()
        cur.expect(b")", "')' closing the store modifiers")
        cur.sp()
    found = cur.match(_STORE_ITEM, "FLAGS, +FLAGS or -FLAGS")
    if cur.peek() not in (0x20,):
        raise cur.error("Expected FLAGS, +FLAGS or -FLAGS followed by the flags.")
    cur.sp()
    flags: set[str] = set()
    if cur.peek() == 0x28:
        flags = set(cur.flag_list())
    else:
        while True:
            flags.add(cur.flag())
            if len(flags) > MAX_ITEMS:
                raise cur.error("Too many flags.")
            if cur.at_end():
                break
            cur.sp()
    cur.end()
    mode = _STORE_MODES[found.group(1)]
    return c.Store(tag, uid, sequence, mode, bool(found.group(2)), frozenset(flags), unchangedsince)


def _copy_or_move(cls: type[c.Copy] | type[c.Move]) -> Callable[[Cursor, str, bool], c.BaseCommand]:
    def handler(cur: Cursor, tag: str, uid: bool) -> c.BaseCommand:
        cur.sp()
        sequence = cur.sequence_set()
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, uid, sequence, mailbox)

    return handler


def _uid_expunge(cur: Cursor, tag: str, uid: bool) -> c.Expunge:
    """UID EXPUNGE set (RFC 4315 2.1)."""
    cur.sp()
    uids = cur.sequence_set()
    cur.end()
    return c.Expunge(tag, uids)


def _search_criteria(cur: Cursor) -> tuple[str, SearchKey]:
    charset = _charset(cur)
    cur.sp()
    return charset, parse_keys(cur)


def _sort(cur: Cursor, tag: str, uid: bool) -> c.Sort:
    """SORT [RETURN (...)] (criteria) charset keys (RFC 5256 3, RFC 5267 3.2 ESORT, RFC 5957 DISPLAY)."""
    cur.sp()
    returns: tuple[str, ...] | None = None
    if cur.skip_word(b"RETURN"):
        cur.sp()
        returns = tuple(dict.fromkeys(_options(cur, SEARCH_RETURNS - {"SAVE"}, "return options")))
        cur.sp()
    cur.expect(b"(", "'(' opening the sort criteria")
    criteria: list[tuple[str, bool]] = []
    while True:
        name = cur.atom("a sort key")
        reverse = name == "REVERSE"
        if reverse:
            cur.sp()
            name = cur.atom("a sort key")
        if name not in SORT_KEYS:
            raise cur.error(f"Unknown sort key {name[:40]}.")
        criteria.append((name, reverse))
        if len(criteria) > MAX_ITEMS:
            raise cur.error("Too many sort criteria.")
        if cur.skip(b")"):
            break
        cur.sp()
    cur.sp()
    charset, key = _search_criteria(cur)
    return c.Sort(tag, uid, tuple(criteria), charset, key, returns)


def _thread(cur: Cursor, tag: str, uid: bool) -> c.Thread:
    """THREAD algorithm charset keys (RFC 5256 3)."""
    cur.sp()
    algorithm = cur.atom("a thread algorithm")
    if algorithm == "ORDEREDSUBJECT":
        chosen: c.ThreadAlgorithm = "ORDEREDSUBJECT"
    elif algorithm == "REFERENCES":
        chosen = "REFERENCES"
    else:
        raise cur.error(f"Unknown thread algorithm {algorithm[:40]}.")
    cur.sp()
    charset, key = _search_criteria(cur)
    return c.Thread(tag, uid, chosen, charset, key)


_COMMANDS: dict[str, Handler] = {
    "CAPABILITY": _bare(c.Capability),
    "NOOP": _bare(c.Noop),
    "LOGOUT": _bare(c.Logout),
    "STARTTLS": _bare(c.StartTLS),
    "NAMESPACE": _bare(c.Namespace),
    "IDLE": _bare(c.Idle),
    "CHECK": _bare(c.Check),
    "CLOSE": _bare(c.Close),
    "UNSELECT": _bare(c.Unselect),
    "EXPUNGE": _bare(c.Expunge),
    "ID": _id,
    "COMPRESS": _compress,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": _select(False),
    "EXAMINE": _select(True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _one_mailbox(c.GetQuotaRoot),
    "SETQUOTA": _setquota,
}

_UID_COMMANDS: dict[str, Callable[[Cursor, str, bool], c.BaseCommand]] = {
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_or_move(c.Copy),
    "MOVE": _copy_or_move(c.Move),
    "SORT": _sort,
    "THREAD": _thread,
    "EXPUNGE": _uid_expunge,
}

#: Command names the parser knows (for CAPABILITY-independent checks and tests).
KNOWN_COMMANDS = frozenset(_COMMANDS) | frozenset(_UID_COMMANDS) | {"UID"}

__all__ = ["KNOWN_COMMANDS", "ProtocolError", "parse"]
