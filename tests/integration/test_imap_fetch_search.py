"""IMAP server (imapd): FETCH and SEARCH (RFC 3501 6.4.4, 6.4.5, 7.4.2),
split from test_imap.py, whose docstring describes the clients and the
design points these tests rely on. Message bytes are checked against the
Maildir file (CRLF on the wire, LF on disk); the nested MIME message
(imap_util.Complex) has section bytes known by construction.
"""

import imaplib
import os
import re

import pytest

from imap_util import (Complex, Literal, append, crlf, deliver, fetch_items, file_header_end,
                       find_by_mid, imaplib_login, lf, login, maildir_flags, read,
                       require_imapd, select_info, simple_message, text)

pytestmark = pytest.mark.chain


@pytest.fixture
def imap(instance):
    return require_imapd(instance)


# ---- FETCH --------------------------------------------------------------

@pytest.fixture
def complex_box(imap):
    """INBOX with the Complex message (delivered by smtpd and local) and a
    plain one after it; returns (instance, Complex, the file's bytes,
    client with INBOX selected)."""
    cm = Complex()
    data = deliver(imap, cm.data)
    c = login(imap)
    c.select()
    # The second arrives after the first was seen: UIDs in this order.
    deliver(imap, simple_message("plain.2@remote.test", subject="plain",
                                 body="nothing special\r\n"))
    r = c.cmd("NOOP").ok()
    assert b"2 EXISTS" in r.untagged
    return imap, cm, data, c


def peek(c, section, seq=1):
    r = c.cmd("FETCH %d BODY.PEEK[%s]" % (seq, section)).ok()
    f = r.fetches()[seq]
    key = "BODY[%s]" % section.upper()
    got = [v for k, v in f.items() if k.upper() == key]
    assert got, (key, list(f))
    return got[0]


def test_fetch_whole_message_header_text(complex_box):
    imap, cm, data, c = complex_box
    assert lf(cm.data) in data, "local changed the message body"
    hend = file_header_end(data)
    assert peek(c, "") == crlf(data)
    assert peek(c, "HEADER") == crlf(data[:hend])
    assert peek(c, "TEXT") == crlf(data[hend:])
    assert peek(c, "TEXT") == cm.body
    r = c.cmd("FETCH 1 (RFC822.SIZE)").ok()
    assert int(r.fetches()[1]["RFC822.SIZE"]) == len(crlf(data))


def test_fetch_nested_sections(complex_box):
    imap, cm, data, c = complex_box
    expect = {
        "1": cm.p1, "1.MIME": cm.p1_hdr + b"\r\n",
        "1.1": cm.p11, "1.1.MIME": cm.p11_hdr + b"\r\n",
        "1.2": cm.p12, "1.2.MIME": cm.p12_hdr + b"\r\n",
        "2": cm.p2, "2.MIME": cm.p2_hdr + b"\r\n",
        "2.HEADER": cm.inner_hdr, "2.TEXT": cm.inner_body,
        "2.1": cm.p21, "2.1.MIME": cm.p21_hdr + b"\r\n",
        "2.2": cm.p22, "2.2.MIME": cm.p22_hdr + b"\r\n",
        "3": cm.p3, "3.MIME": cm.p3_hdr + b"\r\n",
    }
    for section, want in expect.items():
        assert peek(c, section) == want, section
    # A single-part message: part 1 is its body.
    assert peek(c, "1", seq=2) == b"nothing special\r\n"
    assert peek(c, "TEXT", seq=2) == b"nothing special\r\n"
    # Missing parts are empty (or NIL), not an error that kills the session.
    r = c.cmd("FETCH 1 BODY.PEEK[9]")
    if r.status == "OK":
        v = r.fetches()[1]["BODY[9]"]
        assert v in (None, b"", "")
    assert c.cmd("NOOP").status == "OK"


