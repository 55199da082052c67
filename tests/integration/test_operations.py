"""Operator-visible behaviour of a running instance: queue expiry and
RFC 3464 bounces, the queue tools (postqueue -j/-i, postcat, postsuper
-r/-d ALL), table tools and live alias changes, a real client (swaks),
SMTPUTF8/8BITMIME end to end, privilege separation, reload, restart
back-off, `make run` and many parallel connections.

Every test asserts what an operator can see: bytes on the wire, files in
the Maildir or the queue, lines in the log, command output.
"""
import email
import email.policy
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BUILD, PORT_BASES, _ports_free

pytestmark = pytest.mark.chain

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
QUEUE_DIRS = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")


# ---- helpers ----

def set_params(inst, **params):
    for name, value in params.items():
        inst.run("postconf", "-e", "%s=%s" % (name, value), check=True)


def wait_until(predicate, timeout=15, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def queue_ids(inst):
    """queue_id -> queue directory, for every message in the queue."""
    found = {}
    for sub in QUEUE_DIRS:
        d = os.path.join(inst.dir, "queue", sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                found[name] = sub
    return found


def message(subject, body="hello\r\n"):
    return ("From: demo@example.test\r\nTo: someone@far.invalid\r\n"
            "Subject: %s\r\n\r\n%s" % (subject, body)).encode()


def defer_one(inst, subject="deferred"):
    """Queues a message to a relay domain; returns its ID once deferred."""
    before = set(queue_ids(inst))
    inst.send("demo@example.test", ["someone@far.invalid"], message(subject))
    result = {}

    def deferred():
        for qid, sub in queue_ids(inst).items():
            if qid not in before and sub == "deferred":
                result["id"] = qid
                return True
        return False
    assert wait_until(deferred), inst.maillog()[-2000:]
    return result["id"]


def attempts(inst, qid):
    return len(re.findall(r"%s: to=<someone@far\.invalid>, relay=none" % qid, inst.maillog()))


class Session:
    """A raw SMTP session: exact bytes out, one (multi-line) reply back."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        lines = [self.file.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.file.readline())
        return b"".join(lines)

    def cmd(self, line, expect):
        self.sock.sendall(line if isinstance(line, bytes) else line.encode())
        r = self.reply()
        assert r.startswith(expect), (line, r)
        return r

    def close(self):
        self.file.close()
        self.sock.close()


def instance_procs(inst):
    """(pid, program) of every process of this instance."""
    procs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if inst.etc.encode() in argv:
            procs.append((int(entry), os.path.basename(argv[0].decode())))
    return procs


def pids_of(inst, program):
    return [pid for pid, prog in instance_procs(inst) if prog == program]


def proc_ids(pid, field):
    """The numbers of a /proc/PID/status line: Uid, Gid or Groups."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s line for %d" % (field, pid))


def proc_uids(pid):
    return proc_ids(pid, "Uid")


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(1024).startswith(b"220")
    except OSError:
        return False


# ---- 1. expiry and RFC 3464 bounce ----

def test_expired_relay_message_bounces_with_rfc3464_report(instance_factory):
    inst = instance_factory(start=False)
    set_params(inst, maximal_queue_lifetime="3s", minimal_backoff_time="1s",
               maximal_backoff_time="1s", queue_run_delay="1s")
    inst.start()
    inst.send("demo@example.test", ["someone@far.invalid"],
              message("will expire", "the original body\r\n"))
    m = inst.wait_log(r"(\w+): to=<someone@far\.invalid>, relay=none, .*dsn=4\.4\.3, "
                      r"status=deferred \(.*Name service error for name=far\.invalid")
    qid = m.group(1)
    inst.wait_log(r"%s: sender non-delivery notification: \w+" % qid, timeout=15)
    inst.wait_log(r"%s: from=<demo@example\.test>, status=expired, returned to sender" % qid)
    files = inst.wait_for_maildir(inst.demo_user, 1)
    assert len(files) == 1

    raw = read(files[0])
    report = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Return-Path"] == "<>"
    assert report["Auto-Submitted"].startswith("auto-replied")
    parts = report.get_payload()
    # Small enough for bounce_size_limit (50000): the whole message comes back.
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"]

    assert "someone@far.invalid" in parts[0].get_payload()
    # message/delivery-status: per-message fields, then one per-recipient block.
    blocks = parts[1].get_payload()
    assert len(blocks) == 2, raw
    assert blocks[0]["Reporting-MTA"].startswith("dns;")
    rcpt = blocks[1]
    assert rcpt["Final-Recipient"].replace(" ", "") == "rfc822;someone@far.invalid"
    assert rcpt["Action"] == "failed"
    assert re.fullmatch(r"4\.4\.7|5\.\d{1,3}\.\d{1,3}", rcpt["Status"]), rcpt["Status"]
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "will expire"
    assert "the original body" in returned.get_payload()

    # The original is gone from every queue directory.
    assert wait_until(lambda: qid not in queue_ids(inst)), queue_ids(inst)
    inst.wait_log(r"%s: removed" % qid)


def test_delay_warning_is_sent_once_while_the_message_stays_queued(instance_factory):
    inst = instance_factory(start=False)
    # far.invalid gets no DNS answer (dead loopback resolver): deferred.
    set_params(inst, delay_warning_time="2s", minimal_backoff_time="1s",
               maximal_backoff_time="1s", queue_run_delay="1s")
    inst.start()
    inst.send("demo@example.test", ["someone@far.invalid"],
              message("slow one", "still on its way\r\n"))
    m = inst.wait_log(r"(\w+): to=<someone@far\.invalid>, relay=none, .*status=deferred")
    qid = m.group(1)
    inst.wait_log(r"%s: sender delay notification: \w+" % qid, timeout=15)
    files = inst.wait_for_maildir(inst.demo_user, 1)
    report = email.message_from_bytes(read(files[0]), policy=email.policy.compat32)
    assert report.get_content_type() == "multipart/report"
    assert report["Subject"].startswith("Delayed Mail")
    rcpt = report.get_payload()[1].get_payload()[1]
    assert rcpt["Action"] == "delayed"
    assert rcpt["Final-Recipient"].replace(" ", "") == "rfc822;someone@far.invalid"
    assert rcpt["Status"].startswith("4.")
    # Still queued, and more retries do not warn again.
    assert qid in queue_ids(inst)
    time.sleep(3)
    assert len(re.findall(r"%s: sender delay notification" % qid, inst.maillog())) == 1
    assert len(inst.wait_for_maildir(inst.demo_user, 1)) == 1


# ---- 2. queue tools ----

def test_postqueue_json_retry_postcat_requeue_and_delete_all(instance):
    qid = defer_one(instance, "json one")
    qid2 = defer_one(instance, "json two")

    r = instance.run("postqueue", "-j")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout
    entries = {}
    for line in lines:
        obj = json.loads(line)
        entries[obj["queue_id"]] = obj
    assert set(entries) == {qid, qid2}
    e = entries[qid]
    assert e["queue_name"] == "deferred"
    assert isinstance(e["arrival_time"], int) and abs(e["arrival_time"] - time.time()) < 60
    assert isinstance(e["message_size"], int) and e["message_size"] > 0
    assert e["sender"] == "demo@example.test"
    assert len(e["recipients"]) == 1
    assert e["recipients"][0]["address"] == "someone@far.invalid"
    assert "Name service error for name=far.invalid" in e["recipients"][0]["delay_reason"]

    # postqueue -i: one message tried again now, the other left alone.
    assert attempts(instance, qid) == 1 and attempts(instance, qid2) == 1
    r = instance.run("postqueue", "-i", qid)
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: attempts(instance, qid) == 2), instance.maillog()[-2000:]
    time.sleep(0.3)
    assert attempts(instance, qid2) == 1

    # postcat -q: envelope and contents.
    r = instance.run("postcat", "-q", qid)
    assert r.returncode == 0, r.stderr
    assert "*** ENVELOPE RECORDS" in r.stdout
    assert "demo@example.test" in r.stdout
    assert "someone@far.invalid" in r.stdout
    assert "*** MESSAGE CONTENTS" in r.stdout
    assert "Subject: json one" in r.stdout
    assert r.stdout.index("ENVELOPE") < r.stdout.index("Subject: json one")
    assert instance.run("postcat", "-q", "0123456789ABCDEF0").returncode != 0

    # postsuper -r: back through qmgr as a fresh message.
    active_before = len(re.findall(r"%s: from=<demo@example.test>.*\(queue active\)" % qid,
                                   instance.maillog()))
    r = instance.run("postsuper", "-r", qid)
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: len(re.findall(
        r"%s: from=<demo@example.test>.*\(queue active\)" % qid,
        instance.maillog())) > active_before), instance.maillog()[-2000:]
    assert wait_until(lambda: attempts(instance, qid) == 3)
    assert wait_until(lambda: queue_ids(instance).get(qid) == "deferred")

    # postsuper -d ALL empties the queue.
    r = instance.run("postsuper", "-d", "ALL")
    assert r.returncode == 0, r.stderr
    assert "Deleted: 2 messages" in r.stderr
    assert queue_ids(instance) == {}
    assert "Mail queue is empty" in instance.run("postqueue", "-p").stdout
    assert instance.run("postqueue", "-j").stdout == ""


