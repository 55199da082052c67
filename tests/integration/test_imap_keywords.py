"""IMAP keywords (RFC 3501 2.3.2): STORE, FETCH, SEARCH, APPEND, COPY of
keywords such as $Forwarded or NonJunk, and what they become on disk.

Postern keeps them the Maildir way Dovecot does (docs/imapd.md): the file
name carries lower-case letters after the system flags (":2,FSab") and
the folder's "dovecot-keywords" file says which keyword a letter stands
for ("0 $Forwarded", letter 'a' + number). Up to 26 keywords a folder; a
27th is refused with NO [LIMIT] and nothing changes. Keywords match
case-insensitively, the first spelling is kept.
"""

import os
import re

import pytest

from imap_util import (Client, Literal, append, folder_files, login, maildir_flags, read,
                       require_imapd, select_info, simple_message, wait_for)

pytestmark = pytest.mark.chain

SYSTEM = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}


@pytest.fixture
def imap(instance):
    return require_imapd(instance)


def folder_dir(inst, folder=None):
    base = inst.maildir(inst.demo_user)
    return os.path.join(base, "." + folder) if folder else base


def keywords_file(inst, folder=None):
    """{number: name} of the folder's dovecot-keywords file."""
    path = os.path.join(folder_dir(inst, folder), "dovecot-keywords")
    if not os.path.exists(path):
        return {}
    out = {}
    for line in read(path).decode().splitlines():
        n, name = line.split(" ", 1)
        out[int(n)] = name
    return out


def letter_of(inst, name, folder=None):
    for n, v in keywords_file(inst, folder).items():
        if v.lower() == name.lower():
            return chr(ord("a") + n)
    return None


def flags_by_mid(inst, folder=None):
    out = {}
    for p in folder_files(inst, inst.demo_user, folder):
        m = re.search(rb"Message-ID: <([^>]+)>", read(p))
        out[m.group(1).decode()] = maildir_flags(p)
    return out


def nr(flags):
    return set(flags) - {"\\Recent"}


def box(inst, n=3, folder="INBOX"):
    c = login(inst)
    for i in range(n):
        append(c, folder, simple_message("kw.%d@x.test" % i))
    return c


def flags_updates(r):
    """The flag lists of untagged FLAGS responses, in order."""
    out = []
    for u in r.untagged:
        m = re.match(rb"FLAGS \((.*)\)$", u)
        if m:
            out.append(set(m.group(1).decode().split()))
    return out


def test_select_offers_keywords(imap):
    c = box(imap, 1)
    info = select_info(c.select())
    assert info["FLAGS"] == SYSTEM
    perm = set(info["PERMANENTFLAGS"].strip("()").split())
    assert perm == SYSTEM | {"\\*"}, perm
    c.cmd("STORE 1 +FLAGS ($Forwarded)").ok()
    info = select_info(c.select())
    assert info["FLAGS"] == SYSTEM | {"$Forwarded"}
    assert set(info["PERMANENTFLAGS"].strip("()").split()) == SYSTEM | {"$Forwarded", "\\*"}
    # EXAMINE: the flags, no permanent ones.
    info = select_info(c.cmd("EXAMINE INBOX").ok())
    assert info["FLAGS"] == SYSTEM | {"$Forwarded"}
    assert info["PERMANENTFLAGS"] == "()"