def test_fetch_header_fields(complex_box):
    imap, cm, data, c = complex_box
    r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject X-Folded from)]").ok()
    f = r.fetches()[1]
    (key, val), = f.items()
    assert key.startswith("BODY[HEADER.FIELDS (")
    assert val == (b'From: "Ann Example" <ann@remote.test>\r\n'
                   b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
                   b"X-Folded: first part\r\n second part\r\n\r\n")
    # Fields that are absent: just the blank line.
    assert peek(c, "HEADER.FIELDS (X-NOT-THERE)") == b"\r\n"
    # .NOT: everything else, in order.
    header = crlf(data[:file_header_end(data)])
    r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject X-Folded From Content-Type "
              "MIME-Version)]").ok()
    (key, val), = r.fetches()[1].items()
    kept = []
    for block in re.findall(rb"[^\r\n]+\r\n(?:[ \t][^\r\n]*\r\n)*", header):
        name = block.split(b":", 1)[0].lower()
        if name not in (b"subject", b"x-folded", b"from", b"content-type", b"mime-version"):
            kept.append(block)
    assert val == b"".join(kept) + b"\r\n"
    # Inside the encapsulated message.
    assert peek(c, "2.HEADER.FIELDS (SUBJECT)") == \
        b"Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=\r\n\r\n"


def test_fetch_partial(complex_box):
    imap, cm, data, c = complex_box
    full = crlf(data)
    r = c.cmd("FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<5.20> BODY.PEEK[1.1]<3.1000000>)").ok()
    f = r.fetches()[1]
    assert f["BODY[]<0>"] == full[:10]
    assert f["BODY[TEXT]<5>"] == cm.body[5:25]
    assert f["BODY[1.1]<3>"] == cm.p11[3:]
    r = c.cmd("FETCH 1 BODY.PEEK[]<%d.10>" % (len(full) + 100)).ok()
    v = r.fetches()[1]["BODY[]<%d>" % (len(full) + 100)]
    assert v in (b"", "")


def test_fetch_body_sets_seen_peek_does_not(complex_box):
    imap, cm, data, c = complex_box
    r = c.cmd("FETCH 1 BODY.PEEK[TEXT]").ok()
    assert "FLAGS" not in r.fetches()[1]
    assert "S" not in maildir_flags(find_by_mid(imap, cm.mid))
    r = c.cmd("FETCH 1 BODY[1.1]").ok()
    f = r.fetches()[1]
    assert f["BODY[1.1]"] == cm.p11
    assert "\\Seen" in f["FLAGS"], f
    seen = find_by_mid(imap, cm.mid)
    assert maildir_flags(seen) == "S"
    assert os.path.basename(os.path.dirname(seen)) == "cur"
    # Already \Seen: no FLAGS item needed again, but if present it has \Seen.
    r = c.cmd("FETCH 2 RFC822").ok()
    f = r.fetches()[2]
    assert "\\Seen" in f["FLAGS"]


def test_fetch_rfc822_items(complex_box):
    imap, cm, data, c = complex_box
    hend = file_header_end(data)
    r = c.cmd("FETCH 1 (RFC822.HEADER RFC822.TEXT)").ok()
    f = r.fetches()[1]
    assert f["RFC822.HEADER"] == crlf(data[:hend])
    assert f["RFC822.TEXT"] == crlf(data[hend:])
    r = c.cmd("FETCH 2 RFC822").ok()
    data2 = [read(p) for p in imap.maildir_files(imap.demo_user) if b"plain.2@" in read(p)][0]
    assert r.fetches()[2]["RFC822"] == crlf(data2)


def test_fetch_envelope(complex_box):
    imap, cm, data, c = complex_box
    r = c.cmd("FETCH 1 ENVELOPE").ok()
    env = text(r.fetches()[1]["ENVELOPE"])
    ann = [["Ann Example", None, "ann", "remote.test"]]
    assert env == ["Wed, 25 Nov 2026 10:11:12 +0100",
                   "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=",
                   ann, ann, ann,
                   [[None, None, "demo", "example.test"]],
                   [["Carl", None, "carl", "remote.test"]],
                   None,
                   "<parent@remote.test>",
                   "<complex.1@remote.test>"], env


def lower(v):
    return v.lower() if isinstance(v, str) else v


def params(v):
    """A body parameter list -> {name lower: value}."""
    if v is None:
        return {}
    v = text(v)
    return {v[i].lower(): v[i + 1] for i in range(0, len(v), 2)}