# ---- 3. postmap / postalias ----

def test_postmap_and_postalias_query_and_live_alias_change(instance):
    table = os.path.join(instance.etc, "ops-map")
    with open(table, "w") as f:
        f.write("# a test table\nkey1 value one\nKey2   second value\n")
    r = instance.run("postmap", table)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(table + ".lmdb")
    r = instance.run("postmap", "-q", "key1", "lmdb:" + table)
    assert (r.returncode, r.stdout) == (0, "value one\n"), r
    r = instance.run("postmap", "-q", "KEY2", table)
    assert (r.returncode, r.stdout) == (0, "second value\n"), r
    r = instance.run("postmap", "-q", "absent", table)
    assert (r.returncode, r.stdout) == (1, ""), r

    aliases = os.path.join(instance.etc, "aliases")
    assert instance.run("postalias", "-q", "newalias", aliases).returncode == 1
    # Unknown before the change: refused at RCPT.
    refused = None
    try:
        instance.send("demo@example.test", ["newalias@localhost"], message("too early"))
    except Exception as e:  # noqa: BLE001 - smtplib raises for all-refused
        refused = e
    assert refused is not None and "550" in str(refused), refused

    with open(aliases, "a") as f:
        f.write("\nnewalias: demo@example.test\n")
    r = instance.run("newaliases")
    assert r.returncode == 0, r.stderr
    r = instance.run("postalias", "-q", "newalias", aliases)
    assert (r.returncode, r.stdout) == (0, "demo@example.test\n"), r
    # Readers notice a rebuilt table within a second; no restart.
    time.sleep(1.1)
    instance.send("demo@example.test", ["newalias@localhost"],
                  message("via alias", "to the new alias\r\n"))
    files = instance.wait_for_maildir(instance.demo_user, 1)
    assert b"to the new alias" in read(files[0])
    instance.wait_log(r"to=<demo@example.test>, orig_to=<newalias@localhost>, relay=local, "
                      r".*status=sent")