def test_store_fetch_and_the_disk(imap):
    c = box(imap)
    c.select()
    r = c.cmd("STORE 1 +FLAGS ($Forwarded \\Seen)").ok()
    # RFC 3501 7.2.6: the new keyword in FLAGS before the FETCH.
    kinds = [u.split(b" ")[0] if not u[:1].isdigit() else u.split(b" ")[1]
             for u in r.untagged]
    assert kinds.index(b"FLAGS") < kinds.index(b"FETCH"), r.untagged
    assert flags_updates(r)[0] == SYSTEM | {"$Forwarded"}
    assert nr(r.fetches()[1]["FLAGS"]) == {"\\Seen", "$Forwarded"}
    assert keywords_file(imap) == {0: "$Forwarded"}
    assert flags_by_mid(imap)["kw.0@x.test"] == "Sa"
    r = c.cmd("STORE 1:2 +FLAGS ($Junk NonJunk)").ok()
    assert flags_updates(r)[0] == SYSTEM | {"$Forwarded", "$Junk", "NonJunk"}
    f = r.fetches()
    assert nr(f[1]["FLAGS"]) == {"\\Seen", "$Forwarded", "$Junk", "NonJunk"}
    assert nr(f[2]["FLAGS"]) == {"$Junk", "NonJunk"}
    assert keywords_file(imap) == {0: "$Forwarded", 1: "$Junk", 2: "NonJunk"}
    files = flags_by_mid(imap)
    assert files["kw.0@x.test"] == "Sabc" and files["kw.1@x.test"] == "bc"
    # A known keyword: no FLAGS update.
    r = c.cmd("STORE 3 +FLAGS ($Junk)").ok()
    assert flags_updates(r) == []
    assert flags_by_mid(imap)["kw.2@x.test"] == "b"
    # -FLAGS and FLAGS replace keywords as they do system flags.
    r = c.cmd("STORE 1 -FLAGS ($Junk)").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == {"\\Seen", "$Forwarded", "NonJunk"}
    r = c.cmd("STORE 2 FLAGS (\\Flagged $Forwarded)").ok()
    assert nr(r.fetches()[2]["FLAGS"]) == {"\\Flagged", "$Forwarded"}
    files = flags_by_mid(imap)
    assert files["kw.0@x.test"] == "Sac" and files["kw.1@x.test"] == "Fa"
    r = c.cmd("FETCH 1:3 FLAGS").ok()
    f = r.fetches()
    assert nr(f[1]["FLAGS"]) == {"\\Seen", "$Forwarded", "NonJunk"}
    assert nr(f[2]["FLAGS"]) == {"\\Flagged", "$Forwarded"}
    assert nr(f[3]["FLAGS"]) == {"$Junk"}
    # Removing a keyword nobody defined is no error and defines nothing.
    c.cmd("STORE 1 -FLAGS (NeverSeen)").ok()
    assert "NeverSeen" not in keywords_file(imap).values()
    # The map stays after a reconnect.
    c2 = login(imap)
    c2.select()
    f = c2.cmd("FETCH 1:3 (FLAGS)").ok().fetches()
    assert nr(f[2]["FLAGS"]) == {"\\Flagged", "$Forwarded"}


def test_search_keyword_and_unkeyword(imap):
    c = box(imap, 4)
    c.select()
    c.cmd("STORE 1,3 +FLAGS ($Label1)").ok()
    c.cmd("STORE 2 +FLAGS ($Label2 \\Seen)").ok()

    def search(q):
        r = c.cmd("SEARCH " + q).ok()
        line = r.named("SEARCH")[0].decode()
        return [int(x) for x in line.split()[1:]]

    assert search("KEYWORD $Label1") == [1, 3]
    assert search("KEYWORD $label1") == [1, 3]          # case-insensitive
    assert search("UNKEYWORD $Label1") == [2, 4]
    assert search("KEYWORD $Label2 SEEN") == [2]
    assert search("OR KEYWORD $Label1 KEYWORD $Label2") == [1, 2, 3]
    assert search("KEYWORD Unknown") == []
    assert search("UNKEYWORD Unknown") == [1, 2, 3, 4]
    assert search("NOT KEYWORD $Label2") == [1, 3, 4]
    r = c.cmd("UID SEARCH KEYWORD $Label2").ok()
    uid2 = int(c.cmd("FETCH 2 UID").ok().fetches()[2]["UID"])
    assert r.named("SEARCH")[0].decode().split()[1:] == [str(uid2)]