def test_fetch_bodystructure(complex_box):
    imap, cm, data, c = complex_box
    r = c.cmd("FETCH 1 BODYSTRUCTURE").ok()
    bs = r.fetches()[1]["BODYSTRUCTURE"]
    # Top: multipart/mixed with three parts.
    assert len([p for p in bs if isinstance(p, list)]) >= 3
    p1, p2, p3 = bs[0], bs[1], bs[2]
    assert lower(bs[3]) == "mixed"
    assert params(bs[4]) == {"boundary": "outer-b"}
    # 1: multipart/alternative of text/plain QP and text/html base64.
    p11, p12 = p1[0], p1[1]
    assert lower(p1[2]) == "alternative"
    assert params(p1[3]) == {"boundary": "alt-b"}
    assert [lower(x) for x in p11[:2]] == ["text", "plain"]
    assert params(p11[2]) == {"charset": "utf-8"}
    assert lower(p11[5]) == "quoted-printable"
    assert int(p11[6]) == len(cm.p11)
    assert int(p11[7]) == cm.p11.count(b"\r\n")
    assert [lower(x) for x in p12[:2]] == ["text", "html"]
    assert lower(p12[5]) == "base64"
    assert int(p12[6]) == len(cm.p12)
    assert int(p12[7]) == cm.p12.count(b"\r\n")
    # 2: message/rfc822 with envelope, body structure and lines.
    assert [lower(x) for x in p2[:2]] == ["message", "rfc822"]
    assert text(p2[4]) == "forwarded"
    assert lower(p2[5]) == "7bit"
    assert int(p2[6]) == len(cm.p2)
    env = text(p2[7])
    assert env[1] == "=?ISO-8859-1?Q?Caf=E9_au_lait?="
    assert env[2] == [["Bob Inner", None, "bob", "inner.test"]]
    assert env[9] == "<inner.1@inner.test>"
    inner = p2[8]
    assert lower(inner[2]) == "mixed"
    p21, p22 = inner[0], inner[1]
    assert [lower(x) for x in p21[:2]] == ["text", "plain"]
    assert int(p21[6]) == len(cm.p21) and int(p21[7]) == 2
    assert [lower(x) for x in p22[:2]] == ["application", "octet-stream"]
    assert int(p22[6]) == len(cm.p22)
    disp = text(p22[8])
    assert lower(disp[0]) == "attachment"
    dp = params(disp[1])
    # RFC 2231 continuations joined (plain, or re-encoded as name*).
    assert dp.get("filename") == "very long name.bin" or \
        dp.get("filename*", "").endswith("''very%20long%20name.bin"), dp
    assert int(p2[9]) == cm.p2.count(b"\r\n")
    # 3: application/pdf, base64, charset-encoded RFC 2231 filename.
    assert [lower(x) for x in p3[:2]] == ["application", "pdf"]
    assert params(p3[2]) == {"name": "rates.pdf"}
    assert lower(p3[5]) == "base64"
    assert int(p3[6]) == len(cm.p3)
    disp = text(p3[8])
    assert lower(disp[0]) == "attachment"
    dp = params(disp[1])
    assert dp.get("filename*", "").lower() in ("utf-8''%e2%82%ac%20rates.pdf",), dp
    # BODY: the same without extension data.
    r = c.cmd("FETCH 1 BODY").ok()
    body = r.fetches()[1]["BODY"]
    assert lower(body[3]) == "mixed" and len(body) == 4
    assert len(body[0][0]) == 8     # text/plain: 7 fields + lines, no extensions


def test_fetch_macros_and_uid(complex_box):
    imap, cm, data, c = complex_box
    r = c.cmd("FETCH 1:2 FAST").ok()
    f = r.fetches()
    assert set(f[1]) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}
    r = c.cmd("FETCH 1 ALL").ok()
    assert set(r.fetches()[1]) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    r = c.cmd("FETCH 1 FULL").ok()
    assert set(r.fetches()[1]) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}
    r = c.cmd("FETCH 1:* UID").ok()
    uids = {s: int(v["UID"]) for s, v in r.fetches().items()}
    assert sorted(uids) == [1, 2] and uids[1] < uids[2]
    r = c.cmd("UID FETCH %d FLAGS" % uids[2]).ok()
    f = r.fetches()
    assert list(f) == [2] and int(f[2]["UID"]) == uids[2]
    # UID FETCH of a UID range beyond the last: the last message ("*").
    r = c.cmd("UID FETCH %d:* FLAGS" % (uids[2] + 50)).ok()
    assert list(r.fetches()) == [2]
    # FETCH of a sequence number that does not exist: BAD (RFC 3501 6.4.5).
    assert c.cmd("FETCH 3 FLAGS").status in ("NO", "BAD")
    # UID FETCH of UIDs that do not exist: OK and nothing.
    r = c.cmd("UID FETCH %d FLAGS" % (uids[2] + 100)).ok()
    assert r.fetches() == {}