# ---- 4. a real client ----

def test_swaks_delivers_exact_body(instance, tmp_path):
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    body_lines = [b"first line", b"  indented\ttab", b".leading dot", b"..two dots",
                  b"trailing spaces   ", b"", b"last line"]
    # No final newline: swaks appends "\r\n." itself.
    data = (b"From: you@example.net\nTo: demo@example.test\nSubject: swaks exact\n\n"
            + b"\n".join(body_lines))
    path = tmp_path / "data.eml"
    path.write_bytes(data)
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % instance.smtp_port,
                        "--from", "you@example.net", "--to", "demo@example.test",
                        "--data", "@%s" % path],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(rb"<-  250 2\.0\.0 Ok: queued as [0-9A-F]+", r.stdout), r.stdout
    files = instance.wait_for_maildir(instance.demo_user, 1)
    raw = read(files[0])
    header, sep, body = raw.partition(b"\n\n")
    assert sep, raw
    assert body == b"\n".join(body_lines) + b"\n"
    assert b"\nSubject: swaks exact\n" in header + b"\n"
    assert header.startswith(b"Return-Path: <you@example.net>\n")


# ---- 5. SMTPUTF8 and 8BITMIME ----

def test_smtputf8_and_8bitmime_carried_to_maildir_and_queue(instance):
    sender = "j\u00f6rg.m\u00fcller@b\u00fccher.example".encode()
    body = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c\r\nzweite Zeile\r\n".encode()
    data = (b"From: " + sender + b"\r\nTo: demo@example.test\r\n"
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    s = Session(instance.smtp_port)
    try:
        ehlo = s.cmd("EHLO client.example\r\n", b"250")
        assert b"SMTPUTF8" in ehlo and b"8BITMIME" in ehlo
        s.cmd(b"MAIL FROM:<" + sender + b"> SMTPUTF8 BODY=8BITMIME\r\n", b"250")
        s.cmd("RCPT TO:<demo@example.test>\r\n", b"250")
        # A relay recipient keeps the message in the queue for postcat.
        s.cmd("RCPT TO:<someone@far.invalid>\r\n", b"250")
        s.cmd("DATA\r\n", b"354")
        reply = s.cmd(data + b".\r\n", b"250")
        qid = re.search(rb"queued as ([0-9A-F]+)", reply).group(1).decode()
        s.cmd("QUIT\r\n", b"221")
    finally:
        s.close()

    files = instance.wait_for_maildir(instance.demo_user, 1)
    raw = read(files[0])
    assert raw.startswith(b"Return-Path: <" + sender + b">\n"), raw[:200]
    header, _, got_body = raw.partition(b"\n\n")
    assert b"From: " + sender + b"\n" in header
    assert got_body == body.replace(b"\r\n", b"\n")

    assert wait_until(lambda: queue_ids(instance).get(qid) == "deferred")
    r = instance.run("postcat", "-q", qid)
    assert r.returncode == 0, r.stderr
    env = r.stdout[:r.stdout.index("*** MESSAGE CONTENTS")]
    assert "\nsender: %s\n" % sender.decode() in env, env
    assert "\nnamed_attribute: smtputf8=1\n" in env, env
    assert "\nnamed_attribute: body=8BITMIME\n" in env, env
    assert "\nrecipient: someone@far.invalid\n" in env, env
    assert re.search(r"\ndone_recipient: demo@example\.test\n", env), env
    assert body.decode().split("\r\n")[0] in r.stdout, r.stdout


# ---- 6. privilege separation ----

def test_daemons_run_as_mail_owner_master_as_root(instance):
    if os.geteuid() != 0:
        pytest.skip("privilege separation needs root")
    owner = instance.run("postconf", "-h", "mail_owner", check=True).stdout.strip()
    pw = pwd.getpwnam(owner)
    uid, gid = pw.pw_uid, pw.pw_gid
    assert uid != 0
    instance.send("demo@example.test", [instance.demo_user], message("priv"))
    instance.wait_for_maildir(instance.demo_user, 1)
    # Keep a session open so smtpd is surely alive while we look.
    s = Session(instance.smtp_port)
    try:
        progs = {}
        for pid, prog in instance_procs(instance):
            progs.setdefault(prog, []).append(pid)
        for prog in ("smtpd", "qmgr", "local"):
            assert progs.get(prog), (prog, progs)
            for pid in progs[prog]:
                assert proc_uids(pid) == [uid] * 4, (prog, pid, proc_uids(pid))
                assert proc_ids(pid, "Gid") == [gid] * 4, (prog, pid)
                assert 0 not in proc_ids(pid, "Groups"), (prog, pid)
        master = instance.master_pid()
        assert master in progs.get("master", []), progs
        assert proc_uids(master)[0] == 0
    finally:
        s.close()


# ---- 7. reload ----

def test_reload_keeps_open_session_and_new_sessions_see_changes(instance):
    old = Session(instance.smtp_port)
    idle = Session(instance.smtp_port)
    try:
        assert b"reloaded-banner" not in old.greeting
        old.cmd("EHLO before.example\r\n", b"250")
        idle.cmd("EHLO idle.example\r\n", b"250")
        # One session is in the middle of DATA when the reload comes.
        old.cmd("MAIL FROM:<demo@example.test>\r\n", b"250")
        old.cmd("RCPT TO:<demo@example.test>\r\n", b"250")
        old.cmd("DATA\r\n", b"354")
        old.sock.sendall(b"Subject: across reload\r\n\r\nfirst half\r\n")
        set_params(instance, smtpd_banner="$myhostname ESMTP reloaded-banner")
        r = instance.postern("reload")
        assert r.returncode == 0, r.stderr
        instance.wait_log(r"reload -- version")

        # New sessions get the new configuration.
        def new_banner():
            s = Session(instance.smtp_port)
            try:
                return b"reloaded-banner" in s.greeting
            finally:
                s.close()
        assert wait_until(new_banner, timeout=10)
        new = Session(instance.smtp_port)
        assert new.greeting.startswith(b"220 mail.example.test ESMTP reloaded-banner"), \
            new.greeting
        new.close()

        # The sessions opened before the reload still complete transactions.
        old.cmd(b"second half\r\n.\r\n", b"250 2.0.0 Ok: queued as ")
        old.cmd("QUIT\r\n", b"221")
        idle.cmd("MAIL FROM:<demo@example.test>\r\n", b"250")
        idle.cmd("RCPT TO:<demo@example.test>\r\n", b"250")
        idle.cmd("DATA\r\n", b"354")
        idle.cmd(message("idle across reload", "survived the reload\r\n") + b".\r\n",
                 b"250 2.0.0 Ok: queued as ")
        idle.cmd("QUIT\r\n", b"221")
    finally:
        old.close()
        idle.close()
    files = instance.wait_for_maildir(instance.demo_user, 2, timeout=5)
    bodies = b"".join(read(f) for f in files)
    assert b"first half\nsecond half\n" in bodies
    assert b"survived the reload" in bodies


def test_reloads_during_a_burst_deliver_every_message_exactly_once(instance):
    # A reload restarts qmgr while local is delivering; the deliveries in
    # flight must be recorded, not repeated by the new qmgr.
    senders, per_sender = 4, 60
    errors = []

    def send(k):
        try:
            with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=30) as s:
                for i in range(per_sender):
                    s.sendmail("a@example.net", [instance.demo_user],
                               "Subject: burst %d-%d\r\n\r\nbody\r\n" % (k, i))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    reloads = 0
    while (reloads < 10 or any(t.is_alive() for t in threads)) and reloads < 60:
        time.sleep(0.05)
        assert instance.postern("reload").returncode == 0
        reloads += 1
    for t in threads:
        t.join()
    assert not errors, errors
    total = senders * per_sender
    files = instance.wait_for_maildir(instance.demo_user, total, timeout=20)
    time.sleep(0.5)   # a duplicate would arrive late
    subjects = {}
    for f in instance.maildir_files(instance.demo_user):
        m = re.search(rb"^Subject: (burst \d+-\d+)$", read(f), re.M)
        subjects[m.group(1)] = subjects.get(m.group(1), 0) + 1
    dups = {k: v for k, v in subjects.items() if v > 1}
    assert len(subjects) == total and not dups, (len(files), dups)


