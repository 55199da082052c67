"""imapd's kept message headers (index cache kind 4, docs/imapd.md): a
header SEARCH or a header FETCH after the header was read once (by a
FETCH of ENVELOPE, a header SEARCH or a header FETCH) answers exactly as
from the files, in the same and in another session, also when the files
have become unreadable to imapd; body keys still need the files.
Raw sockets, as in test_imap_mailbox.py."""

import os

import pytest

from test_imap_mailbox import (login, owner_ids, put_message, require_imapd,
                               uids_of_search)


@pytest.fixture
def inst(instance):
    return require_imapd(instance)


def mail(i):
    """Varied headers: folded, encoded, with a Cc on every third."""
    cc = "Cc: Carol Third <carol%d@example.test>\n" % i if i % 3 == 0 else ""
    subject = ("=?UTF-8?Q?Caf=C3=A9_quokka_?= %d" % i) if i % 2 == 0 else "plain %d" % i
    return ("Return-Path: <s%d@example.test>\n"
            "Received: from h%d.example.test (localhost [127.0.0.1])\n"
            "\tby mail.example.test with ESMTP id X%d\n"
            "From: Sender %d <s%d@example.test>\n"
            "To: demo@example.test,\n\tOther <o%d@example.test>\n"
            "%s"
            "Subject: %s\n"
            "Date: Fri, %d Nov 2026 10:00:00 +0000\n"
            "X-Tag: t%d\n"
            "\n"
            "body of %d, zanzibar%s\n" % (i, i, i, i, i, i, cc, subject, 1 + i, i % 2, i,
                                         " only here" if i == 4 else "")).encode()


SEARCHES = [
    "SUBJECT quokka",
    "CHARSET UTF-8 SUBJECT {5+}\r\ncaf\u00e9",   # LITERAL+, UTF-8 bytes
    "SUBJECT caf",
    "FROM \"sender 3\"",
    "FROM s5@example.test",
    "TO other",
    "CC carol",
    "BCC nobody",
    "HEADER X-Tag t1",
    "HEADER Cc \"\"",
    "NOT HEADER Cc \"\"",
    "SENTON 3-Nov-2026",
    "SENTSINCE 5-Nov-2026",
    "SENTBEFORE 3-Nov-2026",
    "OR SUBJECT plain FROM \"sender 2\"",
    "TEXT \"x-tag: t2\"",
    "TEXT quokka",
]

FETCHES = [
    "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)] UID)",
    "UID FETCH 1:* (RFC822.HEADER)",
    "UID FETCH 1:* (BODY.PEEK[HEADER]<10.40> BODY.PEEK[HEADER.FIELDS.NOT (Received)])",
]


def run_searches(c):
    return [uids_of_search(c.ok("UID SEARCH " + k)[1]) for k in SEARCHES]


def run_fetches(c):
    return [c.ok(f)[1] for f in FETCHES]


def make_unreadable(inst):
    """Only works when imapd runs as another user than these tests."""
    if not (os.getuid() == 0 and owner_ids()[0] != 0):
        return False
    for path in inst.maildir_files(inst.demo_user):
        os.chmod(path, 0)
    return True


def test_header_search_after_fetch_answers_as_before(inst):
    for i in range(8):
        put_message(inst, mail(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        # Before any header was kept.
        before = run_searches(c)
        fetched_before = run_fetches(c)
        assert before[0] == [1, 3, 5, 7], before   # UIDs of i = 0, 2, 4, 6
        assert before[1] == before[0] == before[2], before
        assert before[6] == [1, 4, 7], before      # Cc: i = 0, 3, 6
        assert before[11] == [3], before           # Date: 3 Nov is i = 2
        assert before[-1] == before[0], before     # TEXT finds the Subject
        # A FETCH of ENVELOPE reads (and keeps) every header.
        c.ok("UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
        assert run_searches(c) == before
        assert run_fetches(c) == fetched_before
        body_before = uids_of_search(c.ok("UID SEARCH BODY \"only here\"")[1])
        assert body_before == [5]
    # Another session, the files unreadable where that can be arranged:
    # only the kept headers can answer.
    unreadable = make_unreadable(inst)
    with login(inst) as d:
        d.ok("EXAMINE INBOX")
        assert run_searches(d) == before
        assert run_fetches(d) == fetched_before
        if unreadable:
            # A body key needs the file: it matches nothing now.
            assert uids_of_search(d.ok("UID SEARCH BODY \"only here\"")[1]) == []


def test_header_search_keeps_headers_for_the_next_search(inst):
    for i in range(6):
        put_message(inst, mail(i))
    with login(inst) as c:
        c.ok("EXAMINE INBOX")
        # No FETCH at all: the first header search reads the files and
        # keeps the headers ...
        before = run_searches(c)
    unreadable = make_unreadable(inst)
    with login(inst) as d:
        d.ok("EXAMINE INBOX")
        # ... so the next session answers from them, and its header
        # FETCHes and ENVELOPEs too.
        assert run_searches(d) == before
        _, env = d.ok("UID FETCH 1:* ENVELOPE")
        assert len(env) == 6 and all(b"ENVELOPE (" in e for e in env), env
        assert b"Sender 3" in env[3], env
        if unreadable:
            tagged, _ = d.cmd("UID FETCH 1 BODY.PEEK[TEXT]")
            assert tagged.startswith(b"NO"), tagged


def test_header_fetch_keeps_headers_and_expunge_drops_them(inst):
    for i in range(4):
        put_message(inst, mail(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        first = run_fetches(c)
        # Kept by the header FETCH: the same bytes again.
        assert run_fetches(c) == first
        subjects = uids_of_search(c.ok("UID SEARCH SUBJECT plain")[1])
        assert subjects == [2, 4], subjects
        c.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        assert uids_of_search(c.ok("UID SEARCH SUBJECT plain")[1]) == [4]
        # A new message: its header is read from its file, then kept.
        put_message(inst, mail(11))
        c.ok("NOOP")
        assert uids_of_search(c.ok("UID SEARCH SUBJECT plain")[1]) == [4, 5]
        assert uids_of_search(c.ok("UID SEARCH SUBJECT \"plain 11\"")[1]) == [5]


def test_headers_of_many_groups_survive_expunging_the_messages_they_are_kept_with(inst):
    # imapd keeps the headers of 16 UIDs in one index value, under the
    # group's lowest UID: expunging 1 and 17 drops two values, whose
    # headers are then read again and kept under 2 and 18.
    for i in range(40):
        put_message(inst, mail(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        first = run_searches(c)
        assert first[0] == list(range(1, 41, 2)), first
        c.ok("UID FETCH 1:* ENVELOPE")
        c.ok("UID STORE 1,17,33 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        gone = {1, 17, 33}
        expected = [[u for u in r if u not in gone] for r in first]
        assert run_searches(c) == expected
        fetched = run_fetches(c)
        assert len(fetched[1]) == 37, fetched[1]
    unreadable = make_unreadable(inst)
    with login(inst) as d:
        d.ok("EXAMINE INBOX")
        assert run_searches(d) == expected
        assert run_fetches(d) == fetched
        if unreadable:
            tagged, _ = d.cmd("UID SEARCH BODY zanzibar")
            assert tagged.startswith(b"OK"), tagged
