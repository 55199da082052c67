"""smtpd abuse limits (issue 6): per-client connection count and rate,
message, recipient and AUTH rates (lib/anvil) with their exemptions,
pre-greeting talkers (smtpd_greet_wait) and slow clients (smtpd_timeout per
command line, a minimum rate in DATA)."""

import base64
import socket
import time

import pytest
from smtp_raw import Raw

ALICE = "alice@example.test"
# 127.0.0.1 (the tests' client) is NOT exempt with this value.
NOT_US = "192.0.2.0/24"


def wait_port(port):
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---- anvil ----

def test_connection_count_limit(instance_factory):
    inst = instance_factory(main_cf={"smtpd_client_connection_count_limit": "2",
                                     "smtpd_client_event_limit_exceptions": NOT_US})
    # inst.start()'s port probe holds a slot until smtpd sees it close.
    inst.wait_log(r"disconnect from localhost\[127\.0\.0\.1\]")
    a, b = Raw(inst.smtp_port), Raw(inst.smtp_port)
    c = Raw(inst.smtp_port)
    assert c.greeting == ["421 4.7.0 mail.example.test Error: too many connections from "
                          "127.0.0.1"]
    assert c.closed()
    inst.wait_log(r"warning: Connection concurrency limit exceeded: 3 from "
                  r"localhost\[127\.0\.0\.1\] for service smtp")
    # A closed session frees its slot.
    a.one("QUIT")
    a.closed()
    time.sleep(0.2)
    d = Raw(inst.smtp_port)
    assert d.greeting[0].startswith("220")
    b.close()
    d.close()


def test_connection_rate_limit(instance_factory):
    inst = instance_factory(main_cf={"smtpd_client_connection_rate_limit": "3",
                                     "smtpd_client_event_limit_exceptions": NOT_US})
    # inst.start() probed the port once or more: those count too.
    greetings = []
    for _ in range(5):
        r = Raw(inst.smtp_port)
        greetings.append(r.greeting[0])
        if r.greeting[0].startswith("220"):
            r.one("QUIT")
        r.close()
    refused = "421 4.7.0 mail.example.test Error: too many connections from 127.0.0.1"
    assert 1 <= greetings.count(refused) and greetings[-1] == refused, greetings
    first = greetings.index(refused)
    assert all(g.startswith("220") for g in greetings[:first]) and first <= 3
    assert all(g == refused for g in greetings[first:])
    inst.wait_log(r"warning: Connection rate limit exceeded: 4 from localhost\[127\.0\.0\.1\] "
                  r"for service smtp")


def test_message_and_recipient_rate_limits(instance_factory):
    inst = instance_factory(main_cf={"smtpd_client_message_rate_limit": "2",
                                     "smtpd_client_recipient_rate_limit": "3",
                                     "smtpd_client_event_limit_exceptions": NOT_US})
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    assert r.one("MAIL FROM:<a@remote.test>") == "250 2.1.0 Ok"
    for i in range(3):
        assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == \
        "450 4.7.1 Error: too many recipients from 127.0.0.1"
    assert r.one("RSET") == "250 2.0.0 Ok"
    assert r.one("MAIL FROM:<a@remote.test>") == "250 2.1.0 Ok"
    assert r.one("RSET") == "250 2.0.0 Ok"
    assert r.one("MAIL FROM:<a@remote.test>") == \
        "450 4.7.1 Error: too much mail from 127.0.0.1"
    r.close()
    inst.wait_log(r"warning: Message delivery request rate limit exceeded: 3 from "
                  r"localhost\[127\.0\.0\.1\] for service smtp")
    inst.wait_log(r"warning: Recipient address rate limit exceeded: 4 from "
                  r"localhost\[127\.0\.0\.1\] for service smtp")


def test_auth_rate_limit_on_submission(instance_factory):
    inst = instance_factory(start=False, users=(ALICE,), main_cf={
        "smtpd_client_auth_rate_limit": "2",
        "smtpd_client_event_limit_exceptions": NOT_US,
        "auth_failure_delay": "0s"})
    inst.start()
    wait_port(inst.submission_port)
    r = Raw(inst.submission_port)
    r.one("EHLO client.test")
    assert r.one("STARTTLS").startswith("220")
    r.wrap()
    r.one("EHLO client.test")
    bad = base64.b64encode(b"\0" + ALICE.encode() + b"\0wrong").decode()
    for _ in range(2):
        assert r.one("AUTH PLAIN " + bad).startswith("535 5.7.8")
    assert r.one("AUTH PLAIN " + bad) == "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
    # Also a right password is refused while over the rate.
    good = base64.b64encode(b"\0" + ALICE.encode() + b"\0" +
                            inst.passwords[ALICE].encode()).decode()
    assert r.one("AUTH PLAIN " + good) == "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
    r.close()
    inst.wait_log(r"warning: AUTH command rate limit exceeded: 3 from localhost\[127\.0\.0\.1\] "
                  r"for service submission")