# ---- 8. restart back-off ----

def test_killed_smtpd_is_restarted_with_backoff(instance):
    for round_ in range(2):
        assert wait_until(lambda: can_connect(instance.smtp_port), timeout=10), round_
        s = Session(instance.smtp_port)
        pids = pids_of(instance, "smtpd")
        assert pids, instance_procs(instance)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        s.close()
        instance.wait_log(r"process \S*/smtpd pid %d killed by signal 9" % pids[0])
    log = instance.maillog()
    backoffs = [int(x) for x in re.findall(r"inet/\S+: back-off (\d+) ms before the next start",
                                           log)]
    assert len(backoffs) >= 2, log[-2000:]
    assert backoffs[1] > backoffs[0], backoffs
    start = time.monotonic()
    assert wait_until(lambda: can_connect(instance.smtp_port), timeout=6), log[-2000:]
    assert time.monotonic() - start < 6
    instance.send("demo@example.test", [instance.demo_user], message("after kills"))
    instance.wait_for_maildir(instance.demo_user, 1)


# ---- 9. make run ----

def _leftovers(etc):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if etc.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_make_run_smoke(tmp_path):
    if not _ports_free(0):
        pytest.skip("the default ports (%s...) are busy" % PORT_BASES["smtp"])
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    run = tempfile.mkdtemp(prefix="postern-makerun-", dir="/tmp")
    os.chmod(run, 0o755)
    etc = os.path.join(run, "etc")
    new = os.path.join(run, "mail", "example.test", "demo", "new")
    procs = []

    def make_run(n):
        out_path = tmp_path / ("make-run-%d.out" % n)
        with open(out_path, "wb") as out:
            # Its own session: SIGINT to the group is what Ctrl-C does.
            procs.append(subprocess.Popen(
                ["sh", os.path.join(ROOT, "tools", "make-run.sh"), BUILD, run],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True))
        assert wait_until(lambda: can_connect(PORT_BASES["smtp"]), timeout=20), \
            out_path.read_text()
        return out_path

    def ctrl_c(out_path):
        proc = procs[-1]
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        # master -d copies the log to the terminal: a clean stop, no child
        # dying of the Ctrl-C itself, nothing of the instance left.
        text = out_path.read_text()
        assert re.search(r"master\[\d+\]: terminating on signal 2", text), text
        assert re.search(r"master\[\d+\]: stopped", text), text
        assert "killed by signal" not in text, text
        assert wait_until(lambda: not _leftovers(etc), timeout=5), _leftovers(etc)
        assert not can_connect(PORT_BASES["smtp"])

    ok = False
    try:
        out_path = make_run(1)
        text = out_path.read_text()
        assert "created the instance" in text, text
        assert "Demo user:      demo@example.test" in text, text
        with open(os.path.join(etc, "demo-password")) as f:
            password = f.read().strip()
        assert "Demo password:  %s" % password in text, text
        m = re.search(r"^\s*(swaks --server 127\.0\.0\.1:%d .*)$" % PORT_BASES["smtp"],
                      text, re.M)
        assert m, text
        r = subprocess.run(shlex.split(m.group(1)), capture_output=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: os.path.isdir(new) and any(
            b"hello" in read(os.path.join(new, n)) for n in os.listdir(new)), timeout=10)
        ctrl_c(out_path)

        # A second run keeps the instance: same password, mail still there.
        out_path = make_run(2)
        text = out_path.read_text()
        assert "created the instance" not in text, text
        assert "Demo password:  %s" % password in text, text
        assert len(os.listdir(new)) == 1
        ctrl_c(out_path)
        ok = True
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if ok:
            shutil.rmtree(run, ignore_errors=True)
        else:
            print("kept make-run directory %s" % run)


