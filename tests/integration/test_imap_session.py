"""IMAP server (imapd), session level: greeting and CAPABILITY in each state,
LOGIN and AUTHENTICATE PLAIN (SASL-IR), failure delays and throttling,
STARTTLS (pipelined input discarded) and IMAPS, the plaintext policy,
commands in the wrong state, bad input (unknown commands, the error limit,
NUL and 8-bit bytes, unbalanced parentheses, oversized and missing
literals), ID / ENABLE / NAMESPACE, folder commands, and many parallel
sessions. Clients: imaplib and raw sockets. The per-command suite is
test_imap.py."""

import base64
import imaplib
import os
import re
import resource
import selectors
import socket
import ssl
import time

import pytest

GREETING_RE = re.compile(rb"^\* OK \[CAPABILITY ([^\]]*)\] Postern IMAP4rev1 ready$")
PRE_LOGIN = {"IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"}
POST_LOGIN = PRE_LOGIN | {"NAMESPACE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "UIDPLUS",
                          "MOVE", "CONDSTORE"}


# ---- helpers ----

def imap_port(inst):
    return inst.ports["imap"]


def imaps_port(inst):
    return inst.ports["imaps"]


def tls_context(inst):
    return ssl.create_default_context(cafile=os.path.join(inst.etc, "tls", "cert.pem"))


def b64(data):
    return base64.b64encode(data).decode()