def test_second_session_sees_keywords(imap):
    a = box(imap, 2)
    a.select()
    b = login(imap)
    b.select()
    a.cmd("STORE 2 +FLAGS ($MDNSent)").ok()
    r = b.cmd("NOOP").ok()
    assert SYSTEM | {"$MDNSent"} in flags_updates(r), r.untagged
    f = r.fetches()
    assert 2 in f and nr(f[2]["FLAGS"]) == {"$MDNSent"}, r.untagged
    kinds = [u.split(b" ")[1] if u[:1].isdigit() else u.split(b" ")[0] for u in r.untagged]
    assert kinds.index(b"FLAGS") < kinds.index(b"FETCH")
    # A known keyword set by the other session: FETCH only.
    a.cmd("STORE 1 +FLAGS ($mdnsent)").ok()
    r = b.cmd("NOOP").ok()
    assert flags_updates(r) == []
    assert nr(r.fetches()[1]["FLAGS"]) == {"$MDNSent"}
    assert b.cmd("SEARCH KEYWORD $MDNSent").ok().named("SEARCH")[0] == b"SEARCH 1 2"


def test_case_insensitive_first_spelling_kept(imap):
    c = box(imap, 2)
    c.select()
    c.cmd("STORE 1 +FLAGS (MyLabel)").ok()
    r = c.cmd("STORE 2 +FLAGS (MYLABEL mylabel)").ok()
    assert flags_updates(r) == []
    assert nr(r.fetches()[2]["FLAGS"]) == {"MyLabel"}
    assert keywords_file(imap) == {0: "MyLabel"}
    r = c.cmd("STORE 1 -FLAGS (mylabel)").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == set()
    assert flags_by_mid(imap) == {"kw.0@x.test": "", "kw.1@x.test": "a"}


def test_nil_is_a_keyword_atom(imap):
    c = box(imap, 1)
    c.select()
    r = c.cmd("STORE 1 +FLAGS NIL").ok()
    # (imap_util's parser reads NIL as None: look at the wire.)
    m = re.search(rb"FLAGS \(([^)]*)\)", r.named("FETCH")[0])
    assert set(m.group(1).split()) - {b"\\Recent"} == {b"NIL"}, r.untagged
    assert SYSTEM | {"NIL"} in flags_updates(r)
    assert keywords_file(imap) == {0: "NIL"}
    assert flags_by_mid(imap)["kw.0@x.test"] == "a"
    assert c.cmd("SEARCH KEYWORD NIL").ok().named("SEARCH")[0] == b"SEARCH 1"


def test_append_with_keywords(imap):
    c = login(imap)
    c.cmd("CREATE Archive").ok()
    append(c, "Archive", simple_message("ap.1@x.test"), flags="\\Seen $Forwarded Work")
    assert keywords_file(imap, "Archive") == {0: "$Forwarded", 1: "Work"}
    assert flags_by_mid(imap, "Archive") == {"ap.1@x.test": "Sab"}
    append(c, "Archive", simple_message("ap.2@x.test"), flags="work")
    assert flags_by_mid(imap, "Archive")["ap.2@x.test"] == "b"
    info = select_info(c.select("Archive"))
    assert info["FLAGS"] == SYSTEM | {"$Forwarded", "Work"}
    f = c.cmd("FETCH 1:2 FLAGS").ok().fetches()
    assert nr(f[1]["FLAGS"]) == {"\\Seen", "$Forwarded", "Work"}
    assert nr(f[2]["FLAGS"]) == {"Work"}
    # APPEND into the selected folder with a new keyword: FLAGS update.
    r = c.cmd('APPEND Archive (Later) ', Literal(simple_message("ap.3@x.test"))).ok()
    assert SYSTEM | {"$Forwarded", "Work", "Later"} in flags_updates(r), r.untagged
    assert flags_by_mid(imap, "Archive")["ap.3@x.test"] == "c"


