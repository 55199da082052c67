"""IMAP server (imapd): RFC 3501 commands and states, and the extensions
Postern advertises (IDLE, UIDPLUS, MOVE, LITERAL+, NAMESPACE, ENABLE,
UNSELECT, ID, CHILDREN, SPECIAL-USE, SASL-IR, CONDSTORE).

Clients: Python's imaplib for the everyday path, and imap_util.Client (a
raw client that keeps every untagged response in order) where the test
asserts wire details. What the server says is checked against the disk:
message bytes against the Maildir file (CRLF on the wire, LF on disk),
flags against the Maildir file name (":2,FS"), folders against the
Maildir++ ".Name" directories.

Design points of Postern that the tests rely on (docs/imapd.md): the
hierarchy delimiter is "."; keywords are kept as Dovecot keeps them (file
name letters named by the folder's dovecot-keywords, PERMANENTFLAGS offers
\\*; test_imap_keywords.py); \\Recent
goes to the first session that sees a message; FETCH, STORE and SEARCH
never cause EXPUNGE responses; INBOX is the user's Maildir.

FETCH and SEARCH are tested in test_imap_fetch_search.py; the message
builders and small helpers both files use are in imap_util.py.
"""

import base64
import imaplib
import os
import re
import socket
import time

import pytest

from imap_util import (Client, Literal, append, crlf, deliver, folder_files,
                       imaplib_login, lf, login, maildir_flags, parse, read, require_imapd,
                       select_info, simple_message, text, tls_context)

pytestmark = pytest.mark.chain

SYSTEM_FLAGS = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}
EXTENSIONS = ("IDLE", "UIDPLUS", "MOVE", "LITERAL+", "NAMESPACE", "ENABLE",
              "UNSELECT", "ID", "CHILDREN", "SPECIAL-USE", "SASL-IR", "CONDSTORE")


@pytest.fixture
def imap(instance):
    return require_imapd(instance)


def caps_of(result_or_line):
    """The capability words of a '* CAPABILITY' response or a
    [CAPABILITY ...] code, upper-cased."""
    if isinstance(result_or_line, bytes):
        line = result_or_line
    else:
        line = result_or_line.named("CAPABILITY")[0]
    words = line.decode().split()
    assert words[0].upper() == "CAPABILITY"
    return {w.upper() for w in words[1:]}


def new_user(inst, local):
    address = "%s@%s" % (local, inst.domain)
    password = "pw-%s-secret" % local
    inst.add_user(address, password)
    inst.passwords[address] = password
    return address


def nr(flags):
    """A FLAGS list as a set without \\Recent (tested on its own)."""
    return set(flags) - {"\\Recent"}


# ---- not authenticated state ---------------------------------------------

def test_greeting_capability_noop_logout(imap):
    c = Client(imap)
    assert c.greeting.startswith(b"* OK"), c.greeting
    r = c.cmd("CAPABILITY").ok()
    caps = caps_of(r)
    assert "IMAP4REV1" in caps
    assert "STARTTLS" in caps
    for ext in ("SASL-IR", "LITERAL+", "ID", "AUTH=PLAIN"):
        assert ext in caps, (ext, caps)
    # Plaintext login is allowed from loopback: no LOGINDISABLED.
    assert "LOGINDISABLED" not in caps
    assert c.cmd("NOOP").ok().untagged == []
    r = c.cmd("LOGOUT").ok()
    assert [u for u in r.untagged if u.startswith(b"BYE")], r.untagged
    assert c.at_eof()


def test_capabilities_after_login_list_every_extension(imap):
    c = Client(imap)
    r = c.login()
    caps = caps_of(r.code.encode()) if r.code and r.code.startswith("CAPABILITY") else None
    r2 = c.cmd("CAPABILITY").ok()
    after = caps_of(r2)
    if caps is not None:
        assert caps == after
    for ext in EXTENSIONS:
        assert ext in after, (ext, after)
    assert "IMAP4REV1" in after
    # STARTTLS and LOGIN-time capabilities are not offered after login.
    assert "STARTTLS" not in after


@pytest.mark.parametrize("command", [
    "SELECT INBOX", "EXAMINE INBOX", "CREATE foo", "DELETE foo", "RENAME a b",
    "SUBSCRIBE foo", "UNSUBSCRIBE foo", 'LIST "" "*"', 'LSUB "" "*"',
    "STATUS INBOX (MESSAGES)", "CHECK", "CLOSE", "EXPUNGE", "SEARCH ALL",
    "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "COPY 1 foo", "UID FETCH 1 FLAGS",
    "IDLE", "NAMESPACE", "UNSELECT", "MOVE 1 foo", "ENABLE CONDSTORE"])
def test_commands_before_login_refused(imap, command):
    c = Client(imap)
    r = c.cmd(command)
    assert r.status in ("NO", "BAD"), (command, r)
    # The session goes on and login still works.
    c.login()
    assert c.cmd("NOOP").status == "OK"


def test_login_failure_then_success(imap):
    c = Client(imap)
    t0 = time.monotonic()
    r = c.cmd('LOGIN "%s" "wrong-password"' % imap.demo_user)
    assert r.status == "NO", r
    assert time.monotonic() - t0 >= 1.5, "a failed login is not delayed"
    c.login()
    assert c.cmd("SELECT INBOX").status == "OK"


def test_login_unknown_user_refused(imap):
    c = Client(imap)
    assert c.cmd('LOGIN "nobody@example.test" "x"').status == "NO"


def test_authenticate_plain_with_continuation(imap):
    c = Client(imap)
    tag = c.next_tag()
    c.send("%s AUTHENTICATE PLAIN\r\n" % tag)
    cont = c.response()
    assert cont.startswith(b"+"), cont
    cred = base64.b64encode(b"\0" + imap.demo_user.encode() + b"\0" +
                            imap.demo_password.encode())
    c.send(cred + b"\r\n")
    r = c.read_until_tagged(tag)
    assert r.status == "OK", r
    assert c.cmd("SELECT INBOX").status == "OK"


def test_authenticate_plain_sasl_ir(imap):
    c = Client(imap)
    cred = base64.b64encode(b"\0" + imap.demo_user.encode() + b"\0" +
                            imap.demo_password.encode()).decode()
    c.cmd("AUTHENTICATE PLAIN " + cred).ok()
    assert c.cmd("SELECT INBOX").status == "OK"
    # A wrong password with SASL-IR fails.
    c2 = Client(imap)
    bad = base64.b64encode(b"\0" + imap.demo_user.encode() + b"\0nope").decode()
    assert c2.cmd("AUTHENTICATE PLAIN " + bad).status == "NO"


