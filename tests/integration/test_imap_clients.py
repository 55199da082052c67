"""Real IMAP clients against imapd: mbsync (Debian's isync) and mutt.

mbsync syncs the demo user's mailbox with a local Maildir both ways, over
IMAPS (implicit TLS) and over IMAP + STARTTLS, with the instance's own
self-signed certificate (DIR/etc/tls/cert.pem) as the only trusted one:

1. mail delivered by smtpd + local (and a folder filled by APPEND) is
   fetched: every local file equals the server's file byte for byte, a
   server flag (\\Flagged) shows in the local file name, folders are made;
2. a second run changes nothing on either side;
3. a message written into the local Maildir reaches the server (its file
   there has the same bytes), a flag set locally (\\Seen) reaches the
   server's file name; the next run again changes nothing.

mutt runs in batch mode under script(1) (it needs a terminal): it opens
the IMAPS INBOX, copies every message into a new folder and quits; the
folder must then hold copies of the messages, byte for byte.

Every client runs with HOME in a temporary directory and a timeout.
"""

import os
import re
import shutil
import subprocess
import time

import pytest

from imap_util import Client, folder_files, login, maildir_flags, read, require_imapd

pytestmark = pytest.mark.chain

MBSYNC = shutil.which("mbsync")
MUTT = shutil.which("mutt")
SCRIPT = shutil.which("script")
CLIENT_TIMEOUT = 60
DISCONNECT = re.compile(r"imapd\[\d+\]: disconnect: user=<([^>]*)>, rip=[^,]+, "
                        r"fetch=(\d+)/(\d+), append=(\d+), expunge=(\d+)")


def message(mid, subject, body_lines):
    text = ("From: Sender <sender@remote.test>\r\n"
            "To: demo@example.test\r\n"
            "Subject: %s\r\n"
            "Date: Wed, 25 Nov 2026 10:11:12 +0000\r\n"
            "Message-ID: <%s>\r\n\r\n" % (subject, mid))
    return (text + "".join(l + "\r\n" for l in body_lines)).encode()


MESSAGES = [
    message("mb.1@remote.test", "plain", ["Hello over IMAP.", "", "Second paragraph."]),
    message("mb.2@remote.test", "dots", [".", "..", ".hidden", "end ."]),
    message("mb.3@remote.test", "big",
            ["%05d %s" % (i, "0123456789abcdef" * 4) for i in range(3000)]),
]


def no_tuid(data):
    """mbsync marks the messages it propagates with an X-TUID header (its
    way to find them again after an APPEND); it is the one byte
    difference a sync may make."""
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", data, count=1)


def mid_of(data):
    m = re.search(rb"^Message-ID: <([^>]+)>", data, re.M | re.I)
    return m.group(1).decode() if m else None


def files_by_mid(paths):
    out = {}
    for p in paths:
        mid = mid_of(read(p))
        assert mid not in out, "duplicate %s" % mid
        out[mid] = p
    return out


def local_files(root, folder="INBOX"):
    d = os.path.join(root, folder)
    files = []
    for sub in ("new", "cur"):
        if os.path.isdir(os.path.join(d, sub)):
            files += [os.path.join(d, sub, n) for n in os.listdir(os.path.join(d, sub))
                      if not n.startswith(".")]
    return sorted(files)


def snapshot(root):
    """{relative path: bytes} of every message file under root (Maildir
    new/ and cur/ of every folder); state files are left out."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.basename(dirpath) not in ("new", "cur"):
            continue
        for n in filenames:
            p = os.path.join(dirpath, n)
            snap[os.path.relpath(p, root)] = read(p)
    return snap


@pytest.fixture
def imap_instance(instance):
    return require_imapd(instance)


@pytest.fixture
def server_mail(imap_instance):
    """Delivers MESSAGES through smtpd, flags mb.2 \\Flagged and fills the
    folder Archive with one message by APPEND."""
    inst = imap_instance
    for data in MESSAGES:
        assert inst.send("sender@remote.test", inst.demo_user, data) == {}
    inst.wait_for_maildir(inst.demo_user, len(MESSAGES))
    c = login(inst)
    c.select()
    r = c.cmd("SEARCH HEADER Message-ID mb.2@remote.test").ok()
    seq = r.named("SEARCH")[0].split()[1].decode()
    c.cmd("STORE %s +FLAGS (\\Flagged)" % seq).ok()
    c.cmd("CREATE Archive").ok()
    arch = message("arch.1@remote.test", "archived", ["kept in a folder"])
    c.cmd("APPEND Archive (\\Seen) {%d+}\r\n" % len(arch), arch.decode()).ok()
    c.cmd("LOGOUT")
    return inst


def mbsync_config(inst, home, local, mode):
    port = inst.ports["imaps"] if mode == "IMAPS" else inst.ports["imap"]
    rc = os.path.join(home, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("""IMAPAccount postern
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType %s
CertificateFile %s
AuthMechs LOGIN PLAIN
Timeout 20