def test_limits_exempt_for_mynetworks(instance_factory):
    # smtpd_client_event_limit_exceptions defaults to $mynetworks (127.0.0.0/8).
    inst = instance_factory(main_cf={"smtpd_client_connection_count_limit": "1",
                                     "smtpd_client_connection_rate_limit": "1",
                                     "smtpd_client_message_rate_limit": "1",
                                     "smtpd_client_recipient_rate_limit": "1"})
    sessions = [Raw(inst.smtp_port) for _ in range(3)]
    assert all(s.greeting[0].startswith("220") for s in sessions)
    r = sessions[0]
    r.one("EHLO client.test")
    for _ in range(3):
        assert r.one("MAIL FROM:<a@remote.test>") == "250 2.1.0 Ok"
        assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
        assert r.one("RCPT TO:<x@elsewhere.example>") == "250 2.1.5 Ok"
        assert r.one("RSET") == "250 2.0.0 Ok"
    for s in sessions:
        s.close()


# ---- pre-greeting talkers ----

def test_pregreet_talker_is_dropped(instance_factory):
    inst = instance_factory(main_cf={"smtpd_greet_wait": "1s",
                                     "mynetworks": "127.0.0.2/32"})
    t0 = time.monotonic()
    r = Raw(inst.smtp_port, greeting=False)
    r.send(b"EHLO early.test\r\n")
    assert r.reply() == ["521 5.5.1 Protocol error"]
    assert r.closed()
    assert time.monotonic() - t0 < 3
    inst.wait_log(r"PREGREET 17 after \d+\.\d\d from localhost\[127\.0\.0\.1\]: "
                  r"EHLO early\.test\\r\\n")
    # A client that waits gets the banner after smtpd_greet_wait.
    t0 = time.monotonic()
    r = Raw(inst.smtp_port)
    assert r.greeting[0].startswith("220 ")
    assert time.monotonic() - t0 >= 0.9
    assert r.one("EHLO client.test").startswith("250")
    r.close()


def test_pregreet_wait_skipped_for_mynetworks(instance_factory):
    inst = instance_factory(main_cf={"smtpd_greet_wait": "3s"})
    t0 = time.monotonic()
    r = Raw(inst.smtp_port, greeting=False)
    r.send(b"EHLO early.test\r\n")
    assert r.reply()[0].startswith("220 ")
    assert r.reply()[-1].startswith("250")
    assert time.monotonic() - t0 < 2
    r.close()


# ---- slow clients ----

def trickle(r, data, interval):
    """Sends data one byte per interval until the server closes; returns
    the seconds it took and what came back."""
    t0 = time.monotonic()
    try:
        for i in range(len(data)):
            r.send(data[i:i + 1])
            time.sleep(interval)
            r.sock.settimeout(0.001)
            try:
                d = r.sock.recv(65536)
                if not d:
                    break
                r.buf += d
                if b"421" in r.buf:
                    break
            except (socket.timeout, BlockingIOError):
                pass
            finally:
                r.sock.settimeout(10)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r.closed(5)
    return time.monotonic() - t0, r.buf.decode("utf-8", "replace")


@pytest.fixture
def slow(instance_factory):
    return instance_factory(main_cf={"smtpd_timeout": "3s"})


def test_slowloris_command_line(slow):
    r = Raw(slow.smtp_port)
    took, got = trickle(r, b"EHLO " + b"x" * 40 + b"\r\n", 0.5)
    assert "421 4.4.2 mail.example.test Error: timeout exceeded" in got
    assert took < 5, took
    slow.wait_log(r"timeout after CONNECT from localhost\[127\.0\.0\.1\]")


def test_slowloris_data_body(slow):
    r = Raw(slow.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<a@remote.test>")
    r.one("RCPT TO:<%s>" % slow.demo_user)
    assert r.one("DATA").startswith("354")
    took, got = trickle(r, b"a\r\n" * 40, 0.5)
    assert "421 4.4.2 mail.example.test Error: timeout exceeded" in got
    assert took < 5, took
    slow.wait_log(r"timeout after DATA from localhost\[127\.0\.0\.1\]")


def test_timeout_runs_per_command_line(slow):
    # Complete commands a second apart keep the session for longer than
    # smtpd_timeout: the timer restarts per line.
    r = Raw(slow.smtp_port)
    for _ in range(4):
        assert r.one("NOOP") == "250 2.0.0 Ok"
        time.sleep(1)
    assert r.one("QUIT") == "221 2.0.0 Bye"