def test_authenticate_cancelled(imap):
    c = Client(imap)
    tag = c.next_tag()
    c.send("%s AUTHENTICATE PLAIN\r\n" % tag)
    assert c.response().startswith(b"+")
    c.send(b"*\r\n")
    r = c.read_until_tagged(tag)
    assert r.status == "BAD", r
    c.login()


def test_authenticate_unknown_mechanism(imap):
    c = Client(imap)
    r = c.cmd("AUTHENTICATE X-NONSENSE")
    assert r.status in ("NO", "BAD")
    c.login()


def test_imaplib_login_select_logout(imap):
    m = imaplib_login(imap)
    typ, data = m.select("INBOX")
    assert typ == "OK"
    assert data == [b"0"]
    assert m.logout()[0] == "BYE"


def test_starttls_then_login(imap):
    c = Client(imap)
    c.starttls()
    r = c.cmd("CAPABILITY").ok()
    caps = caps_of(r)
    assert "STARTTLS" not in caps
    assert "AUTH=PLAIN" in caps
    c.login()
    assert c.cmd("SELECT INBOX").status == "OK"
    # STARTTLS twice is refused.
    assert c.cmd("STARTTLS").status in ("NO", "BAD")


def test_starttls_discards_pipelined_commands(imap):
    c = Client(imap)
    c.send(b"T1 STARTTLS\r\nT2 LOGIN \"%s\" \"%s\"\r\n" % (
        imap.demo_user.encode(), imap.demo_password.encode()))
    line = c.line()
    assert line.startswith(b"T1 OK"), line
    assert c.buf == b""
    c.sock = tls_context(imap).wrap_socket(c.sock, server_hostname="localhost")
    # The injected LOGIN was thrown away: we are not authenticated.
    r = c.cmd("SELECT INBOX", tag="T3")
    assert r.status in ("NO", "BAD"), r
    c.login()


def test_imaps_login_and_fetch(imap):
    deliver(imap, simple_message("imaps.1@remote.test"))
    c = Client(imap, tls=True)
    assert c.greeting.startswith(b"* OK")
    caps = caps_of(c.cmd("CAPABILITY").ok())
    assert "STARTTLS" not in caps
    c.login()
    c.select()
    r = c.cmd("FETCH 1 BODY.PEEK[]").ok()
    body = r.fetches()[1]["BODY[]"]
    assert crlf(read(imap.maildir_files(imap.demo_user)[0])) == body


def test_imaplib_imaps(imap):
    m = imaplib.IMAP4_SSL("127.0.0.1", imap.ports["imaps"], ssl_context=tls_context(imap),
                          timeout=10)
    m.login(imap.demo_user, imap.demo_password)
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_login_with_literals_and_literal_plus(imap):
    c = Client(imap)
    r = c.cmd("LOGIN ", Literal(imap.demo_user), " ", Literal(imap.demo_password, plus=True))
    assert r.status == "OK", r
    c2 = Client(imap)
    # Both non-synchronizing: no continuation request is awaited.
    c2.send(b"A LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (
        len(imap.demo_user), imap.demo_user.encode(), len(imap.demo_password),
        imap.demo_password.encode()))
    r = c2.read_until_tagged("A")
    assert r.status == "OK", r


def test_id(imap):
    c = Client(imap)
    r = c.cmd('ID ("name" "pytest" "version" "1")').ok()
    ids = r.named("ID")
    assert len(ids) == 1
    vals = parse(ids[0])
    assert vals[0].upper() == "ID"
    assert vals[1] is None or (isinstance(vals[1], list) and len(vals[1]) % 2 == 0)
    r = c.cmd("ID NIL").ok()
    assert len(r.named("ID")) == 1


# ---- authenticated state: folders -----------------------------------------

def list_entries(r):
    """[(attrs set, delimiter, name)] of the LIST/LSUB responses."""
    out = []
    for u in r.untagged:
        vals = parse(u)
        if vals[0].upper() in ("LIST", "LSUB"):
            out.append(({a.lower() for a in vals[1]}, vals[2], text(vals[3])))
    return out


def names(entries):
    return [e[2] for e in entries]


def test_special_use_folders_created_at_first_login(imap):
    user = new_user(imap, "fresh")
    c = login(imap, user)
    base = imap.maildir(user)
    for name in ("Drafts", "Sent", "Trash", "Junk"):
        for sub in ("new", "cur", "tmp"):
            assert os.path.isdir(os.path.join(base, "." + name, sub)), (name, sub)
    r = c.cmd('LIST "" "*"').ok()
    entries = list_entries(r)
    assert sorted(names(entries)) == ["Drafts", "INBOX", "Junk", "Sent", "Trash"]
    assert names(entries)[0] == "INBOX"
    by = {e[2]: e for e in entries}
    for name, attr in (("Drafts", "\\drafts"), ("Sent", "\\sent"), ("Trash", "\\trash"),
                       ("Junk", "\\junk")):
        assert attr in by[name][0], by[name]
        assert "\\hasnochildren" in by[name][0]
        assert by[name][1] == "."
    assert not any(a in by["INBOX"][0] for a in ("\\drafts", "\\sent", "\\trash", "\\junk"))
    # They are subscribed too.
    r = c.cmd('LSUB "" "*"').ok()
    assert {"Drafts", "Sent", "Trash", "Junk"} <= set(names(list_entries(r)))
    # A second login does not fail or duplicate anything.
    c2 = login(imap, user)
    assert sorted(names(list_entries(c2.cmd('LIST "" "*"').ok()))) == \
        ["Drafts", "INBOX", "Junk", "Sent", "Trash"]


def test_list_special_use_with_imaplib(imap):
    m = imaplib_login(imap)
    typ, data = m.list()
    assert typ == "OK"
    lines = [d.decode() for d in data]
    assert any(re.match(r'\(.*\\Sent.*\) "\." "?Sent"?$', l) for l in lines), lines
    m.logout()


def test_list_empty_pattern_gives_delimiter(imap):
    c = login(imap)
    r = c.cmd('LIST "" ""').ok()
    entries = list_entries(r)
    assert len(entries) == 1
    attrs, delim, name = entries[0]
    assert "\\noselect" in attrs
    assert delim == "."
    assert name == ""


