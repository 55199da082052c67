"""imapd against hostile message files: deep MIME nesting, a multipart
whose boundary never comes, NUL bytes and a header without a body. Each
must give a bounded, well-formed answer quickly, and the session (and the
process) must go on serving."""

import re
import time

import pytest

from imap_util import Literal, append, login, require_imapd


@pytest.fixture
def imap(instance):
    return require_imapd(instance)


def nested_multipart(depth):
    """depth levels of multipart/mixed, each with its own boundary."""
    head = b"From: a@example.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    inner = b"Content-Type: text/plain\r\n\r\nthe leaf\r\n"
    for level in range(depth, 0, -1):
        b = b"b%d" % level
        inner = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b
                 + b"\r\n" + inner + b"--" + b + b"--\r\n")
    return head + inner


def elapsed(fn):
    t = time.monotonic()
    result = fn()
    return result, time.monotonic() - t


def test_deep_mime_nesting_is_bounded(imap):
    c = login(imap)
    c.cmd("CREATE Deep").ok()
    msg = nested_multipart(300)
    uidvalidity, uid = append(c, "Deep", msg)
    c.select("Deep")
    r, secs = elapsed(lambda: c.cmd("FETCH 1 (BODYSTRUCTURE)").ok())
    assert secs < 5
    (line,) = [u for u in r.untagged if b"FETCH" in u]
    # The parser stops at depth 32 (lib/mime): the structure is a bounded
    # nest of parentheses with an opaque part at the bottom, not 300.
    depth = max_depth = 0
    for ch in line:
        if ch == ord("("):
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch == ord(")"):
            depth -= 1
    assert depth == 0
    assert 30 <= max_depth <= 40, max_depth
    assert b'"application" "octet-stream"' in line.lower() or b"octet-stream" in line.lower()
    # Down to the depth limit (32) a section is the bytes of that part; the
    # part at the limit is opaque, its body holds all the nesting below; a
    # part that does not exist is an empty body; the whole message is
    # still served byte for byte.
    r = c.cmd("FETCH 1 (BODY.PEEK[%s])" % ".".join(["1"] * 30)).ok()
    (value,) = [v for k, v in r.fetches()[1].items() if k.startswith("BODY[")]
    assert isinstance(value, bytes) and len(value) > 1000 and value in msg
    assert value.startswith(b"--b31\r\n") and value.endswith(b"--b31--")
    r = c.cmd("FETCH 1 (BODY.PEEK[%s])" % ".".join(["1"] * 32)).ok()
    (value,) = [v for k, v in r.fetches()[1].items() if k.startswith("BODY[")]
    assert value.startswith(b"--b33\r\n") and value.endswith(b"--b33--")
    r = c.cmd("FETCH 1 (BODY.PEEK[%s.2])" % ".".join(["1"] * 20)).ok()
    (value,) = [v for k, v in r.fetches()[1].items() if k.startswith("BODY[")]
    assert value in (b"", None, "")
    r = c.cmd("FETCH 1 (BODY.PEEK[])").ok()
    assert r.fetches()[1]["BODY[]"] == msg
    c.cmd("NOOP").ok()
    assert "panic" not in imap.maillog() and "fatal" not in imap.maillog()


def test_broken_multiparts_nul_bytes_and_headers_only(imap):
    c = login(imap)
    c.cmd("CREATE Broken").ok()
    messages = [
        # boundary announced, never used
        b"Subject: nobound\r\nContent-Type: multipart/mixed; boundary=zzz\r\n\r\nno parts\r\n",
        # multipart without a boundary parameter
        b"Subject: noparam\r\nContent-Type: multipart/alternative\r\n\r\n--x\r\nA\r\n",
        # a header and nothing else, no blank line
        b"Subject: only a header\r\nFrom: x@example.test",
        # message/rfc822 that is empty
        b"Subject: empty inner\r\nContent-Type: message/rfc822\r\n\r\n",
        # garbage parameters and 8-bit bytes in the header
        b"Subject: \xff\xfe\r\nContent-Type: text/plain; ;;; =; charset=\"\r\n\r\nx\r\n",
    ]
    for m in messages:
        append(c, "Broken", m)
    c.select("Broken")
    r, secs = elapsed(lambda: c.cmd("FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[1] "
                                    "BODY.PEEK[1.MIME] BODY.PEEK[TEXT] RFC822.SIZE)").ok())
    assert secs < 5
    fetches = r.fetches()
    assert sorted(fetches) == list(range(1, len(messages) + 1))
    for i, m in enumerate(messages, 1):
        items = fetches[i]
        assert int(items["RFC822.SIZE"]) == len(m), (i, items)
        assert items["BODYSTRUCTURE"], (i, items)
    # NUL in an APPEND literal is refused (IMAP literals cannot carry it)
    # and nothing is stored.
    r = c.cmd("APPEND Broken ", Literal(b"Subject: nul\r\n\r\na\x00b\r\n"))
    assert r.status in ("NO", "BAD")
    r = c.cmd("STATUS Broken (MESSAGES)").ok()
    assert b"MESSAGES %d" % len(messages) in r.untagged[-1]
    c.cmd("SEARCH TEXT nothing-like-this").ok()
    c.cmd("LOGOUT")


def test_select_of_many_new_messages_moves_them_to_cur(imap):
    """A read-write SELECT of 2,500 messages in new/ (as local leaves a
    bulk delivery): every message is \\Recent for the session, all files
    end up in cur/ with nothing lost, and the session goes on serving
    (FETCH, IDLE) with no EXPUNGE and no warning."""
    import os
    import pwd
    c = login(imap)
    c.cmd("NOOP").ok()
    maildir = imap.maildir(imap.demo_user)
    owner = pwd.getpwnam(imap.run("postconf", "-h", "mail_owner").stdout.strip()) \
        if os.geteuid() == 0 else None
    n = 2500
    for i in range(n):
        name = "%d.M%dP1Q%d.moves" % (1700000000 + i, i, i)
        path = os.path.join(maildir, "new", name)
        with open(path, "wb") as f:
            f.write(b"Subject: move %d\n\nbody %d\n" % (i, i))
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    r = c.cmd("SELECT INBOX").ok()
    assert any(u == b"%d EXISTS" % n for u in r.untagged), r.untagged[:5]
    assert any(u == b"%d RECENT" % n for u in r.untagged), r.untagged[:5]
    r = c.cmd("FETCH %d (FLAGS BODY.PEEK[])" % n).ok()
    items = r.fetches()[n]
    assert items["BODY[]"] == b"Subject: move %d\r\n\r\nbody %d\r\n" % (n - 1, n - 1)
    c.send(b"I1 IDLE\r\n")
    assert c.line().startswith(b"+ ")
    deadline = time.monotonic() + 15
    while os.listdir(os.path.join(maildir, "new")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(os.path.join(maildir, "new")) == []
    c.send(b"DONE\r\n")
    assert c.read_until_tagged("I1").status == "OK"
    assert len(os.listdir(os.path.join(maildir, "cur"))) == n
    r = c.cmd("UID SEARCH RECENT").ok()
    assert len(r.untagged[-1].split()) - 1 == n
    r = c.cmd("FETCH 1:* (UID)").ok()
    assert len(r.fetches()) == n
    assert not [u for u in r.untagged if b"EXPUNGE" in u]
    assert "panic" not in imap.maillog() and "warning" not in imap.maillog()
