"""The arguments of commands of the authenticated state: ENABLE, SELECT/EXAMINE (QRESYNC), mailbox management,
STATUS, LIST/LSUB, APPEND and the quota commands (RFC 9051 6.3, RFC 5258, RFC 7162, RFC 9208).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.imap.proto import commands as c
from gateway.imap.proto.lexer import Cursor
from gateway.imap.proto.limits import MAX_ITEMS, MAX_NUMBER64

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
#: Special-use attributes in their canonical case (RFC 6154 2, RFC 8457 \Important).
SPECIAL_USE = {
    name.lower(): name
    for name in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important")
}

#: Reads one command's arguments from the cursor placed after its name (tag given) and returns the command.
Handler = Callable[[Cursor, str], c.BaseCommand]


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