def test_list_pattern_that_is_no_mailbox_name_lists_nothing(imap):
    """A LIST/LSUB pattern or reference that is not modified UTF-7 (Dovecot's
    imaptest probes with every special character) matches nothing: OK and
    no entries; the session goes on. As a name to create it is refused."""
    c = login(imap)
    odd = "!#$&'+,-.0123456789:;<=>?@^_`|[}%*"
    for command in ('LIST "" ' + odd, 'LSUB "" ' + odd, 'LIST "" "x&"',
                    'LIST "x&" "*"', 'LSUB "&2D0-" "%"'):
        r = c.cmd(command)
        assert r.status == "OK", (command, r)
        assert list_entries(r) == [], (command, r.untagged)
    r = c.cmd(b'LIST "" ', Literal("caf\u00e9*".encode()))
    assert r.status == "OK" and list_entries(r) == [], r
    assert c.cmd('CREATE "x&"').status == "NO"
    # Valid patterns still list.
    assert "INBOX" in names(list_entries(c.cmd('LIST "" "*"').ok()))
    assert names(list_entries(c.cmd('LIST inbox ""').ok())) == [""]


def test_create_nested_folder_on_disk_and_list_wildcards(imap):
    c = login(imap)
    base = imap.maildir(imap.demo_user)
    c.cmd('CREATE "Archive.2026"').ok()
    d = os.path.join(base, ".Archive.2026")
    for sub in ("new", "cur", "tmp"):
        assert os.path.isdir(os.path.join(d, sub))
    assert os.path.exists(os.path.join(d, "maildirfolder"))
    # The parent does not exist on disk: LIST shows it \Noselect with children.
    r = c.cmd('LIST "" "%"').ok()
    by = {e[2]: e[0] for e in list_entries(r)}
    assert "Archive.2026" not in by
    assert "\\noselect" in by["Archive"] and "\\haschildren" in by["Archive"], by
    r = c.cmd('LIST "" "Archive.%"').ok()
    assert names(list_entries(r)) == ["Archive.2026"]
    assert "\\hasnochildren" in list_entries(r)[0][0]
    # Reference joined to the pattern.
    r = c.cmd('LIST "Archive." "%"').ok()
    assert names(list_entries(r)) == ["Archive.2026"]
    r = c.cmd('LIST "" "*"').ok()
    assert {"INBOX", "Archive.2026", "Drafts", "Sent", "Trash", "Junk"} <= \
        set(names(list_entries(r)))
    r = c.cmd('LIST "" "Arch*"').ok()
    assert set(names(list_entries(r))) >= {"Archive.2026"}
    # Creating the parent later makes it selectable, with children.
    c.cmd("CREATE Archive").ok()
    r = c.cmd('LIST "" "Archive"').ok()
    attrs = list_entries(r)[0][0]
    assert "\\noselect" not in attrs and "\\haschildren" in attrs
    # CREATE with a trailing delimiter makes the folder without it.
    c.cmd('CREATE "Projects."').ok()
    assert os.path.isdir(os.path.join(base, ".Projects", "cur"))
    # Existing folder and INBOX: ALREADYEXISTS.
    r = c.cmd("CREATE Archive")
    assert r.status == "NO" and r.code == "ALREADYEXISTS", r
    assert c.cmd("CREATE INBOX").status == "NO"
    # Bad names.
    for bad in ('"a..b"', '".lead"', '"a/b"'):
        assert c.cmd("CREATE " + bad).status in ("NO", "BAD"), bad
    # INBOX is case-insensitive in LIST.
    r = c.cmd('LIST "" "inbox"').ok()
    assert names(list_entries(r)) == ["INBOX"]


def test_list_children_attributes(imap):
    c = login(imap)
    c.cmd("CREATE Work").ok()
    c.cmd("CREATE Work.Clients").ok()
    c.cmd("CREATE Work.Clients.Acme").ok()
    r = c.cmd('LIST "" "Work*"').ok()
    by = {e[2]: e[0] for e in list_entries(r)}
    assert set(by) == {"Work", "Work.Clients", "Work.Clients.Acme"}
    assert "\\haschildren" in by["Work"]
    assert "\\haschildren" in by["Work.Clients"]
    assert "\\hasnochildren" in by["Work.Clients.Acme"]
    r = c.cmd('LIST "" "Work.%"').ok()
    assert names(list_entries(r)) == ["Work.Clients"]


def test_delete_folder(imap):
    c = login(imap)
    base = imap.maildir(imap.demo_user)
    c.cmd("CREATE Old").ok()
    append(c, "Old", simple_message("old.1@x.test"))
    c.cmd("DELETE Old").ok()
    assert not os.path.exists(os.path.join(base, ".Old"))
    r = c.cmd("DELETE Old")
    assert r.status == "NO" and r.code == "NONEXISTENT", r
    assert c.cmd("DELETE INBOX").status == "NO"
    assert os.path.isdir(os.path.join(base, "cur"))
    # A folder with children: the children stay, the name becomes \Noselect.
    c.cmd("CREATE P").ok()
    c.cmd("CREATE P.C").ok()
    c.cmd("DELETE P").ok()
    assert not os.path.exists(os.path.join(base, ".P"))
    assert os.path.isdir(os.path.join(base, ".P.C", "cur"))
    r = c.cmd('LIST "" "P*"').ok()
    by = {e[2]: e[0] for e in list_entries(r)}
    assert "\\noselect" in by["P"] and "P.C" in by


def test_delete_and_recreate_changes_uidvalidity(imap):
    """RFC 3501 2.3.1.1: a mailbox deleted and created again under the
    same name must get a new UIDVALIDITY (its old UIDs are void), even
    within the same second."""
    c = login(imap)
    c.cmd("CREATE Again").ok()
    uv1, uid1 = append(c, "Again", simple_message("ag.1@x.test"))
    c.cmd("DELETE Again").ok()
    c.cmd("CREATE Again").ok()
    uv2, uid2 = append(c, "Again", simple_message("ag.2@x.test"))
    assert uv2 != uv1, "UIDVALIDITY %d reused after DELETE + CREATE (UID %d, then %d)" % (
        uv1, uid1, uid2)


def test_rename_folder_with_children(imap):
    c = login(imap)
    base = imap.maildir(imap.demo_user)
    c.cmd("CREATE Proj").ok()
    c.cmd("CREATE Proj.Sub").ok()
    append(c, "Proj.Sub", simple_message("ren.1@x.test"))
    c.cmd("RENAME Proj Done").ok()
    assert not os.path.exists(os.path.join(base, ".Proj"))
    assert not os.path.exists(os.path.join(base, ".Proj.Sub"))
    assert os.path.isdir(os.path.join(base, ".Done", "cur"))
    assert len(folder_files(imap, imap.demo_user, "Done.Sub")) == 1
    r = c.cmd('LIST "" "*"').ok()
    n = set(names(list_entries(r)))
    assert {"Done", "Done.Sub"} <= n and not {"Proj", "Proj.Sub"} & n
    # Target exists / source missing.
    c.cmd("CREATE Other").ok()
    r = c.cmd("RENAME Done Other")
    assert r.status == "NO" and r.code == "ALREADYEXISTS", r
    r = c.cmd("RENAME Missing Whatever")
    assert r.status == "NO" and r.code == "NONEXISTENT", r


