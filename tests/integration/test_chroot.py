"""master.cf's chroot column (issue 6, privilege separation): started as
root, the services marked chroot = y (smtpd on 25/587/465, smtp, qmgr) run
inside $queue_directory as mail_owner, the others (local, pop3d) at "/",
and mail still flows end to end: STARTTLS, AUTH on submission and SMTPS,
access tables of every type (lmdb:, pcre:, inline:), RHSBL lookups through
dns_servers, header_checks, local delivery into a Maildir and outbound
delivery through smtp to a sink over verified STARTTLS. A daemon that reads
mailboxes refuses to be chrooted, loudly."""

import os
import poplib
import pwd
import re
import smtplib
import ssl
import time

import pytest

from smtp_raw import Raw
from test_outbound import A_ADDR, BASE_RECORDS, SINK_ADDR, message
from test_outbound_tls import MX_NAME, make_cert, server_context
from test_privileges import children_of, program_of, status_fields, wait_until
from test_smtpd_policy import auth_plain, send_data, starttls, write

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: chroot and the privilege drop happen only "
                              "when master is started as root")

CHROOTED = ("smtpd", "qmgr", "smtp")
ALICE = "alice@a.test"

SENDER_ACCESS = "spammer@evil.test REJECT no mail from you, spammer\n"
HEADER_CHECKS = "/^Subject: .*forbidden/ REJECT forbidden subject here\n"


def set_chroot(inst, commands):
    """chroot = y on the master.cf lines whose command is in commands."""
    path = os.path.join(inst.etc, "master.cf")
    out = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if line[:1] not in "# \t\n" and len(fields) >= 8 and fields[7] in commands:
                fields[4] = "y"
                line = "  ".join(fields) + "\n"
            out.append(line)
    with open(path, "w") as f:
        f.writelines(out)