IMAPStore remote
Account postern

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel postern
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
""" % (port, inst.demo_user, inst.demo_password, mode,
       os.path.join(inst.etc, "tls", "cert.pem"), local, local))
    os.chmod(rc, 0o600)
    return rc


def run_mbsync(rc, home):
    env = dict(os.environ, HOME=home)
    p = subprocess.run([MBSYNC, "-c", rc, "-V", "postern"], capture_output=True, text=True,
                       timeout=CLIENT_TIMEOUT, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0, "mbsync exited %d:\n%s" % (p.returncode, out[-4000:])
    return out


def sessions_since(inst, offset, user):
    """(fetched messages, bytes, appends, expunges) summed over the imapd
    sessions of user that ended after maillog offset."""
    def ended():
        found = [m for m in DISCONNECT.finditer(inst.maillog()[offset:])
                 if m.group(1) == user]
        return found or None
    deadline = time.monotonic() + 10
    while ended() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    found = ended()
    assert found, "no imapd disconnect line for %s" % user
    return tuple(sum(int(m.group(i)) for m in found) for i in (2, 3, 4, 5))


def assert_noop_run(inst, rc, home, local):
    before_near, before_far = snapshot(local), snapshot(inst.maildir(inst.demo_user))
    offset = len(inst.maillog())
    out = run_mbsync(rc, home)
    assert snapshot(local) == before_near, out[-2000:]
    assert snapshot(inst.maildir(inst.demo_user)) == before_far, out[-2000:]
    # Nothing was downloaded, uploaded or expunged.
    fetched, nbytes, appended, expunged = sessions_since(inst, offset, inst.demo_user)
    assert (nbytes, appended, expunged) == (0, 0, 0), out[-2000:]


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (Debian package isync) is not installed")
@pytest.mark.parametrize("mode", ["IMAPS", "STARTTLS"])
def test_mbsync_two_way_sync(server_mail, tmp_path, mode):
    inst = server_mail
    home = str(tmp_path)
    local = os.path.join(home, "Mail")
    os.makedirs(local)
    rc = mbsync_config(inst, home, local, mode)

    # 1. The first run fetches everything.
    offset = len(inst.maillog())
    run_mbsync(rc, home)
    fetched, nbytes, _, _ = sessions_since(inst, offset, inst.demo_user)
    assert nbytes >= sum(len(m) for m in MESSAGES)
    server = files_by_mid(folder_files(inst, inst.demo_user))
    near = files_by_mid(local_files(local))
    assert sorted(near) == sorted(server) == sorted(mid_of(m) for m in MESSAGES)
    for mid, path in near.items():
        assert no_tuid(read(path)) == read(server[mid]), "%s differs after sync" % mid
    assert "F" in maildir_flags(near["mb.2@remote.test"])
    assert "F" not in maildir_flags(near["mb.1@remote.test"])
    arch = files_by_mid(local_files(local, "Archive"))
    srv_arch = files_by_mid(folder_files(inst, inst.demo_user, "Archive"))
    assert list(arch) == ["arch.1@remote.test"]
    # imapd keeps an APPENDed message as sent (CRLF); mbsync writes LF.
    assert no_tuid(read(arch["arch.1@remote.test"])) == \
        read(srv_arch["arch.1@remote.test"]).replace(b"\r\n", b"\n")
    assert "S" in maildir_flags(arch["arch.1@remote.test"])
    for special in ("Drafts", "Sent", "Trash", "Junk"):
        assert os.path.isdir(os.path.join(local, special, "cur")), special

    # 2. A second run is a no-op on both sides.
    assert_noop_run(inst, rc, home, local)

    # 3. Local changes: a new message and a flag.
    new_msg = message("local.1@client.test", "written locally", ["from the near side"])
    new_msg = new_msg.replace(b"\r\n", b"\n")
    name = "%d.M1P%d.client" % (int(time.time()), os.getpid())
    with open(os.path.join(local, "INBOX", "tmp", name), "wb") as f:
        f.write(new_msg)
    os.rename(os.path.join(local, "INBOX", "tmp", name),
              os.path.join(local, "INBOX", "new", name))
    p1 = files_by_mid(local_files(local))["mb.1@remote.test"]
    base = os.path.basename(p1)
    stem, _, flags = base.partition(":2,")
    os.rename(p1, os.path.join(local, "INBOX", "cur",
                               stem + ":2," + "".join(sorted(set(flags) | {"S"}))))
    out = run_mbsync(rc, home)
    server = files_by_mid(folder_files(inst, inst.demo_user))
    assert "local.1@client.test" in server, out[-2000:]
    assert no_tuid(read(server["local.1@client.test"])).replace(b"\r\n", b"\n") == new_msg
    assert "S" in maildir_flags(server["mb.1@remote.test"])
    # The server tells every client: a fresh IMAP session sees both.
    c = login(inst)
    c.cmd("EXAMINE INBOX").ok()
    r = c.cmd("SEARCH SEEN HEADER Message-ID mb.1@remote.test").ok()
    assert len(r.named("SEARCH")[0].split()) == 2
    r = c.cmd("SEARCH HEADER Message-ID local.1@client.test").ok()
    assert len(r.named("SEARCH")[0].split()) == 2
    c.cmd("LOGOUT")

    # 4. And again nothing to do.
    assert_noop_run(inst, rc, home, local)


# ---- mutt -------------------------------------------------------------------

@pytest.mark.skipif(MUTT is None or SCRIPT is None,
                    reason="mutt or script(1) is not installed")
def test_mutt_batch_copies_messages(server_mail, tmp_path):
    inst = server_mail
    home = str(tmp_path)
    rc = os.path.join(home, "muttrc")
    url = "imaps://%s@127.0.0.1:%d" % (inst.demo_user.replace("@", "%40"),
                                        inst.ports["imaps"])
    with open(rc, "w") as f:
        f.write("""set imap_pass="%s"