def test_rename_inbox_moves_messages_and_leaves_inbox_empty(imap):
    deliver(imap, simple_message("inboxren.1@remote.test"))
    deliver(imap, simple_message("inboxren.2@remote.test"))
    c = login(imap)
    before = [read(f) for f in imap.maildir_files(imap.demo_user)]
    c.cmd("RENAME INBOX Saved").ok()
    assert imap.maildir_files(imap.demo_user) == []
    moved = [read(f) for f in folder_files(imap, imap.demo_user, "Saved")]
    assert sorted(moved) == sorted(before)
    r = c.cmd("STATUS INBOX (MESSAGES)").ok()
    assert re.search(rb"MESSAGES 0\)", r.named("STATUS")[0]), r.untagged
    r = c.cmd("STATUS Saved (MESSAGES)").ok()
    assert re.search(rb"MESSAGES 2\)", r.named("STATUS")[0]), r.untagged


def test_subscribe_unsubscribe_lsub(imap):
    c = login(imap)
    base = imap.maildir(imap.demo_user)
    c.cmd("CREATE Lists").ok()
    c.cmd("CREATE Lists.Dev").ok()
    c.cmd("SUBSCRIBE Lists.Dev").ok()
    with open(os.path.join(base, "subscriptions")) as f:
        assert "Lists.Dev" in f.read().split("\n")
    r = c.cmd('LSUB "" "*"').ok()
    n = names(list_entries(r))
    assert "Lists.Dev" in n and "Lists" not in n
    # "%": the unsubscribed parent of a subscribed name shows \Noselect.
    r = c.cmd('LSUB "" "Lists%"').ok()
    by = {e[2]: e[0] for e in list_entries(r)}
    assert "Lists" in by and "\\noselect" in by["Lists"], by
    # Subscribing a folder that does not exist is allowed.
    c.cmd("SUBSCRIBE Future").ok()
    r = c.cmd('LSUB "" "Future"').ok()
    assert names(list_entries(r)) == ["Future"]
    c.cmd("UNSUBSCRIBE Lists.Dev").ok()
    c.cmd("UNSUBSCRIBE Future").ok()
    r = c.cmd('LSUB "" "*"').ok()
    n = names(list_entries(r))
    assert "Lists.Dev" not in n and "Future" not in n
    with open(os.path.join(base, "subscriptions")) as f:
        assert "Lists.Dev" not in f.read().split("\n")
    # imaplib's view.
    m = imaplib_login(imap)
    assert m.subscribe("Lists")[0] == "OK"
    typ, data = m.lsub()
    assert typ == "OK" and any(d.endswith(b'"Lists"') or d.endswith(b" Lists") for d in data)
    m.logout()


def test_namespace(imap):
    c = login(imap)
    r = c.cmd("NAMESPACE").ok()
    ns = r.named("NAMESPACE")
    assert len(ns) == 1
    vals = parse(ns[0])
    assert vals[0].upper() == "NAMESPACE"
    assert vals[1] == [["", "."]], vals
    assert vals[2] is None and vals[3] is None


def test_status(imap):
    c = login(imap)
    c.cmd("CREATE Box").ok()
    uv, u1 = append(c, "Box", simple_message("st.1@x.test"), flags="\\Seen")
    _, u2 = append(c, "Box", simple_message("st.2@x.test"))
    _, u3 = append(c, "Box", simple_message("st.3@x.test"))
    assert u1 < u2 < u3
    r = c.cmd("STATUS Box (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)").ok()
    vals = parse(r.named("STATUS")[0])
    assert vals[0].upper() == "STATUS" and vals[1] == "Box"
    items = dict(zip([k.upper() for k in vals[2][::2]], [int(v) for v in vals[2][1::2]]))
    # (RECENT after APPEND: test_append_and_copy_set_recent.)
    del items["RECENT"]
    assert items == {"MESSAGES": 3, "UIDNEXT": u3 + 1, "UIDVALIDITY": uv, "UNSEEN": 2}
    r = c.cmd("STATUS Nope (MESSAGES)")
    assert r.status == "NO"
    # STATUS of INBOX on a fresh Maildir.
    r = c.cmd("STATUS INBOX (MESSAGES UNSEEN)").ok()
    assert re.search(rb"\(MESSAGES 0 UNSEEN 0\)", r.named("STATUS")[0]), r.untagged
    # Items come back in the order asked, each once.
    r = c.cmd("STATUS Box (UNSEEN UIDNEXT MESSAGES UNSEEN)").ok()
    assert r.named("STATUS")[0].endswith(b"(UNSEEN 2 UIDNEXT %d MESSAGES 3)" % (u3 + 1)), \
        r.untagged


# ---- SELECT / EXAMINE -----------------------------------------------------

def test_select_responses(imap):
    deliver(imap, simple_message("sel.1@remote.test"))
    c = login(imap)
    r = c.select()
    assert r.code == "READ-WRITE", r
    deliver(imap, simple_message("sel.2@remote.test"))
    deliver(imap, simple_message("sel.3@remote.test"))
    r = c.cmd("NOOP").ok()
    assert b"3 EXISTS" in r.untagged and b"3 RECENT" in r.untagged, r.untagged
    uids = [int(v["UID"]) for _, v in sorted(c.cmd("FETCH 1:* UID").ok().fetches().items())]
    c.cmd("STORE 1,3 +FLAGS.SILENT (\\Seen)").ok()
    st = c.cmd("STATUS INBOX (UIDVALIDITY)").ok()
    uv = int(re.search(rb"UIDVALIDITY (\d+)", st.untagged[0]).group(1))
    # A second session: the same mailbox, no \Recent (the first took it).
    c2 = login(imap)
    r = c2.select()
    assert r.code == "READ-WRITE", r
    info = select_info(r)
    assert info["FLAGS"] == SYSTEM_FLAGS
    assert info["EXISTS"] == 3
    assert info["RECENT"] == 0
    assert int(info["UIDVALIDITY"]) == uv
    assert int(info["UIDNEXT"]) > uids[2]
    assert int(info["UNSEEN"]) == 2         # first unseen message's number
    perm = set(info["PERMANENTFLAGS"].strip("()").split())
    assert perm == SYSTEM_FLAGS | {"\\*"}, perm   # \*: new keywords can be stored
    # UIDs are the same for every session.
    assert [int(v["UID"]) for _, v in
            sorted(c2.cmd("FETCH 1:* UID").ok().fetches().items())] == uids
    # SELECT of a missing folder fails and leaves the session unselected.
    r = c.cmd("SELECT Nowhere")
    assert r.status == "NO"
    assert c.cmd("FETCH 1 FLAGS").status in ("NO", "BAD")


