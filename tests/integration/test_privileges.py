"""Privilege separation (DESIGN.md invariant 3, issue 6): started as root,
master keeps root, and every child -- each one that parses network input
or mail included -- runs as mail_owner with no capabilities."""

import os
import poplib
import pwd
import socket
import stat
import time

import pytest


def status_fields(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return fields


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rfind(")") + 2:].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


def program_of(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return os.path.basename(f.read().split(b"\0")[0]).decode()


def wait_until(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_every_child_of_a_root_master_runs_as_mail_owner(instance):
    if os.geteuid() != 0:
        pytest.skip("needs root: master only drops privileges when started as root")
    owner = pwd.getpwnam("postern")
    master = instance.master_pid()
    assert master > 1
    assert status_fields(master)["Uid"][0] == "0"

    # Wake every on-demand service: smtpd, local, smtp (mail for a relay
    # domain; its DNS is a dead loopback port) and pop3d.
    instance.send("demo@example.test", ["demo@example.test"], b"Subject: a\r\n\r\nlocal\r\n")
    instance.send("demo@example.test", ["someone@far.invalid"], b"Subject: b\r\n\r\nout\r\n")
    instance.wait_for_maildir(instance.demo_user, 1)
    pop = poplib.POP3("127.0.0.1", instance.ports["pop3"], timeout=10)
    pop.user(instance.demo_user)
    pop.pass_(instance.demo_password)
    wanted = {"smtpd", "qmgr", "local", "smtp", "pop3d"}
    assert wait_until(lambda: wanted <= {program_of(p) for p in children_of(master)}), \
        sorted(program_of(p) for p in children_of(master))

    for pid in children_of(master):
        st = status_fields(pid)
        name = program_of(pid)
        assert st["Uid"] == [str(owner.pw_uid)] * 4, (name, st["Uid"])
        assert st["Gid"] == [str(owner.pw_gid)] * 4, (name, st["Gid"])
        # No capabilities left, and none to gain back.
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(st[cap][0], 16) == 0, (name, cap, st[cap])
        # No supplementary groups beyond mail_owner's own.
        assert set(st["Groups"]) <= {str(owner.pw_gid)}, (name, st["Groups"])
    pop.quit()

    # The TLS private key: mail_owner only.
    key = os.stat(os.path.join(instance.etc, "tls", "key.pem"))
    assert key.st_uid == owner.pw_uid
    assert stat.S_IMODE(key.st_mode) & 0o077 == 0
