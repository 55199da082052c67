"""POP3 server (pop3d): RFC 1939 commands and states, CAPA, STLS and POP3S,
AUTH PLAIN/LOGIN, octet counts, UIDL stability, the UPDATE state, locking,
delays and throttling, and bad input. Clients: poplib and raw sockets."""

import base64
import os
import pwd
import resource
import selectors
import signal
import socket
import ssl
import time
import poplib

import pytest

GREETING = b"+OK Postern POP3 ready."


# ---- helpers ----

def pop3_port(inst):
    return inst.ports["pop3"]


def pop3s_port(inst):
    return inst.ports["pop3s"]


def tls_context(inst):
    return ssl.create_default_context(cafile=os.path.join(inst.etc, "tls", "cert.pem"))


class Raw:
    """A line-oriented POP3 client over a plain socket (or TLS after wrap())."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

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

    def cmd(self, text):
        self.send((text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.line()

    def wire_body(self):
        """The bytes of a multi-line response after its status line, up to
        and without the terminating ".\\r\\n" (as sent: byte-stuffed)."""
        while True:
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return b""
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                body = self.buf[:i + 2]
                self.buf = self.buf[i + 5:]
                return body
            self._fill()

    def lines(self):
        body = self.wire_body()
        return [l[1:] if l.startswith(b".") else l for l in body.split(b"\r\n")[:-1]]

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


def greet(inst, port=None):
    c = Raw(port or pop3_port(inst))
    assert c.line() == GREETING
    return c


def login(inst, c=None):
    c = c or greet(inst)
    assert c.cmd("USER " + inst.demo_user) == b"+OK"
    r = c.cmd("PASS " + inst.demo_password)
    assert r == b"+OK Logged in.", r
    return c


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
    name = "%d.M%dP%dQ%d.testhost,S=%d" % (1700000000 + n, n, os.getpid(), n, len(data))
    tmp = os.path.join(d, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    uid, gid = owner_ids()
    os.chown(tmp, uid, gid)
    os.rename(tmp, os.path.join(d, "new", name))
    return name


def wire_form(data):
    """What RETR must send for file bytes data: bare LF -> CRLF, dots
    stuffed, a missing final newline added."""
    out = bytearray()
    at_bol, prev_cr = True, False
    for b in data:
        c = bytes([b])
        if at_bol and c == b".":
            out += b"."
        if c == b"\n":
            if not prev_cr:
                out += b"\r"
            out += b"\n"
            at_bol, prev_cr = True, False
            continue
        out += c
        at_bol = False
        prev_cr = c == b"\r"
    if not at_bol:
        out += b"\r\n"
    return bytes(out)


def unstuffed_crlf(data):
    """The message as the client sees it after removing the stuffing."""
    body = wire_form(data)
    return b"\r\n".join(l[1:] if l.startswith(b".") else l
                        for l in body.split(b"\r\n")[:-1]) + b"\r\n"


def started(instance_factory, **params):
    inst = instance_factory(start=False)
    for name, value in params.items():
        inst.run("postconf", "-e", "%s=%s" % (name, value), check=True)
    inst.start()
    return inst


def pop3d_pids(inst):
    pids = []
    needle = inst.etc.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/pop3d") and needle in argv:
            pids.append(int(entry))
    return pids


def connect_retry(inst, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return greet(inst)
        except (OSError, EOFError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# ---- RFC 1939 basics ----

def test_greeting_capa_and_user_pass_login_on_empty_mailbox(instance):
    c = greet(instance)
    assert c.cmd("CAPA") == b"+OK Capability list follows"
    caps = c.lines()
    for cap in (b"TOP", b"UIDL", b"USER", b"RESP-CODES", b"PIPELINING",
                b"SASL PLAIN LOGIN", b"STLS", b"IMPLEMENTATION Postern"):
        assert cap in caps
    assert not any(cap.startswith((b"EXPIRE", b"LOGIN-DELAY", b"APOP")) for cap in caps)
    login(instance, c)
    assert c.cmd("STAT") == b"+OK 0 0"
    assert c.cmd("LIST") == b"+OK 0 messages (0 octets)"
    assert c.lines() == []
    assert c.cmd("UIDL") == b"+OK"
    assert c.lines() == []
    assert c.cmd("NOOP") == b"+OK"
    assert c.cmd("LAST") == b"+OK 0"
    # CAPA in TRANSACTION no longer offers login mechanisms.
    assert c.cmd("CAPA").startswith(b"+OK")
    caps = c.lines()
    assert b"USER" not in caps and b"STLS" not in caps and b"TOP" in caps
    assert c.cmd("QUIT") == b"+OK Logging out."
    assert c.at_eof()
    instance.wait_log(r"pop3d\[\d+\]: login: user=<demo@example\.test>, method=PLAIN, "
                      r"rip=127\.0\.0\.1, tls=no$")
    instance.wait_log(r"disconnect: user=<demo@example\.test> top=0 retr=0/0 del=0/0 size=0")


def test_octet_counts_equal_the_bytes_retr_sends(instance):
    messages = [
        b"Subject: dots\n\n.leading dot\n..two dots\n.\nend\n",
        b"Subject: crlf\r\n\r\nalready CRLF\r\n.dot\r\n",
        b"Subject: mix\r\n\nLF line\r\nCRLF line\nCR CR LF\r\r\n",
        b"Subject: no final newline\n\nlast line",
        b"",
    ]
    for m in messages:
        put_message(instance, m)
    c = login(instance)
    total = 0
    assert c.cmd("LIST").startswith(b"+OK 5 messages")
    listing = c.lines()
    for i, m in enumerate(messages, 1):
        expected = wire_form(m)
        assert listing[i - 1] == b"%d %d" % (i, len(expected))
        assert c.cmd("LIST %d" % i) == b"+OK %d %d" % (i, len(expected))
        assert c.cmd("RETR %d" % i) == b"+OK %d octets" % len(expected)
        body = c.wire_body()
        assert body == expected, (i, body, expected)
        assert b"\r\r\n" not in body.replace(b"CR CR LF\r\r\n", b"")
        total += len(expected)
    assert c.cmd("STAT") == b"+OK 5 %d" % total
    c.cmd("QUIT")


def test_message_delivered_through_smtpd_downloads_byte_identical(instance):
    sent = (b"From: Alice <alice@example.org>\r\nTo: demo@example.test\r\n"
            b"Subject: byte check\r\nMessage-ID: <pop3-1@example.org>\r\n\r\n"
            b"first line\r\n.starts with a dot\r\n\r\n  indented\r\nlast\r\n")
    instance.send("alice@example.org", instance.demo_user, sent)
    instance.wait_for_maildir(instance.demo_user, 1)
    p = poplib.POP3("127.0.0.1", pop3_port(instance), timeout=10)
    p.user(instance.demo_user)
    p.pass_(instance.demo_password)
    count, size = p.stat()
    assert count == 1
    resp, lines, octets = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    assert got.endswith(sent)
    # The announced size counts the stuffed dot poplib removed.
    assert resp == b"+OK %d octets" % size
    assert size == len(got) + 1
    p.quit()


def test_top_sends_headers_blank_line_and_n_body_lines(instance):
    put_message(instance, b"A: 1\nB: 2\n\nl1\n.l2\nl3\nl4\n")
    c = login(instance)
    assert c.cmd("TOP 1 0") == b"+OK"
    assert c.wire_body() == b"A: 1\r\nB: 2\r\n\r\n"
    assert c.cmd("TOP 1 2") == b"+OK"
    assert c.wire_body() == b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n"
    assert c.cmd("TOP 1 99999999999999999999") == b"+OK"
    assert c.wire_body() == b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\nl4\r\n"
    for bad in ("TOP 1", "TOP 1 -1", "TOP 1 x", "TOP 2 1", "TOP 0 1"):
        assert c.cmd(bad).startswith(b"-ERR"), bad
    c.cmd("QUIT")


def test_uidl_is_stable_across_sessions_restarts_and_a_deleted_index(instance):
    for i in range(3):
        put_message(instance, b"Subject: %d\n\nbody %d\n" % (i, i))
    c = login(instance)
    assert c.cmd("UIDL") == b"+OK"
    first = c.lines()
    assert len(first) == 3 and len(set(l.split()[1] for l in first)) == 3
    for l in first:
        uid = l.split()[1]
        assert 1 <= len(uid) <= 70 and all(0x21 <= b <= 0x7e for b in uid)
    assert c.cmd("UIDL 2") == b"+OK " + first[1]
    c.cmd("QUIT")

    c = login(instance)
    c.cmd("UIDL")
    assert c.lines() == first
    c.cmd("QUIT")

    pids = pop3d_pids(instance)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    c = connect_retry(instance)
    login(instance, c)
    c.cmd("UIDL")
    assert c.lines() == first
    c.cmd("QUIT")
    assert c.at_eof()

    maildir = instance.maildir(instance.demo_user)
    os.unlink(os.path.join(maildir, "postern-index.lmdb"))
    c = login(instance)
    c.cmd("UIDL")
    assert c.lines() == first
    c.cmd("QUIT")
    assert os.path.exists(os.path.join(maildir, "postern-index.lmdb"))
    instance.wait_log(r"mailbox index .*postern-index\.lmdb was missing, rebuilt")


# ---- UPDATE state ----

def test_dele_rset_and_quit_remove_only_marked_messages(instance):
    names = [put_message(instance, b"Subject: m%d\n\nx\n" % i) for i in range(3)]
    c = login(instance)
    stat = c.cmd("STAT")
    n, total = map(int, stat.split()[1:])
    assert n == 3
    size1 = int(c.cmd("LIST 1").split()[2])
    assert c.cmd("DELE 1") == b"+OK Marked to be deleted."
    assert c.cmd("STAT") == b"+OK 2 %d" % (total - size1)
    assert c.cmd("LIST 1").startswith(b"-ERR")
    assert c.cmd("RETR 1").startswith(b"-ERR")
    assert c.cmd("DELE 1").startswith(b"-ERR")
    assert c.cmd("UIDL 1").startswith(b"-ERR")
    c.cmd("LIST")
    assert [l.split()[0] for l in c.lines()] == [b"2", b"3"]
    assert c.cmd("RSET") == b"+OK maildrop has 3 messages (%d octets)" % total
    assert c.cmd("STAT") == b"+OK 3 %d" % total
    assert c.cmd("DELE 2") == b"+OK Marked to be deleted."
    assert c.cmd("QUIT") == b"+OK Logging out."
    assert c.at_eof()
    left = sorted(os.path.basename(p).split(":")[0]
                  for p in instance.maildir_files(instance.demo_user))
    assert left == sorted([names[0], names[2]])
    instance.wait_log(r"disconnect: user=<demo@example\.test> top=0 retr=0/0 del=1/3")
    c = login(instance)
    assert c.cmd("STAT").startswith(b"+OK 2 ")
    c.cmd("QUIT")


def test_last_counts_messages_read_in_earlier_sessions(instance):
    for i in range(3):
        put_message(instance, b"Subject: last%d\n\nx\n" % i)
    c = login(instance)
    assert c.cmd("LAST") == b"+OK 0"
    assert c.cmd("RETR 2").startswith(b"+OK")
    c.lines()
    assert c.cmd("LAST") == b"+OK 2"
    assert c.cmd("RSET").startswith(b"+OK")
    assert c.cmd("LAST") == b"+OK 0"
    assert c.cmd("RETR 2").startswith(b"+OK")
    c.lines()
    assert c.cmd("QUIT") == b"+OK Logging out."
    # RFC 1725: the next session starts from what was read before (flag S),
    # and RSET goes back to that, not to 0.
    c = login(instance)
    assert c.cmd("LAST") == b"+OK 2"
    assert c.cmd("RETR 3").startswith(b"+OK")
    c.lines()
    assert c.cmd("LAST") == b"+OK 3"
    assert c.cmd("RSET").startswith(b"+OK")
    assert c.cmd("LAST") == b"+OK 2"
    c.cmd("QUIT")


def test_dropped_connection_deletes_and_moves_nothing(instance):
    for i in range(2):
        put_message(instance, b"Subject: %d\n\nx\n" % i)
    before = instance.maildir_files(instance.demo_user)
    c = login(instance)
    assert c.cmd("DELE 1").startswith(b"+OK")
    assert c.cmd("RETR 2").startswith(b"+OK")
    c.wire_body()
    c.close()
    instance.wait_log(r"disconnect: user=<demo@example\.test> top=0 retr=1/\d+ del=0/2")
    assert instance.maildir_files(instance.demo_user) == before
    c = login(instance)
    assert c.cmd("STAT").startswith(b"+OK 2 ")
    c.cmd("QUIT")


def test_retr_moves_to_cur_with_seen_flag_and_top_only_moves(instance):
    names = [put_message(instance, b"Subject: %d\n\nx\n" % i) for i in range(3)]
    c = login(instance)
    c.cmd("RETR 1")
    c.wire_body()
    c.cmd("TOP 2 0")
    c.wire_body()
    assert c.cmd("LAST") == b"+OK 1"
    assert c.cmd("QUIT") == b"+OK Logging out."
    assert c.at_eof()
    d = instance.maildir(instance.demo_user)
    assert sorted(os.listdir(os.path.join(d, "cur"))) == sorted(
        [names[0] + ":2,S", names[1] + ":2,"])
    assert os.listdir(os.path.join(d, "new")) == [names[2]]


def test_second_session_gets_in_use_until_the_first_quits(instance):
    first = login(instance)
    second = greet(instance)
    assert second.cmd("USER " + instance.demo_user) == b"+OK"
    r = second.cmd("PASS " + instance.demo_password)
    assert r.startswith(b"-ERR [IN-USE]")
    assert first.cmd("QUIT") == b"+OK Logging out."
    assert first.at_eof()
    login(instance, second)
    second.cmd("QUIT")


def test_mail_delivered_during_a_session_shows_in_the_next(instance):
    put_message(instance, b"Subject: old\n\nx\n")
    c = login(instance)
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    instance.send("a@example.org", instance.demo_user, b"Subject: new\r\n\r\nhello\r\n")
    instance.wait_for_maildir(instance.demo_user, 2)
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    c.cmd("QUIT")
    c = login(instance)
    assert c.cmd("STAT").startswith(b"+OK 2 ")
    c.cmd("QUIT")


def test_large_message_streams_and_pipelined_command_follows(instance):
    line = b"x" * 99 + b"\n"
    data = b"Subject: big\n\n" + line * 60000  # ~6 MB
    put_message(instance, data)
    c = login(instance)
    size = int(c.cmd("LIST 1").split()[2])
    assert size == len(data) + data.count(b"\n")
    c.send(b"RETR 1\r\nNOOP\r\n")
    assert c.line() == b"+OK %d octets" % size
    body = c.wire_body()
    assert len(body) == size and body == data.replace(b"\n", b"\r\n")
    assert c.line() == b"+OK"
    c.cmd("QUIT")


def test_pipelined_commands_are_answered_in_order(instance):
    for i in range(2):
        put_message(instance, b"Subject: %d\n\nx\n" % i)
    c = login(instance)
    c.send(b"STAT\r\nLIST\r\nUIDL 1\r\nBOGUS\r\nNOOP\r\nDELE 2\r\nSTAT\r\n")
    assert c.line().startswith(b"+OK 2 ")
    assert c.line().startswith(b"+OK 2 messages")
    assert len(c.lines()) == 2
    assert c.line().startswith(b"+OK 1 ")
    assert c.line().startswith(b"-ERR")
    assert c.line() == b"+OK"
    assert c.line() == b"+OK Marked to be deleted."
    assert c.line().startswith(b"+OK 1 ")
    c.cmd("RSET")
    c.cmd("QUIT")


# ---- TLS ----

def test_stls_and_pop3s_with_certificate_verification(instance):
    ctx = tls_context(instance)
    p = poplib.POP3("127.0.0.1", pop3_port(instance), timeout=10)
    p.stls(context=ctx)
    assert "STLS" not in p.capa()
    p.user(instance.demo_user)
    assert p.pass_(instance.demo_password) == b"+OK Logged in."
    p.quit()
    instance.wait_log(r"login: user=<demo@example\.test>, method=PLAIN, rip=127\.0\.0\.1, tls=yes")

    p = poplib.POP3_SSL("127.0.0.1", pop3s_port(instance), context=ctx, timeout=10)
    assert p.getwelcome() == GREETING
    assert "STLS" not in p.capa()
    p.user(instance.demo_user)
    p.pass_(instance.demo_password)
    assert p.stat() == (0, 0)
    p.quit()

    # STLS twice, and STLS on POP3S, are refused.
    c = greet(instance)
    assert c.cmd("STLS") == b"+OK Begin TLS negotiation now."
    c.wrap(ctx)
    assert c.cmd("STLS").startswith(b"-ERR")
    assert c.cmd("CAPA").startswith(b"+OK")
    assert b"STLS" not in c.lines()
    login(instance, c)
    assert c.cmd("STLS").startswith(b"-ERR")
    c.cmd("QUIT")
    c = Raw(pop3s_port(instance))
    c.wrap(ctx)
    assert c.line() == GREETING
    assert c.cmd("STLS").startswith(b"-ERR")


def test_commands_pipelined_behind_stls_are_discarded(instance):
    ctx = tls_context(instance)
    c = greet(instance)
    c.send("STLS\r\nUSER %s\r\nPASS %s\r\n" % (instance.demo_user, instance.demo_password))
    assert c.line() == b"+OK Begin TLS negotiation now."
    assert c.buf == b""
    c.wrap(ctx)
    # Neither USER nor PASS ran: no replies wait, and no user is set.
    assert c.cmd("PASS x") == b"-ERR No username given."
    assert c.cmd("STAT").startswith(b"-ERR")
    c.cmd("QUIT")


def test_plaintext_refused_outside_mynetworks_until_stls(instance_factory):
    inst = started(instance_factory, mynetworks="192.0.2.0/24", disable_plaintext_auth="yes")
    c = greet(inst)
    assert c.cmd("USER " + inst.demo_user).startswith(b"-ERR [AUTH]")
    assert c.cmd("PASS " + inst.demo_password).startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN").startswith(b"-ERR [AUTH]")
    assert c.cmd("STLS") == b"+OK Begin TLS negotiation now."
    c.wrap(tls_context(inst))
    login(inst, c)
    c.cmd("QUIT")


# ---- AUTH ----

def b64(data):
    return base64.b64encode(data).decode()


def test_auth_plain_and_login_with_and_without_initial_response(instance):
    user, pw = instance.demo_user.encode(), instance.demo_password.encode()
    c = greet(instance)
    assert c.cmd("AUTH") == b"+OK"
    assert c.lines() == [b"PLAIN", b"LOGIN"]
    assert c.cmd("AUTH PLAIN " + b64(b"\0" + user + b"\0" + pw)) == b"+OK Logged in."
    c.cmd("QUIT")

    c = greet(instance)
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(b64(user + b"\0" + user + b"\0" + pw)) == b"+OK Logged in."
    c.cmd("QUIT")

    c = greet(instance)
    assert c.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6"
    assert c.cmd(b64(user)) == b"+ UGFzc3dvcmQ6"
    assert c.cmd(b64(pw)) == b"+OK Logged in."
    c.cmd("QUIT")
    instance.wait_log(r"login: user=<demo@example\.test>, method=LOGIN, rip=127\.0\.0\.1")

    c = greet(instance)
    assert c.cmd("AUTH LOGIN " + b64(user)) == b"+ UGFzc3dvcmQ6"
    assert c.cmd(b64(pw)) == b"+OK Logged in."
    c.cmd("QUIT")

    c = greet(instance)
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("*").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("!!notbase64!!").startswith(b"-ERR")
    assert c.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert c.cmd("APOP demo@example.test 0123456789abcdef0123456789abcdef").startswith(b"-ERR")
    login(instance, c)
    c.cmd("QUIT")


def test_failed_login_is_delayed_and_logged(instance):
    c = greet(instance)
    assert c.cmd("USER " + instance.demo_user) == b"+OK"
    t0 = time.monotonic()
    r = c.cmd("PASS wrong-password")
    elapsed = time.monotonic() - t0
    assert r == b"-ERR [AUTH] Authentication failed."
    assert elapsed >= 1.9, elapsed
    instance.wait_log(r"auth failed: user=<demo@example\.test>, rip=127\.0\.0\.1")
    # The session goes on: USER is needed again, then the right password works.
    assert c.cmd("PASS " + instance.demo_password) == b"-ERR No username given."
    login(instance, c)
    c.cmd("QUIT")


def test_client_is_throttled_after_the_failure_limit(instance_factory):
    inst = started(instance_factory, auth_failure_delay="0s", auth_failure_limit="3")
    c = greet(inst)
    for _ in range(3):
        c.cmd("USER " + inst.demo_user)
        assert c.cmd("PASS nope") == b"-ERR [AUTH] Authentication failed."
    c.cmd("USER " + inst.demo_user)
    r = c.cmd("PASS " + inst.demo_password)
    assert r.startswith(b"-ERR [AUTH]") and b"Too many" in r
    other = greet(inst)
    assert other.cmd("AUTH PLAIN " + b64(b"\0" + inst.demo_user.encode() + b"\0" +
                                         inst.demo_password.encode())).startswith(b"-ERR")
    inst.wait_log(r"too many authentication failures from 127\.0\.0\.1")


# ---- bad input ----

def test_line_limit_unknown_commands_wrong_state_and_nul(instance):
    put_message(instance, b"Subject: x\n\nx\n")
    c = greet(instance)
    # 255 octets with CRLF is the longest legal line; one more is refused
    # and skipped without killing the session.
    assert c.cmd("USER " + "a" * 248) == b"+OK"
    assert c.cmd("USER " + "a" * 249) == b"-ERR Input line too long."
    assert c.cmd("X" * 100000).startswith(b"-ERR Input line too long.")
    assert c.cmd("NOOP") == b"-ERR Command not valid in this state."
    assert c.cmd("STAT") == b"-ERR Command not valid in this state."
    assert c.cmd("XYZZY") == b"-ERR Unknown command."
    assert c.cmd(b"US\0ER x") == b"-ERR NUL character in command."
    assert c.cmd("") == b"-ERR Empty command."
    login(instance, c)   # 7 errors so far: pop3d_error_limit is 10
    assert c.cmd("USER x") == b"-ERR Command not valid in this state."
    assert c.cmd("STLS") == b"-ERR Command not valid in this state."
    c.cmd("QUIT")
    # Bad message numbers, in fresh sessions (each is an error).
    bad = ["RETR 0", "RETR -1", "RETR abc", "RETR 2", "RETR 1.5", "RETR",
           "RETR 99999999999999999999", "LIST 0", "DELE 7", "RETR 1 2", "TOP 1",
           "UIDL +1", "DELE 1 1"]
    for chunk in (bad[:7], bad[7:]):
        c = login(instance)
        for cmd in chunk:
            assert c.cmd(cmd).startswith(b"-ERR"), cmd
        assert c.cmd("DELE 1") == b"+OK Marked to be deleted."
        assert c.cmd("RETR 1").startswith(b"-ERR")
        assert c.cmd("STAT") == b"+OK 0 0"
        c.cmd("RSET")
        assert c.cmd("STAT").startswith(b"+OK 1 ")
        c.cmd("QUIT")


def test_error_limit_disconnects(instance):
    c = greet(instance)
    for i in range(10):
        assert c.cmd("BOGUS%d" % i) == b"-ERR Unknown command."
    assert c.at_eof()
    instance.wait_log(r"too many errors: rip=127\.0\.0\.1")


def test_idle_client_is_disconnected_after_pop3d_timeout(instance_factory):
    inst = started(instance_factory, pop3d_timeout="2s")
    c = greet(inst)
    t0 = time.monotonic()
    assert c.line() == b"-ERR Disconnected for inactivity."
    assert c.at_eof()
    assert 1.5 <= time.monotonic() - t0 < 6
    inst.wait_log(r"timeout: rip=127\.0\.0\.1")


def test_clients_over_the_session_limit_get_err_server_busy(instance_factory):
    inst = started(instance_factory, pop3d_session_limit="20")
    held = [greet(inst) for _ in range(20)]
    extra = Raw(pop3_port(inst))
    assert extra.line() == b"-ERR [SYS/TEMP] Server busy, try again later."
    assert extra.at_eof()
    inst.wait_log(r"session limit 20 reached")
    held[0].cmd("QUIT")
    assert held[0].at_eof()
    deadline = time.monotonic() + 5
    while True:
        c = Raw(pop3_port(inst))
        first = c.line()
        if first == GREETING or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert first == GREETING
    login(inst, c)
    c.cmd("QUIT")


def test_thousand_parallel_connections_are_served_or_refused(instance):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 1100:
        pytest.skip("RLIMIT_NOFILE hard limit %d too low" % hard)
    port = pop3_port(instance)
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, bytearray())
        pending = set(socks)
        answers = {}
        deadline = time.monotonic() + 60
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
                if b"\r\n" in key.data or not data:
                    answers[s] = bytes(key.data)
                    pending.discard(s)
                    sel.unregister(s)
        assert not pending, "%d connections got no answer" % len(pending)
        greeted = sum(1 for a in answers.values() if a.startswith(GREETING))
        refused = sum(1 for a in answers.values() if a.startswith(b"-ERR"))
        assert greeted + refused == 1000, set(answers.values())
        assert greeted > 0
    finally:
        for s in socks:
            s.close()
        sel.close()
    c = login(instance)
    assert c.cmd("STAT") == b"+OK 0 0"
    c.cmd("QUIT")
