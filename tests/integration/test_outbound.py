"""Outbound mail (issue 5) end to end: real instances, a real dnsmasq, an
aiosmtpd sink, all on loopback.

Topology (conftest.OutboundNet): every SMTP server of a test listens on the
same port P, each on its own loopback address; senders use smtp_tcp_port=P
because MX records carry no port.

    127.0.0.2:P  a.test  (alice@a.test)   myhostname mail.a.test
    127.0.0.3:P  b.test  (bob@b.test)     myhostname mx.b.test
    127.0.0.4:P  the sink (aiosmtpd) unless a test says otherwise
    127.0.0.1:n  dnsmasq with the test's records, no upstream

The contract (BRIEF-OUT): the smtp agent logs
"ID: to=<r>, relay=host[addr]:port, delay=.., delays=.., dsn=X.Y.Z,
status=sent|deferred|bounced (text)"; relay=none when no server was reached.
"""
import os
import re
import time

import pytest

import smtp_peers
from dns_fixture import TYPE_A, TYPE_CNAME, TYPE_MX

pytestmark = pytest.mark.chain

A_ADDR, B_ADDR, SINK_ADDR = "127.0.0.2", "127.0.0.3", "127.0.0.4"

BASE_RECORDS = [
    ("MX", "a.test", "mail.a.test", 10),
    ("A", "mail.a.test", A_ADDR),
    ("MX", "b.test", "mx.b.test", 10),
    ("A", "mx.b.test", B_ADDR),
]


# ---- helpers ----

def message(subject, body=None, extra_headers="", sender="alice@a.test", to="bob@b.test"):
    """A complete message (CRLF): smtpd adds only its Received: header, so
    what arrives can be compared byte for byte."""
    if body is None:
        body = "Hello from %s.\r\nSecond line.\r\n" % subject
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Thu, 27 Nov 2025 07:00:00 +0000\r\n"
            "Message-ID: <%s@a.test>\r\n%s\r\n%s" % (
                sender, to, subject, re.sub(r"\W", "", subject), extra_headers,
                body)).encode("utf-8")


def lf(data):
    return data.replace(b"\r\n", b"\n")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_until(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def queue_file(inst, queue, qid):
    return os.path.join(inst.dir, "queue", queue, qid)


def files_with(inst, address, needle):
    return [p for p in inst.maildir_files(address) if needle in read(p)]


def wait_dsn(inst, address, needle, timeout=15):
    """The bounce notice (multipart/report) in address's Maildir that
    contains needle."""
    found = wait_until(lambda: [p for p in files_with(inst, address, b"multipart/report")
                                if needle in read(p)], timeout)
    assert found, "no DSN with %r for %s\nlog tail:\n%s" % (
        needle, address, inst.maillog()[-3000:])
    return read(found[0])


def received_prefix_ok(prefix, by_host):
    """prefix is exactly one Received: header (CRLF, folded) added by
    by_host's smtpd."""
    text = prefix.decode("ascii")
    return re.fullmatch(r"Received: from [^\r\n]*\r\n(\t[^\r\n]*\r\n)+", text) is not None \
        and ("by %s (Postern)" % by_host) in text


def two_domains(net, b_users=("bob@b.test",), records=(), a_params=None, start_b=True):
    net.dns(BASE_RECORDS + list(records))
    b = net.instance("b.test", B_ADDR, users=b_users, hostname="mx.b.test", start=start_b)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test",
                     main_cf=a_params)
    return a, b


# ---- the fixtures themselves (pass without the smtp agent) ----

