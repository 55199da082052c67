"""smtpd restriction lists (lib/policy), content checks (lib/content_filter)
and the open-relay matrix (issue 6), against real instances: raw sockets and
smtplib, a dnsmasq for RBL / RHSBL zones and unknown domains."""

import base64
import os
import socket
import time

import pytest
from smtp_raw import Raw

ALICE = "alice@example.test"
BOB = "bob@example.test"


def starttls(r, helo="client.test"):
    assert r.one("EHLO " + helo).startswith("250")
    assert r.one("STARTTLS").startswith("220")
    r.wrap()
    assert r.one("EHLO " + helo).startswith("250")


def auth_plain(r, user, password):
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return r.one("AUTH PLAIN " + token)


def send_data(r, body):
    assert r.one("DATA").startswith("354")
    r.send(body.replace("\n", "\r\n").encode() + b"\r\n.\r\n")
    return r.reply()[-1]


def queue_ids(inst, sub):
    d = os.path.join(inst.dir, "queue", sub)
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def queued_text(inst):
    """All queue files' bytes (every queue directory)."""
    out = b""
    for sub in ("incoming", "active", "deferred", "hold", "maildrop"):
        d = os.path.join(inst.dir, "queue", sub)
        if not os.path.isdir(d):
            continue
        for root, _dirs, files in os.walk(d):
            for n in files:
                try:
                    with open(os.path.join(root, n), "rb") as f:
                        out += f.read()
                except OSError:
                    pass
    return out