def maildir_text(inst, address, marker, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        for path in inst.maildir_files(address):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if marker in text:
                return text
        if time.monotonic() > deadline:
            raise AssertionError("%r not delivered to %s\n%s" % (
                marker, address, inst.maillog()[-4000:]))
        time.sleep(0.05)


def submission_send(inst, port, user, password, rcpt, subject, implicit_tls=False):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if implicit_tls:
        s = smtplib.SMTP_SSL(inst.address, port, timeout=15, context=ctx,
                             local_hostname="client.test")
    else:
        s = smtplib.SMTP(inst.address, port, timeout=15, local_hostname="client.test")
        s.starttls(context=ctx)
    with s:
        s.login(user, password)
        s.sendmail(user, [rcpt], message(subject, sender=user, to=rcpt))
        s.quit()


@pytest.fixture
def chrooted(outbound_net, tmp_path_factory):
    net = outbound_net
    net.dns(BASE_RECORDS + [("MX", "sink.test", MX_NAME, 10), ("A", MX_NAME, SINK_ADDR),
                            ("A", "evil.test.rhsbl.test", "127.0.0.2"),
                            ("MX", "evil.test", "mx.evil.test", 10),
                            ("A", "mx.evil.test", "127.0.0.9")])
    inst = net.instance("a.test", A_ADDR, users=[ALICE], hostname="mail.a.test", start=False)
    # The sink's certificate, readable by mail_owner; the smtp client
    # loads it before its chroot.
    certdir = os.path.join(inst.dir, "sinkcert")
    os.mkdir(certdir)
    os.chmod(certdir, 0o755)
    net.cert, net.key = make_cert(certdir, MX_NAME)
    os.chmod(net.cert, 0o644)
    senders = write(inst, "sender_access", SENDER_ACCESS)
    inst.run("postmap", "lmdb:" + senders, check=True)
    header_checks = write(inst, "header_checks.pcre", HEADER_CHECKS)
    inst.set_params(
        smtpd_helo_restrictions="check_helo_access inline:{ {evil.helo.test = "
                                "REJECT helo refused inline} }",
        smtpd_sender_restrictions="check_sender_access lmdb:%s, reject_rhsbl_sender "
                                  "rhsbl.test" % senders,
        smtpd_recipient_restrictions="reject_unlisted_recipient",
        header_checks="pcre:" + header_checks,
        smtp_tls_security_level="encrypt",
        smtp_tls_CAfile=net.cert,
        dns_timeout="2s", dns_tries="1",
    )
    set_chroot(inst, CHROOTED)
    net.inst = inst
    return net


def test_chrooted_services_run_in_the_queue_and_mail_flows(chrooted):
    net = chrooted
    inst = net.inst
    sink = net.sink(SINK_ADDR, tls_context=server_context(net.cert, net.key))
    inst.start()
    owner = pwd.getpwnam("postern")
    queue = os.path.realpath(os.path.join(inst.dir, "queue"))
    password = inst.passwords[ALICE]

    # Port 25 with STARTTLS, into the local Maildir.
    r = Raw(inst.smtp_port, host=inst.address)
    starttls(r)
    assert r.one("MAIL FROM:<someone@b.test>").startswith("250")
    assert r.one("RCPT TO:<%s>" % ALICE).startswith("250")
    assert send_data(r, "Subject: in over tls\n\nhello\n").startswith("250")
    r.one("QUIT")
    r.close()
    text = maildir_text(inst, ALICE, "in over tls")
    assert re.search(r"\(using TLSv1\.[23] with cipher .*\n.*\n\s+by mail\.a\.test "
                     r"\(Postern\) with ESMTPS", text), text

    # lmdb: (check_sender_access, opened before the chroot), the lazily
    # opened virtual_mailbox_maps (lmdb:), inline: and an RHSBL lookup.
    def rcpt_reply(sender, rcpt=ALICE, helo="client.test"):
        raw = Raw(inst.smtp_port, host=inst.address)
        assert raw.one("EHLO " + helo).startswith("250")
        assert raw.one("MAIL FROM:<%s>" % sender).startswith("250")
        reply = raw.one("RCPT TO:<%s>" % rcpt)
        raw.close()
        return reply

    assert rcpt_reply("spammer@evil.test") == \
        "554 5.7.1 <spammer@evil.test>: Sender address rejected: no mail from you, spammer"
    assert rcpt_reply("other@evil.test").startswith(
        "554 5.7.1 Service unavailable; Sender address [evil.test] blocked using rhsbl.test")
    assert rcpt_reply("someone@b.test", rcpt="nobody@a.test") == (
        "550 5.1.1 <nobody@a.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table")
    assert rcpt_reply("someone@b.test", helo="evil.helo.test") == \
        "554 5.7.1 <evil.helo.test>: Helo command rejected: helo refused inline"

    # pcre: header_checks while the message streams in.
    r = Raw(inst.smtp_port, host=inst.address)
    assert r.one("EHLO client.test").startswith("250")
    assert r.one("MAIL FROM:<someone@b.test>").startswith("250")
    assert r.one("RCPT TO:<%s>" % ALICE).startswith("250")
    assert send_data(r, "Subject: a forbidden thing\n\nbody\n") == \
        "550 5.7.1 forbidden subject here"
    r.close()

    # Submission (STARTTLS + AUTH) and SMTPS (implicit TLS + AUTH), out
    # through the chrooted smtp client to the sink, verified against
    # smtp_tls_CAfile.
    submission_send(inst, inst.ports["submission"], ALICE, password, "x@sink.test",
                    "out via submission")
    submission_send(inst, inst.ports["smtps"], ALICE, password, ALICE, "in via smtps",
                    implicit_tls=True)
    maildir_text(inst, ALICE, "in via smtps")
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.tls
    assert b"out via submission" in t.data
    inst.wait_log(r"Verified TLS connection established to mx\.sink\.test\[127\.0\.0\.4\]")
    inst.wait_log(r"to=<x@sink\.test>, relay=mx\.sink\.test\[127\.0\.0\.4\]:\d+, .*status=sent")

    # Every child of the root master: mail_owner; chrooted ones in the queue.
    pop = poplib.POP3(inst.address, inst.ports["pop3"], timeout=10)
    pop.user(ALICE)
    pop.pass_(password)
    master = inst.master_pid()
    assert status_fields(master)["Uid"][0] == "0"
    wanted = {"smtpd", "qmgr", "local", "smtp", "pop3d"}
    assert wait_until(lambda: wanted <= {program_of(p) for p in children_of(master)}), \
        sorted(program_of(p) for p in children_of(master))
    roots = {}
    for pid in children_of(master):
        name = program_of(pid)
        st = status_fields(pid)
        assert st["Uid"] == [str(owner.pw_uid)] * 4, (name, st["Uid"])
        assert st["Gid"] == [str(owner.pw_gid)] * 4, (name, st["Gid"])
        for cap in ("CapEff", "CapPrm"):
            assert int(st[cap][0], 16) == 0, (name, cap)
        root = os.readlink("/proc/%d/root" % pid)
        roots.setdefault(name, set()).add(root)
        if name in CHROOTED:
            assert root == queue, (name, root)
            # Every thread (smtpd's password-hashing workers too).
            for tid in os.listdir("/proc/%d/task" % pid):
                assert os.readlink("/proc/%d/task/%s/root" % (pid, tid)) == queue
                tst = status_fields(int(tid))
                assert tst["Uid"] == [str(owner.pw_uid)] * 4, (name, tid)
        else:
            assert root == "/", (name, root)
    # Three smtpd services (25, 587, 465) were used: all chrooted.
    smtpds = [p for p in children_of(master) if program_of(p) == "smtpd"]
    assert len(smtpds) == 3, roots
    pop.quit()
    log = inst.maillog()
    assert "fatal" not in log and "panic" not in log, log[-3000:]


def test_a_replaced_user_database_restarts_chrooted_submission(chrooted):
    """passwd_file is read through a descriptor opened before the chroot;
    a change (a new file renamed into place) makes AUTH defer once, and
    the process restarts to read the new file."""
    inst = chrooted.inst
    inst.start()
    password = inst.passwords[ALICE]
    r = Raw(inst.ports["submission"], host=inst.address)
    starttls(r)
    assert auth_plain(r, ALICE, password).startswith("235")
    r.one("QUIT")
    r.close()

    inst.add_user("carol@a.test", "carol-password-1")
    r = Raw(inst.ports["submission"], host=inst.address)
    starttls(r)
    assert auth_plain(r, "carol@a.test", "carol-password-1") == \
        "454 4.7.0 Temporary authentication failure"
    r.one("QUIT")
    r.close()
    inst.wait_log(r"passwd_file changed since the chroot: restarting after the current "
                  r"sessions end")
    deadline = time.monotonic() + 15
    while True:
        r = Raw(inst.ports["submission"], host=inst.address)
        starttls(r)
        reply = auth_plain(r, "carol@a.test", "carol-password-1")
        r.close()
        if reply.startswith("235"):
            break
        assert time.monotonic() < deadline, (reply, inst.maillog()[-3000:])
        time.sleep(0.2)


def test_a_rebuilt_table_restarts_chrooted_smtpd(chrooted):
    inst = chrooted.inst
    inst.start()
    senders = os.path.join(inst.etc, "sender_access")

    def reply_for(sender):
        raw = Raw(inst.smtp_port, host=inst.address)
        assert raw.one("EHLO client.test").startswith("250")
        assert raw.one("MAIL FROM:<%s>" % sender).startswith("250")
        reply = raw.one("RCPT TO:<%s>" % ALICE)
        raw.close()
        return reply

    assert reply_for("newcomer@b.test").startswith("250")
    write(inst, "sender_access", SENDER_ACCESS + "newcomer@b.test REJECT rebuilt table\n")
    inst.run("postmap", "lmdb:" + senders, check=True)
    deadline = time.monotonic() + 20
    while not reply_for("newcomer@b.test").startswith("554 5.7.1"):
        assert time.monotonic() < deadline, inst.maillog()[-3000:]
        time.sleep(0.3)
    inst.wait_log(r"a table changed since the chroot: restarting")


def test_daemons_that_read_mailboxes_refuse_chroot(instance_factory):
    inst = instance_factory(start=False)
    set_chroot(inst, ("pop3d",))
    inst.start()
    try:
        Raw(inst.ports["pop3"], greeting=False).close()
    except OSError:
        pass
    inst.wait_log(r"fatal: service 127\.0\.0\.1:\d+: master\.cf says chroot = y, but pop3d "
                  r"reads files outside queue_directory \(mailboxes\) and cannot run "
                  r"chrooted; set the chroot column of this service to n")
