"""The smtp client against bad input: scripted SMTP servers (smtp_peers.py)
and bad DNS. Each fault must end in a clear deferral or bounce in the log,
the message must stay in the queue when deferred, and the smtp process must
survive: the same pid(s) still run and a following good delivery (to the
sink) works, and master logs no crashed smtp.

Topology (conftest.OutboundNet, one shared SMTP port P):
    127.0.0.2:P  a.test, the sender (alice@a.test), short smtp_*_timeout
    127.0.0.4:P  the sink (aiosmtpd): good.test's MX
    127.0.0.5:P  the scripted peer under test: bad.test's MX
    127.0.0.6:P  a second scripted peer where a test needs one
"""
import os
import re
import time

import pytest

import smtp_peers
from dns_fixture import TYPE_A, TYPE_MX, rr_a, rr_cname, rr_mx

pytestmark = pytest.mark.chain

A_ADDR, SINK_ADDR, PEER_ADDR, PEER2_ADDR = "127.0.0.2", "127.0.0.4", "127.0.0.5", "127.0.0.6"

RECORDS = [
    ("MX", "a.test", "mail.a.test", 10), ("A", "mail.a.test", A_ADDR),
    ("MX", "good.test", "mx.good.test", 10), ("A", "mx.good.test", SINK_ADDR),
    ("MX", "bad.test", "mx.bad.test", 10), ("A", "mx.bad.test", PEER_ADDR),
]


def message(subject, to, body=None):
    if body is None:
        body = "BODYMARK %s\r\nline two\r\n" % subject
    return ("From: <alice@a.test>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Thu, 27 Nov 2025 07:00:00 +0000\r\nMessage-ID: <%s@a.test>\r\n\r\n%s" % (
                to, subject, re.sub(r"\W", "", subject), body)).encode()