def delivered(inst, address, marker, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        for path in inst.maildir_files(address):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if marker in text:
                return text
        if time.monotonic() > deadline:
            raise AssertionError("%r not delivered to %s\n%s" % (
                marker, address, inst.maillog()[-3000:]))
        time.sleep(0.05)


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


def write(inst, name, text):
    path = os.path.join(inst.etc, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- the open-relay matrix ----

TRICKS = [
    "u@elsewhere.example",
    "u%elsewhere.example@example.test",
    "elsewhere.example!u@example.test",
    '"u@elsewhere.example"@example.test',
    "@example.test:u@elsewhere.example",
    "@example.test,@mail.example.test:u@elsewhere.example",
]


@pytest.fixture
def outside(instance_factory):
    """127.0.0.1 is outside mynetworks; alice and bob can log in."""
    inst = instance_factory(start=False, users=(ALICE, BOB),
                            main_cf={"mynetworks": "127.0.0.2/32"})
    inst.start()
    wait_port(inst.submission_port)
    return inst


def test_open_relay_matrix_outside_mynetworks(outside):
    inst = outside
    # Port 25, unauthenticated, from outside mynetworks: nothing foreign.
    r = Raw(inst.smtp_port)
    assert r.one("EHLO client.test").startswith("250")
    assert r.one("MAIL FROM:<x@remote.example>") == "250 2.1.0 Ok"
    for rcpt in TRICKS:
        reply = r.one("RCPT TO:<%s>" % rcpt)
        assert reply.startswith("554 5.7.1 <") and reply.endswith(": Relay access denied"), \
            (rcpt, reply)
    # A quoted local part with an @ and a trailing-dot domain: refused too
    # (5xx: relay denied or bad syntax), never 250.
    for rcpt in ['"u@elsewhere.example"@[127.0.0.1]', "u@elsewhere.example."]:
        assert r.one("RCPT TO:<%s>" % rcpt)[0] == "5", rcpt
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    assert send_data(r, "Subject: matrix-outside\n\nbody").startswith("250 2.0.0 Ok: queued as")
    r.one("QUIT")
    inst.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                  r"<u@elsewhere\.example>: Relay access denied; from=<x@remote\.example> "
                  r"to=<u@elsewhere\.example> proto=ESMTP helo=<client\.test>")
    delivered(inst, inst.demo_user, "matrix-outside")

    # Submission without AUTH: not even our own domain.
    r = Raw(inst.submission_port)
    starttls(r)
    assert r.one("MAIL FROM:<%s>" % ALICE) == "250 2.1.0 Ok"
    for rcpt in TRICKS + [inst.demo_user]:
        reply = r.one("RCPT TO:<%s>" % rcpt)
        assert reply.startswith("554 5.7.1 <"), (rcpt, reply)
    r.one("QUIT")

    # Submission with AUTH over STARTTLS: relaying is the point.
    r = Raw(inst.submission_port)
    starttls(r)
    assert auth_plain(r, ALICE, inst.passwords[ALICE]).startswith("235")
    assert r.one("MAIL FROM:<%s>" % ALICE) == "250 2.1.0 Ok"
    assert r.one("RCPT TO:<friend@elsewhere.example>") == "250 2.1.5 Ok"
    assert send_data(r, "Subject: relayed-by-auth\n\nbody").startswith("250")
    r.one("QUIT")
    inst.wait_log(r"to=<friend@elsewhere\.example>.*status=deferred")
    # Nothing but the authenticated relay names a foreign domain in the queue.
    text = queued_text(inst)
    assert text.count(b"elsewhere.example") == text.count(b"friend@elsewhere.example")
    assert b"u@elsewhere.example" not in text and b"u%elsewhere" not in text


def test_open_relay_from_mynetworks(instance):
    inst = instance
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<x@remote.example>")
    # Trusted clients may relay plainly addressed mail ...
    assert r.one("RCPT TO:<u@elsewhere.example>") == "250 2.1.5 Ok"
    # ... but routing tricks to our domain stay local (unknown local users).
    for rcpt in TRICKS[1:4]:
        reply = r.one("RCPT TO:<%s>" % rcpt)
        assert reply.startswith("550 5.1.1") and "User unknown" in reply, (rcpt, reply)
    r.one("QUIT")


# ---- restrictions ----

@pytest.fixture
def dns(dnsmasq_factory):
    txt = b"Listed for testing"
    txt_hex = "%02x" % len(txt) + txt.hex()
    return dnsmasq_factory([
        ("MX", "remote.test", "mx.remote.test", 10),
        ("A", "mx.remote.test", "127.0.0.9"),
        ("A", "1.0.0.127.rbl.test", "127.0.0.2"),
        ("RR", "1.0.0.127.rbl.test", 16, txt_hex),
        ("A", "spammer.test.rhsbl.test", "127.0.0.2"),
        ("MX", "spammer.test", "mx.remote.test", 10),
    ])


def test_helo_sender_recipient_dns_restrictions(instance_factory, dns):
    inst = instance_factory(dns_servers=dns.server, main_cf={
        "smtpd_helo_restrictions": "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
        "smtpd_sender_restrictions": "reject_non_fqdn_sender, reject_unknown_sender_domain, "
                                     "reject_rhsbl_sender rhsbl.test",
        "smtpd_recipient_restrictions": "reject_non_fqdn_recipient, "
                                        "reject_unknown_recipient_domain, "
                                        "reject_unlisted_recipient",
        "dns_timeout": "2s", "dns_tries": "1",
    })

    def attempt(helo, sender, rcpt):
        r = Raw(inst.smtp_port)
        assert r.one("EHLO " + helo).startswith("250")   # delayed to RCPT
        assert r.one("MAIL FROM:<%s>" % sender) == "250 2.1.0 Ok"
        reply = r.one("RCPT TO:<%s>" % rcpt)
        r.close()
        return reply

    ok = ("client.remote.test", "a@remote.test", inst.demo_user)
    assert attempt(*ok) == "250 2.1.5 Ok"
    assert attempt("bad_helo!", ok[1], ok[2]) == \
        "501 5.5.2 <bad_helo!>: Helo command rejected: Invalid name"
    assert attempt("nodots", ok[1], ok[2]) == \
        "504 5.5.2 <nodots>: Helo command rejected: need fully-qualified hostname"
    assert attempt(ok[0], "a", ok[2]) == \
        "504 5.5.2 <a>: Sender address rejected: need fully-qualified address"
    assert attempt(ok[0], "a@nxdomain.test", ok[2]) == \
        "450 4.1.8 <a@nxdomain.test>: Sender address rejected: Domain not found"
    reply = attempt(ok[0], "a@spammer.test", ok[2])
    assert reply.startswith("554 5.7.1 Service unavailable; Sender address "
                            "[spammer.test] blocked using rhsbl.test"), reply
    assert attempt(ok[0], ok[1], "x@nxdomain.test") == \
        "450 4.1.2 <x@nxdomain.test>: Recipient address rejected: Domain not found"
    assert attempt(ok[0], ok[1], "nobody") == \
        "504 5.5.2 <nobody>: Recipient address rejected: need fully-qualified address"
    assert attempt(ok[0], ok[1], "nobody@example.test") == (
        "550 5.1.1 <nobody@example.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table")
    inst.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 450 4\.1\.8 "
                  r"<a@nxdomain\.test>: Sender address rejected: Domain not found; "
                  r"from=<a@nxdomain\.test> to=<demo@example\.test> proto=ESMTP "
                  r"helo=<client\.remote\.test>")