def test_fixture_dnsmasq_serves_the_records(dnsmasq_factory):
    d = dnsmasq_factory([
        ("MX", "b.test", "mx.b.test", 10), ("MX", "b.test", "mx2.b.test", 20),
        ("A", "mx.b.test", B_ADDR), ("A", "multi.test", "127.0.0.5", "127.0.0.6"),
        ("MX", "null.test", ".", 0), ("CNAME", "alias.test", "mx.b.test"),
        ("MX", "lit.test", "127.0.0.4", 10),
    ])
    r = d.query("b.test", TYPE_MX)
    assert r["rcode"] == 0 and sorted(a[2] for a in r["answers"]) == [
        (10, "mx.b.test"), (20, "mx2.b.test")]
    assert d.query("b.test", TYPE_MX, tcp=True)["rcode"] == 0
    assert [a[2] for a in d.query("mx.b.test", TYPE_A)["answers"]] == [B_ADDR]
    assert sorted(a[2] for a in d.query("multi.test", TYPE_A)["answers"]) == [
        "127.0.0.5", "127.0.0.6"]
    assert [a[2] for a in d.query("null.test", TYPE_MX)["answers"]] == [(0, ".")]
    alias = d.query("alias.test", TYPE_A)["answers"]
    assert (alias[0][1], alias[0][2]) == (TYPE_CNAME, "mx.b.test")
    assert [a[2] for a in d.query("lit.test", TYPE_MX)["answers"]] == [(10, "127.0.0.4")]
    nodata = d.query("mx.b.test", TYPE_MX)
    assert nodata["rcode"] == 0 and nodata["answers"] == []
    assert d.query("nosuch.test", TYPE_MX)["rcode"] == 3          # NXDOMAIN
    assert d.query("example.com", TYPE_A)["rcode"] == 5           # REFUSED: no upstream


def test_fixture_dnsmasq_truncates_big_answers_over_udp(dnsmasq_factory):
    records = [("MX", "big.test", "mx.b.test", 5), ("A", "mx.b.test", B_ADDR)]
    records += [("MX", "big.test", "h%02d-%s.big.test" % (i, "x" * 50), 20 + i)
                for i in range(20)]
    d = dnsmasq_factory(records)
    udp = d.query("big.test", TYPE_MX)
    tcp = d.query("big.test", TYPE_MX, tcp=True)
    assert udp["tc"] and len(udp["answers"]) < 21
    assert not tcp["tc"] and len(tcp["answers"]) == 21


def test_fixture_instances_share_one_port_on_two_addresses(outbound_net):
    a, b = two_domains(outbound_net)
    assert a.smtp_port == b.smtp_port == outbound_net.port
    assert (a.address, b.address) == (A_ADDR, B_ADDR)
    for inst, user in ((a, "alice@a.test"), (b, "bob@b.test")):
        out = inst.run("postconf", "-h", "dns_servers", "smtp_tcp_port", check=True).stdout
        assert out.split() == [outbound_net.dnsmasq.server, str(outbound_net.port)]
        inst.send(user, [user], message("local " + user, sender=user, to=user))
        files = inst.wait_for_maildir(user, 1)
        assert read(files[0]).endswith(lf(message("local " + user, sender=user, to=user)))


def test_fixture_default_instance_has_a_dead_dns_server(instance):
    out = instance.run("postconf", "-h", "dns_servers", check=True).stdout.strip()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", out)


def test_fixture_sink_records_envelope_and_bytes(sink_factory):
    import smtplib
    from dns_fixture import free_port
    port = free_port(also_tcp=True)
    sink = sink_factory(SINK_ADDR, port)
    sink.rcpt_replies["no@x.test"] = "550 5.1.1 no such user"
    with smtplib.SMTP(SINK_ADDR, port, local_hostname="c.test", timeout=5) as s:
        refused = s.sendmail("a@x.test", ["yes@x.test", "no@x.test"],
                             b"Subject: s\r\n\r\n.dot\r\nline\r\n")
    assert refused == {"no@x.test": (550, b"5.1.1 no such user")}
    t = sink.wait_transactions(1)[0]
    assert (t.mail_from, t.rcpt_tos) == ("a@x.test", ["yes@x.test"])
    assert t.data == b"Subject: s\r\n\r\n.dot\r\nline\r\n"


# ---- delivery by MX ----