def test_examine_is_read_only(imap):
    data = deliver(imap, simple_message("ex.1@remote.test"))
    c = login(imap)
    r = c.cmd("EXAMINE INBOX").ok()
    assert r.code == "READ-ONLY"
    info = select_info(r)
    assert info["EXISTS"] == 1
    r = c.cmd("FETCH 1 BODY[]").ok()
    f = r.fetches()[1]
    assert f["BODY[]"] == crlf(data)
    assert "FLAGS" not in f or "\\Seen" not in f["FLAGS"]
    # Nothing changed on disk.
    files = imap.maildir_files(imap.demo_user)
    assert "S" not in maildir_flags(files[0])
    assert c.cmd("STORE 1 +FLAGS (\\Seen)").status == "NO"
    assert c.cmd("EXPUNGE").status == "NO"


def test_inbox_is_users_maildir(imap):
    deliver(imap, simple_message("inbox.1@remote.test"))
    c = login(imap)
    r = c.select()
    assert select_info(r)["EXISTS"] == 1
    r = c.cmd("APPEND inbox ", Literal(simple_message("inbox.2@x.test"))).ok()
    files = imap.maildir_files(imap.demo_user)
    assert len(files) == 2
    r2 = c.cmd("NOOP").ok()
    assert b"2 EXISTS" in r.untagged + r2.untagged


# ---- APPEND ------------------------------------------------------------

def test_append_flags_date_appenduid_and_file(imap):
    c = login(imap)
    msg = simple_message("app.1@x.test", body="Line one\r\nLine two\r\n")
    uv, uid = append(c, "INBOX", msg, flags="\\Seen \\Flagged",
                     date="02-Nov-2026 08:09:10 +0100")
    files = imap.maildir_files(imap.demo_user)
    assert len(files) == 1
    assert os.path.basename(os.path.dirname(files[0])) == "cur"
    assert maildir_flags(files[0]) == "FS"
    assert lf(read(files[0])) == lf(msg)
    r = c.cmd("STATUS INBOX (UIDVALIDITY UIDNEXT)").ok()
    assert re.search(rb"UIDVALIDITY %d" % uv, r.untagged[0])
    assert re.search(rb"UIDNEXT %d" % (uid + 1), r.untagged[0])
    c.cmd("EXAMINE INBOX").ok()
    r = c.cmd("UID FETCH %d (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])" % uid).ok()
    f = r.fetches()[1]
    assert int(f["UID"]) == uid
    assert set(f["FLAGS"]) == {"\\Seen", "\\Flagged"} | ({"\\Recent"} & set(f["FLAGS"]))
    assert f["INTERNALDATE"] == "02-Nov-2026 08:09:10 +0100" or \
        f["INTERNALDATE"] == "02-Nov-2026 07:09:10 +0000", f["INTERNALDATE"]
    assert int(f["RFC822.SIZE"]) == len(msg)
    assert f["BODY[]"] == msg


def test_append_without_flags(imap):
    c = login(imap)
    append(c, "INBOX", simple_message("app.2@x.test"))
    files = imap.maildir_files(imap.demo_user)
    assert len(files) == 1 and maildir_flags(files[0]) == ""
    c.select()
    f = c.cmd("FETCH 1 FLAGS").ok().fetches()[1]
    assert set(f["FLAGS"]) - {"\\Recent"} == set()


def test_append_and_copy_set_recent(imap):
    """RFC 3501 6.3.11: an appended message gets \\Recent ("In either
    case, the Recent flag is also set"); 6.4.7: so does a copy. The first
    session that sees it has it, and nobody after."""
    c = login(imap)
    c.cmd("CREATE Box").ok()
    append(c, "Box", simple_message("rc.1@x.test"))
    append(c, "Box", simple_message("rc.2@x.test"), flags="\\Seen")
    r = c.cmd("STATUS Box (MESSAGES RECENT)").ok()
    assert re.search(rb"\(MESSAGES 2 RECENT 2\)", r.untagged[0]), r.untagged
    r = c.select("Box")
    assert select_info(r)["RECENT"] == 2
    f = c.cmd("FETCH 1:2 FLAGS").ok().fetches()
    assert f[1]["FLAGS"] == ["\\Recent"]
    assert set(f[2]["FLAGS"]) == {"\\Seen", "\\Recent"}
    c2 = login(imap)
    assert select_info(c2.select("Box"))["RECENT"] == 0
    # COPY into another folder: recent there for the next session.
    c.cmd("CREATE Box2").ok()
    c.cmd("COPY 1:2 Box2").ok()
    c3 = login(imap)
    r = c3.select("Box2")
    assert select_info(r)["RECENT"] == 2


def test_append_keyword_is_kept_and_bad_flag_refused(imap):
    c = login(imap)
    append(c, "INBOX", simple_message("kw.1@x.test"), flags="\\Answered $Forwarded")
    files = imap.maildir_files(imap.demo_user)
    assert maildir_flags(files[0]) == "Ra"     # $Forwarded: letter a
    r = c.cmd('APPEND INBOX (\\Bogus) ', Literal(simple_message("kw.2@x.test")))
    assert r.status in ("NO", "BAD")
    assert len(imap.maildir_files(imap.demo_user)) == 1


def test_append_trycreate(imap):
    c = login(imap)
    r = c.cmd("APPEND Missing ", Literal(simple_message("tc.1@x.test")))
    assert r.status == "NO" and r.code == "TRYCREATE", r
    assert not os.path.exists(os.path.join(imap.maildir(imap.demo_user), ".Missing"))


def test_append_literal_plus(imap):
    c = login(imap)
    msg = simple_message("lp.1@x.test")
    tag = c.next_tag()
    c.send(b"%s APPEND Sent (\\Seen) {%d+}\r\n%s\r\n" % (tag.encode(), len(msg), msg))
    r = c.read_until_tagged(tag)
    assert r.status == "OK", r
    assert re.match(r"APPENDUID \d+ \d+$", r.code)
    files = folder_files(imap, imap.demo_user, "Sent")
    assert len(files) == 1 and lf(read(files[0])) == lf(msg)


def test_append_imaplib(imap):
    m = imaplib_login(imap)
    msg = simple_message("il.1@x.test")
    typ, data = m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(1790000000), msg)
    assert typ == "OK", data
    assert re.match(rb"\[APPENDUID \d+ \d+\]", data[0]), data
    files = folder_files(imap, imap.demo_user, "Drafts")
    assert len(files) == 1 and maildir_flags(files[0]) == "D"
    m.logout()