def wait_until(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


class Env:
    def __init__(self, net, a, sink):
        self.net, self.a, self.sink = net, a, sink
        self.P = net.port
        self.fault_pids = set()      # smtp processes that logged a fault

    def send(self, rcpt, subject, body=None):
        msg = message(subject, rcpt, body)
        assert self.a.send("alice@a.test", [rcpt], msg) == {}
        return msg

    def deferred(self, rcpt, reason_regex, relay=None, timeout=20):
        """Waits for rcpt's deferral; checks the reason and that the message
        is still queued. Returns (qid, reason)."""
        relay_re = re.escape(relay) if relay else r"[^,\s]+"
        m = self.a.wait_log(r"postern/(\w+)\[(\d+)\]: (\w+): to=<%s>, relay=%s, .*"
                            r"dsn=4\.\d{1,3}\.\d{1,3}, status=deferred \(([^\n]*)\)$" % (
                                re.escape(rcpt), relay_re), timeout=timeout)
        program, pid, qid, reason = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if program == "smtp":
            self.fault_pids.add(pid)
        assert re.search(reason_regex, reason), "reason %r does not match %r" % (
            reason, reason_regex)
        path = os.path.join(self.a.dir, "queue", "deferred", qid)
        assert wait_until(lambda: os.path.exists(path), 10), "%s not in deferred/" % qid
        return qid, reason

    def smtp_survives(self, tag):
        """The smtp process(es) that handled the fault still run, master saw
        no smtp crash, and a good delivery goes through."""
        before = self.a.pids_of("smtp")
        assert before, "no smtp process running\n" + self.a.maillog()[-3000:]
        assert self.fault_pids <= set(before), (self.fault_pids, before)
        rcpt = "ok-%s@good.test" % tag
        msg = self.send(rcpt, "good after " + tag)
        t = wait_until(lambda: [x for x in self.sink.transactions if x.rcpt_tos == [rcpt]], 20)
        assert t, "good delivery after %s never arrived\n%s" % (tag, self.a.maillog()[-3000:])
        assert t[0].data.endswith(msg)
        m = self.a.wait_log(r"postern/smtp\[(\d+)\]: \w+: to=<%s>, "
                            r"relay=mx\.good\.test\[127\.0\.0\.4\]:%d, .*status=sent"
                            % (re.escape(rcpt), self.P))
        # Served by a process that was already running (no restart).
        assert int(m.group(1)) in before, (m.group(1), before)
        assert all(pid_alive(p) for p in before), (before, self.a.pids_of("smtp"))
        crashes = re.findall(r"process \S*/smtp pid \d+ (?:killed by signal|exit status)[^\n]*",
                             self.a.maillog())
        assert not crashes, crashes
        assert "panic" not in self.a.maillog().lower()


@pytest.fixture
def env(outbound_net):
    net = outbound_net
    net.dns(RECORDS)
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    return Env(net, a, sink)


def mx_host(env, addr=PEER_ADDR):
    return "mx.bad.test[%s]:%d" % (addr, env.P)


# ---- scripted SMTP servers ----

def test_multiline_replies_are_accepted(env):
    peer = env.net.peer(PEER_ADDR, smtp_peers.multiline)
    msg = env.send("x@bad.test", "multiline")
    t = peer.wait_transactions(1, timeout=20)[0]
    assert t.data.endswith(msg)
    env.a.wait_log(r"to=<x@bad\.test>, relay=%s, .*dsn=2\.0\.0, status=sent "
                   r"\(250 2\.0\.0 Ok: queued as PEER" % re.escape(mx_host(env)))
    env.smtp_survives("multiline")


def test_ten_megabytes_of_garbage_defers(env):
    peer = env.net.peer(PEER_ADDR, smtp_peers.garbage(10 * 1024 * 1024))
    started = time.monotonic()
    env.send("x@bad.test", "garbage")
    env.deferred("x@bad.test", r"mx\.bad\.test\[127\.0\.0\.5\].*"
                 r"(?i:malformed|lost connection|too long|timed out)")
    assert time.monotonic() - started < 15
    assert peer.sessions
    env.smtp_survives("garbage")


def test_garbage_lines_defer(env):
    env.net.peer(PEER_ADDR, smtp_peers.garbage(1024 * 1024, newlines=True))
    env.send("x@bad.test", "garbage lines")
    env.deferred("x@bad.test", r"mx\.bad\.test\[127\.0\.0\.5\].*"
                 r"(?i:malformed|lost connection|too long|timed out)")
    env.smtp_survives("garbagelines")


def test_server_that_never_answers_times_out(env):
    peer = env.net.peer(PEER_ADDR, smtp_peers.silent)
    started = time.monotonic()
    env.send("x@bad.test", "silent")
    qid, reason = env.deferred(
        "x@bad.test", r"conversation with mx\.bad\.test\[127\.0\.0\.5\](:\d+)? timed out "
                      r"while receiving the initial server greeting")
    # smtp_helo_timeout is 3s in the test instance (conftest.OUTBOUND_PARAMS).
    assert time.monotonic() - started < 15
    assert peer.sessions and peer.sessions[0].received == b""
    env.smtp_survives("silent")


def test_server_closing_mid_reply_defers(env):
    peer = env.net.peer(PEER_ADDR, smtp_peers.close_mid_reply)
    env.send("x@bad.test", "closes mid reply")
    env.deferred("x@bad.test", r"lost connection with mx\.bad\.test\[127\.0\.0\.5\]")
    assert peer.sessions[0].commands[0].upper().startswith(b"EHLO ")
    env.smtp_survives("midreply")


def test_server_closing_mid_greeting_defers(env):
    env.net.peer(PEER_ADDR, smtp_peers.close_mid_greeting)
    env.send("x@bad.test", "closes mid greeting")
    env.deferred("x@bad.test", r"lost connection with mx\.bad\.test\[127\.0\.0\.5\].*"
                               r"greeting")
    env.smtp_survives("midgreeting")


def test_250_to_data_before_the_data_abandons_the_session(env):
    peer = env.net.peer(PEER_ADDR, smtp_peers.early_data_250)
    env.send("x@bad.test", "early data")
    qid, reason = env.deferred("x@bad.test", r"mx\.bad\.test\[127\.0\.0\.5\].*DATA")
    conv = peer.wait_sessions(1)[0]
    assert any(c.upper() == b"DATA" for c in conv.commands), conv.commands
    after = smtp_peers.bytes_after_data(conv)
    assert after is not None
    assert b"BODYMARK" not in conv.received, "the body was sent after a bogus 250 to DATA"
    assert b"Subject: early data" not in conv.received
    env.smtp_survives("earlydata")


def test_4xx_greeting_defers_with_the_servers_text(env):
    env.net.peer(PEER_ADDR, smtp_peers.greeting("421 4.3.2 go away for now"))
    env.send("x@bad.test", "greeting 421")
    env.deferred("x@bad.test", r"mx\.bad\.test\[127\.0\.0\.5\].*421 4\.3\.2 go away for now")
    env.smtp_survives("greeting421")


def test_4xx_greeting_moves_on_to_the_next_mx(outbound_net):
    net = outbound_net
    net.dns(RECORDS + [("MX", "two.test", "mx1.two.test", 10), ("A", "mx1.two.test", PEER_ADDR),
                       ("MX", "two.test", "mx2.two.test", 20),
                       ("A", "mx2.two.test", SINK_ADDR)])
    sink = net.sink(SINK_ADDR)
    net.peer(PEER_ADDR, smtp_peers.greeting("421 4.3.2 busy"))
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    msg = message("next mx", "y@two.test")
    a.send("alice@a.test", ["y@two.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.rcpt_tos == ["y@two.test"] and t.data.endswith(msg)
    a.wait_log(r"to=<y@two\.test>, relay=mx2\.two\.test\[127\.0\.0\.4\]:%d, .*status=sent"
               % net.port)


def test_5xx_greeting_bounces(env):
    env.net.peer(PEER_ADDR, smtp_peers.greeting("554 5.7.1 no mail from you"))
    env.send("x@bad.test", "greeting 554")
    env.a.wait_log(r"to=<x@bad\.test>, relay=%s, .*dsn=5\.7\.1, status=bounced "
                   r"\([^\n]*554 5\.7\.1 no mail from you" % re.escape(mx_host(env)),
                   timeout=20)
    found = wait_until(lambda: [p for p in env.a.maildir_files("alice@a.test")
                                if b"Final-Recipient: rfc822; x@bad.test" in open(p, "rb").read()])
    assert found, env.a.maillog()[-3000:]
    env.smtp_survives("greeting554")


def test_all_hosts_failing_defers_with_the_last_failure(outbound_net):
    net = outbound_net
    net.dns(RECORDS + [("MX", "both.test", "mx1.both.test", 10),
                       ("A", "mx1.both.test", PEER_ADDR),
                       ("MX", "both.test", "mx2.both.test", 20),
                       ("A", "mx2.both.test", PEER2_ADDR)])   # nothing listens there
    sink = net.sink(SINK_ADDR)
    net.peer(PEER_ADDR, smtp_peers.greeting("421 4.3.2 first host busy"))
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    env = Env(net, a, sink)
    env.send("x@both.test", "both fail")
    qid, reason = env.deferred(
        "x@both.test", r"^connect to mx2\.both\.test\[127\.0\.0\.6\]:%d: Connection refused$"
        % net.port)
    assert re.search(r"mx1\.both\.test\[127\.0\.0\.5\][^\n]*421 4\.3\.2 first host busy",
                     a.maillog())
    env.smtp_survives("bothfail")


def test_dead_destination_is_suspended_then_flushed(outbound_net):
    # With a window of 1, one dead reply (421 greeting) suspends the
    # destination: the next message to it is deferred by qmgr without a
    # new connection; postqueue -f ends the suspension and, the server
    # having recovered, delivers both.
    net = outbound_net
    net.dns(RECORDS)
    sink = net.sink(SINK_ADDR)
    state = {"greeting": "421 4.3.2 down for maintenance"}

    def flaky(conv):
        if state["greeting"].startswith("4"):
            return smtp_peers.greeting(state["greeting"])(conv)
        return smtp_peers.good()(conv)

    peer = net.peer(PEER_ADDR, flaky)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test",
                     main_cf={"initial_destination_concurrency": "1"})
    env = Env(net, a, sink)
    msg1 = env.send("x@bad.test", "dead one")
    env.deferred("x@bad.test", r"421 4\.3\.2 down for maintenance")
    a.wait_log(r"delivery to \S*bad\.test suspended for \d+s")
    sessions = len(peer.sessions)
    msg2 = env.send("y@bad.test", "dead two")
    env.deferred("y@bad.test", r"^delivery temporarily suspended: .*421 4\.3\.2 down for "
                               r"maintenance", relay="none")
    assert len(peer.sessions) == sessions, "a suspended destination was contacted again"
    state["greeting"] = "220 ok"
    a.run("postqueue", "-f", check=True)
    ts = peer.wait_transactions(1, timeout=15)
    wait_until(lambda: sum(len(t.rcpts) for t in peer.transactions) >= 2, 10)
    got = {bytes(r).split(b"<")[1].split(b">")[0]: t for t in peer.transactions for r in t.rcpts}
    assert set(got) == {b"x@bad.test", b"y@bad.test"}, ts
    assert got[b"x@bad.test"].data.endswith(msg1)
    assert got[b"y@bad.test"].data.endswith(msg2)


def test_multiline_451_to_rcpt_defers_with_the_servers_text(env):
    # A multi-line 451 to RCPT: deferred with the server's text.
    peer = env.net.peer(PEER_ADDR, smtp_peers.good(
        multiline=True, rcpt_replies={"x@bad.test": "451 4.7.1 greylisted, come back later"}))
    env.send("x@bad.test", "greylisted")
    env.deferred("x@bad.test", r"host mx\.bad\.test\[127\.0\.0\.5\] said: 451 4\.7\.1 "
                               r".*greylisted, come back later.*\(in reply to RCPT TO command\)",
                 relay=mx_host(env))
    assert peer.transactions == []
    env.smtp_survives("greylist")


# ---- bad DNS ----

def test_truncated_udp_answer_is_retried_over_tcp(outbound_net):
    net = outbound_net
    # 21 MX records with long names do not fit a UDP answer: dnsmasq sets
    # TC and the full answer comes over TCP. The only usable MX (the sink)
    # is given first, so dnsmasq puts it last, beyond the UDP cut.
    records = RECORDS + [("MX", "big.test", "mx.big.test", 5), ("A", "mx.big.test", SINK_ADDR)]
    records += [("MX", "big.test", "h%02d-%s.big.test" % (i, "x" * 50), 20 + i)
                for i in range(20)]
    d = net.dns(records)
    udp = d.query("big.test", TYPE_MX)
    assert udp["tc"] and (5, "mx.big.test") not in [x[2] for x in udp["answers"]]
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    msg = message("truncated dns", "t@big.test")
    a.send("alice@a.test", ["t@big.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.rcpt_tos == ["t@big.test"] and t.data.endswith(msg)
    a.wait_log(r"to=<t@big\.test>, relay=mx\.big\.test\[127\.0\.0\.4\]:%d, .*status=sent"
               % net.port)


def scripted_zone(extra):
    """A handler for ScriptedDns: good.test as in RECORDS plus extra(name,
    qtype) (returns a spec or None to fall through to NXDOMAIN)."""
    def handler(name, qtype):
        spec = extra(name, qtype)
        if spec is not None:
            return spec
        if name == "good.test":
            return {"answers": [rr_mx("good.test", 10, "mx.good.test")] if qtype == TYPE_MX
                    else []}
        if name == "mx.good.test":
            return {"answers": [rr_a("mx.good.test", SINK_ADDR)] if qtype == TYPE_A else []}
        return {"rcode": 3}
    return handler


def scripted_env(net, scripted_dns_factory, extra, tcp=True):
    dns = scripted_dns_factory(scripted_zone(extra), tcp=tcp)
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test",
                     dns_servers=dns.server)
    return Env(net, a, sink), dns


def test_truncated_answer_without_tcp_defers(outbound_net, scripted_dns_factory):
    def extra(name, qtype):
        if name == "trunc.test":
            return {"tc": True, "answers": []}
        return None
    env, dns = scripted_env(outbound_net, scripted_dns_factory, extra, tcp=False)
    env.send("x@trunc.test", "truncated no tcp")
    env.deferred("x@trunc.test", r"trunc\.test", relay="none")
    assert ("udp", "trunc.test", TYPE_MX) in dns.queries
    env.smtp_survives("trunc")


@pytest.mark.parametrize("shape", ["one_link_per_answer", "whole_loop_in_answer"])
def test_cname_loop_for_the_mx_host_defers(outbound_net, scripted_dns_factory, shape):
    # mx.loop.test -> c2.loop.test -> mx.loop.test. A recursive server
    # returns the whole chain in one answer (dns.h: a CNAME chain that does
    # not end is DNS_TEMPFAIL); a bad one may return one link at a time.
    def extra(name, qtype):
        if name == "loop.test":
            return {"answers": [rr_mx("loop.test", 10, "mx.loop.test")] if qtype == TYPE_MX
                    else []}
        links = [rr_cname("mx.loop.test", "c2.loop.test"), rr_cname("c2.loop.test", "mx.loop.test")]
        if name == "mx.loop.test":
            return {"answers": links if shape == "whole_loop_in_answer" else links[:1]}
        if name == "c2.loop.test":
            return {"answers": links[::-1] if shape == "whole_loop_in_answer" else links[1:]}
        return None
    env, dns = scripted_env(outbound_net, scripted_dns_factory, extra)
    env.send("x@loop.test", "cname loop")
    qid, reason = env.deferred("x@loop.test", r"loop\.test", relay="none")
    if shape == "whole_loop_in_answer":
        assert "try again" in reason, reason
    assert len(dns.queries) < 100, "the CNAME loop was chased %d times" % len(dns.queries)
    env.smtp_survives("cnameloop")


def test_cname_loop_for_the_recipient_domain_defers(outbound_net, scripted_dns_factory):
    def extra(name, qtype):
        links = [rr_cname("loop2.test", "loop3.test"), rr_cname("loop3.test", "loop2.test")]
        if name == "loop2.test":
            return {"answers": links}
        if name == "loop3.test":
            return {"answers": links[::-1]}
        return None
    env, dns = scripted_env(outbound_net, scripted_dns_factory, extra)
    env.send("x@loop2.test", "domain cname loop")
    env.deferred("x@loop2.test", r"Name service error for name=loop2\.test type=MX: "
                                 r".*try again", relay="none")
    env.smtp_survives("domainloop")


def test_mx_pointing_to_an_ip_literal_is_not_used(outbound_net):
    net = outbound_net
    net.dns(RECORDS + [("MX", "lit.test", SINK_ADDR, 10)])
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    env = Env(net, a, sink)
    env.send("x@lit.test", "ip literal mx")
    env.deferred("x@lit.test", r"lit\.test|127\.0\.0\.4", relay="none")
    assert [t for t in sink.transactions if t.rcpt_tos == ["x@lit.test"]] == []
    env.smtp_survives("literal")


def test_mx_pointing_to_a_name_without_address_defers(outbound_net):
    net = outbound_net
    net.dns(RECORDS + [("MX", "noaddr.test", "ghost.noaddr.test", 10)])
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    env = Env(net, a, sink)
    env.send("x@noaddr.test", "mx without address")
    env.deferred("x@noaddr.test", r"noaddr\.test", relay="none")
    env.smtp_survives("noaddr")


def test_mx_without_address_is_skipped_for_the_next(outbound_net):
    net = outbound_net
    net.dns(RECORDS + [("MX", "skip.test", "ghost.skip.test", 10),
                       ("MX", "skip.test", "mx.good.test", 20)])
    sink = net.sink(SINK_ADDR)
    a = net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test")
    msg = message("skip ghost", "s@skip.test")
    a.send("alice@a.test", ["s@skip.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.rcpt_tos == ["s@skip.test"] and t.data.endswith(msg)