set certificate_file="%s/certs"
set ssl_force_tls=yes
set folder="%s"
set spoolfile="%s/INBOX"
set confirmcreate=no
set confirmappend=no
set move=no
set quit=yes
set mark_old=no
set wait_key=no
set timeout=5
set imap_check_subscribed=no
set header_cache=""
set message_cachedir=""
""" % (inst.demo_password, home, url, url))
    os.chmod(rc, 0o600)
    # mutt trusts certificates in certificate_file.
    shutil.copy(os.path.join(inst.etc, "tls", "cert.pem"), os.path.join(home, "certs"))
    push = "push '<tag-pattern>~A<enter><tag-prefix><copy-message>=Copied<enter><quit>'"
    cmd = "%s -n -F %s -e \"%s\"" % (MUTT, rc, push)
    env = dict(os.environ, HOME=home, TERM="vt100")
    p = subprocess.run([SCRIPT, "-qec", cmd, "/dev/null"], capture_output=True,
                       timeout=CLIENT_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    server = files_by_mid(folder_files(inst, inst.demo_user))
    copied = files_by_mid(folder_files(inst, inst.demo_user, "Copied"))
    assert sorted(copied) == sorted(server), "mutt exited %d, output:\n%s" % (
        p.returncode, p.stdout[-3000:])
    for mid, path in copied.items():
        assert read(path).replace(b"\r\n", b"\n") == read(server[mid]).replace(b"\r\n", b"\n")
    # Reading with mutt did not mark anything \Seen (mark_old, no pager).
    c = Client(inst)
    c.login()
    c.cmd("EXAMINE INBOX").ok()
    assert c.cmd("SEARCH SEEN").ok().named("SEARCH")[0].split()[1:] == []