# ---- 10. many parallel connections ----

def start_with_nofile(inst, nofile):
    """Starts inst with RLIMIT_NOFILE nofile for master and its children."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    with tempfile.TemporaryFile() as out:
        r = subprocess.run([inst.bin("postern"), "-c", inst.etc, "start"], env=inst.env(),
                           stdout=out, stderr=out, preexec_fn=limit, timeout=20)
        out.seek(0)
        assert r.returncode == 0, out.read()
    inst.started = True
    assert wait_until(lambda: can_connect(inst.smtp_port), timeout=10), inst.maillog()


@pytest.mark.parametrize("nofile", [None, 64], ids=["default-limits", "64-open-files"])
def test_200_parallel_connections_get_greeting_or_421(instance_factory, nofile):
    inst = instance_factory(start=nofile is None)
    if nofile is not None:
        start_with_nofile(inst, nofile)
    socks = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(("127.0.0.1", inst.smtp_port), timeout=10))
        greeted = refused = 0
        for s in socks:
            f = s.makefile("rb")
            line = f.readline()
            f.close()
            if line.startswith(b"220 "):
                greeted += 1
            else:
                assert re.match(rb"421 4\.\d\.\d .*\r\n$", line), line
                refused += 1
        assert greeted >= 1
        if nofile is None:
            assert greeted == 200   # 127.0.0.1 is in mynetworks: no per-client limit
        else:
            assert refused > 0
    finally:
        for s in socks:
            s.close()
    # Still working once it has seen the clients go, and no error storm
    # in the log.
    assert wait_until(lambda: can_connect(inst.smtp_port), timeout=5)
    inst.send("demo@example.test", [inst.demo_user], message("after the storm"))
    inst.wait_for_maildir(inst.demo_user, 1)
    assert inst.maillog().count("accept:") < 10
    assert "panic" not in inst.maillog() and "fatal" not in inst.maillog()


def test_every_session_in_data_at_once_past_the_fd_budget_loses_nothing(instance_factory):
    """smtpd budgets 3 descriptors per 2 sessions: with every session in
    DATA at once some queue files cannot be opened. Those sessions get a
    temporary 4xx; every message that got a 250 is delivered."""
    inst = instance_factory(start=False)
    start_with_nofile(inst, 64)   # (64 - 32) * 2 / 3 = 21 sessions
    socks = []
    try:
        for _ in range(21):
            s = socket.create_connection(("127.0.0.1", inst.smtp_port), timeout=10)
            f = s.makefile("rb")
            if not f.readline().startswith(b"220 "):
                s.close()
                continue
            socks.append((s, f))
        assert len(socks) >= 15
        for s, f in socks:
            s.sendall(b"HELO client.test\r\nMAIL FROM:<demo@example.test>\r\n"
                      b"RCPT TO:<%s>\r\nDATA\r\n" % inst.demo_user.encode())
        data_ok = []
        for s, f in socks:
            replies = [f.readline() for _ in range(4)]
            assert all(r[:1] in (b"2", b"3", b"4") for r in replies), replies
            if replies[3].startswith(b"354"):
                data_ok.append((s, f))
            else:
                assert replies[3].startswith(b"451 4.3.0"), replies
        accepted = 0
        for s, f in data_ok:
            s.sendall(b"Subject: fd budget\r\n\r\nbody\r\n.\r\n")
        for s, f in data_ok:
            r = f.readline()
            assert r[:1] in (b"2", b"4"), r
            accepted += r.startswith(b"250 ")
        assert accepted >= 1
    finally:
        for s, f in socks:
            f.close()
            s.close()
    inst.wait_for_maildir(inst.demo_user, accepted)
    time.sleep(1)
    assert len(inst.maildir_files(inst.demo_user)) == accepted
    assert "panic" not in inst.maillog() and "fatal" not in inst.maillog()


def test_parameter_doc_table_matches_the_parameter_table():
    """docs/postconf.md carries the table `postconf -T` prints (make docs)."""
    build = os.environ["POSTERN_BUILD"]
    table = subprocess.run([os.path.join(build, "postconf"), "-T"], capture_output=True,
                           text=True, check=True).stdout
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "postconf.md"),
               encoding="utf-8").read()
    assert table.count("\n") > 80
    assert table in doc, "docs/postconf.md is out of date: run `make docs`"