def test_fetch_internaldate_and_imaplib(complex_box):
    imap, cm, data, c = complex_box
    m = imaplib_login(imap)
    m.select("INBOX", readonly=True)
    typ, got = m.fetch("1", "(INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])")
    assert typ == "OK"
    assert imaplib.Internaldate2tuple(got[0][0]) is not None
    hdr = got[0][1]
    full = crlf(data)
    assert full.startswith(hdr) and hdr.endswith(b"\r\n\r\n")
    m.logout()


def test_fetch_cached_items_keep_the_clients_order(complex_box):
    """ENVELOPE, BODY and BODYSTRUCTURE come from the index cache after the
    first FETCH; the reply still lists the items as the client named
    them, in this session and in another one."""
    imap, cm, data, c = complex_box
    items = "(BODYSTRUCTURE UID ENVELOPE FLAGS BODY RFC822.SIZE)"
    order = ["BODYSTRUCTURE", "UID", "ENVELOPE", "FLAGS", "BODY", "RFC822.SIZE"]
    first = c.cmd("FETCH 1:2 " + items).ok()
    second = c.cmd("FETCH 1:2 " + items).ok()
    assert second.untagged == first.untagged
    for u in first.named("FETCH"):
        _, f = fetch_items(u)
        assert list(f) == order, u[:200]
    # The cached texts alone, and among others in yet another order.
    r = c.cmd("FETCH 1 (ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)] BODYSTRUCTURE)").ok()
    _, f = fetch_items(r.named("FETCH")[0])
    assert list(f) == ["ENVELOPE", "BODY[HEADER.FIELDS (SUBJECT)]", "BODYSTRUCTURE"]
    _, before = fetch_items(first.named("FETCH")[0])
    assert f["ENVELOPE"] == before["ENVELOPE"]
    assert f["BODYSTRUCTURE"] == before["BODYSTRUCTURE"]
    d = login(imap)
    try:
        d.cmd("EXAMINE INBOX").ok()
        third = d.cmd("FETCH 1:2 " + items).ok()
        # Only \\Recent differs: the first session claimed it.
        assert third.untagged == [re.sub(rb" ?\\Recent", b"", u) for u in first.untagged]
        for u in third.named("FETCH"):
            _, f = fetch_items(u)
            assert list(f) == order, u[:200]
    finally:
        d.close()


def test_fetch_many_element_sequence_set(complex_box):
    imap, cm, data, c = complex_box
    seqset = ",".join(["1", "2"] * 5000)   # 10,000 elements
    r = c.cmd("FETCH %s UID" % seqset)
    assert r.status in ("OK", "NO", "BAD")
    if r.status == "OK":
        assert sorted(r.fetches()) == [1, 2]
    assert c.cmd("NOOP").status == "OK"


# ---- SEARCH -------------------------------------------------------------

SEARCH_MSGS = [
    # (message, flags, internal date)
    (simple_message("s.1@x.test", subject="alpha report", sender="alice@a.test",
                    to="bob@b.test", extra="Cc: carol@c.test\r\nBcc: dave@d.test\r\n",
                    date="Mon, 02 Nov 2026 08:00:00 +0000",
                    body="the quick brown fox\r\n"),
     "\\Seen \\Answered", "05-Nov-2026 12:00:00 +0000"),
    (simple_message("s.2@x.test", subject="beta minutes", sender="bob@b.test",
                    to="alice@a.test", date="Thu, 12 Nov 2026 12:00:00 +0000",
                    body="lazy dog jumps\r\n" + ("filler line of text\r\n" * 200)),
     "\\Flagged", "10-Nov-2026 12:00:00 +0000"),
    (simple_message("s.3@x.test", subject="gamma ALPHA", sender="carol@c.test",
                    to="alice@a.test", date="Sun, 15 Nov 2026 12:00:00 +0000",
                    body="nothing here\r\n"),
     "\\Deleted \\Draft", "20-Nov-2026 12:00:00 +0000"),
    (simple_message("s.4@x.test", subject="delta", sender="dave@d.test",
                    to="erin@e.test", extra="X-Priority: 1\r\n",
                    date="Fri, 20 Nov 2026 23:30:00 -0500", body="fox again\r\n"),
     "", "21-Nov-2026 10:00:00 +0000"),
]


