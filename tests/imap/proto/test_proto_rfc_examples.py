"""The example commands of the RFCs the server implements, parsed to the values the engine expects.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime

import pytest
from imap.proto.proto_support import cmd

from gateway.imap.proto import commands as c
from gateway.imap.proto.errors import ProtocolError
from gateway.imap.proto.fetch import MACROS, FetchItem, Section
from gateway.imap.proto.search import And, Key, Not, Or
from gateway.imap.proto.sequence import SequenceSet, parse

S = parse
SAVED = SequenceSet((), saved=True)


# --- RFC 9051 6.1 / 6.2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"abcd CAPABILITY", c.Capability("abcd")),
        (b"a002 NOOP", c.Noop("a002")),
        (b"A023 LOGOUT", c.Logout("A023")),
        (b"a002 STARTTLS", c.StartTLS("a002")),
        (b"A001 NAMESPACE", c.Namespace("A001")),
        (b"A002 IDLE", c.Idle("A002")),
        (b"FXXZ CHECK", c.Check("FXXZ")),
        (b"A341 CLOSE", c.Close("A341")),
        (b"A342 UNSELECT", c.Unselect("A342")),
        (b"A202 EXPUNGE", c.Expunge("A202")),
        (b"a001 login SMITH SESAME", c.Login("a001", "SMITH", "SESAME")),
        (b"A001 AUTHENTICATE GSSAPI", c.Authenticate("A001", "GSSAPI", None)),
    ],
)
def test_rfc9051_simple_commands(line: bytes, expected: c.BaseCommand) -> None:
    assert cmd(line) == expected


def test_rfc4959_sasl_ir_initial_response_is_decoded_and_equals_sign_is_empty() -> None:
    assert cmd(b"a01 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=") == c.Authenticate("a01", "PLAIN", b"test\0test\0test")
    assert cmd(b"a02 AUTHENTICATE EXTERNAL =") == c.Authenticate("a02", "EXTERNAL", b"")
    with pytest.raises(ProtocolError):
        cmd(b"a03 AUTHENTICATE PLAIN dGVzdA=x")


def test_rfc7888_literal_plus_login() -> None:
    assert cmd(b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man") == c.Login("A001", "FRED FOOBAR", "fat man")


def test_login_quoted_strings_unescape() -> None:
    assert cmd(b'a LOGIN "joe" "p\\"a\\\\ss"') == c.Login("a", "joe", 'p"a\\ss')


# --- RFC 9051 6.3: authenticated state ---------------------------------------------------------------------


def test_rfc5161_enable() -> None:
    assert cmd(b"t2 ENABLE CONDSTORE qresync") == c.Enable("t2", ("CONDSTORE", "QRESYNC"))
    assert cmd(b"A001 ENABLE UTF8=ACCEPT") == c.Enable("A001", ("UTF8=ACCEPT",))
    with pytest.raises(ProtocolError):
        cmd(b"t3 ENABLE")


def test_rfc9051_select_examine_and_inbox_in_any_case() -> None:
    assert cmd(b"A142 SELECT INBOX") == c.Select("A142", "INBOX")
    assert cmd(b"A143 select inbox") == c.Select("A143", "INBOX")
    assert cmd(b"A932 EXAMINE blurdybloop") == c.Select("A932", "blurdybloop", readonly=True)


def test_rfc7162_select_condstore_and_qresync() -> None:
    assert cmd(b"A142 SELECT INBOX (CONDSTORE)") == c.Select("A142", "INBOX", condstore=True)
    assert cmd(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))") == c.Select(
        "A02", "INBOX", qresync=c.QResync(67890007, 20050715194045000, S("41,43:211,214:541"))
    )
    assert cmd(
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
        b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))"
    ) == c.Select(
        "B04",
        "INBOX",
        qresync=c.QResync(
            67890007,
            90060115194045000,
            S("1:29997"),
            (
                S("5000,7500,9000,9990:9999"),
                S("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997"),
            ),
        ),
    )
    assert cmd(b"A03 SELECT INBOX (QRESYNC (67890007 90060115194045000))").qresync == c.QResync(  # type: ignore[attr-defined]
        67890007, 90060115194045000
    )


@pytest.mark.parametrize(
    "line",
    [b"a SELECT INBOX ()", b"a SELECT INBOX (FOO)", b"a SELECT INBOX (CONDSTORE CONDSTORE)",
     b"a SELECT INBOX (QRESYNC (0 5))", b"a SELECT INBOX (QRESYNC (1 5 1:*))"],
)
def test_select_parameters_outside_the_grammar_are_bad(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        cmd(line)


def test_rfc9051_create_delete_rename_subscribe() -> None:
    assert cmd(b"A003 CREATE owatagusiam/") == c.Create("A003", "owatagusiam/")
    assert cmd(b"A682 DELETE blurdybloop") == c.Delete("A682", "blurdybloop")
    assert cmd(b"A683 RENAME blurdybloop sarasoop") == c.Rename("A683", "blurdybloop", "sarasoop")
    assert cmd(b"Z432 RENAME INBOX old-mail") == c.Rename("Z432", "INBOX", "old-mail")
    assert cmd(b"A002 SUBSCRIBE #news.comp.mail.mime") == c.Subscribe("A002", "#news.comp.mail.mime")
    assert cmd(b"A002 UNSUBSCRIBE #news.comp.mail.mime") == c.Unsubscribe("A002", "#news.comp.mail.mime")


def test_rfc6154_create_special_use() -> None:
    assert cmd(b"t1 CREATE MySpecialArchive (USE (\\archive))") == c.Create("t1", "MySpecialArchive", ("\\Archive",))
    assert cmd(b't2 CREATE "Important Messages" (USE (\\Important \\Flagged))') == c.Create(
        "t2", "Important Messages", ("\\Important", "\\Flagged")
    )
    with pytest.raises(ProtocolError):
        cmd(b"t3 CREATE x (USE (Archive))")


def test_modified_utf7_names_are_decoded_and_invalid_ones_are_bad() -> None:
    assert cmd(b"a CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-") == c.Create("a", "~peter/mail/台北/日本語")
    with pytest.raises(ProtocolError) as caught:
        cmd(b'a CREATE "&Jjo-&&&-"')
    assert caught.value.tag == "a"
    with pytest.raises(ProtocolError):
        cmd('a CREATE "été"'.encode())


def test_rfc6855_utf8_names_are_not_utf7_decoded_once_enabled() -> None:
    assert cmd('a CREATE "été &Jjo-"'.encode(), utf8=True) == c.Create("a", "été &Jjo-")
    with pytest.raises(ProtocolError):
        cmd(b'a CREATE "\xff"', utf8=True)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'A101 LIST "" ""', c.List("A101", "", ("",))),
        (b'A102 LIST #news.comp.mail.misc ""', c.List("A102", "#news.comp.mail.misc", ("",))),
        (b"A202 LIST ~/Mail/ %", c.List("A202", "~/Mail/", ("%",))),
        (b'A02 LIST (SUBSCRIBED) "" "*"', c.List("A02", "", ("*",), frozenset({"SUBSCRIBED"}), extended=True)),
        (
            b'A03 LIST () "" "%" RETURN (CHILDREN)',
            c.List("A03", "", ("%",), returns=frozenset({"CHILDREN"}), extended=True),
        ),
        (b'A04 LIST "" "%" RETURN (CHILDREN)', c.List("A04", "", ("%",), returns=frozenset({"CHILDREN"}))),
        (
            b'C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
            c.List("C04", "", ("%",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}), frozenset({"CHILDREN"}),
                   extended=True),
        ),
        (
            b'A01 LIST () "" ("INBOX" "Drafts" "Sent/%")',
            c.List("A01", "", ("INBOX", "Drafts", "Sent/%"), extended=True),
        ),
        (
            b'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))',
            c.List("A01", "", ("%",), status=("MESSAGES", "UNSEEN")),
        ),
        (
            b'A02 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (STATUS (MESSAGES))',
            c.List("A02", "", ("%",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}), status=("MESSAGES",),
                   extended=True),
        ),
        (b't1 LIST "" "%" RETURN (SPECIAL-USE)', c.List("t1", "", ("%",), returns=frozenset({"SPECIAL-USE"}))),
        (b't3 LIST (SPECIAL-USE) "" "*"', c.List("t3", "", ("*",), frozenset({"SPECIAL-USE"}), extended=True)),
        (b'A LSUB "#news." "comp.mail.*"', c.List("A", "#news.", ("comp.mail.*",), lsub=True)),
    ],
)
def test_rfc9051_rfc5258_rfc5819_rfc6154_list(line: bytes, expected: c.List) -> None:
    assert cmd(line) == expected


@pytest.mark.parametrize(
    "line",
    [b'a LIST (RECURSIVEMATCH) "" %', b'a LIST (BOGUS) "" %', b'a LIST "" % RETURN (BOGUS)', b'a LIST "" % X (C)'],
)
def test_rfc5258_invalid_list_options_are_bad(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        cmd(line)


def test_rfc9051_status_and_rfc7162_highestmodseq() -> None:
    assert cmd(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)") == c.Status(
        "A042", "blurdybloop", ("UIDNEXT", "MESSAGES")
    )
    assert cmd(b"C01 STATUS blurdybloop (HIGHESTMODSEQ size mailboxid)") == c.Status(
        "C01", "blurdybloop", ("HIGHESTMODSEQ", "SIZE", "MAILBOXID")
    )
    with pytest.raises(ProtocolError):
        cmd(b"C02 STATUS blurdybloop (BOGUS)")


MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"Subject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)


def test_rfc9051_append_with_flags_and_date() -> None:
    line = b"A003 APPEND saved-messages (\\Seen) \"07-Feb-1994 21:52:25 -0800\" {%d}\r\n" % len(MESSAGE) + MESSAGE
    expected_date = datetime.datetime(1994, 2, 7, 21, 52, 25, tzinfo=datetime.timezone(-datetime.timedelta(hours=8)))
    assert cmd(line) == c.Append(
        "A003", "saved-messages", (c.AppendMessage(frozenset({"\\Seen"}), expected_date, MESSAGE),)
    )


def test_rfc3502_multiappend_and_rfc3516_binary_and_rfc6855_utf8() -> None:
    line = (
        b'A003 APPEND saved {3+}\r\none (\\Draft) " 1-Jan-2024 00:00:00 +0000" ~{4+}\r\nt\x00wo'
        b" UTF8 (~{5+}\r\nthr\xc3\xa9)"
    )
    result = cmd(line)
    assert isinstance(result, c.Append)
    assert result.messages == (
        c.AppendMessage(frozenset(), None, b"one"),
        c.AppendMessage(
            frozenset({"\\Draft"}), datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), b"t\x00wo", binary=True
        ),
        c.AppendMessage(frozenset(), None, b"thr\xc3\xa9", binary=True, utf8=True),
    )


@pytest.mark.parametrize(
    "line",
    [
        b'A APPEND x "message"',
        b"A APPEND x {3+}\r\na\x00b",
        b'A APPEND x "31-Feb-2024 00:00:00 +0000" {1+}\r\na',
        b"A APPEND x (\\Recent) {1+}\r\na",
        b"A APPEND x UTF8 {1+}\r\na",
        b"A APPEND x",
    ],
)
def test_malformed_append_is_bad(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        cmd(line)


# --- RFC 9051 6.4: selected state --------------------------------------------------------------------------


def test_rfc9051_search_examples() -> None:
    assert cmd(b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == c.Search(
        "A282",
        False,
        None,
        And((Key("FLAGGED"), Key("SINCE", datetime.date(1994, 2, 1)), Not(Key("FROM", "Smith")))),
        ("MIN", "COUNT"),
    )
    assert cmd(b'A283 SEARCH RETURN () TEXT "string not in mailbox"') == c.Search(
        "A283", False, None, Key("TEXT", "string not in mailbox"), ()
    )
    assert cmd(b'A284 SEARCH TEXT "string not in mailbox"') == c.Search(
        "A284", False, None, Key("TEXT", "string not in mailbox")
    )
    word = "отпуск".encode()
    assert cmd(b"A285 SEARCH CHARSET UTF-8 TEXT {%d}\r\n" % len(word) + word) == c.Search(
        "A285", False, "UTF-8", Key("TEXT", "отпуск")
    )


def test_rfc3501_search_examples() -> None:
    assert cmd(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"').key == And(  # type: ignore[attr-defined]
        (Key("FLAGGED"), Key("SINCE", datetime.date(1994, 2, 1)), Not(Key("FROM", "Smith")))
    )
    assert cmd(b"A285 SEARCH OR (FROM bob SENTBEFORE 5-Mar-2001) (UID 1:5 LARGER 100) HEADER x-spam yes").key == And(  # type: ignore[attr-defined]
        (
            Or(
                And((Key("FROM", "bob"), Key("SENTBEFORE", datetime.date(2001, 3, 5)))),
                And((Key("UID", S("1:5")), Key("LARGER", 100))),
            ),
            Key("HEADER", ("X-SPAM", "yes")),
        )
    )
    assert cmd(b"A1 SEARCH 2:4,7 KEYWORD $Junk UNKEYWORD NonJunk").key == And(  # type: ignore[attr-defined]
        (Key("SEQ", S("2:4,7")), Key("KEYWORD", "$Junk"), Key("UNKEYWORD", "NonJunk"))
    )


def test_rfc5032_within_keys() -> None:
    assert cmd(b"A1 SEARCH UNSEEN YOUNGER 259200").key == And((Key("UNSEEN"), Key("YOUNGER", 259200)))  # type: ignore[attr-defined]
    assert cmd(b"A2 SEARCH OLDER 4294967295").key == Key("OLDER", 4294967295)  # type: ignore[attr-defined]
    for bad in (b"A3 SEARCH OLDER 0", b"A4 SEARCH YOUNGER 4294967296", b"A5 SEARCH YOUNGER -1", b"A6 SEARCH OLDER"):
        with pytest.raises(ProtocolError):
            cmd(bad)


def test_rfc4731_esearch_and_rfc5182_searchres() -> None:
    search = cmd(b'A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
    assert isinstance(search, c.Search) and search.returns == ("SAVE",)
    assert cmd(b"A283 FETCH $ (UID INTERNALDATE FLAGS RFC822.HEADER)") == c.Fetch(
        "A283",
        False,
        SAVED,
        (FetchItem("UID"), FetchItem("INTERNALDATE"), FetchItem("FLAGS"), FetchItem("RFC822.HEADER")),
    )
    assert cmd(b"A301 UID SEARCH UID $ SMALLER 4096") == c.Search(
        "A301", True, None, And((Key("UID", SAVED), Key("SMALLER", 4096)))
    )
    assert cmd(b'A302 COPY $ "Other Messages"') == c.Copy("A302", False, SAVED, "Other Messages")
    assert cmd(b"A303 UID SEARCH RETURN (MIN MAX COUNT ALL) OR $ 1,3000:3021").key == Or(  # type: ignore[attr-defined]
        Key("SEQ", SAVED), Key("SEQ", S("1,3000:3021"))
    )
    with pytest.raises(ProtocolError):
        cmd(b"A304 SEARCH RETURN (PARTIAL 1:10) ALL")


def test_search_charset_outside_utf8_and_ascii_is_badcharset() -> None:
    with pytest.raises(ProtocolError) as caught:
        cmd(b"A SEARCH CHARSET KOI8-R TEXT x")
    assert caught.value.code is not None and caught.value.code.startswith("BADCHARSET")


def test_rfc7162_modseq_search_with_and_without_entry() -> None:
    assert cmd(b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338').key == Key("MODSEQ", 620162338)  # type: ignore[attr-defined]
    assert cmd(b"a SEARCH OR NOT MODSEQ 720162338 LARGER 50000").key == Or(  # type: ignore[attr-defined]
        Not(Key("MODSEQ", 720162338)), Key("LARGER", 50000)
    )


def test_rfc9051_fetch_examples() -> None:
    assert cmd(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])") == c.Fetch(
        "A654",
        False,
        S("2:4"),
        (FetchItem("FLAGS"), FetchItem("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM")))),
    )
    assert cmd(b"A999 UID FETCH 4827313:4828442 FLAGS") == c.Fetch(
        "A999", True, S("4827313:4828442"), (FetchItem("FLAGS"),)
    )
    assert cmd(b"a FETCH 1 ALL").items == MACROS["ALL"]  # type: ignore[attr-defined]
    assert cmd(b"a FETCH 1 fast").items == MACROS["FAST"]  # type: ignore[attr-defined]
    assert cmd(b"a FETCH 1 FULL").items == MACROS["FULL"]  # type: ignore[attr-defined]
    items = cmd(
        b"a FETCH 1:* (BODY[] BODY.PEEK[TEXT]<0.2048> BODY[1.2.MIME] BODY[3.HEADER.FIELDS.NOT (Received)] "
        b"BODY BODYSTRUCTURE ENVELOPE RFC822 RFC822.TEXT RFC822.SIZE EMAILID THREADID SAVEDATE PREVIEW)"
    ).items  # type: ignore[attr-defined]
    assert items == (
        FetchItem("BODY", Section()),
        FetchItem("BODY", Section((), "TEXT"), (0, 2048), peek=True),
        FetchItem("BODY", Section((1, 2), "MIME")),
        FetchItem("BODY", Section((3,), "HEADER.FIELDS.NOT", ("RECEIVED",))),
        FetchItem("BODY"),
        FetchItem("BODYSTRUCTURE"),
        FetchItem("ENVELOPE"),
        FetchItem("RFC822"),
        FetchItem("RFC822.TEXT"),
        FetchItem("RFC822.SIZE"),
        FetchItem("EMAILID"),
        FetchItem("THREADID"),
        FetchItem("SAVEDATE"),
        FetchItem("PREVIEW"),
    )
    assert [item.response_label() for item in items[:4]] == [
        "BODY[]", "BODY[TEXT]<0>", "BODY[1.2.MIME]", "BODY[3.HEADER.FIELDS.NOT (RECEIVED)]"
    ]
    assert [item.sets_seen for item in items[:3]] == [True, False, True]


def test_rfc3516_binary_fetch() -> None:
    assert cmd(b"t101 FETCH 1 (BINARY.PEEK[1.3])").items == (  # type: ignore[attr-defined]
        FetchItem("BINARY", Section((1, 3)), peek=True),
    )
    assert cmd(b"t102 FETCH 1 (BINARY.SIZE[1])").items == (FetchItem("BINARY.SIZE", Section((1,))),)  # type: ignore[attr-defined]
    assert cmd(b"t103 UID FETCH 123 (UID BINARY[1.1]<0.1024>)").items == (  # type: ignore[attr-defined]
        FetchItem("UID"),
        FetchItem("BINARY", Section((1, 1)), (0, 1024)),
    )
    for bad in (b"t FETCH 1 BINARY[HEADER]", b"t FETCH 1 BINARY.SIZE[1]<0.5>", b"t FETCH 1 BODY[MIME]"):
        with pytest.raises(ProtocolError):
            cmd(bad)


def test_rfc8970_preview_lazy() -> None:
    assert cmd(b"a FETCH 1 (UID PREVIEW (LAZY))").items == (FetchItem("UID"), FetchItem("PREVIEW", lazy=True))  # type: ignore[attr-defined]


def test_rfc7162_fetch_changedsince_and_vanished() -> None:
    assert cmd(b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)") == c.Fetch(
        "s100", True, S("1:*"), (FetchItem("FLAGS"),), changedsince=12345
    )
    assert cmd(b"A03 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)") == c.Fetch(
        "A03", True, S("300:500"), (FetchItem("FLAGS"),), changedsince=12345, vanished=True
    )
    for bad in (b"A04 FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", b"A05 UID FETCH 1:* FLAGS (VANISHED)"):
        with pytest.raises(ProtocolError):
            cmd(bad)


def test_rfc9051_and_rfc7162_store() -> None:
    assert cmd(b"A003 STORE 2:4 +FLAGS (\\Deleted)") == c.Store(
        "A003", False, S("2:4"), "add", False, frozenset({"\\Deleted"})
    )
    assert cmd(b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)") == c.Store(
        "a103", True, S("6,4,8"), "add", True, frozenset({"\\Deleted"}), 12121230045
    )
    assert cmd(b"a STORE 1 -flags \\SEEN $Forwarded") == c.Store(
        "a", False, S("1"), "remove", False, frozenset({"\\Seen", "$Forwarded"})
    )
    assert cmd(b"a STORE 1 FLAGS ()") == c.Store("a", False, S("1"), "set", False, frozenset())
    for bad in (b"a STORE 1 +FLAGS (\\Recent)", b"a STORE 1 +FLAGS \\*", b"a STORE 1 FLAGSX (x)"):
        with pytest.raises(ProtocolError):
            cmd(bad)


def test_rfc9051_copy_and_rfc6851_move_and_rfc4315_uid_expunge() -> None:
    assert cmd(b"A003 COPY 2:4 MEETING") == c.Copy("A003", False, S("2:4"), "MEETING")
    assert cmd(b"a UID MOVE 42:69 foo") == c.Move("a", True, S("42:69"), "foo")
    assert cmd(b"a MOVE 1:3 Other") == c.Move("a", False, S("1:3"), "Other")
    assert cmd(b"A003 UID EXPUNGE 3000:3002") == c.Expunge("A003", S("3000:3002"))
    with pytest.raises(ProtocolError):
        cmd(b"A004 EXPUNGE 1:3")


def test_rfc5256_sort_and_thread_examples() -> None:
    since = Key("SINCE", datetime.date(1994, 2, 1))
    assert cmd(b"A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994") == c.Sort(
        "A282", False, (("SUBJECT", False),), "UTF-8", since
    )
    assert cmd(b"A285 SORT (ARRIVAL cc date) UTF-8 SUBJECT MEETING") == c.Sort(
        "A285", False, (("ARRIVAL", False), ("CC", False), ("DATE", False)), "UTF-8", Key("SUBJECT", "MEETING")
    )
    assert cmd(b"A286 UID SORT (SUBJECT REVERSE DATE DISPLAYFROM) US-ASCII ALL") == c.Sort(
        "A286", True, (("SUBJECT", False), ("DATE", True), ("DISPLAYFROM", False)), "US-ASCII", Key("ALL")
    )
    assert cmd(b"A287 SORT RETURN (MIN COUNT) (DATE) UTF-8 ALL").returns == ("MIN", "COUNT")  # type: ignore[attr-defined]
    assert cmd(b"A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000") == c.Thread(
        "A283", False, "ORDEREDSUBJECT", "UTF-8", Key("SINCE", datetime.date(2000, 3, 5))
    )
    assert cmd(b'A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"').key == Key("TEXT", "gewp")  # type: ignore[attr-defined]
    assert cmd(b"A285 UID THREAD REFERENCES UTF-8 SINCE 5-MAR-2000").uid is True  # type: ignore[attr-defined]
    bad_lines = (
        b"A SORT (SUBJECT) ALL", b"A SORT () UTF-8 ALL", b"A THREAD X UTF-8 ALL", b"A SORT (REVERSE) UTF-8 ALL"
    )
    for bad in bad_lines:
        with pytest.raises(ProtocolError):
            cmd(bad)


# --- RFC 2971 ID, RFC 9208 QUOTA, RFC 4978 COMPRESS ----------------------------------------------------------


def test_rfc2971_id() -> None:
    assert cmd(b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")') == c.Id(
        "a023", (("name", "sodr"), ("version", "19.34"), ("vendor", "Pink Floyd Music Limited"))
    )
    assert cmd(b"a024 ID NIL") == c.Id("a024", None)
    assert cmd(b'a025 ID ("os" NIL)') == c.Id("a025", (("os", None),))
    with pytest.raises(ProtocolError):
        cmd(b"a026 ID (" + b" ".join(b'"k%d" "v"' % i for i in range(31)) + b")")


def test_rfc9208_quota() -> None:
    assert cmd(b'G0001 GETQUOTA "!partition/sda4"') == c.GetQuota("G0001", "!partition/sda4")
    assert cmd(b"A003 GETQUOTAROOT INBOX") == c.GetQuotaRoot("A003", "INBOX")
    assert cmd(b'S0000 SETQUOTA "#user/alice" (STORAGE 510)') == c.SetQuota("S0000", "#user/alice", (("STORAGE", 510),))
    assert cmd(b'S0001 SETQUOTA "" ()') == c.SetQuota("S0001", "", ())


def test_rfc4978_compress() -> None:
    assert cmd(b"a COMPRESS deflate") == c.Compress("a", "DEFLATE")


# --- general grammar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [b"", b"a", b"a FROBNICATE", b"+ NOOP", b"a  NOOP", b"a NOOP extra", b"a UID NOOP", b"a LOGIN x",
     b"a(b NOOP", b"a SEARCH", b"a SEARCH ()", b"a SEARCH (ALL", b"a SEARCH FROM", b"a SEARCH BOGUS",
     b"a SEARCH SINCE 30-Feb-2020", b'a LOGIN "unterminated pass'],
)
def test_malformed_commands_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        cmd(line)


def test_error_keeps_the_tag_for_the_tagged_bad() -> None:
    with pytest.raises(ProtocolError) as caught:
        cmd(b"x17 FETCH 1 (BOGUS)")
    assert caught.value.tag == "x17"
    assert "BOGUS" in caught.value.text