def test_copy_translates_keywords_to_the_target_map(imap):
    c = box(imap, 2)
    c.cmd("CREATE Other").ok()
    # The target has its own map: Beta is letter 'a' there.
    append(c, "Other", simple_message("ot.1@x.test"), flags="Beta")
    c.select()
    c.cmd("STORE 1 +FLAGS (Alpha Beta \\Flagged)").ok()
    c.cmd("STORE 2 +FLAGS (Beta)").ok()
    assert keywords_file(imap) == {0: "Alpha", 1: "Beta"}
    assert flags_by_mid(imap)["kw.0@x.test"] == "Fab"
    c.cmd("COPY 1:2 Other").ok()
    assert keywords_file(imap, "Other") == {0: "Beta", 1: "Alpha"}
    files = flags_by_mid(imap, "Other")
    assert files["kw.0@x.test"] == "Fab"      # Alpha -> b, Beta -> a
    assert files["kw.1@x.test"] == "a"
    c2 = login(imap)
    c2.select("Other")
    r = c2.cmd("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])").ok()
    got = {}
    for seq, items in r.fetches().items():
        body = [v for k, v in items.items() if k.startswith("BODY")][0]
        mid = re.search(rb"<([^>]+)>", body).group(1).decode()
        got[mid] = nr(items["FLAGS"])
    assert got["kw.0@x.test"] == {"\\Flagged", "Alpha", "Beta"}
    assert got["kw.1@x.test"] == {"Beta"}
    assert got["ot.1@x.test"] == {"Beta"}
    # MOVE carries them too.
    c.cmd("CREATE Third").ok()
    c.cmd("MOVE 1 Third").ok()
    assert keywords_file(imap, "Third") == {0: "Alpha", 1: "Beta"}
    assert flags_by_mid(imap, "Third")["kw.0@x.test"] == "Fab"


def test_other_tools_letters_are_kept_but_not_shown(imap):
    c = box(imap, 1)
    c.select()
    c.cmd("STORE 1 +FLAGS (Known)").ok()
    # Another tool adds a letter that the map does not name.
    path = folder_files(imap, imap.demo_user)[0]
    os.rename(path, path + "q")
    c2 = login(imap)
    c2.select()
    f = c2.cmd("FETCH 1 FLAGS").ok().fetches()
    assert nr(f[1]["FLAGS"]) == {"Known"}
    c2.cmd("STORE 1 FLAGS (\\Seen)").ok()
    # FLAGS replaced what the client can see; 'q' stays in the name.
    assert flags_by_mid(imap)["kw.0@x.test"] == "Sq"


def test_27th_keyword_is_refused_with_limit(imap):
    c = box(imap, 2)
    c.select()
    for i in range(0, 26, 13):
        names = " ".join("k%02d" % j for j in range(i, i + 13))
        c.cmd("STORE 1 +FLAGS (%s)" % names).ok()
    assert len(keywords_file(imap)) == 26
    assert flags_by_mid(imap)["kw.0@x.test"] == "abcdefghijklmnopqrstuvwxyz"
    info = select_info(c.select())
    assert "\\*" not in info["PERMANENTFLAGS"]      # no room for new keywords
    before = flags_by_mid(imap)
    r = c.cmd("STORE 2 +FLAGS (\\Seen k27)")
    assert r.status == "NO" and r.code == "LIMIT", r
    assert flags_by_mid(imap) == before              # nothing changed
    assert len(keywords_file(imap)) == 26
    # Known keywords still work; APPEND and COPY hit the same limit.
    c.cmd("STORE 2 +FLAGS (K05 \\Seen)").ok()
    assert flags_by_mid(imap)["kw.1@x.test"] == "Sf"
    r = c.cmd('APPEND INBOX (k27) ', Literal(simple_message("lim.1@x.test")))
    assert r.status == "NO" and r.code == "LIMIT", r
    assert len(folder_files(imap, imap.demo_user)) == 2
    assert os.listdir(os.path.join(folder_dir(imap), "tmp")) == []
    c.cmd("CREATE Small").ok()
    append(c, "Small", simple_message("sm.1@x.test"), flags="extra")
    r = c.cmd("COPY 1 Small")       # 26 + 1 distinct names: does not fit
    assert r.status == "NO" and r.code == "LIMIT", r
    assert len(folder_files(imap, imap.demo_user, "Small")) == 1
    assert os.listdir(os.path.join(folder_dir(imap, "Small"), "tmp")) == []
    # A message with fewer keywords still fits.
    c.cmd("COPY 2 Small").ok()
    assert len(folder_files(imap, imap.demo_user, "Small")) == 2


def test_keyword_names_that_are_not_atoms_are_refused(imap):
    c = box(imap, 1)
    c.select()
    r = c.cmd("STORE 1 +FLAGS (%s)" % ("x" * 300))
    assert r.status in ("NO", "BAD"), r
    assert keywords_file(imap) == {}