def test_rbl_client_with_template_and_txt(instance_factory, dns):
    inst = instance_factory(dns_servers=dns.server, main_cf={
        "smtpd_client_restrictions": "reject_rbl_client rbl.test",
        "dns_timeout": "2s", "dns_tries": "1",
    })
    r = Raw(inst.smtp_port)
    r.one("EHLO client.remote.test")
    r.one("MAIL FROM:<a@remote.test>")
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == (
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using rbl.test; "
        "Listed for testing")
    r.close()
    inst.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 Service "
                  r"unavailable; Client host \[127\.0\.0\.1\] blocked using rbl\.test; "
                  r"Listed for testing; from=<a@remote\.test>")


SENDER_TABLE = """\
reject@remote.test REJECT sender text here
defer@remote.test DEFER
discard@remote.test DISCARD
hold@remote.test HOLD
code@remote.test 550 5.7.9 numbered reason
permit@remote.test permit
reject2@remote.test reject
dip@remote.test defer_if_permit
ok@remote.test OK
defer2@remote.test defer
"""


@pytest.fixture
def access(instance_factory):
    inst = instance_factory(start=False)
    helo_warn = write(inst, "helo_warn.pcre", "/^soft\\.helo\\.test$/ REJECT soft helo\n")
    helo = write(inst, "helo.pcre", "/^bad\\.helo\\.test$/ REJECT helo go away\n"
                                    "/^ok\\.helo\\.test$/ OK\n")
    senders = write(inst, "senders", SENDER_TABLE)
    inst.run("postmap", "lmdb:" + senders, check=True)
    inst.set_params(
        smtpd_client_restrictions="check_client_access inline:{ "
                                  "{127.0.0.1 = PREPEND X-Client-Tag: inline-hit} }",
        smtpd_helo_restrictions="warn_if_reject, check_helo_access pcre:%s, "
                                "check_helo_access pcre:%s" % (helo_warn, helo),
        smtpd_sender_restrictions="check_sender_access lmdb:%s" % senders,
        smtpd_recipient_restrictions="check_recipient_access inline:{ "
                                     "{blocked@example.test = REJECT recipient blocked} }",
    )
    inst.start()
    return inst


def _try(inst, sender, helo="client.test", rcpt=None):
    r = Raw(inst.smtp_port)
    r.one("EHLO " + helo)
    assert r.one("MAIL FROM:<%s>" % sender) == "250 2.1.0 Ok"
    return r, r.one("RCPT TO:<%s>" % (rcpt or inst.demo_user))