@pytest.fixture
def search_box(imap):
    c = login(imap)
    c.cmd("CREATE Search").ok()
    uids = []
    for msg, flags, date in SEARCH_MSGS:
        uids.append(append(c, "Search", msg, flags=flags, date=date)[1])
    c.select("Search")
    return imap, c, uids


def search(c, criteria, uid=False):
    r = c.cmd(("UID SEARCH " if uid else "SEARCH ") + criteria).ok()
    s = r.named("SEARCH")
    assert len(s) == 1, r.untagged
    return sorted(int(x) for x in s[0].split()[1:])


@pytest.mark.parametrize("criteria,expect", [
    ("ALL", [1, 2, 3, 4]),
    ("ANSWERED", [1]), ("UNANSWERED", [2, 3, 4]),
    ("SEEN", [1]), ("UNSEEN", [2, 3, 4]),
    ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4]),
    ("DELETED", [3]), ("UNDELETED", [1, 2, 4]),
    ("DRAFT", [3]), ("UNDRAFT", [1, 2, 4]),
    ("KEYWORD $Forwarded", []), ("UNKEYWORD $Forwarded", [1, 2, 3, 4]),
    ("FROM alice", [1]), ("FROM A.TEST", [1]), ("TO alice", [2, 3]),
    ("CC carol", [1]), ("BCC dave", [1]),
    ("SUBJECT alpha", [1, 3]), ('SUBJECT "beta min"', [2]),
    ("BODY fox", [1, 4]), ("BODY FILLER", [2]), ("TEXT bob", [1, 2]),
    ("TEXT fox", [1, 4]), ("BODY alpha", []),
    ('HEADER X-Priority 1', [4]), ('HEADER X-Priority ""', [4]),
    ('HEADER Message-ID s.3', [3]),
    ("LARGER 3000", [2]), ("SMALLER 3000", [1, 3, 4]),
    ("BEFORE 10-Nov-2026", [1]), ("ON 10-Nov-2026", [2]), ("SINCE 20-Nov-2026", [3, 4]),
    ("BEFORE 21-Nov-2026", [1, 2, 3]),
    ("SENTBEFORE 12-Nov-2026", [1]), ("SENTON 12-Nov-2026", [2]),
    ("SENTSINCE 15-Nov-2026", [3, 4]),
    ("SENTON 20-Nov-2026", [4]), ("SENTON 21-Nov-2026", []),
    ("NOT SEEN", [2, 3, 4]), ("OR SEEN FLAGGED", [1, 2]),
    ("SUBJECT alpha UNDELETED", [1]), ("OR (FROM bob) (FROM carol) DELETED", [3]),
    ("(OR FROM bob FROM carol) NOT DELETED", [2]),
    ("NOT (OR SEEN (FLAGGED))", [3, 4]),
    ("2:*", [2, 3, 4]), ("1,4", [1, 4]), ("*", [4]), ("3:2", [2, 3]),
    ("1:* SMALLER 3000 FROM dave", [4]),
    ("CHARSET US-ASCII FROM alice", [1]), ("CHARSET UTF-8 SUBJECT delta", [4]),
])
def test_search_keys(search_box, criteria, expect):
    imap, c, uids = search_box
    assert search(c, criteria) == expect


def test_search_uid_forms(search_box):
    imap, c, uids = search_box
    assert search(c, "FLAGGED", uid=True) == [uids[1]]
    assert search(c, "UID %d:%d" % (uids[1], uids[2])) == [2, 3]
    assert search(c, "UID %d,%d" % (uids[0], uids[3]), uid=True) == [uids[0], uids[3]]
    assert search(c, "UID %d" % (uids[3] + 10)) == []


