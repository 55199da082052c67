"""Faults: vanished clients, killed daemons, corrupt queue files, a full disk.

Each test asserts what is on disk afterwards (DESIGN.md invariant 1: an
acknowledged message is never lost; an unacknowledged one is never queued).
"""
import os
import signal
import smtplib
import socket
import subprocess
import time

import pytest


def pids_of(instance, program):
    """PIDs of this instance's processes running `program`."""
    out = subprocess.run(["pgrep", "-f", f"/{program} -c {instance.etc}"],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def queue_files(instance, *subdirs):
    names = []
    for sub in subdirs:
        d = os.path.join(instance.dir, "queue", sub)
        if os.path.isdir(d):
            names += [os.path.join(sub, n) for n in os.listdir(d)]
    return names


def raw_session(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    return s, f


def command(s, f, line, expect):
    s.sendall(line)
    reply = f.readline()
    while reply[3:4] == b"-":
        reply = f.readline()
    assert reply.startswith(expect), reply
    return reply


def message(subject, size=200):
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    return (f"From: a@example.net\r\nTo: demo@example.test\r\nSubject: {subject}\r\n\r\n"
            + body).encode()


def wait_for(predicate, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_client_vanishing_mid_data_queues_nothing(instance):
    s, f = raw_session(instance.smtp_port)
    command(s, f, b"EHLO t\r\n", b"250")
    command(s, f, b"MAIL FROM:<a@example.net>\r\n", b"250")
    command(s, f, b"RCPT TO:<demo@example.test>\r\n", b"250")
    command(s, f, b"DATA\r\n", b"354")
    s.sendall(b"Subject: half\r\n\r\nthis message never ends\r\n")
    f.close()   # the makefile() reader holds the socket open too
    s.close()
    assert instance.wait_log(r"lost connection after DATA", timeout=10)
    time.sleep(1)
    assert queue_files(instance, "incoming", "active", "deferred", "tmp") == []
    new = os.path.join(instance.dir, "mail", "example.test", "demo", "new")
    assert os.listdir(new) == []


def test_smtpd_killed_mid_data_is_restarted_and_queues_nothing(instance):
    s, f = raw_session(instance.smtp_port)
    command(s, f, b"EHLO t\r\n", b"250")
    command(s, f, b"MAIL FROM:<a@example.net>\r\n", b"250")
    command(s, f, b"RCPT TO:<demo@example.test>\r\n", b"250")
    command(s, f, b"DATA\r\n", b"354")
    s.sendall(b"Subject: killed\r\n\r\npartial body\r\n")
    time.sleep(0.3)
    victims = pids_of(instance, "smtpd")
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    assert f.readline() == b""          # the connection is gone
    s.close()
    assert instance.wait_log(r"killed by signal 9", timeout=10)
    # master restarts smtpd on the next connection; the killed session left
    # nothing in the queue proper.
    assert queue_files(instance, "incoming", "active", "deferred") == []
    instance.send("a@example.net", ["demo@example.test"], message("after kill"))
    files = instance.wait_for_maildir(instance.demo_user, 1)
    assert len(files) == 1
    assert b"after kill" in open(files[0], "rb").read()


def test_qmgr_killed_after_250_message_still_delivered(instance):
    qmgr = pids_of(instance, "qmgr")
    assert len(qmgr) == 1
    os.kill(qmgr[0], signal.SIGSTOP)
    try:
        instance.send("a@example.net", ["demo@example.test"], message("qmgr dies"))
        # Acknowledged, so it must be on disk in the queue.
        assert queue_files(instance, "incoming", "active")
    finally:
        os.kill(qmgr[0], signal.SIGKILL)
    files = instance.wait_for_maildir(instance.demo_user, 1, timeout=20)
    assert len(files) >= 1
    assert all(b"qmgr dies" in open(p, "rb").read() for p in files)
    assert instance.wait_log(r"qmgr pid \d+ killed by signal 9", timeout=5)


def test_local_killed_after_250_message_still_delivered(instance):
    # A first message makes master start a local process.
    instance.send("a@example.net", ["demo@example.test"], message("warm up"))
    assert len(instance.wait_for_maildir(instance.demo_user, 1)) == 1
    locals_ = pids_of(instance, "local")
    assert locals_
    for pid in locals_:
        os.kill(pid, signal.SIGSTOP)
    instance.send("a@example.net", ["demo@example.test"], message("local dies"))
    time.sleep(0.5)
    for pid in locals_:
        os.kill(pid, signal.SIGKILL)
    files = instance.wait_for_maildir(instance.demo_user, 2, timeout=30)
    bodies = [open(p, "rb").read() for p in files]
    assert sum(b"local dies" in b for b in bodies) >= 1
    assert wait_for(lambda: queue_files(instance, "incoming", "active") == [], timeout=10)


def test_corrupt_queue_file_moves_to_corrupt_and_others_flow(instance):
    bad_id = "0000000100000ABCD"
    path = os.path.join(instance.dir, "queue", "incoming", bad_id)
    # Made outside incoming/ and renamed in: qmgr may scan at any moment.
    staged = os.path.join(instance.dir, "queue", bad_id + ".staged")
    with open(staged, "wb") as f:
        f.write(b"POSTERN-QUEUE 1\nT garbage\n")
    if os.geteuid() == 0:
        owner = os.stat(os.path.join(instance.dir, "queue", "incoming"))
        os.chown(staged, owner.st_uid, owner.st_gid)
    os.rename(staged, path)
    # Restarting qmgr makes it scan incoming/ at once.
    for pid in pids_of(instance, "qmgr"):
        os.kill(pid, signal.SIGKILL)
    instance.send("a@example.net", ["demo@example.test"], message("still flows"))
    assert len(instance.wait_for_maildir(instance.demo_user, 1, timeout=20)) == 1
    assert wait_for(lambda: os.path.exists(
        os.path.join(instance.dir, "queue", "corrupt", bad_id)), timeout=20)
    assert instance.wait_log(bad_id + r".*corrupt", timeout=5)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_full_disk_gives_452_and_loses_nothing(instance_factory):
    inst = instance_factory(start=False)
    queue = os.path.join(inst.dir, "queue")
    saved = inst.dir + "/queue.saved"
    subprocess.run(["cp", "-a", queue, saved], check=True)   # keeps owners
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", queue], check=True)
    try:
        subprocess.run(["cp", "-a", saved + "/.", queue], check=True)
        inst.start()
        big = message("too big for the disk", size=900 * 1024)
        with pytest.raises(smtplib.SMTPDataError) as err:
            inst.send("a@example.net", ["demo@example.test"], big)
        assert err.value.smtp_code == 452
        assert b"4.3.1" in err.value.smtp_error
        assert queue_files(inst, "incoming", "active", "deferred") == []
        inst.send("a@example.net", ["demo@example.test"], message("fits"))
        files = inst.wait_for_maildir(inst.demo_user, 1)
        assert len(files) == 1
        assert b"fits" in open(files[0], "rb").read()
    finally:
        inst.stop()
        subprocess.run(["umount", "-l", queue])


def test_pflogsumm_counts_received_and_delivered(instance):
    for i in range(3):
        instance.send("a@example.net", ["demo@example.test"], message(f"count {i}"))
    assert len(instance.wait_for_maildir(instance.demo_user, 3)) == 3
    assert instance.wait_log(r"status=sent", timeout=5)
    time.sleep(0.5)
    out = subprocess.run(["pflogsumm", "--syslog-name=postern",
                          os.path.join(instance.dir, "log", "maillog")],
                         capture_output=True, text=True, check=True).stdout
    import re
    received = re.search(r"^\s*(\d+)\s+received", out, re.M)
    delivered = re.search(r"^\s*(\d+)\s+delivered", out, re.M)
    assert received and int(received.group(1)) == 3, out[:2000]
    assert delivered and int(delivered.group(1)) == 3, out[:2000]