def test_alice_to_bob_by_mx_lookup(outbound_net):
    a, b = two_domains(outbound_net)
    P = outbound_net.port
    msg = message("a to b")
    assert a.send("alice@a.test", ["bob@b.test"], msg) == {}
    files = b.wait_for_maildir("bob@b.test", 1, timeout=20)
    data = read(files[0])
    # The original message, byte for byte (Maildir stores LF).
    assert data.endswith(lf(msg))
    header = data[:len(data) - len(lf(msg))]
    assert header.startswith(b"Return-Path: <alice@a.test>\n")
    assert b"\nDelivered-To: bob@b.test\n" in header
    assert header.count(b"Received: ") == 2
    assert b"by mail.a.test (Postern)" in header and b"by mx.b.test (Postern)" in header
    m = a.wait_log(r"(\w+): to=<bob@b\.test>, relay=mx\.b\.test\[127\.0\.0\.3\]:%d, "
                   r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
                   r"status=sent \(250 2\.0\.0 Ok: queued as (\w+)\)" % P)
    remote_id = m.group(2)
    b.wait_log(remote_id + r": to=<bob@b\.test>, relay=local, .*status=sent")
    qid = m.group(1)
    assert wait_until(lambda: not os.path.exists(queue_file(a, "active", qid)))
    assert not os.path.exists(queue_file(a, "deferred", qid))


def test_preferred_mx_down_delivers_via_second(outbound_net):
    # mx1 (preference 5) has an address where nothing listens.
    a, b = two_domains(outbound_net, records=[
        ("MX", "b.test", "mx1.b.test", 5), ("A", "mx1.b.test", "127.0.0.6")])
    P = outbound_net.port
    a.send("alice@a.test", ["bob@b.test"], message("second mx"))
    b.wait_for_maildir("bob@b.test", 1, timeout=20)
    sent = a.wait_log(r"\w+: to=<bob@b\.test>, relay=mx\.b\.test\[127\.0\.0\.3\]:%d, "
                      r".*status=sent" % P)
    failed = re.search(r"connect to mx1\.b\.test\[127\.0\.0\.6\]:%d: Connection refused" % P,
                       a.maillog())
    assert failed, a.maillog()[-3000:]
    assert failed.start() < sent.start()


def test_only_mx_answers_4xx_defers_then_flush_delivers(outbound_net):
    net = outbound_net
    net.dns(BASE_RECORDS + [("MX", "c.test", "mx.c.test", 10), ("A", "mx.c.test", SINK_ADDR)])
    sink = net.sink(SINK_ADDR)
    sink.rcpt_default = "451 4.3.0 try later"
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    P = net.port
    msg = message("deferred then flushed", to="carol@c.test")
    a.send("alice@a.test", ["carol@c.test"], msg)
    m = a.wait_log(r"(\w+): to=<carol@c\.test>, relay=mx\.c\.test\[127\.0\.0\.4\]:%d, "
                   r".*dsn=4\.3\.0, status=deferred \(host mx\.c\.test\[127\.0\.0\.4\] said: "
                   r"451 4\.3\.0 try later \(in reply to RCPT TO command\)\)" % P, timeout=20)
    qid = m.group(1)
    assert wait_until(lambda: os.path.exists(queue_file(a, "deferred", qid)))
    q = a.run("mailq", check=True).stdout
    assert qid in q and "carol@c.test" in q and "451 4.3.0 try later" in q, q
    assert sink.transactions == []

    sink.rcpt_default = "250 2.1.5 Ok"
    started = time.monotonic()
    a.run("postqueue", "-f", check=True)
    t = sink.wait_transactions(1, timeout=10)[0]
    assert time.monotonic() - started < 10
    assert (t.mail_from, t.rcpt_tos) == ("alice@a.test", ["carol@c.test"])
    assert t.data.endswith(msg)
    a.wait_log(qid + r": to=<carol@c\.test>, relay=mx\.c\.test\[127\.0\.0\.4\]:%d, "
               r".*status=sent \(250 2\.0\.0 Ok: queued as SINK1\)" % P)
    assert wait_until(lambda: not os.path.exists(queue_file(a, "deferred", qid)))