def test_search_recent_new_old(imap):
    """Delivered mail: \\Recent for the first session only."""
    deliver(imap, simple_message("rn.1@remote.test"))
    a = login(imap)
    a.select()
    deliver(imap, simple_message("rn.2@remote.test"))
    deliver(imap, simple_message("rn.3@remote.test"))
    assert b"3 EXISTS" in a.cmd("NOOP").ok().untagged
    a.cmd("STORE 2 +FLAGS.SILENT (\\Seen)").ok()
    assert search(a, "RECENT") == [1, 2, 3]
    assert search(a, "NEW") == [1, 3]
    assert search(a, "OLD") == []
    b = login(imap)
    b.cmd("EXAMINE INBOX").ok()
    assert search(b, "RECENT") == []
    assert search(b, "NEW") == []
    assert search(b, "OLD") == [1, 2, 3]
    # Delivered while both look: the read-only session must not take
    # \\Recent away (RFC 3501 6.3.2), the read-write one gets it.
    deliver(imap, simple_message("rn.4@remote.test"))
    assert b"4 EXISTS" in b.cmd("NOOP").ok().untagged
    assert b"4 EXISTS" in a.cmd("NOOP").ok().untagged
    assert search(a, "RECENT") == [1, 2, 3, 4]
    c = login(imap)
    assert select_info(c.select())["RECENT"] == 0


def test_search_bad_charset_and_syntax(search_box):
    imap, c, uids = search_box
    r = c.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET FROM alice")
    assert r.status == "NO" and r.code and r.code.upper().startswith("BADCHARSET"), r
    assert c.cmd("SEARCH FROB").status == "BAD"
    assert c.cmd("SEARCH (SEEN").status == "BAD"
    assert c.cmd("SEARCH OR SEEN").status == "BAD"


def test_search_decodes_mime(complex_box):
    imap, cm, data, c = complex_box
    # Subject is an RFC 2047 encoded word: matched after decoding.
    r = c.cmd("SEARCH CHARSET UTF-8 SUBJECT ", Literal("köln".encode())).ok()
    assert r.named("SEARCH")[0].split()[1:] == [b"1"]
    # A quoted-printable soft line break inside the word.
    assert search(c, "BODY supercalifragilistic") == [1]
    # Words only present in a base64 part.
    assert search(c, "BODY base64secretword") == [1]
    assert search(c, "TEXT base64secretword") == [1]
    r = c.cmd("SEARCH CHARSET UTF-8 TEXT ", Literal("grüße".encode())).ok()
    assert r.named("SEARCH")[0].split()[1:] == [b"1"]
    # An unfolded header value.
    assert search(c, 'HEADER X-Folded "part second"') == [1]
    assert search(c, "BODY nothing") == [2]
    assert search(c, "BODY zzznotthere") == []


def test_search_address_keys_use_the_parsed_addresses(imap):
    """FROM/TO/CC/BCC match the envelope's addresses (RFC 3501 6.4.4), so
    comments and blanks inside an address do not hide it (imaptest's
    search-addresses script), and still the field's decoded text."""
    c = login(imap)
    c.cmd("CREATE Addr").ok()
    msgs = [
        simple_message("a.1@x.test", sender="<user-from (comment)@ (comment) domain.org>",
                       to='"Quoted, Name" <to.user @ example . test>'),
        simple_message("a.2@x.test", sender="user-from@domain.org",
                       to="Friends: g1@d1.org, =?ISO-8859-1?Q?J=F6rg?= <jorg@d2.org>;",
                       extra="Cc: ann@x.test (Ann Comment)\r\n"),
        simple_message("a.3@x.test", subject="user-from@domain.org", sender="other@domain.org"),
    ]
    for msg in msgs:
        append(c, "Addr", msg)
    c.select("Addr")
    assert search(c, "FROM user-from@domain.org") == [1, 2]
    assert search(c, "FROM USER-FROM@DOMAIN.ORG") == [1, 2]
    assert search(c, "FROM comment") == [1]
    assert search(c, "TO to.user@example.test") == [1]
    assert search(c, 'TO "quoted, name"') == [1]
    assert search(c, "TO g1@d1.org") == [2]
    assert search(c, "TO friends") == [2]
    r = c.cmd("SEARCH CHARSET UTF-8 TO ", Literal("jörg <jorg@d2.org>".encode())).ok()
    assert r.named("SEARCH")[0].split()[1:] == [b"2"]
    assert search(c, "CC ann@x.test") == [2]
    assert search(c, "BCC user-from") == []
    assert search(c, "SUBJECT user-from@domain.org") == [3]


def test_search_imaplib(search_box):
    imap, c, uids = search_box
    m = imaplib_login(imap)
    m.select("Search")
    typ, data = m.search(None, "(FROM alice)")
    assert typ == "OK" and data == [b"1"]
    typ, data = m.uid("SEARCH", "FLAGGED")
    assert typ == "OK" and data == [str(uids[1]).encode()]
    m.logout()