class Raw:
    """A line-oriented IMAP client over a plain socket (or TLS after wrap())."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(self.buf)
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def tag(self):
        self.n += 1
        return b"t%d" % self.n

    def cmd(self, text):
        """Sends 'TAG text' and returns (untagged lines, tagged line)."""
        tag = self.tag()
        self.send(tag + b" " + (text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.until(tag)

    def until(self, tag):
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def at_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def wrap(self, ctx):
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def close(self):
        self.sock.close()


def caps_of(line):
    m = GREETING_RE.match(line)
    assert m, line
    return set(m.group(1).decode().split())


def greet(inst, port=None):
    c = Raw(port or imap_port(inst))
    caps_of(c.line())
    return c


def login(inst, c=None, user=None, password=None):
    c = c or greet(inst)
    _, r = c.cmd('LOGIN "%s" "%s"' % (user or inst.demo_user, password or inst.demo_password))
    assert r.startswith(b"OK [CAPABILITY "), r
    return c


def started(instance_factory, **params):
    inst = instance_factory(start=False)
    for name, value in params.items():
        inst.run("postconf", "-e", "%s=%s" % (name, value), check=True)
    inst.start()
    return inst


def connect_retry(inst, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return greet(inst)
        except (OSError, EOFError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# ---- greeting, CAPABILITY, LOGIN ----

def test_greeting_and_capability_before_and_after_login(instance):
    c = connect_retry(instance)
    untagged, ok = c.cmd("CAPABILITY")
    assert ok == b"OK Capability completed"
    assert len(untagged) == 1 and untagged[0].startswith(b"* CAPABILITY ")
    before = set(untagged[0].decode().split()[2:])
    # Loopback is in mynetworks: plaintext passwords are allowed.
    assert before == PRE_LOGIN | {"STARTTLS", "AUTH=PLAIN"}, before
    _, r = c.cmd('LOGIN "%s" "%s"' % (instance.demo_user, instance.demo_password))
    m = re.match(rb"OK \[CAPABILITY ([^\]]*)\] ", r)
    assert m, r
    assert set(m.group(1).decode().split()) == POST_LOGIN
    untagged, _ = c.cmd("CAPABILITY")
    assert set(untagged[0].decode().split()[2:]) == POST_LOGIN
    untagged, ok = c.cmd("LOGOUT")
    assert untagged == [b"* BYE Logging out"] and ok == b"OK Logout completed"
    assert c.at_eof()
    instance.wait_log(r"login: user=<demo@example\.test>, method=LOGIN, rip=127\.0\.0\.1, tls=no")
    instance.wait_log(r"disconnect: user=<demo@example\.test>, rip=127\.0\.0\.1, fetch=0/0, "
                      r"append=0, expunge=0")

    # imaplib sees the same, and the special-use folders now exist.
    m = imaplib.IMAP4("127.0.0.1", imap_port(instance), timeout=10)
    assert "STARTTLS" in m.capabilities and "AUTH=PLAIN" in m.capabilities
    typ, _ = m.login(instance.demo_user, instance.demo_password)
    assert typ == "OK"
    typ, data = m.capability()
    assert "UIDPLUS" in data[0].decode().split() and "STARTTLS" not in data[0].decode().split()
    m.logout()
    for folder in (".Drafts", ".Sent", ".Trash", ".Junk"):
        assert os.path.isdir(os.path.join(instance.maildir(instance.demo_user), folder, "cur"))


def test_failed_login_is_delayed_and_the_session_goes_on(instance):
    c = greet(instance)
    t0 = time.monotonic()
    _, r = c.cmd('LOGIN "%s" "wrong-password"' % instance.demo_user)
    elapsed = time.monotonic() - t0
    assert r == b"NO [AUTHENTICATIONFAILED] Authentication failed."
    assert elapsed >= 1.9, elapsed
    instance.wait_log(r"auth failed: user=<demo@example\.test>, rip=127\.0\.0\.1")
    _, r = c.cmd('LOGIN "nobody@example.test" "x"')
    assert r == b"NO [AUTHENTICATIONFAILED] Authentication failed."
    login(instance, c)
    _, r = c.cmd("LOGIN a b")
    assert r == b"BAD Already authenticated"
    c.cmd("LOGOUT")


def test_commands_pipelined_during_the_password_check_are_answered_in_order(instance):
    c = greet(instance)
    c.send('a LOGIN "%s" "%s"\r\nb NOOP\r\nc NAMESPACE\r\n' % (instance.demo_user,
                                                             instance.demo_password))
    assert c.line().startswith(b"a OK [CAPABILITY ")
    assert c.line() == b"b OK NOOP completed"
    assert c.line() == b'* NAMESPACE (("" ".")) NIL NIL'
    assert c.line() == b"c OK Namespace completed"
    c.cmd("LOGOUT")


def test_authenticate_plain_with_and_without_initial_response(instance):
    user, pw = instance.demo_user.encode(), instance.demo_password.encode()
    c = greet(instance)
    _, r = c.cmd("AUTHENTICATE PLAIN " + b64(b"\0" + user + b"\0" + pw))
    assert r.startswith(b"OK [CAPABILITY IMAP4rev1 "), r
    c.cmd("LOGOUT")
    instance.wait_log(r"login: user=<demo@example\.test>, method=PLAIN, rip=127\.0\.0\.1")

    c = greet(instance)
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line() == b"+ "
    c.send(b64(user + b"\0" + user + b"\0" + pw) + "\r\n")
    _, r = c.until(b"a")
    assert r.startswith(b"OK [CAPABILITY "), r
    c.cmd("LOGOUT")

    # "*" cancels; bad base64 and an empty initial response are errors.
    c = greet(instance)
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line() == b"+ "
    c.send("*\r\n")
    assert c.until(b"a")[1] == b"BAD Authentication cancelled"
    assert c.cmd("AUTHENTICATE PLAIN !!!notbase64")[1].startswith(b"BAD ")
    assert c.cmd("AUTHENTICATE PLAIN =")[1] == b"BAD Invalid SASL PLAIN response"
    assert c.cmd("AUTHENTICATE CRAM-MD5")[1].startswith(b"NO ")
    t0 = time.monotonic()
    _, r = c.cmd("AUTHENTICATE PLAIN " + b64(b"\0" + user + b"\0wrong"))
    assert r == b"NO [AUTHENTICATIONFAILED] Authentication failed."
    assert time.monotonic() - t0 >= 1.9
    c.cmd("LOGOUT")

    # imaplib's authenticate() (no SASL-IR) works too.
    m = imaplib.IMAP4("127.0.0.1", imap_port(instance), timeout=10)
    typ, _ = m.authenticate("PLAIN", lambda _: b"\0" + user + b"\0" + pw)
    assert typ == "OK"
    m.logout()


# ---- TLS ----

def test_starttls_discards_commands_pipelined_behind_it(instance):
    ctx = tls_context(instance)
    c = greet(instance)
    c.send('a STARTTLS\r\nb LOGIN "%s" "%s"\r\nc SELECT INBOX\r\n' % (
        instance.demo_user, instance.demo_password))
    assert c.line() == b"a OK Begin TLS negotiation now"
    assert c.buf == b""
    c.wrap(ctx)
    # Neither LOGIN nor SELECT ran: nothing waits, and we are not logged in.
    untagged, r = c.cmd("CAPABILITY")
    caps = set(untagged[0].decode().split()[2:])
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    assert c.cmd("SELECT INBOX")[1] == b"BAD Not authenticated: log in first"
    assert c.cmd("STARTTLS")[1] == b"BAD TLS is already active"
    login(instance, c)
    c.cmd("LOGOUT")
    instance.wait_log(r"login: user=<demo@example\.test>, method=LOGIN, rip=127\.0\.0\.1, tls=yes")


def test_imaps_with_certificate_verification(instance):
    ctx = tls_context(instance)
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port(instance), ssl_context=ctx, timeout=10)
    assert GREETING_RE.match(m.welcome)
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    typ, _ = m.login(instance.demo_user, instance.demo_password)
    assert typ == "OK"
    typ, data = m.select("INBOX")
    assert typ == "OK"
    m.logout()

    # imaplib's starttls() on the plain port, with the same check.
    m = imaplib.IMAP4("127.0.0.1", imap_port(instance), timeout=10)
    m.starttls(ssl_context=ctx)
    m.login(instance.demo_user, instance.demo_password)
    m.logout()

    # A client that does not trust the certificate fails the handshake.
    with pytest.raises(ssl.SSLError):
        imaplib.IMAP4_SSL("127.0.0.1", imaps_port(instance),
                          ssl_context=ssl.create_default_context(), timeout=10)

    c = Raw(imaps_port(instance))
    c.wrap(ctx)
    caps_of(c.line())
    assert c.cmd("STARTTLS")[1] == b"BAD TLS is already active"
    c.cmd("LOGOUT")


def test_plaintext_refused_outside_mynetworks_until_starttls(instance_factory):
    inst = started(instance_factory, mynetworks="192.0.2.0/24", disable_plaintext_auth="yes")
    c = connect_retry(inst)
    untagged, _ = c.cmd("CAPABILITY")
    caps = set(untagged[0].decode().split()[2:])
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps and "AUTH=PLAIN" not in caps
    _, r = c.cmd('LOGIN "%s" "%s"' % (inst.demo_user, inst.demo_password))
    assert r.startswith(b"NO [PRIVACYREQUIRED] ")
    _, r = c.cmd("AUTHENTICATE PLAIN " + b64(b"\0x\0y"))
    assert r.startswith(b"NO [PRIVACYREQUIRED] ")
    assert c.cmd("STARTTLS")[1] == b"OK Begin TLS negotiation now"
    c.wrap(tls_context(inst))
    untagged, _ = c.cmd("CAPABILITY")
    caps = set(untagged[0].decode().split()[2:])
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    login(inst, c)
    c.cmd("LOGOUT")


# ---- states and bad input ----

def test_commands_in_the_wrong_state_are_refused(instance):
    c = greet(instance)
    for cmd in ("SELECT INBOX", "LIST \"\" *", "CREATE x", "STATUS INBOX (MESSAGES)",
                "NAMESPACE", "ENABLE CONDSTORE", "IDLE", "UNSELECT"):
        assert c.cmd(cmd)[1] == b"BAD Not authenticated: log in first", cmd
    # An APPEND literal is refused before it is sent (no "+").
    c.send("a APPEND INBOX {5}\r\n")
    assert c.line() == b"a BAD Not authenticated: log in first"
    login(instance, c)   # 9 errors so far: imapd_error_limit is 10
    untagged, r = c.cmd("NOOP")
    assert r == b"OK NOOP completed"
    c.cmd("LOGOUT")

    c = login(instance)
    for cmd in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE",
                "CLOSE", "UNSELECT", "CHECK", "UID FETCH 1 FLAGS"):
        assert c.cmd(cmd)[1] == b"BAD No mailbox selected", cmd
    assert c.cmd("STARTTLS")[1] == b"BAD Already authenticated"
    c.cmd("LOGOUT")


def test_select_examine_unselect_close_and_a_failed_select(instance):
    c = login(instance)
    untagged, r = c.cmd("SELECT INBOX")
    assert r == b"OK [READ-WRITE] Select completed", r
    assert any(l.startswith(b"* OK [UIDVALIDITY ") for l in untagged)
    assert any(re.match(rb"\* \d+ EXISTS", l) for l in untagged)
    assert c.cmd("NOOP")[1] == b"OK NOOP completed"
    assert c.cmd("UNSELECT")[1] == b"OK Unselect completed"
    assert c.cmd("FETCH 1 FLAGS")[1] == b"BAD No mailbox selected"
    _, r = c.cmd("EXAMINE Sent")
    assert r == b"OK [READ-ONLY] Examine completed", r
    assert c.cmd("CLOSE")[1] == b"OK Close completed"
    c.cmd("SELECT INBOX")
    # RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected.
    _, r = c.cmd("SELECT NoSuchFolder")
    assert r.startswith(b"NO "), r
    assert c.cmd("FETCH 1 FLAGS")[1] == b"BAD No mailbox selected"
    c.cmd("LOGOUT")


def test_unknown_commands_reach_the_error_limit(instance):
    c = greet(instance)
    for i in range(9):
        _, r = c.cmd("BOGUS%d" % i)
        assert r.startswith(b"BAD"), r
    c.send("t99 BOGUS\r\n")
    assert c.line().startswith(b"t99 BAD")
    assert c.line() == b"* BYE Too many invalid commands"
    assert c.at_eof()
    instance.wait_log(r"too many errors: rip=127\.0\.0\.1")


def test_nul_eight_bit_garbage_and_unbalanced_parentheses(instance):
    c = login(instance)
    c.cmd("SELECT INBOX")
    for bad in (b"NO\0OP", b"LIST \"\" \"a\0b\"", b"\xff\xfe\xc3\xa9 FOO",
                b"CREATE \xc3\xa9t\xc3\xa9", b"FETCH 1 (FLAGS", b"FETCH 1 FLAGS)",
                b"STORE 1 +FLAGS ((\\Seen)", b"SEARCH (OR ALL"):
        _, r = c.cmd(bad)
        assert r.startswith(b"BAD") or r.startswith(b"NO"), (bad, r)
    # Garbage with no tag at all gets an untagged BAD.
    c.send(b"\x80\x81\x82\r\n")
    assert c.line().startswith(b"* BAD")
    assert c.cmd("NOOP")[1] == b"OK NOOP completed"
    c.cmd("LOGOUT")


def test_literals_over_the_limit_are_refused_before_they_are_sent(instance_factory):
    inst = started(instance_factory, message_size_limit="100000")
    c = connect_retry(inst)
    # A string literal over 64 KiB: BAD [TOOBIG], no "+" continuation.
    c.send("a LOGIN {100000}\r\n")
    r = c.line()
    assert r.startswith(b"a BAD [TOOBIG]"), r
    login(inst, c)
    c.send("b APPEND INBOX {100001}\r\n")
    r = c.line()
    assert r.startswith(b"b NO [TOOBIG]"), r
    # A non-synchronizing literal over the limit is skipped, not run as commands.
    c.send(b"c APPEND INBOX {100001+}\r\n" + b"d NOOP\r\n" * 12500 + b"x" + b"\r\n")
    r = c.line()
    assert r.startswith(b"c NO [TOOBIG]"), r
    assert c.cmd("NOOP")[1] == b"OK NOOP completed"
    # Within the limits a literal gets "+ Ready for literal data".
    c.send("e STATUS {5}\r\n")
    assert c.line() == b"+ Ready for literal data"
    c.send("INBOX (MESSAGES)\r\n")
    untagged, r = c.until(b"e")
    assert untagged == [b"* STATUS INBOX (MESSAGES 0)"] and r == b"OK Status completed"
    c.cmd("LOGOUT")


def test_literal_announced_but_never_sent_times_out(instance_factory):
    inst = started(instance_factory, imapd_timeout="2s")
    c = connect_retry(inst)
    c.send("a LOGIN {5}\r\n")
    assert c.line() == b"+ Ready for literal data"
    t0 = time.monotonic()
    assert c.line() == b"* BYE Autologout; idle for too long"
    assert 1.5 <= time.monotonic() - t0 < 6
    assert c.at_eof()
    inst.wait_log(r"timeout: user=<>, rip=127\.0\.0\.1")


def put_messages(inst, count, size):
    """Writes count messages of about size bytes straight into new/."""
    d = inst.maildir(inst.demo_user)
    body = (b"x" * 70 + b"\n") * (size // 71 + 1)
    for n in range(count):
        data = b"Subject: m%d\n\n" % n + body
        name = "%d.M%dP%dQ%d.testhost,S=%d" % (1700000000 + n, n, os.getpid(), n, len(data))
        with open(os.path.join(d, "tmp", name), "wb") as f:
            f.write(data)
        os.rename(os.path.join(d, "tmp", name), os.path.join(d, "new", name))


def test_big_fetch_runs_in_rounds_and_pipelined_commands_wait(instance):
    put_messages(instance, 60, 20000)
    c = login(instance)
    c.cmd("SELECT INBOX")
    # 1.2 MB of output for one command, with two commands behind it.
    c.send("f FETCH 1:* (BODY.PEEK[])\r\ng NOOP\r\nh CAPABILITY\r\n")
    time.sleep(0.5)
    fetched = 0
    while True:
        line = c.line()
        if line.startswith(b"f "):
            break
        m = re.match(rb"\* \d+ FETCH \(.*\{(\d+)\}$", line)
        if m:
            n = int(m.group(1))
            while len(c.buf) < n:
                c._fill()
            c.buf = c.buf[n:]
            fetched += 1
    assert line == b"f OK Fetch completed" or line.startswith(b"f OK"), line
    assert fetched == 60
    assert c.line() == b"g OK NOOP completed"
    assert c.line().startswith(b"* CAPABILITY ")
    assert c.line() == b"h OK Capability completed"
    c.cmd("LOGOUT")
    instance.wait_log(r"disconnect: user=<demo@example\.test>, rip=127\.0\.0\.1, fetch=60/\d+")


# ---- ID, ENABLE, NAMESPACE, IDLE ----

def test_id_enable_namespace_and_idle_done(instance):
    c = greet(instance)
    untagged, r = c.cmd('ID ("name" "pytest" "version" "1")')
    assert r == b"OK ID completed"
    assert len(untagged) == 1 and untagged[0].startswith(b'* ID ("name" "Postern" "version" "')
    assert c.cmd("ID NIL")[1] == b"OK ID completed"
    login(instance, c)
    assert c.cmd("ENABLE CONDSTORE")[0] == [b"* ENABLED CONDSTORE"]
    # Already enabled, and unknown names, are not listed (RFC 5161).
    untagged, r = c.cmd("ENABLE CONDSTORE X-UNKNOWN")
    assert untagged == [b"* ENABLED"] and r == b"OK Enable completed"
    assert c.cmd("NAMESPACE")[0] == [b'* NAMESPACE (("" ".")) NIL NIL']

    # IDLE is allowed in the authenticated state; DONE ends it.
    c.send("i1 IDLE\r\n")
    assert c.line().startswith(b"+ ")
    c.send("DONE\r\n")
    assert c.until(b"i1")[1].startswith(b"OK")
    # Anything but DONE ends IDLE with BAD.
    c.send("i2 IDLE\r\n")
    assert c.line().startswith(b"+ ")
    c.send("NOOP\r\n")
    assert c.until(b"i2")[1] == b"BAD Expected DONE"
    assert c.cmd("NOOP")[1] == b"OK NOOP completed"
    c.cmd("LOGOUT")


def test_idle_ends_after_imapd_idle_timeout(instance_factory):
    inst = started(instance_factory, imapd_idle_timeout="2s")
    c = login(inst, connect_retry(inst))
    c.cmd("SELECT INBOX")
    c.send("i IDLE\r\n")
    assert c.line().startswith(b"+ ")
    t0 = time.monotonic()
    while True:
        line = c.line()
        if line.startswith(b"* BYE"):
            break
    assert line == b"* BYE Autologout; idle for too long"
    assert 1.5 <= time.monotonic() - t0 < 6
    assert c.at_eof()
    inst.wait_log(r"timeout: user=<demo@example\.test>, rip=127\.0\.0\.1, in IDLE")
    inst.wait_log(r"disconnect: user=<demo@example\.test>, rip=127\.0\.0\.1")


# ---- folders ----

def list_lines(c, ref, pattern, cmd="LIST"):
    untagged, r = c.cmd('%s "%s" "%s"' % (cmd, ref, pattern))
    assert r == b"OK %s completed" % (b"List" if cmd == "LIST" else b"Lsub"), r
    return untagged


def test_list_create_rename_delete_subscribe_and_status(instance):
    c = login(instance)
    assert list_lines(c, "", "") == [b'* LIST (\\Noselect) "." ""']
    lines = list_lines(c, "", "*")
    assert b'* LIST (\\HasNoChildren \\Sent) "." Sent' in lines, lines
    assert lines[0].endswith(b" INBOX")
    for name in (b"Drafts", b"Trash", b"Junk"):
        assert any(l.endswith(b'"." ' + name) for l in lines), lines
    lsub = list_lines(c, "", "*", "LSUB")
    assert any(l.endswith(b'"." Sent') for l in lsub), lsub

    assert c.cmd("CREATE Work")[1] == b"OK Create completed"
    assert c.cmd("CREATE Work.2026")[1] == b"OK Create completed"
    assert c.cmd('CREATE "My Folder"')[1] == b"OK Create completed"
    assert c.cmd("CREATE Work")[1].startswith(b"NO [ALREADYEXISTS]")
    assert c.cmd("CREATE INBOX")[1].startswith(b"NO ")
    lines = list_lines(c, "", "Work*")
    assert lines == [b'* LIST (\\HasChildren) "." Work',
                     b'* LIST (\\HasNoChildren) "." Work.2026'], lines
    assert list_lines(c, "Work.", "%") == [b'* LIST (\\HasNoChildren) "." Work.2026']
    assert list_lines(c, "", "My*") == [b'* LIST (\\HasNoChildren) "." "My Folder"']

    assert c.cmd("RENAME Work Archive")[1] == b"OK Rename completed"
    assert list_lines(c, "", "Archive*") == [b'* LIST (\\HasChildren) "." Archive',
                                              b'* LIST (\\HasNoChildren) "." Archive.2026']
    assert list_lines(c, "", "Work*") == []
    assert c.cmd("RENAME NoSuch Other")[1].startswith(b"NO ")

    assert c.cmd("SUBSCRIBE Archive.2026")[1] == b"OK Subscribe completed"
    assert any(l.endswith(b"Archive.2026") for l in list_lines(c, "", "*", "LSUB"))
    assert c.cmd("UNSUBSCRIBE Archive.2026")[1] == b"OK Unsubscribe completed"
    assert not any(l.endswith(b"Archive.2026") for l in list_lines(c, "", "*", "LSUB"))

    untagged, r = c.cmd("STATUS Archive.2026 (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    assert r == b"OK Status completed"
    m = re.match(rb"\* STATUS Archive\.2026 \((.*)\)$", untagged[0])
    assert m, untagged
    items = m.group(1).split()
    assert dict(zip(items[::2], items[1::2]))[b"MESSAGES"] == b"0"
    assert set(items[::2]) == {b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"RECENT"}
    untagged, _ = c.cmd('STATUS "My Folder" (MESSAGES)')
    assert untagged == [b'* STATUS "My Folder" (MESSAGES 0)']
    assert c.cmd("STATUS NoSuch (MESSAGES)")[1].startswith(b"NO ")

    assert c.cmd("DELETE Archive.2026")[1] == b"OK Delete completed"
    assert c.cmd("DELETE Archive.2026")[1].startswith(b"NO ")
    assert c.cmd("DELETE INBOX")[1].startswith(b"NO ")
    assert list_lines(c, "", "Archive*") == [b'* LIST (\\HasNoChildren) "." Archive']
    c.cmd("LOGOUT")
    root = instance.maildir(instance.demo_user)
    assert os.path.isdir(os.path.join(root, ".Archive", "cur"))
    assert not os.path.exists(os.path.join(root, ".Archive.2026"))


def test_delete_or_rename_of_the_selected_folder_is_refused(instance):
    c = login(instance)
    c.cmd("CREATE Box")
    c.cmd("CREATE Box.Child")
    assert c.cmd("SELECT Box.Child")[1].startswith(b"OK [READ-WRITE]")
    assert c.cmd("DELETE Box.Child")[1].startswith(b"NO [INUSE]")
    assert c.cmd("RENAME Box.Child Other")[1].startswith(b"NO [INUSE]")
    # Renaming the parent would move the selected child too.
    assert c.cmd("RENAME Box Other")[1].startswith(b"NO [INUSE]")
    # The parent alone may go (its children stay, RFC 3501 6.3.4).
    assert c.cmd("DELETE Box")[1] == b"OK Delete completed"
    c.cmd("UNSELECT")
    assert c.cmd("DELETE Box.Child")[1] == b"OK Delete completed"
    c.cmd("LOGOUT")


def test_imaplib_folder_round_trip(instance):
    m = imaplib.IMAP4("127.0.0.1", imap_port(instance), timeout=10)
    m.login(instance.demo_user, instance.demo_password)
    assert m.create("Projects")[0] == "OK"
    typ, data = m.list()
    assert typ == "OK"
    assert any(d.endswith(b'"." Projects') for d in data), data
    assert m.rename("Projects", "Done")[0] == "OK"
    typ, data = m.status("Done", "(MESSAGES UIDNEXT)")
    assert typ == "OK" and data[0].startswith(b"Done (")
    assert m.subscribe("Done")[0] == "OK"
    typ, data = m.lsub()
    assert any(d.endswith(b"Done") for d in data)
    assert m.delete("Done")[0] == "OK"
    typ, data = m.namespace()
    assert data == [b'(("" ".")) NIL NIL']
    m.logout()


# ---- throttling, limits, many sessions ----

def test_rapid_failed_logins_are_throttled(instance_factory):
    inst = started(instance_factory, auth_failure_delay="0s", auth_failure_limit="3")
    c = connect_retry(inst)
    for _ in range(3):
        assert c.cmd('LOGIN "%s" nope' % inst.demo_user)[1] == \
            b"NO [AUTHENTICATIONFAILED] Authentication failed."
    # Now even the right password is refused without a check.
    _, r = c.cmd('LOGIN "%s" "%s"' % (inst.demo_user, inst.demo_password))
    assert r.startswith(b"NO [AUTHENTICATIONFAILED]") and b"Too many" in r, r
    other = greet(inst)
    _, r = other.cmd("AUTHENTICATE PLAIN " + b64(b"\0" + inst.demo_user.encode() + b"\0" +
                                                 inst.demo_password.encode()))
    assert r.startswith(b"NO [AUTHENTICATIONFAILED]"), r
    inst.wait_log(r"auth failed: user=<demo@example\.test>, rip=127\.0\.0\.1, "
                  r"reason=too many failures")


def test_clients_over_the_session_limit_get_bye(instance_factory):
    inst = started(instance_factory, imapd_session_limit="20")
    held = [connect_retry(inst)] + [greet(inst) for _ in range(19)]
    extra = Raw(imap_port(inst))
    assert extra.line() == b"* BYE [UNAVAILABLE] Server busy, try again later"
    assert extra.at_eof()
    inst.wait_log(r"session limit 20 reached")
    held[0].cmd("LOGOUT")
    assert held[0].at_eof()
    deadline = time.monotonic() + 5
    while True:
        c = Raw(imap_port(inst))
        first = c.line()
        if GREETING_RE.match(first) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert GREETING_RE.match(first)
    login(inst, c)
    c.cmd("LOGOUT")


def test_thousand_parallel_idle_connections_are_held(instance):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 1100:
        pytest.skip("RLIMIT_NOFILE hard limit %d too low" % hard)
    connect_retry(instance).cmd("LOGOUT")
    port = imap_port(instance)
    sel = selectors.DefaultSelector()
    socks = []

    def collect(expect, timeout=60):
        """Reads from every socket until each has a line matching expect."""
        pending = set(socks)
        for s in socks:
            sel.register(s, selectors.EVENT_READ, bytearray())
        got = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                key.data.extend(data)
                if expect in key.data or not data:
                    got[s] = bytes(key.data)
                    pending.discard(s)
                    sel.unregister(s)
        for s in pending:
            sel.unregister(s)
        return got, pending

    try:
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        got, pending = collect(b"\r\n")
        assert not pending, "%d connections got no greeting" % len(pending)
        assert all(GREETING_RE.match(g.split(b"\r\n")[0]) for g in got.values()), \
            set(got.values())
        # All 1,000 are held at once: each still answers.
        for i, s in enumerate(socks):
            s.setblocking(True)
            s.sendall(b"n%d NOOP\r\n" % i)
            s.setblocking(False)
        got, pending = collect(b"OK NOOP completed\r\n")
        assert not pending, "%d connections did not answer NOOP" % len(pending)
        assert all(b"OK NOOP completed" in g for g in got.values())
        # The 1,001st is over imapd_session_limit.
        extra = Raw(port)
        assert extra.line() == b"* BYE [UNAVAILABLE] Server busy, try again later"
    finally:
        for s in socks:
            s.close()
        sel.close()
    c = connect_retry(instance)
    login(instance, c)
    c.cmd("LOGOUT")