def test_550_for_one_of_two_recipients_bounces_only_that_one(outbound_net):
    a, b = two_domains(outbound_net)
    P = outbound_net.port
    a.send("alice@a.test", ["bob@b.test", "nosuch@b.test"], message("one refused"))
    files = b.wait_for_maildir("bob@b.test", 1, timeout=20)
    assert b"Subject: one refused\n" in read(files[0])
    a.wait_log(r"to=<bob@b\.test>, relay=mx\.b\.test\[127\.0\.0\.3\]:%d, .*status=sent" % P)
    m = a.wait_log(r"to=<nosuch@b\.test>, relay=mx\.b\.test\[127\.0\.0\.3\]:%d, .*"
                   r"dsn=5\.1\.1, status=bounced \(host mx\.b\.test\[127\.0\.0\.3\] said: "
                   r"(550 5\.1\.1 [^\n]*) \(in reply to RCPT TO command\)\)" % P)
    remote_text = m.group(1)
    assert "nosuch@b.test" in remote_text
    dsn = wait_dsn(a, "alice@a.test", b"Final-Recipient: rfc822; nosuch@b.test")
    assert b"Content-Type: multipart/report; report-type=delivery-status;" in dsn
    assert b"Return-Path: <>" in dsn
    assert b"Action: failed\n" in dsn
    assert re.search(rb"\nStatus: 5\.\d{1,3}\.\d{1,3}\n", dsn)
    diag = re.search(rb"\nDiagnostic-Code: ([^\n]*)\n", dsn)
    assert diag and remote_text.encode() in diag.group(1), dsn.decode(errors="replace")
    assert b"Subject: one refused\n" in dsn          # the headers part
    assert b"Final-Recipient: rfc822; bob@b.test" not in dsn
    # bob got exactly one copy.
    time.sleep(0.5)
    assert len(b.maildir_files("bob@b.test")) == 1


def test_relayhost_takes_all_outbound_mail(outbound_net, sink_factory):
    from dns_fixture import free_port
    net = outbound_net
    relay_port = free_port(also_tcp=True)
    # b.test's MX exists, but the b.test server is not running: only the
    # relay host may be used.
    a, b = two_domains(net, start_b=False, a_params={
        "relayhost": "[%s]:%d" % (SINK_ADDR, relay_port)})
    sink = sink_factory(SINK_ADDR, relay_port)
    msg1 = message("via relay 1")
    msg2 = message("via relay 2", to="someone@nowhere.test")
    a.send("alice@a.test", ["bob@b.test"], msg1)
    a.send("alice@a.test", ["someone@nowhere.test"], msg2)
    ts = sink.wait_transactions(2, timeout=20)
    by_rcpt = {tuple(t.rcpt_tos): t for t in ts}
    assert set(by_rcpt) == {("bob@b.test",), ("someone@nowhere.test",)}
    for rcpt, msg in ((("bob@b.test",), msg1), (("someone@nowhere.test",), msg2)):
        t = by_rcpt[rcpt]
        assert t.mail_from == "alice@a.test"
        assert t.data.endswith(msg)
        assert received_prefix_ok(t.data[:-len(msg)], "mail.a.test"), t.data[:400]
    for rcpt in ("bob@b\\.test", "someone@nowhere\\.test"):
        a.wait_log(r"to=<%s>, relay=[^,\s]*\[127\.0\.0\.4\]:%d, .*status=sent "
                   r"\(250 2\.0\.0 Ok: queued as SINK\d\)" % (rcpt, relay_port))


