"""Delivery: qmgr routing and local's alias kinds, loops, bounces, forwards,
maildrop pickup and flushing, against a real running instance.

Local aliases live in the local domains (mydestination: localhost and
$myhostname); the instance's virtual domain (example.test) holds the demo
user's Maildir, so every notice to demo@example.test can be read back.
"""
import glob
import os
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.chain


def append_aliases(inst, text):
    path = os.path.join(inst.etc, "aliases")
    with open(path, "a") as f:
        f.write(text)
    inst.run("postalias", path, check=True)


def set_param(inst, name, value):
    inst.run("postconf", "-e", "%s=%s" % (name, value), check=True)


def msg(subject, extra_headers=""):
    return ("From: demo@example.test\r\nTo: someone\r\nSubject: %s\r\n%s\r\n"
            "body of %s\r\nFrom the start of a line\r\n" % (subject, extra_headers, subject)).encode()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def files_with(inst, address, needle):
    return [p for p in inst.maildir_files(address) if needle in read(p)]


def wait_until(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def aliased(instance_factory):
    inst = instance_factory(start=False)
    mail = os.path.join(inst.dir, "mail")
    inc = os.path.join(inst.etc, "team.list")
    with open(inc, "w") as f:
        f.write("# the team\ndemo@example.test\n")
    os.chmod(inc, 0o644)
    append_aliases(inst, "\n".join([
        "",
        "tofile: %s/alias.mbox" % mail,
        'tocmd: "|cat > %s/cmd.out; echo $SENDER $RECIPIENT >> %s/cmd.env"' % (mail, mail),
        "toinc: :include:%s" % inc,
        "tomaildir: %s/aliasdir/" % mail,
        "fanout: demo@example.test, tofile",
        "loopa: loopb",
        "loopb: loopa",
        'failcmd: "|echo go away; exit 67"',
        'tempcmd: "|exit 75"',
        "faraway: someone@far.invalid",
        "",
    ]))
    inst.start()
    return inst


def test_alias_to_file_appends_mbox_with_from_quoting(aliased):
    aliased.send("demo@example.test", ["tofile@localhost"], msg("to a file"))
    aliased.wait_log(r"to=<tofile@localhost>, relay=local, .*status=sent \(delivered to file: ")
    data = read(os.path.join(aliased.dir, "mail", "alias.mbox"))
    assert data.startswith(b"From demo@example.test ")
    assert b"\nReturn-Path: <demo@example.test>\n" in data
    assert b"\nDelivered-To: tofile@localhost\n" in data
    assert b"\n>From the start of a line\n" in data
    assert data.endswith(b"\n\n")


def test_alias_to_command_gets_message_and_environment(aliased):
    aliased.send("demo@example.test", ["tocmd@localhost"], msg("to a command"))
    aliased.wait_log(r"to=<tocmd@localhost>, .*status=sent \(delivered to command: ")
    mail = os.path.join(aliased.dir, "mail")
    assert b"body of to a command" in read(os.path.join(mail, "cmd.out"))
    assert read(os.path.join(mail, "cmd.env")).split() == [b"demo@example.test",
                                                          b"tocmd@localhost"]


def test_alias_include_and_maildir_targets(aliased):
    aliased.send("demo@example.test", ["toinc@localhost", "tomaildir@localhost"],
                 msg("inc") + b".a line that starts with a dot\r\n")
    files = aliased.wait_for_maildir(aliased.demo_user, 1)
    assert b"Delivered-To: demo@example.test\n" in read(files[0])
    aliased.wait_log(r"to=<demo@example.test>, orig_to=<toinc@localhost>, relay=local")
    new = os.path.join(aliased.dir, "mail", "aliasdir", "new")
    assert wait_until(lambda: os.path.isdir(new) and os.listdir(new))
    name = os.listdir(new)[0]
    fields = re.search(r",S=(\d+),W=(\d+),P=(\d+)$", name)
    data = read(os.path.join(new, name))
    assert int(fields.group(1)) == len(data)
    # W=: CRLF size; P=: POP3 transfer octets (dot-stuffing, missing final LF).
    crlf = len(data) + data.count(b"\n") - data.count(b"\r\n")
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    dots = sum(1 for line in lines if line.startswith(b"."))
    assert dots == 1
    assert int(fields.group(2)) == crlf
    assert int(fields.group(3)) == crlf + dots + (0 if data.endswith(b"\n") else 2)


def test_alias_fanout_delivers_each_target_once(aliased):
    aliased.send("demo@example.test", ["fanout@localhost"], msg("fanout"))
    aliased.wait_for_maildir(aliased.demo_user, 1)
    aliased.wait_log(r"to=<fanout@localhost>, .*delivered to file")
    time.sleep(0.5)
    assert len(files_with(aliased, aliased.demo_user, b"body of fanout")) == 1


def test_alias_loop_bounces_with_546(aliased):
    aliased.send("demo@example.test", ["loopa@localhost"], msg("loop"))
    aliased.wait_log(r"status=bounced \(mail forwarding loop for ")
    aliased.wait_log(r"sender non-delivery notification: ")
    assert wait_until(lambda: files_with(aliased, aliased.demo_user, b"Status: 5.4.6"))


def test_delivered_to_header_loop_is_detected(aliased):
    aliased.send("demo@example.test", ["demo@example.test"],
                 msg("looped", "Delivered-To: Demo@Example.TEST\r\n"))
    aliased.wait_log(r"to=<demo@example.test>, .*dsn=5\.4\.6, status=bounced "
                     r"\(mail forwarding loop for demo@example.test\)")
    notice = []
    assert wait_until(lambda: notice.extend(
        files_with(aliased, aliased.demo_user, b"multipart/report")) or notice)
    data = read(notice[0])
    assert b"Return-Path: <>" in data
    assert b"Final-Recipient: rfc822; demo@example.test" in data
    assert b"Action: failed" in data
    # The looping message itself was not delivered.
    assert not [p for p in aliased.maildir_files(aliased.demo_user)
                if read(p).find(b"body of looped") >= 0 and b"multipart/report" not in read(p)]


def test_failing_command_bounces_with_its_output_and_tempfail_defers(aliased):
    aliased.send("demo@example.test", ["failcmd@localhost", "tempcmd@localhost"], msg("cmds"))
    aliased.wait_log(r"to=<failcmd@localhost>, .*dsn=5\.3\.0, status=bounced .*go away")
    m = aliased.wait_log(r"(\w+): to=<tempcmd@localhost>, .*dsn=4\.3\.0, status=deferred")
    qid = m.group(1)
    assert wait_until(lambda: os.path.exists(
        os.path.join(aliased.dir, "queue", "deferred", qid)))
    defer_log = read(os.path.join(aliased.dir, "queue", "defer", qid))
    assert defer_log.startswith(b"tempcmd@localhost\t4.3.0\t")
    assert wait_until(lambda: files_with(aliased, aliased.demo_user, b"go away"))


def test_forward_to_foreign_domain_is_queued_and_deferred(aliased):
    aliased.send("demo@example.test", ["faraway@localhost"], msg("forward"))
    m = aliased.wait_log(r"to=<someone@far.invalid>, orig_to=<faraway@localhost>, "
                         r"relay=local, .*status=sent \(forwarded as (\w+)\)")
    new_id = m.group(1)
    # The instance's dns_servers is a dead loopback port: no MX answer.
    aliased.wait_log(new_id + r": to=<someone@far.invalid>, relay=none, .*dsn=4\.4\.3, "
                     r"status=deferred \(.*Name service error for name=far\.invalid type=MX")
    path = os.path.join(aliased.dir, "queue", "deferred", new_id)
    assert wait_until(lambda: os.path.exists(path))
    assert b"Delivered-To: faraway@localhost\n" in read(path)


def test_unknown_local_user_from_sendmail_bounces_to_sender(aliased):
    r = aliased.run("sendmail", "-f", "demo@example.test", "nosuchuser@localhost",
                    input="Subject: picked up\n\nhello\n")
    assert r.returncode == 0, r.stderr
    aliased.wait_log(r"uid=\d+ from=<demo@example.test>")
    aliased.wait_log(r"to=<nosuchuser@localhost>, .*dsn=5\.1\.1, status=bounced "
                     r"\(unknown user: \"nosuchuser\"\)")
    assert wait_until(lambda: files_with(aliased, aliased.demo_user, b"Status: 5.1.1"))
    assert os.listdir(os.path.join(aliased.dir, "queue", "maildrop")) == []


def test_relay_recipient_is_deferred_and_flush_retries_it(instance):
    instance.send("demo@example.test", ["user@elsewhere.invalid"], msg("relay"))
    m = instance.wait_log(r"(\w+): to=<user@elsewhere.invalid>, relay=none, .*dsn=4\.4\.3, "
                          r"status=deferred \(Host or domain name not found\. Name service "
                          r"error for name=elsewhere\.invalid type=MX: Host not found, "
                          r"try again\)")
    qid = m.group(1)
    deferred = os.path.join(instance.dir, "queue", "deferred", qid)
    assert wait_until(lambda: os.path.exists(deferred))
    assert os.stat(deferred).st_mtime > time.time() + 60   # next try in the future
    instance.run("postqueue", "-f", check=True)
    instance.wait_log(r"flush requested")
    assert wait_until(lambda: len(re.findall(
        qid + r": to=<user@elsewhere.invalid>, relay=none", instance.maillog())) >= 2)


def test_corrupt_file_in_maildrop_goes_to_corrupt(instance):
    drop = os.path.join(instance.dir, "queue", "maildrop", "garbage")
    with open(drop, "wb") as f:
        f.write(b"not a queue file\n")
    instance.run("postqueue", "-f", check=True)   # any request; the scan is periodic anyway
    assert wait_until(lambda: os.path.exists(
        os.path.join(instance.dir, "queue", "corrupt", "garbage")), timeout=20)
    instance.wait_log(r"maildrop/garbage: .*moved to corrupt queue")