def test_append_to_selected_mailbox_reports_exists(imap):
    c = login(imap)
    c.select()
    r = c.cmd("APPEND INBOX ", Literal(simple_message("as.1@x.test"))).ok()
    r2 = c.cmd("NOOP").ok()
    assert b"1 EXISTS" in r.untagged + r2.untagged


def test_append_too_large_refused_before_literal(instance_factory):
    inst = instance_factory(start=False)
    inst.set_params(message_size_limit="10000")
    inst.start()
    require_imapd(inst)
    c = login(inst)
    tag = c.next_tag()
    c.send(b"%s APPEND INBOX {200000}\r\n" % tag.encode())
    line = c.line()
    assert line.startswith(tag.encode() + b" NO") or line.startswith(tag.encode() + b" BAD"), line
    assert not line.startswith(b"+")
    # The session is usable.
    assert c.cmd("NOOP").status == "OK"
    assert inst.maildir_files(inst.demo_user) == []


# ---- STORE -----------------------------------------------------------

@pytest.fixture
def store_box(imap):
    c = login(imap)
    for i in range(3):
        append(c, "INBOX", simple_message("st.%d@x.test" % i))
    c.select()
    return imap, c


def file_flags_by_mid(inst, folder=None):
    out = {}
    for p in folder_files(inst, inst.demo_user, folder):
        m = re.search(rb"Message-ID: <([^>]+)>", read(p))
        out[m.group(1).decode()] = maildir_flags(p)
    return out


def test_store_flags_forms_and_maildir_names(store_box):
    imap, c = store_box
    r = c.cmd("STORE 1 FLAGS (\\Seen \\Flagged)").ok()
    f = r.fetches()
    assert list(f) == [1] and nr(f[1]["FLAGS"]) == {"\\Seen", "\\Flagged"}
    assert file_flags_by_mid(imap)["st.0@x.test"] == "FS"
    r = c.cmd("STORE 1 +FLAGS (\\Answered \\Draft)").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == {"\\Seen", "\\Flagged", "\\Answered", "\\Draft"}
    assert file_flags_by_mid(imap)["st.0@x.test"] == "DFRS"
    r = c.cmd("STORE 1 -FLAGS (\\Flagged \\Draft)").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == {"\\Seen", "\\Answered"}
    assert file_flags_by_mid(imap)["st.0@x.test"] == "RS"
    # Every file with flags lives in cur/.
    for p in folder_files(imap, imap.demo_user):
        if maildir_flags(p):
            assert os.path.basename(os.path.dirname(p)) == "cur"
    # .SILENT: no untagged FETCH.
    r = c.cmd("STORE 2:3 +FLAGS.SILENT (\\Deleted)").ok()
    assert r.named("FETCH") == []
    flags = file_flags_by_mid(imap)
    assert flags["st.1@x.test"] == "T" and flags["st.2@x.test"] == "T"
    r = c.cmd("STORE 2 FLAGS.SILENT ()").ok()
    assert r.named("FETCH") == []
    assert file_flags_by_mid(imap)["st.1@x.test"] == ""
    # STORE never expunges anything.
    assert r.named("EXPUNGE") == []


def test_store_keyword_is_kept(store_box):
    imap, c = store_box
    r = c.cmd("STORE 1 +FLAGS ($Label1 \\Seen)").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == {"\\Seen", "$Label1"}
    assert file_flags_by_mid(imap)["st.0@x.test"] == "Sa"
    r = c.cmd("STORE 1 FLAGS (Junk)").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == {"Junk"}
    assert file_flags_by_mid(imap)["st.0@x.test"] == "b"
    r = c.cmd("FETCH 1 FLAGS").ok()
    assert nr(r.fetches()[1]["FLAGS"]) == {"Junk"}


def test_store_recent_or_unknown_system_flag_refused(store_box):
    imap, c = store_box
    assert c.cmd("STORE 1 +FLAGS (\\Recent)").status in ("NO", "BAD")
    assert c.cmd("STORE 1 +FLAGS (\\Bogus)").status in ("NO", "BAD")
    assert file_flags_by_mid(imap)["st.0@x.test"] == ""


def test_uid_store_and_imaplib_store(store_box):
    imap, c = store_box
    r = c.cmd("FETCH 3 UID").ok()
    uid3 = int(r.fetches()[3]["UID"])
    r = c.cmd("UID STORE %d +FLAGS (\\Flagged)" % uid3).ok()
    f = r.fetches()
    assert list(f) == [3] and int(f[3]["UID"]) == uid3 and "\\Flagged" in f[3]["FLAGS"]
    assert file_flags_by_mid(imap)["st.2@x.test"] == "F"
    m = imaplib_login(imap)
    m.select("INBOX")
    typ, data = m.store("2", "+FLAGS", "(\\Answered)")
    assert typ == "OK"
    assert file_flags_by_mid(imap)["st.1@x.test"] == "R"
    m.logout()


# ---- COPY / MOVE / EXPUNGE / CLOSE / UNSELECT -----------------------------

def test_copy_copyuid_flags_and_trycreate(store_box):
    imap, c = store_box
    c.cmd("STORE 1 +FLAGS (\\Seen \\Flagged)").ok()
    c.cmd("CREATE Dest").ok()
    r = c.cmd("FETCH 1:2 UID").ok()
    src_uids = [int(r.fetches()[s]["UID"]) for s in (1, 2)]
    r = c.cmd("COPY 1:2 Dest").ok()
    m = re.match(r"COPYUID (\d+) (\S+) (\S+)$", r.code or "")
    assert m, r
    st = c.cmd("STATUS Dest (UIDVALIDITY)").ok()
    assert re.search(rb"UIDVALIDITY %s\)" % m.group(1).encode(), st.untagged[0])
    assert expand_set(m.group(2)) == src_uids
    dest_uids = expand_set(m.group(3))
    assert len(dest_uids) == 2
    flags = file_flags_by_mid(imap, "Dest")
    assert flags == {"st.0@x.test": "FS", "st.1@x.test": ""}
    # The copies have the same bytes.
    for p in folder_files(imap, imap.demo_user, "Dest"):
        mid = re.search(rb"Message-ID: <([^>]+)>", read(p)).group(1)
        src = [q for q in folder_files(imap, imap.demo_user) if mid in read(q)]
        assert read(src[0]) == read(p)
    # The source is untouched.
    assert len(folder_files(imap, imap.demo_user)) == 3
    r = c.cmd("COPY 1 NoSuchBox")
    assert r.status == "NO" and r.code == "TRYCREATE", r
    # UID COPY.
    uid3 = int(c.cmd("FETCH 3 UID").ok().fetches()[3]["UID"])
    r = c.cmd("UID COPY %d Dest" % uid3).ok()
    assert re.match(r"COPYUID \d+ %d \d+$" % uid3, r.code), r
    assert len(folder_files(imap, imap.demo_user, "Dest")) == 3