def test_domain_without_mx_falls_back_to_a_record(outbound_net):
    net = outbound_net
    net.dns(BASE_RECORDS + [("A", "aonly.test", SINK_ADDR)])
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    msg = message("a fallback", to="x@aonly.test")
    a.send("alice@a.test", ["x@aonly.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    assert (t.mail_from, t.rcpt_tos) == ("alice@a.test", ["x@aonly.test"])
    assert t.data.endswith(msg)
    a.wait_log(r"to=<x@aonly\.test>, relay=aonly\.test\[127\.0\.0\.4\]:%d, .*status=sent"
               % net.port)


# ---- exact bytes at a sink ----

@pytest.fixture
def sink_net(outbound_net):
    net = outbound_net
    net.dns(BASE_RECORDS + [("MX", "sink.test", "mx.sink.test", 10),
                            ("A", "mx.sink.test", SINK_ADDR),
                            ("MX", "peer.test", "mx.peer.test", 10),
                            ("A", "mx.peer.test", "127.0.0.5")])
    net.a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    return net


def test_sink_gets_exact_envelope_and_bytes_in_one_transaction(sink_net):
    sink = sink_net.sink(SINK_ADDR)
    a = sink_net.a
    body = ("first line\r\n"
            ".a line that starts with a dot\r\n"
            "..two dots\r\n"
            ".\r\n"
            "the line above was a lone dot\r\n"
            + "y" * 990 + "\r\n"
            "\r\n"
            "last line\r\n")
    msg = message("exact bytes", body=body, to="one@sink.test")
    a.send("alice@a.test", ["one@sink.test", "two@sink.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    time.sleep(0.5)
    assert len(sink.transactions) == 1, sink.transactions
    assert t.mail_from == "alice@a.test"
    assert sorted(t.rcpt_tos) == ["one@sink.test", "two@sink.test"]
    assert t.data.endswith(msg)
    assert received_prefix_ok(t.data[:-len(msg)], "mail.a.test"), t.data[:400]
    assert b"\n" not in t.data.replace(b"\r\n", b"")     # CRLF only
    assert "BODY=8BITMIME" not in t.mail_options and "SMTPUTF8" not in t.mail_options
    for opt in t.mail_options:
        if opt.upper().startswith("SIZE="):
            assert int(opt[5:]) > 0
    for rcpt in ("one", "two"):
        a.wait_log(r"to=<%s@sink\.test>, relay=mx\.sink\.test\[127\.0\.0\.4\]:%d, .*"
                   r"status=sent \(250 2\.0\.0 Ok: queued as SINK1\)" % (rcpt, sink_net.port))


def test_dot_stuffing_on_the_wire(sink_net):
    peer = sink_net.peer("127.0.0.5", smtp_peers.good())
    a = sink_net.a
    body = ".leading dot\r\n..two\r\n.\r\nend\r\n"
    msg = message("stuffing", body=body, to="x@peer.test")
    a.send("alice@a.test", ["x@peer.test"], msg)
    t = peer.wait_transactions(1, timeout=20)[0]
    stuffed = msg.replace(b"\r\n.", b"\r\n..")
    assert t.raw_data.endswith(stuffed), t.raw_data[-200:]
    assert b"\r\n...two\r\n..\r\nend\r\n" in t.raw_data
    assert t.mail.upper().startswith(b"MAIL FROM:<ALICE@A.TEST>")
    assert [r.upper() for r in t.rcpts] == [b"RCPT TO:<X@PEER.TEST>"]


def test_smtputf8_and_8bitmime_parameters(sink_net):
    sink = sink_net.sink(SINK_ADDR)
    a = sink_net.a
    body = "Grüße aus a.test — 8-bit UTF-8 body.\r\n"
    msg = message("utf8", body=body, to="jürgen@sink.test",
                  extra_headers="MIME-Version: 1.0\r\n"
                                "Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: 8bit\r\n")
    a.send("alice@a.test", ["jürgen@sink.test"], msg,
           mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.rcpt_tos == ["jürgen@sink.test"]
    opts = [o.upper() for o in t.mail_options]
    assert "SMTPUTF8" in opts and "BODY=8BITMIME" in opts, t.mail_options
    assert t.data.endswith(msg)


@pytest.mark.parametrize("case", ["8bit", "smtputf8", "size"])
def test_server_lacking_a_needed_extension_bounces_without_sending(sink_net, case):
    # BRIEF: 8-bit body to a server without 8BITMIME -> 5.6.3; SMTPUTF8
    # needed and not offered -> 5.6.7; message larger than the server's
    # SIZE -> 5.3.4, all without sending the message.
    exts = {"8bit": ["SIZE 10240000", "PIPELINING"],
            "smtputf8": ["SIZE 10240000", "8BITMIME", "PIPELINING"],
            "size": ["SIZE 100", "8BITMIME", "PIPELINING"]}[case]
    peer = sink_net.peer("127.0.0.5", smtp_peers.good(extensions=exts))
    a = sink_net.a
    rcpt = {"8bit": "e@peer.test", "smtputf8": "j\u00fcrgen@peer.test",
            "size": "s@peer.test"}[case]
    opts = {"8bit": ["BODY=8BITMIME"], "smtputf8": ["SMTPUTF8"], "size": []}[case]
    body = {"8bit": "caf\u00e9\r\n", "smtputf8": "plain\r\n", "size": "z" * 500 + "\r\n"}[case]
    a.send("alice@a.test", [rcpt], message("ext " + case, body=body, to=rcpt),
           mail_options=opts)
    dsn_code = {"8bit": r"5\.6\.3", "smtputf8": r"5\.6\.7", "size": r"5\.3\.4"}[case]
    a.wait_log(r"to=<%s>, relay=[^,]*, .*dsn=%s, status=bounced \(" % (re.escape(rcpt), dsn_code),
               timeout=20)
    wait_dsn(a, "alice@a.test", ("Final-Recipient: rfc822; " + rcpt).encode())
    assert peer.transactions == []
    assert not any(c.upper().startswith(b"DATA") for s in peer.sessions for c in s.commands)


# ---- transport_maps ----

def test_transport_maps_smtp_error_and_discard(outbound_net, sink_factory):
    from dns_fixture import free_port
    net = outbound_net
    port = free_port(also_tcp=True)
    table = ("inline:{ { routed.test = smtp:[%s]:%d }, "
             "{ err.test = error:5.7.1 no mail for err.test }, "
             "{ drop.test = discard:dropped by policy } }" % (SINK_ADDR, port))
    a, _ = two_domains(net, start_b=False, a_params={"transport_maps": table})
    sink = sink_factory(SINK_ADDR, port)
    msg = message("routed", to="x@routed.test")
    a.send("alice@a.test", ["x@routed.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    assert (t.mail_from, t.rcpt_tos) == ("alice@a.test", ["x@routed.test"])
    assert t.data.endswith(msg)
    a.wait_log(r"to=<x@routed\.test>, relay=[^,\s]*\[127\.0\.0\.4\]:%d, .*status=sent" % port)

    a.send("alice@a.test", ["y@err.test"], message("error transport", to="y@err.test"))
    a.wait_log(r"to=<y@err\.test>, relay=none, .*dsn=5\.7\.1, status=bounced "
               r"\(no mail for err\.test\)")
    dsn = wait_dsn(a, "alice@a.test", b"Final-Recipient: rfc822; y@err.test")
    assert b"Status: 5.7.1\n" in dsn
    assert re.search(rb"\nDiagnostic-Code: [^\n]*no mail for err\.test", dsn)

    a.send("alice@a.test", ["z@drop.test"], message("discarded", to="z@drop.test"))
    a.wait_log(r"to=<z@drop\.test>, relay=none, .*status=sent \([^)]*dropped by policy")
    time.sleep(0.5)
    assert len(sink.transactions) == 1
    assert not files_with(a, "alice@a.test", b"z@drop.test")


# ---- DNS outcomes ----

def test_nxdomain_recipient_domain_bounces_to_sender(outbound_net):
    a, _ = two_domains(outbound_net, start_b=False)
    a.send("alice@a.test", ["x@nx.test"], message("nxdomain", to="x@nx.test"))
    a.wait_log(r"to=<x@nx\.test>, relay=none, .*dsn=5\.1\.2, status=bounced "
               r"\(Host or domain name not found\. Name service error for name=nx\.test "
               r"type=MX: Host not found\)")
    dsn = wait_dsn(a, "alice@a.test", b"Final-Recipient: rfc822; x@nx.test")
    assert b"Status: 5.1.2\n" in dsn
    assert b"Name service error for name=nx.test" in dsn


def test_null_mx_bounces_at_once(outbound_net):
    a, _ = two_domains(outbound_net, start_b=False, records=[
        ("MX", "nullmx.test", ".", 0), ("A", "nullmx.test", SINK_ADDR)])
    a.send("alice@a.test", ["x@nullmx.test"], message("null mx", to="x@nullmx.test"))
    a.wait_log(r"to=<x@nullmx\.test>, relay=none, .*dsn=5\.1\.10, status=bounced "
               r"\(Domain nullmx\.test does not accept mail \(nullMX\)\)")
    dsn = wait_dsn(a, "alice@a.test", b"Final-Recipient: rfc822; x@nullmx.test")
    assert b"Status: 5.1.10\n" in dsn


def test_dead_dns_defers_and_keeps_the_message(outbound_net):
    net = outbound_net
    # No dnsmasq: the instance's dns_servers is a dead loopback port.
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    assert a.dns_servers.startswith("127.0.0.1:")
    a.send("alice@a.test", ["x@dead.test"], message("dns dead", to="x@dead.test"))
    m = a.wait_log(r"(\w+): to=<x@dead\.test>, relay=none, .*dsn=4\.\d\.\d+, "
                   r"status=deferred \(Host or domain name not found\. Name service error "
                   r"for name=dead\.test type=MX: [^\n]*try again\)", timeout=20)
    qid = m.group(1)
    assert wait_until(lambda: os.path.exists(queue_file(a, "deferred", qid)))
    assert not files_with(a, "alice@a.test", b"multipart/report")


def test_a_slow_destination_does_not_starve_another(outbound_net):
    """Fairness: with 20 messages queued for a destination that takes a
    second per message, a message for another destination still leaves at
    once (round robin over destinations, per-destination concurrency)."""
    net = outbound_net
    net.dns(BASE_RECORDS + [("MX", "slow.test", "mx.slow.test", 10),
                            ("A", "mx.slow.test", "127.0.0.4"),
                            ("MX", "fast.test", "mx.fast.test", 10),
                            ("A", "mx.fast.test", "127.0.0.5")])
    slow = net.sink("127.0.0.4")
    slow.data_delay = 1.0
    fast = net.sink("127.0.0.5")
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test",
                     main_cf={"smtp_destination_concurrency_limit": "2",
                              "initial_destination_concurrency": "2"})
    for i in range(20):
        a.send("alice@a.test", ["u%d@slow.test" % i], message("slow %d" % i, to="u@slow.test"))
    a.wait_log(r"to=<u\d+@slow\.test>, relay=mx\.slow\.test", timeout=20)
    sent_at = time.monotonic()
    a.send("alice@a.test", ["v@fast.test"], message("fast", to="v@fast.test"))
    fast.wait_transactions(1, timeout=5)
    took = time.monotonic() - sent_at
    # At 2 parallel deliveries of 1 s each, the slow queue needs ~10 s.
    assert len(slow.transactions) < 15, (took, len(slow.transactions))
    assert took < 3, took
    slow.wait_transactions(20, timeout=30)
    # smtp_destination_concurrency_limit held, and it was used.
    assert slow.max_active_data == 2, slow.max_active_data


def test_next_message_reuses_the_cached_connection(sink_net):
    """Connection reuse: a second message to the same destination soon
    after the first travels over the same SMTP connection."""
    sink = sink_net.sink(SINK_ADDR)
    a = sink_net.a
    a.send("alice@a.test", ["one@sink.test"], message("first", to="one@sink.test"))
    sink.wait_transactions(1, timeout=20)
    a.send("alice@a.test", ["two@sink.test"], message("second", to="two@sink.test"))
    ts = sink.wait_transactions(2, timeout=20)
    # The same client port: one TCP connection carried both transactions.
    assert ts[0].peer == ts[1].peer, (ts[0].peer, ts[1].peer)
    assert [t.rcpt_tos for t in ts] == [["one@sink.test"], ["two@sink.test"]]