def test_access_tables_and_actions(access):
    inst = access
    expect = {
        "reject@remote.test":
            "554 5.7.1 <reject@remote.test>: Sender address rejected: sender text here",
        "defer@remote.test":
            "450 4.7.1 <defer@remote.test>: Sender address rejected: Access denied",
        "code@remote.test":
            "550 5.7.9 <code@remote.test>: Sender address rejected: numbered reason",
        "reject2@remote.test":
            "554 5.7.1 <reject2@remote.test>: Sender address rejected: Access denied",
        # The DEFER_IF_PERMIT action without text (Postfix's words).
        "dip@remote.test":
            "450 4.7.1 <dip@remote.test>: Sender address rejected: Access denied",
        "defer2@remote.test":
            "450 4.7.1 <defer2@remote.test>: Sender address rejected: Access denied",
        "permit@remote.test": "250 2.1.5 Ok",
        "ok@remote.test": "250 2.1.5 Ok",
    }
    for sender, want in expect.items():
        r, reply = _try(inst, sender)
        r.close()
        assert reply == want, (sender, reply)
    # check_recipient_access inline: REJECT text.
    r, reply = _try(inst, "ok@remote.test", rcpt="blocked@example.test")
    assert reply == "554 5.7.1 <blocked@example.test>: Recipient address rejected: " \
                    "recipient blocked"
    r.close()
    # check_helo_access pcre: REJECT; warn_if_reject only logs.
    r, reply = _try(inst, "ok@remote.test", helo="bad.helo.test")
    assert reply == "554 5.7.1 <bad.helo.test>: Helo command rejected: helo go away"
    r.close()
    r, reply = _try(inst, "ok@remote.test", helo="soft.helo.test")
    assert reply == "250 2.1.5 Ok"
    r.close()
    inst.wait_log(r"NOQUEUE: reject_warning: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                  r"<soft\.helo\.test>: Helo command rejected: soft helo")

    # OK + PREPEND from check_client_access inline: delivered with the header
    # after our Received:.
    r, reply = _try(inst, "ok@remote.test")
    assert reply == "250 2.1.5 Ok"
    # The client list runs again at this RCPT: its PREPEND is kept once.
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    assert send_data(r, "Subject: policy-ok\n\nbody").startswith("250 2.0.0 Ok: queued as")
    r.close()
    text = delivered(inst, inst.demo_user, "policy-ok")
    head = text.split("\n\n", 1)[0]
    assert head.count("X-Client-Tag: inline-hit") == 1
    assert head.index("Received: from client.test") < head.index("X-Client-Tag: inline-hit") \
        < head.index("Subject: policy-ok")

    # DISCARD: 250 at RCPT and at the end, nothing delivered.
    r, reply = _try(inst, "discard@remote.test")
    assert reply == "250 2.1.5 Ok"
    final = send_data(r, "Subject: policy-discard\n\nbody")
    assert final.startswith("250 2.0.0 Ok: queued as")
    r.close()
    inst.wait_log(r"NOQUEUE: discard: RCPT from localhost\[127\.0\.0\.1\]: "
                  r"<discard@remote\.test>: Sender address triggers DISCARD action")

    # HOLD: the message waits in hold/, mailq shows it.
    r, reply = _try(inst, "hold@remote.test")
    assert reply == "250 2.1.5 Ok"
    final = send_data(r, "Subject: policy-hold\n\nbody")
    r.close()
    qid = final.rsplit(" ", 1)[1]
    assert qid in queue_ids(inst, "hold")
    mailq = inst.run("mailq", check=True).stdout
    assert qid in mailq and "hold@remote.test" in mailq
    inst.wait_log(r"NOQUEUE: hold: RCPT from localhost\[127\.0\.0\.1\]: <hold@remote\.test>: "
                  r"Sender address triggers HOLD action")
    time.sleep(0.5)
    assert not any("policy-discard" in open(p, errors="replace").read()
                   for p in inst.maildir_files(inst.demo_user))
    assert not any("policy-hold" in open(p, errors="replace").read()
                   for p in inst.maildir_files(inst.demo_user))


def test_delay_reject_no_connect_and_helo_stages(instance_factory):
    inst = instance_factory(main_cf={
        "smtpd_delay_reject": "no",
        "smtpd_client_restrictions":
            "check_client_access inline:{ {127.0.0.1 = REJECT go away} }",
    })
    r = Raw(inst.smtp_port)
    assert r.greeting == ["554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: go away"]
    assert r.one("EHLO client.test") == \
        "503 5.7.0 Error: access denied for localhost[127.0.0.1]"
    assert r.one("MAIL FROM:<a@remote.test>") == \
        "503 5.7.0 Error: access denied for localhost[127.0.0.1]"
    assert r.one("QUIT") == "221 2.0.0 Bye"
    inst.wait_log(r"NOQUEUE: reject: CONNECT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                  r"<localhost\[127\.0\.0\.1\]>: Client host rejected: go away")


def test_delay_reject_no_helo_and_sender_at_their_stage(instance_factory):
    inst = instance_factory(main_cf={
        "smtpd_delay_reject": "no",
        "smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname",
        "smtpd_sender_restrictions": "reject_non_fqdn_sender",
    })
    r = Raw(inst.smtp_port)
    assert r.one("EHLO nodots") == \
        "504 5.5.2 <nodots>: Helo command rejected: need fully-qualified hostname"
    assert r.one("EHLO client.test").startswith("250")
    assert r.one("MAIL FROM:<a>") == \
        "504 5.5.2 <a>: Sender address rejected: need fully-qualified address"
    assert r.one("MAIL FROM:<a@remote.test>") == "250 2.1.0 Ok"
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    r.one("QUIT")


def test_reject_unauth_pipelining_at_data(instance_factory):
    inst = instance_factory(main_cf={"smtpd_data_restrictions": "reject_unauth_pipelining"})
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<a@remote.test>")
    r.one("RCPT TO:<%s>" % inst.demo_user)
    # The body right behind DATA, without waiting for the 354.
    r.send(b"DATA\r\nSubject: smuggled\r\n\r\nbody\r\n.\r\n")
    assert r.reply() == ["503 5.5.0 <DATA>: Data command rejected: "
                         "Improper use of SMTP command pipelining"]
    r.close()
    inst.wait_log(r"NOQUEUE: reject: DATA from localhost\[127\.0\.0\.1\]: 503 5\.5\.0 <DATA>")
    # A client that waits is fine.
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<a@remote.test>")
    r.one("RCPT TO:<%s>" % inst.demo_user)
    assert send_data(r, "Subject: patient\n\nbody").startswith("250 2.0.0 Ok")
    r.close()


def test_sender_login_mismatch_on_submission(instance_factory):
    inst = instance_factory(start=False, users=(ALICE, BOB), main_cf={
        "smtpd_sender_login_maps":
            "inline:{ {alice@example.test = alice@example.test}, "
            "{bob@example.test = bob@example.test} }",
        "smtpd_sender_restrictions": "reject_sender_login_mismatch",
    })
    inst.start()
    wait_port(inst.submission_port)
    r = Raw(inst.submission_port)
    starttls(r)
    assert auth_plain(r, ALICE, inst.passwords[ALICE]).startswith("235")
    assert r.one("MAIL FROM:<%s>" % BOB) == "250 2.1.0 Ok"   # delayed to RCPT
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == (
        "553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user "
        "alice@example.test")
    assert r.one("RSET") == "250 2.0.0 Ok"
    assert r.one("MAIL FROM:<%s>" % ALICE) == "250 2.1.0 Ok"
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    r.one("QUIT")


def test_defer_if_permit_and_warn_if_reject_restrictions(instance_factory):
    inst = instance_factory(main_cf={
        "smtpd_recipient_restrictions":
            "check_recipient_access inline:{ {demo@example.test = OK} }, "
            "warn_if_reject, reject, defer_if_permit"})
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<a@remote.test>")
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    assert r.one("RCPT TO:<u@elsewhere.example>") == (
        "450 4.7.0 <u@elsewhere.example>: Recipient address rejected: "
        "defer_if_permit requested")
    r.close()
    inst.wait_log(r"NOQUEUE: reject_warning: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                  r"<u@elsewhere\.example>: Recipient address rejected: Access denied")


def test_restriction_configuration_error(instance_factory):
    inst = instance_factory(main_cf={
        "smtpd_recipient_restrictions": "permit_mynetworks, rejectt_typo"})
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<a@remote.test>")
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "451 4.3.5 Server configuration error"
    r.close()
    inst.wait_log(r"warning: smtpd restriction problem: smtpd_recipient_restrictions: .*rejectt_typo")


# ---- content checks ----

HEADER_CHECKS = r"""/^Subject: reject-me/ REJECT content rejected here
/^Subject: discard-me/ DISCARD
/^Subject: hold-me/ HOLD held by header
/^Subject: warn-me/ WARN warned by header
/^X-Drop-Me:/ IGNORE
/^Subject: prepend-me/ PREPEND X-Prepended: yes
/^Subject: replace-me(.*)/ REPLACE Subject: replaced$1
/^Received: from client\.test/ WARN saw our Received
"""
MIME_CHECKS = r"""/^Content-Disposition:.*evil\.exe/ REJECT bad attachment
"""
NESTED_CHECKS = r"""/^Subject: nested-bad/ REJECT nested rejected
"""
BODY_CHECKS = r"""/^BODY-REJECT/ REJECT body rejected
/^body-replace/ REPLACE body replaced
/^body-ignore/ IGNORE
"""


@pytest.fixture
def content(instance_factory):
    inst = instance_factory(start=False)
    inst.set_params(
        header_checks="pcre:" + write(inst, "header_checks.pcre", HEADER_CHECKS),
        mime_header_checks="pcre:" + write(inst, "mime_checks.pcre", MIME_CHECKS),
        nested_header_checks="pcre:" + write(inst, "nested_checks.pcre", NESTED_CHECKS),
        body_checks="pcre:" + write(inst, "body_checks.pcre", BODY_CHECKS),
        message_size_limit="20000",
    )
    inst.start()
    return inst


def _deliver(inst, body):
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    r.one("MAIL FROM:<a@remote.test>")
    assert r.one("RCPT TO:<%s>" % inst.demo_user) == "250 2.1.5 Ok"
    reply = send_data(r, body)
    assert r.one("NOOP") == "250 2.0.0 Ok"
    r.close()
    return reply


MULTIPART = """Subject: %s
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BB"

--BB
Content-Type: text/plain

hello
--BB
Content-Type: %s
%s
%s
--BB--
"""


def test_content_checks(content):
    inst = content
    before = set(queue_ids(inst, "incoming") + queue_ids(inst, "active"))
    assert _deliver(inst, "Subject: reject-me now\n\nbody") == "550 5.7.1 content rejected here"
    assert _deliver(inst, "Subject: fine\n\nBODY-REJECT this") == "550 5.7.1 body rejected"
    att = MULTIPART % ("att", "application/octet-stream",
                       'Content-Disposition: attachment; filename="evil.exe"\n', "AAAA")
    assert _deliver(inst, att) == "550 5.7.1 bad attachment"
    nested = MULTIPART % ("nest", "message/rfc822", "",
                          "Subject: nested-bad\nFrom: x@y.test\n\ninner body")
    assert _deliver(inst, nested) == "550 5.7.1 nested rejected"
    inst.wait_log(r"\w+: reject: header Subject: reject-me now from localhost\[127\.0\.0\.1\]; "
                  r"from=<a@remote\.test> to=<demo@example\.test> proto=ESMTP "
                  r"helo=<client\.test>: 5\.7\.1 content rejected here")
    assert queue_ids(inst, "tmp") == []
    # message_size_limit still holds on the bytes received (and on SIZE=).
    assert _deliver(inst, "Subject: big\n\n" + ("x" * 998 + "\n") * 25) == \
        "552 5.3.4 Error: message file too big"
    r = Raw(inst.smtp_port)
    r.one("EHLO client.test")
    assert r.one("MAIL FROM:<a@remote.test> SIZE=30000") == \
        "552 5.3.4 Message size exceeds fixed limit"
    r.close()
    assert queue_ids(inst, "tmp") == []

    assert _deliver(inst, "Subject: discard-me\n\nbody").startswith("250 2.0.0 Ok: queued as")
    inst.wait_log(r"\w+: discard: header Subject: discard-me from localhost")
    held = _deliver(inst, "Subject: hold-me\n\nbody")
    assert held.rsplit(" ", 1)[1] in queue_ids(inst, "hold")

    edited = ("Subject: replace-me please\nX-Drop-Me: secret\nX-Keep: kept\n"
              "X-Other: prepend-me\nSubject: prepend-me too\nSubject: warn-me\n\n"
              "body-replace this line\nbody-ignore this line\nlast line\n")
    assert _deliver(inst, edited).startswith("250")
    text = delivered(inst, inst.demo_user, "Subject: replaced please")
    assert "X-Drop-Me" not in text and "X-Keep: kept" in text
    assert "X-Prepended: yes\nSubject: prepend-me too" in text
    assert "body replaced\n" in text and "body-ignore" not in text and "last line" in text
    inst.wait_log(r"\w+: warning: header Subject: warn-me from localhost\[127\.0\.0\.1\];.*"
                  r": warned by header")
    inst.wait_log(r"\w+: warning: header Received: from client\.test.*: saw our Received")
    time.sleep(0.3)
    for p in inst.maildir_files(inst.demo_user):
        body = open(p, errors="replace").read()
        assert "discard-me" not in body and "hold-me" not in body
    assert not (set(queue_ids(inst, "incoming")) - before - set([held.rsplit(" ", 1)[1]]))
