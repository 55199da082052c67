"""imapd's selected-mailbox logic: views of several sessions on one folder
(flag changes, expunges, new mail, \\Recent), UIDPLUS answers of APPEND,
COPY and MOVE, IDLE latency of a delivery through smtpd, a big FETCH read
slowly, and a POP3 session holding the mailbox lock. Raw sockets, so the
exact untagged responses and their order can be checked."""

import os
import pwd
import re
import socket
import time

import pytest

IMAP_TIMEOUT = 20


# ---- helpers ----

class Imap:
    """A minimal raw IMAP client keeping untagged responses with literals."""

    def __init__(self, inst, timeout=IMAP_TIMEOUT, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", inst.ports["imap"]))
        self.buf = b""
        self.n = 0
        self.greeting = self.response()
        assert self.greeting.startswith(b"* OK"), self.greeting

    def _fill(self, size=65536):
        data = self.sock.recv(size)
        if not data:
            raise EOFError("closed; buffered %r" % self.buf[-200:])
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self):
        out = b""
        while True:
            line = self.line()
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill()
            out += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, text):
        """Runs a command; returns (tagged line, [untagged without '* '])."""
        self.n += 1
        tag = "C%d" % self.n
        self.send("%s %s\r\n" % (tag, text))
        return self.wait(tag)

    def wait(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(b"* "):
                untagged.append(r[2:])
            elif r.startswith(tag.encode() + b" "):
                return r[len(tag) + 1:], untagged
            else:
                raise AssertionError("unexpected %r" % r)

    def ok(self, text):
        tagged, untagged = self.cmd(text)
        assert tagged.startswith(b"OK"), (text, tagged, untagged)
        return tagged, untagged

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def login(inst, **kw):
    c = Imap(inst, **kw)
    c.ok('LOGIN "%s" "%s"' % (inst.demo_user, inst.demo_password))
    return c


def require_imapd(inst):
    if not os.path.exists(inst.bin("imapd")):
        pytest.skip("imapd is not built")
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", inst.ports["imap"]), timeout=2):
                return inst
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("imapd not listening\n" + inst.maillog()[-3000:])
            time.sleep(0.1)


def owner_ids():
    try:
        pw = pwd.getpwnam("postern")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return os.getuid(), os.getgid()


_seq = [0]


def put_message(inst, data, address=None):
    """Writes a message straight into new/ (tmp/ then rename), in order."""
    _seq[0] += 1
    n = _seq[0]
    d = inst.maildir(address or inst.demo_user)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    uid, gid = owner_ids()
    for path in (d, *[os.path.join(d, s) for s in ("tmp", "new", "cur")]):
        os.chown(path, uid, gid)
    name = "%d.M%dP%dQ%d.testhost,S=%d" % (1700000000 + n, n, os.getpid(), n, len(data))
    tmp = os.path.join(d, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.chown(tmp, uid, gid)
    os.rename(tmp, os.path.join(d, "new", name))
    return name


def message(i, size=0):
    body = "Line %d\n" % i + ("x" * 70 + "\n") * (size // 71)
    return ("From: a%d@example.test\nTo: demo@example.test\nSubject: msg %d\n"
            "Date: Fri, 27 Nov 2026 10:00:00 +0000\n\n%s" % (i, i, body)).encode()


def exists(untagged):
    for u in untagged:
        m = re.match(rb"(\d+) EXISTS$", u)
        if m:
            return int(m.group(1))
    return None


def uids_of_search(untagged):
    for u in untagged:
        if u.startswith(b"SEARCH"):
            return [int(x) for x in u.split()[1:] if x.isdigit()]
    raise AssertionError("no SEARCH in %r" % untagged)


@pytest.fixture
def inst(instance):
    return require_imapd(instance)


# ---- several sessions on one folder ----

def test_two_sessions_see_each_others_flag_changes_and_new_mail(inst):
    for i in range(3):
        put_message(inst, message(i))
    a, b = login(inst), login(inst)
    try:
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        a.ok("STORE 2 +FLAGS (\\Flagged)")
        _, untagged = b.ok("NOOP")
        assert any(re.match(rb"2 FETCH \(.*FLAGS \(.*\\Flagged.*\)", u) for u in untagged), untagged
        # Told once only.
        _, untagged = b.ok("NOOP")
        assert not any(b"FETCH" in u for u in untagged), untagged
        put_message(inst, message(9))
        _, untagged = a.ok("NOOP")
        assert exists(untagged) == 4, untagged
        _, untagged = b.ok("NOOP")
        assert exists(untagged) == 4, untagged
    finally:
        a.close()
        b.close()


def test_expunge_is_held_back_during_fetch_and_sent_at_noop(inst):
    for i in range(3):
        put_message(inst, message(i))
    a, b = login(inst), login(inst)
    try:
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        _, untagged = a.ok("EXPUNGE")
        assert b"2 EXPUNGE" in untagged, untagged
        # b still numbers 3 messages; FETCH must not send EXPUNGE.
        tagged, untagged = b.cmd("FETCH 1:3 (UID FLAGS)")
        assert not any(u.endswith(b"EXPUNGE") for u in untagged), untagged
        assert tagged.startswith(b"OK") or tagged.startswith(b"NO"), tagged
        fetched = [int(re.match(rb"(\d+) FETCH", u).group(1)) for u in untagged
                   if b"FETCH" in u]
        assert 1 in fetched and 3 in fetched, untagged
        _, untagged = b.ok("NOOP")
        assert b"2 EXPUNGE" in untagged, untagged
        tagged, untagged = b.ok("FETCH 1:* (UID)")
        assert len([u for u in untagged if b"FETCH" in u]) == 2, untagged
    finally:
        a.close()
        b.close()


def test_recent_is_given_to_one_session_only(inst):
    put_message(inst, message(1))
    a, b = login(inst), login(inst)
    try:
        _, untagged = a.ok("SELECT INBOX")
        assert b"1 RECENT" in untagged, untagged
        _, untagged = b.ok("SELECT INBOX")
        assert b"0 RECENT" in untagged, untagged
        # The read-write selection moved it out of new/.
        d = inst.maildir(inst.demo_user)
        assert os.listdir(os.path.join(d, "new")) == []
        put_message(inst, message(2))
        _, ua = a.ok("NOOP")
        _, ub = b.ok("NOOP")
        # RECENT counts all of the session's recent messages; the first
        # session to look claims the new one.
        assert b"2 RECENT" in ua and b"0 RECENT" in ub, (ua, ub)
        _, untagged = a.ok("SEARCH RECENT")
        _, untagged2 = b.ok("SEARCH RECENT")
        assert len(uids_of_search(untagged)) + len(uids_of_search(untagged2)) == 2
    finally:
        a.close()
        b.close()


def append_raw(c, folder, msg, flags=""):
    """APPEND with a non-synchronizing literal; returns (uidvalidity, uid,
    untagged responses)."""
    c.n += 1
    tag = "C%d" % c.n
    c.send("%s APPEND %s (%s) {%d+}\r\n" % (tag, folder, flags, len(msg)))
    c.send(msg + b"\r\n")
    tagged, untagged = c.wait(tag)
    m = re.match(rb"OK \[APPENDUID (\d+) (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(1)), int(m.group(2)), untagged


def status_recent(c, folder):
    _, untagged = c.ok("STATUS %s (MESSAGES RECENT)" % folder)
    m = re.search(rb"RECENT (\d+)", untagged[0])
    assert m, untagged
    return int(m.group(1))


def test_appended_messages_are_in_cur_and_recent_for_one_claiming_session(inst):
    """RFC 3501 6.3.11: APPEND sets \\Recent. The file goes to cur/ with
    its flags (new/ holds no info part); the index's first recent UID,
    not the directory, decides \\Recent: EXAMINE and STATUS show it
    without claiming, the first SELECT claims it."""
    c, e, a, b = login(inst), login(inst), login(inst), login(inst)
    try:
        c.ok("CREATE Box")
        append_raw(c, "Box", message(1).replace(b"\n", b"\r\n"))
        append_raw(c, "Box", message(2).replace(b"\n", b"\r\n"), flags="\\Seen")
        box = os.path.join(inst.maildir(inst.demo_user), ".Box")
        assert os.listdir(os.path.join(box, "new")) == []
        names = sorted(os.listdir(os.path.join(box, "cur")))
        assert len(names) == 2 and {n[n.index(":2,"):] for n in names} == {":2,", ":2,S"}, names
        assert status_recent(c, "Box") == 2
        # EXAMINE shows them \\Recent and takes nothing away.
        _, untagged = e.ok("EXAMINE Box")
        assert b"2 RECENT" in untagged, untagged
        _, untagged = e.ok("FETCH 1:2 FLAGS")
        assert all(b"\\Recent" in u for u in untagged), untagged
        assert status_recent(c, "Box") == 2
        # The first read-write selection claims them.
        _, untagged = a.ok("SELECT Box")
        assert b"2 RECENT" in untagged, untagged
        assert status_recent(c, "Box") == 0
        _, untagged = b.ok("SELECT Box")
        assert b"0 RECENT" in untagged, untagged
        # An APPEND by the selecting session is recent there, and only there.
        _, _, ua = append_raw(a, "Box", message(3).replace(b"\n", b"\r\n"))
        _, ub = b.ok("NOOP")
        assert b"3 RECENT" in ua and exists(ub) == 3 and b"0 RECENT" in ub, (ua, ub)
        _, untagged = a.ok("SEARCH RECENT")
        assert uids_of_search(untagged) == [1, 2, 3]
        _, untagged = b.ok("SEARCH RECENT")
        assert uids_of_search(untagged) == []
        assert os.listdir(os.path.join(box, "new")) == []
    finally:
        for x in (c, e, a, b):
            x.close()


def test_folder_deleted_and_created_again_gets_a_larger_uidvalidity(inst):
    """RFC 3501 2.3.1.1: UIDVALIDITY must change when a name is reused,
    also within one second; the user's root Maildir remembers the last
    value handed out (postern-uidvalidity)."""
    with login(inst) as c:
        seen = []
        for i in range(3):
            c.ok("CREATE Again")
            uv, uid, _ = append_raw(c, "Again", message(i).replace(b"\n", b"\r\n"))
            assert uid == 1
            seen.append(uv)
            c.ok("DELETE Again")
        assert seen == sorted(set(seen)), seen
        root = os.path.join(inst.maildir(inst.demo_user), "postern-uidvalidity")
        with open(root) as f:
            assert int(f.read().strip()) >= seen[-1]
        # Another folder created now starts above all of them.
        c.ok("CREATE Other")
        uv, _, _ = append_raw(c, "Other", message(9).replace(b"\n", b"\r\n"))
        assert uv > seen[-1], (uv, seen)


# ---- UIDPLUS ----

def test_appenduid_and_copyuid_match_what_uid_search_finds(inst):
    with login(inst) as c:
        c.ok("CREATE Dest")
        msg = message(5).replace(b"\n", b"\r\n")
        c.n += 1
        tag = "C%d" % c.n
        c.send('%s APPEND INBOX (\\Seen \\Flagged) "01-Oct-2026 10:11:12 +0200" {%d+}\r\n'
               % (tag, len(msg)))
        c.send(msg + b"\r\n")
        tagged, _ = c.wait(tag)
        m = re.match(rb"OK \[APPENDUID (\d+) (\d+)\]", tagged)
        assert m, tagged
        validity, uid = int(m.group(1)), int(m.group(2))
        _, untagged = c.ok("SELECT INBOX")
        assert any(u.startswith(b"OK [UIDVALIDITY %d]" % validity) for u in untagged), untagged
        _, untagged = c.ok("UID SEARCH FLAGGED")
        assert uids_of_search(untagged) == [uid]
        _, untagged = c.ok("UID FETCH %d (FLAGS INTERNALDATE RFC822.SIZE)" % uid)
        assert b"01-Oct-2026 10:11:12 +0200" in untagged[0] or \
            b"01-Oct-2026 08:11:12 +0000" in untagged[0], untagged
        assert b"RFC822.SIZE %d" % len(msg) in untagged[0], untagged
        # The file name carries the sizes, like local's.
        names = os.listdir(os.path.join(inst.maildir(inst.demo_user), "cur"))
        assert any(",W=%d" % len(msg) in n and n.endswith(":2,FS") for n in names), names

        tagged, _ = c.ok("UID COPY %d Dest" % uid)
        m = re.match(rb"OK \[COPYUID (\d+) (\d+) (\d+)\]", tagged)
        assert m and int(m.group(2)) == uid, tagged
        dvalidity, duid = int(m.group(1)), int(m.group(3))
        _, untagged = c.ok("SELECT Dest")
        assert any(u.startswith(b"OK [UIDVALIDITY %d]" % dvalidity) for u in untagged)
        _, untagged = c.ok("UID SEARCH ALL")
        assert uids_of_search(untagged) == [duid]
        _, untagged = c.ok("UID FETCH %d (FLAGS BODY.PEEK[])" % duid)
        assert b"\\Flagged" in untagged[0] and msg in untagged[0], untagged


def test_append_to_a_missing_folder_is_trycreate(inst):
    with login(inst) as c:
        c.n += 1
        tag = "C%d" % c.n
        c.send("%s APPEND Nowhere {5}\r\n" % tag)
        r = c.response()
        assert r.startswith(tag.encode() + b" NO [TRYCREATE]"), r
        tagged, _ = c.cmd("COPY 1 Nowhere")
        assert tagged.startswith(b"BAD") or tagged.startswith(b"NO"), tagged


def test_move_reports_copyuid_then_expunges(inst):
    for i in range(4):
        put_message(inst, message(i))
    with login(inst) as c:
        c.ok("CREATE Archive")
        c.ok("SELECT INBOX")
        _, untagged = c.ok("UID SEARCH ALL")
        uids = uids_of_search(untagged)
        tagged, untagged = c.ok("MOVE 2:3 Archive")
        assert untagged[0].startswith(b"OK [COPYUID "), untagged
        m = re.match(rb"OK \[COPYUID (\d+) (\S+) (\S+)\]", untagged[0])
        assert m.group(2) == b"%d:%d" % (uids[1], uids[2]), untagged
        assert untagged[1:] == [b"2 EXPUNGE", b"2 EXPUNGE"], untagged
        _, untagged = c.ok("UID SEARCH ALL")
        assert uids_of_search(untagged) == [uids[0], uids[3]]
        _, untagged = c.ok("STATUS Archive (MESSAGES UIDNEXT)")
        assert b"MESSAGES 2" in untagged[0], untagged
        # Nothing left behind in tmp/.
        arch = os.path.join(inst.maildir(inst.demo_user), ".Archive")
        assert os.listdir(os.path.join(arch, "tmp")) == []
        # In cur/ (standard Maildir++), yet \\Recent for the first session
        # that selects Archive.
        assert os.listdir(os.path.join(arch, "new")) == []
        assert len(os.listdir(os.path.join(arch, "cur"))) == 2
        _, untagged = c.ok("SELECT Archive")
        assert b"2 RECENT" in untagged, untagged


def test_store_reports_flags_and_expunge_sequence_numbers(inst):
    for i in range(5):
        put_message(inst, message(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        _, untagged = c.ok("STORE 1:5 +FLAGS (\\Seen)")
        assert len([u for u in untagged if b"FETCH" in u]) == 5, untagged
        _, untagged = c.ok("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)")
        assert untagged == [], untagged
        _, untagged = c.ok("UID STORE 1 FLAGS (\\Answered)")
        assert untagged and b"UID 1" in untagged[0] and b"\\Answered" in untagged[0]
        assert b"\\Seen" not in untagged[0], untagged
        tagged, _ = c.cmd("STORE 1 +FLAGS (\\Recent)")
        assert tagged.startswith(b"BAD"), tagged
        tagged, _ = c.cmd("FETCH 9 FLAGS")
        assert tagged.startswith(b"BAD"), tagged
        _, untagged = c.ok("EXPUNGE")
        assert untagged == [b"2 EXPUNGE", b"3 EXPUNGE", b"3 EXPUNGE"], untagged
        _, untagged = c.ok("FETCH 1:* (FLAGS)")
        assert len(untagged) == 2


# ---- IDLE ----

def test_idle_gets_exists_within_a_second_of_an_smtp_delivery(inst):
    put_message(inst, message(0))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        c.send("I1 IDLE\r\n")
        assert c.line().startswith(b"+ "), "no continuation"
        time.sleep(0.3)
        inst.send("sender@example.test", [inst.demo_user], message(1).decode())
        t0 = time.monotonic()
        c.sock.settimeout(10)
        while True:
            line = c.line()
            if line.endswith(b"EXISTS"):
                break
        latency = time.monotonic() - t0
        assert line == b"* 2 EXISTS", line
        # The SMTP transaction ends before local delivers: measured from
        # smtpd's 250, so this includes qmgr and local.
        print("IDLE latency %.3f s" % latency)
        assert latency < 1.0, "IDLE latency %.3f s" % latency
        c.send("DONE\r\n")
        tagged, _ = c.wait("I1")
        assert tagged.startswith(b"OK"), tagged


# ---- big FETCH ----

def test_big_fetch_arrives_complete_and_in_order_to_a_slow_reader(inst):
    count = 2000
    for i in range(count):
        put_message(inst, message(i, size=400))
    with login(inst, rcvbuf=8192) as c:
        _, untagged = c.ok("SELECT INBOX")
        assert exists(untagged) == count
        c.n += 1
        tag = "C%d" % c.n
        c.send("%s FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n" % tag)
        got = []
        started = time.monotonic()
        while True:
            time.sleep(0.0005)   # a slow reader
            r = c.response()
            if r.startswith(tag.encode()):
                assert r.startswith(tag.encode() + b" OK"), r
                break
            m = re.match(rb"\* (\d+) FETCH .*Subject: msg (\d+)", r, re.S)
            assert m, r[:200]
            got.append((int(m.group(1)), int(m.group(2))))
        assert got == [(i + 1, i) for i in range(count)]
        assert time.monotonic() - started < 60


# ---- POP3 holding the lock ----

def pop3_login(inst):
    s = socket.create_connection(("127.0.0.1", inst.ports["pop3"]), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    for line in ("USER " + inst.demo_user, "PASS " + inst.demo_password):
        s.sendall(line.encode() + b"\r\n")
        r = f.readline()
        assert r.startswith(b"+OK"), r
    return s, f


def test_store_while_pop3_holds_the_lock_is_inuse_and_loses_nothing(inst):
    for i in range(3):
        put_message(inst, message(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        pop, pf = pop3_login(inst)
        try:
            tagged, _ = c.cmd("STORE 1 +FLAGS (\\Deleted)")
            assert tagged.startswith(b"NO [INUSE]"), tagged
            tagged, _ = c.cmd("EXPUNGE")
            assert tagged.startswith(b"NO [INUSE]"), tagged
            # Reading still works, and a NOOP does not block.
            t0 = time.monotonic()
            _, untagged = c.ok("FETCH 1:3 (UID FLAGS)")
            assert len(untagged) == 3
            c.ok("NOOP")
            assert time.monotonic() - t0 < 2
        finally:
            pop.sendall(b"QUIT\r\n")
            pf.readline()
            pop.close()
        # pop3d answers QUIT before it lets go of the lock.
        deadline = time.monotonic() + 5
        while True:
            tagged, untagged = c.cmd("STORE 1 +FLAGS (\\Flagged)")
            if tagged.startswith(b"OK") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert tagged.startswith(b"OK"), tagged
        assert b"\\Flagged" in untagged[0], untagged
        _, untagged = c.ok("FETCH 1:* (FLAGS)")
        assert len(untagged) == 3
        assert not any(b"\\Deleted" in u for u in untagged), untagged
    assert len(inst.maildir_files(inst.demo_user)) == 3


def test_select_while_pop3_holds_the_lock_shows_recent_and_claims_later(inst):
    """A read-write SELECT that cannot take the lock (pop3d holds it for
    its session) shows the unclaimed messages \\Recent without claiming
    them; its first command after pop3d lets go claims them."""
    put_message(inst, message(1))
    put_message(inst, message(2))
    pop, pf = pop3_login(inst)
    c = login(inst)
    d = login(inst)
    try:
        try:
            _, untagged = c.ok("SELECT INBOX")
            assert b"2 RECENT" in untagged and exists(untagged) == 2, untagged
            assert status_recent(d, "INBOX") == 2
        finally:
            pop.sendall(b"QUIT\r\n")
            pf.readline()
            pop.close()
        deadline = time.monotonic() + 5
        while True:
            c.ok("NOOP")
            if status_recent(d, "INBOX") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status_recent(d, "INBOX") == 0
        inbox = inst.maildir(inst.demo_user)
        assert os.listdir(os.path.join(inbox, "new")) == []
        _, untagged = c.ok("SEARCH RECENT")
        assert uids_of_search(untagged) == [1, 2]
        _, untagged = d.ok("SELECT INBOX")
        assert b"0 RECENT" in untagged, untagged
    finally:
        c.close()
        d.close()


# ---- the index cache of ENVELOPE / BODYSTRUCTURE ----

def test_cached_envelope_and_bodystructure_match_the_first_rendering(inst):
    for i in range(3):
        put_message(inst, message(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        _, first = c.ok("FETCH 1:3 (UID ENVELOPE FLAGS BODYSTRUCTURE)")
        _, second = c.ok("FETCH 1:3 (UID ENVELOPE FLAGS BODYSTRUCTURE)")
        assert first == second
        assert b'"msg 1"' in first[1] and b"BODYSTRUCTURE (" in first[1], first
        _, only = c.ok("FETCH 2 ENVELOPE")
        assert only[0].startswith(b"2 FETCH (ENVELOPE ("), only
        # Another session reads the values from the index's cache: with the
        # files unreadable to imapd (it runs as the mail owner), only the
        # cache can give them.
        unreadable = os.getuid() == 0 and owner_ids()[0] != 0
        if unreadable:
            for path in inst.maildir_files(inst.demo_user):
                os.chmod(path, 0)
        d = login(inst)
        try:
            d.ok("EXAMINE INBOX")
            _, third = d.ok("FETCH 1:3 (UID ENVELOPE FLAGS BODYSTRUCTURE)")
            # Only \\Recent differs: the first session claimed it.
            assert third == [u.replace(b"(\\Recent)", b"()") for u in first]
        finally:
            d.close()


# ---- \Seen, CONDSTORE, SEARCH, IDLE updates ----

def test_body_fetch_sets_seen_read_write_only(inst):
    for i in range(2):
        put_message(inst, message(i))
    c, other = login(inst), login(inst)
    try:
        other.ok("EXAMINE INBOX")
        _, untagged = other.ok("FETCH 2 BODY[]")
        assert b"\\Seen" not in untagged[0], untagged
        c.ok("SELECT INBOX")
        _, untagged = c.ok("FETCH 1 BODY[TEXT]")
        assert re.search(rb"FLAGS \([^)]*\\Seen", untagged[0]), untagged
        _, untagged = other.ok("NOOP")
        assert any(re.match(rb"1 FETCH \(.*\\Seen", u) for u in untagged), untagged
        _, untagged = c.ok("FETCH 2 BODY.PEEK[]")
        assert b"FLAGS" not in untagged[0], untagged
    finally:
        c.close()
        other.close()


def test_condstore_modseqs_changedsince_unchangedsince_and_search(inst):
    for i in range(3):
        put_message(inst, message(i))
    with login(inst) as c:
        _, untagged = c.ok("SELECT INBOX (CONDSTORE)")
        m = [re.match(rb"OK \[HIGHESTMODSEQ (\d+)\]", u) for u in untagged]
        highest = [int(x.group(1)) for x in m if x]
        assert highest, untagged
        _, untagged = c.ok("STORE 2 +FLAGS (\\Flagged)")
        m = re.search(rb"MODSEQ \((\d+)\)", untagged[0])
        assert m, untagged
        modseq = int(m.group(1))
        assert modseq > highest[0]
        _, untagged = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (modseq - 1))
        assert [u.split()[0] for u in untagged] == [b"2"], untagged
        tagged, _ = c.ok("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % (modseq - 1))
        assert tagged.startswith(b"OK [MODIFIED 2]"), tagged
        _, untagged = c.ok("SEARCH MODSEQ %d" % modseq)
        assert re.match(rb"SEARCH( \d+)+ \(MODSEQ \d+\)$", untagged[0]), untagged


def test_text_search_over_several_rounds(inst):
    count = 600
    for i in range(count):
        put_message(inst, message(i))
    with login(inst) as c:
        c.ok("SELECT INBOX")
        _, untagged = c.ok('SEARCH BODY "Line 5"')
        expect = [i + 1 for i in range(count) if ("Line %d\n" % i).startswith("Line 5")]
        assert uids_of_search(untagged) == expect
        _, untagged = c.ok('UID SEARCH SUBJECT "msg 599"')
        assert uids_of_search(untagged) == [count]


def test_idle_reports_other_sessions_flag_changes_and_expunges(inst):
    for i in range(3):
        put_message(inst, message(i))
    idler, other = login(inst), login(inst)
    try:
        idler.ok("SELECT INBOX")
        other.ok("SELECT INBOX")
        idler.send("I1 IDLE\r\n")
        assert idler.line().startswith(b"+ ")
        other.ok("STORE 1 +FLAGS (\\Answered)")
        assert re.match(rb"\* 1 FETCH \(.*\\Answered", idler.line())
        other.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        assert re.match(rb"\* 3 FETCH \(.*\\Deleted", idler.line())
        other.ok("EXPUNGE")
        assert idler.line() == b"* 3 EXPUNGE"
        idler.send("DONE\r\n")
        tagged, _ = idler.wait("I1")
        assert tagged.startswith(b"OK")
    finally:
        idler.close()
        other.close()


def test_idle_in_the_authenticated_state_waits_for_done(inst):
    with login(inst) as c:
        c.send("I1 IDLE\r\n")
        assert c.line().startswith(b"+ ")
        c.send("DONE\r\n")
        tagged, untagged = c.wait("I1")
        assert tagged.startswith(b"OK") and untagged == []