def expand_set(s):
    out = []
    for part in s.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out += list(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


def test_move(store_box):
    imap, c = store_box
    c.cmd("CREATE Arch").ok()
    r = c.cmd("FETCH 2 UID").ok()
    uid2 = int(r.fetches()[2]["UID"])
    r = c.cmd("MOVE 2 Arch").ok()
    # RFC 6851: untagged OK [COPYUID ...] then EXPUNGE, then the tagged OK.
    copyuid = [u for u in r.untagged if u.startswith(b"OK [COPYUID ")]
    assert copyuid, r.untagged
    assert re.match(rb"OK \[COPYUID \d+ %d \d+\]" % uid2, copyuid[0])
    assert r.named("EXPUNGE") == [b"2 EXPUNGE"]
    assert r.untagged.index(copyuid[0]) < r.untagged.index(b"2 EXPUNGE")
    assert "st.1@x.test" in file_flags_by_mid(imap, "Arch")
    assert "st.1@x.test" not in file_flags_by_mid(imap)
    assert len(folder_files(imap, imap.demo_user)) == 2
    # UID MOVE of the last message.
    uid_last = int(c.cmd("FETCH 2 UID").ok().fetches()[2]["UID"])
    r = c.cmd("UID MOVE %d Arch" % uid_last).ok()
    assert r.named("EXPUNGE") == [b"2 EXPUNGE"]
    assert len(folder_files(imap, imap.demo_user, "Arch")) == 2
    r = c.cmd("MOVE 1 Nowhere")
    assert r.status == "NO" and r.code == "TRYCREATE"
    assert len(folder_files(imap, imap.demo_user)) == 1
    # imaplib speaks MOVE through uid().
    m = imaplib_login(imap)
    m.select("Arch")
    typ, data = m.uid("MOVE", "1:*", "INBOX")
    assert typ == "OK"
    assert len(folder_files(imap, imap.demo_user)) == 3
    m.logout()


def test_expunge_sequence_numbers_and_files(imap):
    c = login(imap)
    for i in range(5):
        append(c, "INBOX", simple_message("ex.%d@x.test" % i))
    c.select()
    c.cmd("STORE 2,4 +FLAGS.SILENT (\\Deleted)").ok()
    r = c.cmd("EXPUNGE").ok()
    # 2 goes first; then the old 4 is now 3.
    assert r.named("EXPUNGE") == [b"2 EXPUNGE", b"3 EXPUNGE"]
    assert sorted(file_flags_by_mid(imap)) == ["ex.0@x.test", "ex.2@x.test", "ex.4@x.test"]
    r = c.cmd("FETCH 1:* UID").ok()
    assert sorted(r.fetches()) == [1, 2, 3]


def test_uid_expunge_only_named_uids(imap):
    c = login(imap)
    for i in range(3):
        append(c, "INBOX", simple_message("ue.%d@x.test" % i))
    c.select()
    uids = [int(v["UID"]) for _, v in sorted(c.cmd("FETCH 1:* UID").ok().fetches().items())]
    c.cmd("STORE 1:3 +FLAGS.SILENT (\\Deleted)").ok()
    r = c.cmd("UID EXPUNGE %d" % uids[1]).ok()
    assert r.named("EXPUNGE") == [b"2 EXPUNGE"]
    assert sorted(file_flags_by_mid(imap)) == ["ue.0@x.test", "ue.2@x.test"]


def test_close_expunges_silently_and_unselect_does_not(imap):
    c = login(imap)
    for i in range(3):
        append(c, "INBOX", simple_message("cl.%d@x.test" % i))
    c.select()
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok()
    r = c.cmd("UNSELECT").ok()
    assert r.named("EXPUNGE") == []
    assert len(folder_files(imap, imap.demo_user)) == 3
    assert c.cmd("FETCH 1 FLAGS").status in ("NO", "BAD")   # not selected any more
    c.select()
    r = c.cmd("CLOSE").ok()
    assert r.named("EXPUNGE") == []
    assert sorted(file_flags_by_mid(imap)) == ["cl.1@x.test", "cl.2@x.test"]
    assert c.cmd("FETCH 1 FLAGS").status in ("NO", "BAD")
    # CLOSE on an EXAMINEd mailbox expunges nothing.
    c.select()
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok()
    c.cmd("EXAMINE INBOX").ok()
    c.cmd("CLOSE").ok()
    assert len(folder_files(imap, imap.demo_user)) == 2
    # UNSELECT / CLOSE without a selection.
    assert c.cmd("UNSELECT").status in ("NO", "BAD")


def test_check(imap):
    c = login(imap)
    c.select()
    assert c.cmd("CHECK").status == "OK"


# ---- several sessions -----------------------------------------------------

def test_new_mail_reported_on_noop_and_recent_to_first(imap):
    a = login(imap)
    a.select()
    b = login(imap)
    b.select()
    deliver(imap, simple_message("ms.1@remote.test"))
    r = a.cmd("NOOP").ok()
    assert b"1 EXISTS" in r.untagged and b"1 RECENT" in r.untagged, r.untagged
    r = b.cmd("NOOP").ok()
    assert b"1 EXISTS" in r.untagged
    assert b"0 RECENT" in r.untagged or not r.named("RECENT"), r.untagged
    assert b.cmd("FETCH 1 FLAGS").ok().fetches()[1]["FLAGS"] == []
    assert a.cmd("FETCH 1 FLAGS").ok().fetches()[1]["FLAGS"] == ["\\Recent"]


def test_flag_changes_seen_by_other_session(imap):
    a = login(imap)
    append(a, "INBOX", simple_message("fc.1@x.test"))
    append(a, "INBOX", simple_message("fc.2@x.test"))
    a.select()
    b = login(imap)
    b.select()
    b.cmd("STORE 2 +FLAGS (\\Flagged)").ok()
    r = a.cmd("NOOP").ok()
    f = r.fetches()
    assert list(f) == [2] and "\\Flagged" in f[2]["FLAGS"], r.untagged


def test_expunge_by_other_session_only_reported_when_allowed(imap):
    a = login(imap)
    for i in range(3):
        append(a, "INBOX", simple_message("eo.%d@x.test" % i))
    a.select()
    b = login(imap)
    b.select()
    b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").ok()
    assert b.cmd("EXPUNGE").ok().named("EXPUNGE") == [b"2 EXPUNGE"]
    # FETCH, STORE and SEARCH do not send EXPUNGE (RFC 3501 7.4.1).
    for cmd in ("FETCH 1:3 UID", "STORE 1 +FLAGS.SILENT (\\Seen)", "SEARCH ALL",
                "UID SEARCH ALL", "UID FETCH 1:* FLAGS"):
        r = a.cmd(cmd)
        assert r.named("EXPUNGE") == [], (cmd, r.untagged)
    # Numbers do not shift before the EXPUNGE is sent: the last message
    # is still number 3 (the expunged one may or may not be listed).
    r = a.cmd("SEARCH ALL").ok()
    found = r.named("SEARCH")[0].split()[1:]
    assert found in ([b"1", b"2", b"3"], [b"1", b"3"]), found
    r = a.cmd("FETCH 3 BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]").ok()
    assert b"eo.2@x.test" in list(r.fetches()[3].values())[0]
    r = a.cmd("NOOP").ok()
    assert r.named("EXPUNGE") == [b"2 EXPUNGE"]
    r = a.cmd("FETCH 1:* UID").ok()
    assert sorted(r.fetches()) == [1, 2]


def test_idle_new_mail_within_a_second(imap):
    a = login(imap)
    a.select()
    tag = a.next_tag()
    a.send("%s IDLE\r\n" % tag)
    cont = a.line()
    assert cont.startswith(b"+"), cont
    box = imap.maildir(imap.demo_user)
    assert imap.send("ann@remote.test", imap.demo_user,
                     simple_message("idle.1@remote.test")) == {}
    t_file = None
    t_exists = None
    a.sock.settimeout(0.02)
    deadline = time.monotonic() + 15
    lines = []
    while t_exists is None and time.monotonic() < deadline:
        if t_file is None and os.listdir(os.path.join(box, "new")) + \
                os.listdir(os.path.join(box, "cur")):
            t_file = time.monotonic()
        try:
            line = a.line()
        except socket.timeout:
            continue
        lines.append(line)
        if re.match(rb"\* 1 EXISTS$", line):
            t_exists = time.monotonic()
            if t_file is None:
                t_file = t_exists
    a.sock.settimeout(10)
    assert t_exists is not None, "no EXISTS during IDLE: %r" % lines
    assert t_exists - t_file < 1.0, "EXISTS %.2fs after delivery" % (t_exists - t_file)
    a.send(b"DONE\r\n")
    r = a.read_until_tagged(tag)
    assert r.status == "OK", r
    # Back to normal commands.
    assert a.cmd("NOOP").status == "OK"


def test_idle_reports_flag_change_and_expunge(imap):
    a = login(imap)
    append(a, "INBOX", simple_message("if.1@x.test"))
    append(a, "INBOX", simple_message("if.2@x.test"))
    a.select()
    tag = a.next_tag()
    a.send("%s IDLE\r\n" % tag)
    assert a.line().startswith(b"+")
    b = login(imap)
    b.select()
    b.cmd("STORE 1 +FLAGS (\\Flagged)").ok()
    a.sock.settimeout(3)
    line = a.response()
    assert re.match(rb"\* 1 FETCH \(.*\\Flagged", line), line
    b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").ok()
    b.cmd("EXPUNGE").ok()
    # The \Deleted flag may be reported first, then the expunge.
    while True:
        line = a.response()
        if not re.match(rb"\* 2 FETCH \(", line):
            break
    assert line == b"* 2 EXPUNGE", line
    a.send(b"DONE\r\n")
    assert a.read_until_tagged(tag).status == "OK"


def test_idle_in_authenticated_state_and_bad_done(imap):
    a = login(imap)
    tag = a.next_tag()
    a.send("%s IDLE\r\n" % tag)
    assert a.line().startswith(b"+")
    a.send(b"NOT-DONE\r\n")
    r = a.read_until_tagged(tag)
    assert r.status == "BAD", r
    assert a.cmd("NOOP").status == "OK"


# ---- extensions -------------------------------------------------------

def test_enable(imap):
    c = login(imap)
    r = c.cmd("ENABLE CONDSTORE").ok()
    assert r.named("ENABLED") == [b"ENABLED CONDSTORE"], r.untagged
    r = c.cmd("ENABLE X-UNKNOWN-EXT").ok()
    assert [u.strip() for u in r.named("ENABLED")] == [b"ENABLED"], r.untagged


def test_condstore(imap):
    c = login(imap)
    append(c, "INBOX", simple_message("cs.1@x.test"))
    append(c, "INBOX", simple_message("cs.2@x.test"))
    r = c.cmd("SELECT INBOX (CONDSTORE)").ok()
    info = select_info(r)
    hms = int(info["HIGHESTMODSEQ"])
    assert hms > 0
    r = c.cmd("FETCH 1:2 (FLAGS MODSEQ)").ok()
    f = r.fetches()
    m1, m2 = int(f[1]["MODSEQ"][0]), int(f[2]["MODSEQ"][0])
    assert max(m1, m2) <= hms
    r = c.cmd("STORE 1 +FLAGS (\\Seen)").ok()
    f = r.fetches()[1]
    new1 = int(f["MODSEQ"][0])
    assert new1 > hms
    r = c.cmd("FETCH 1:2 (FLAGS) (CHANGEDSINCE %d)" % hms).ok()
    assert list(r.fetches()) == [1]
    # UNCHANGEDSINCE lower than the message's: refused for that message.
    r = c.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % (new1 - 1)).ok()
    assert r.code and r.code.upper().startswith("MODIFIED"), r
    assert "F" not in file_flags_by_mid(imap)["cs.1@x.test"]
    r = c.cmd("STATUS INBOX (HIGHESTMODSEQ)").ok()
    assert re.search(rb"HIGHESTMODSEQ %d\)" % new1, r.untagged[0]), r.untagged


def test_unselect_and_select_again(imap):
    c = login(imap)
    c.select()
    c.cmd("UNSELECT").ok()
    c.select()
    assert c.cmd("NOOP").status == "OK"


# ---- bad input ---------------------------------------------------------

def test_bad_syntax_keeps_session(imap):
    c = login(imap)
    c.select()
    for bad in (b"FETCH 1 (FLAGS", b"FETCH 1 FLAGS)", b"FROBNICATE", b"SELECT",
                b"FETCH 1 FL\x00AGS", b"NOOP\x00", b"SEARCH ((((SEEN)))"):
        tag = c.next_tag()
        c.send(tag.encode() + b" " + bad + b"\r\n")
        r = c.read_until_tagged(tag)
        assert r.status == "BAD", (bad, r)
    # 8-bit garbage in a mailbox name: refused, not a crash.
    r = c.cmd(b'CREATE \xff\xfe\x80garbage')
    assert r.status in ("BAD", "NO"), r
    assert not [d for d in os.listdir(imap.maildir(imap.demo_user)) if "garbage" in d]
    assert c.cmd("NOOP").status == "OK"
