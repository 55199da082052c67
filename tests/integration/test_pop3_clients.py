"""Real POP3 clients against pop3d: Debian's fetchmail and getmail6.

Mail goes in through smtpd (smtplib), is delivered by local into the demo
user's Maildir, and comes back out through pop3d with a real client over
POP3 + STLS (fetchmail) or plain POP3 from loopback (getmail6 has no
STLS), and POP3S (implicit TLS). The certificate is checked against the instance's own
DIR/etc/tls/cert.pem every time.

Byte-for-byte: what a client hands over (fetchmail to an MDA that writes
one file per message, getmail to a Maildir) must equal the file local
wrote, and that file must be the message smtplib sent (CRLF -> LF) behind
the headers Postern adds (Return-Path, Delivered-To, Received).

keep: the messages stay on the server and a second run of the client,
which remembers UIDLs, fetches nothing (UIDLs are stable across
sessions). no keep: the client deletes them; afterwards the Maildir holds
no message and a new session (poplib) sees an empty, consistent mailbox.

Every client runs with HOME pointing to a temporary directory, its rc
file mode 0600, and a timeout.
"""
import os
import pathlib
import poplib
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

pytestmark = pytest.mark.chain

FETCHMAIL = shutil.which("fetchmail")
GETMAIL = shutil.which("getmail")
CLIENT_TIMEOUT = 60
ADDED_HEADERS = (b"return-path", b"delivered-to", b"received")


# ---- the messages ---------------------------------------------------------

def _messages():
    """(message-id, CRLF bytes) for the test mails: plain text, lines that
    need dot-stuffing on both SMTP and POP3, an mbox 'From ' line,
    trailing white space, empty lines at the end, folded headers, and one
    of ~200 KiB (many TLS records)."""
    msgs = []

    def add(mid, headers, body_lines):
        text = ("From: Sender <sender@remote.test>\r\n"
                "To: demo@example.test\r\n"
                "Message-ID: <%s>\r\n%s\r\n" % (mid, headers))
        text += "".join(line + "\r\n" for line in body_lines)
        msgs.append((mid.encode(), text.encode()))

    add("plain.1@remote.test", "Subject: plain\r\n",
        ["Hello over POP3.", "", "Second paragraph."])
    add("dots.2@remote.test", "Subject: dots\r\n",
        [".", "..", ".hidden", "..double", ". space", "end ."])
    add("mixed.3@remote.test",
        "Subject: a folded\r\n subject line\r\nX-Tab: a\ttab\r\n",
        ["From the start of a line", "trailing spaces   ", "tab\tinside\t",
         "a" * 998, "", "", ""])
    big = ["%05d %s" % (i, "0123456789abcdef" * 4) for i in range(3000)]
    add("big.4@remote.test", "Subject: big\r\n", big)
    return msgs


def _lf(data):
    return data.replace(b"\r\n", b"\n")


def _strip_added(data):
    """The message without the trace headers at its top that Postern
    (and nothing else in these tests) adds, continuation lines included."""
    lines = data.split(b"\n")
    i = 0
    while i < len(lines):
        name = lines[i].split(b":", 1)[0].strip().lower()
        if b":" not in lines[i] or name not in ADDED_HEADERS:
            break
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\n".join(lines[i:])


def _message_id(data):
    for line in data.split(b"\n"):
        if not line.strip():
            break
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().strip(b"<>")
    return None


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- the server side ------------------------------------------------------

def _wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture
def pop3_instance(instance):
    if not os.path.exists(instance.bin("pop3d")):
        pytest.skip("pop3d is not built yet (%s missing)" % instance.bin("pop3d"))
    ports = getattr(instance, "ports", None) or {}
    offset = instance.smtp_port - 2525
    instance.pop3_port = ports.get("pop3", 2110 + offset)
    instance.pop3s_port = ports.get("pop3s", 2995 + offset)
    for port in (instance.pop3_port, instance.pop3s_port):
        assert _wait_port(port), "pop3d is not listening on 127.0.0.1:%d\nlog:\n%s" % (
            port, instance.maillog()[-3000:])
    instance.cert = os.path.join(instance.etc, "tls", "cert.pem")
    return instance


@pytest.fixture
def delivered(pop3_instance):
    """Sends the test messages through smtpd; returns {message-id: (sent,
    stored)} once local has delivered them all."""
    inst = pop3_instance
    msgs = _messages()
    for _, data in msgs:
        assert inst.send("sender@remote.test", inst.demo_user, data) == {}
    files = inst.wait_for_maildir(inst.demo_user, len(msgs), timeout=20)
    stored = {}
    for path in files:
        data = _read(path)
        stored[_message_id(data)] = data
    result = {}
    for mid, sent in msgs:
        assert mid in stored, "message %s not in the Maildir" % mid.decode()
        # The delivered file is the sent message behind Postern's trace headers.
        assert _strip_added(stored[mid]) == _lf(sent), mid
        result[mid] = (sent, stored[mid])
    return result


def _maildir_messages(inst):
    return inst.maildir_files(inst.demo_user)


def _assert_downloaded(downloaded, delivered):
    """downloaded: list of message bytes (LF) handed over by a client."""
    by_id = {}
    for data in downloaded:
        mid = _message_id(data)
        assert mid not in by_id, "message %r downloaded twice" % mid
        by_id[mid] = data
    assert sorted(by_id) == sorted(delivered), "downloaded %r" % sorted(by_id)
    for mid, (sent, stored) in delivered.items():
        got = _lf(by_id[mid])
        # Exactly the file on the server, hence the sent message plus
        # Postern's trace headers.
        assert got == stored, "message %s differs from the stored file" % mid.decode()
        assert _strip_added(got) == _lf(sent)


def _assert_emptied(inst):
    """After a client deleted everything: no message file left, and a new
    session sees an empty mailbox."""
    assert _maildir_messages(inst) == []
    p = poplib.POP3("127.0.0.1", inst.pop3_port, timeout=10)
    try:
        p.stls(ssl.create_default_context(cafile=inst.cert))
        p.user(inst.demo_user)
        p.pass_(inst.demo_password)
        assert p.stat() == (0, 0)
        assert p.uidl()[1] == []
        p.quit()
    finally:
        p.close()


def _assert_kept(inst, delivered):
    files = _maildir_messages(inst)
    assert len(files) == len(delivered)
    assert sorted(_read(f) for f in files) == sorted(s for _, s in delivered.values())


def _private_dir(tmp_path, name):
    d = tmp_path / name
    d.mkdir(mode=0o700)
    return d


def _env(home):
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["LC_ALL"] = "C.UTF-8"
    for var in ("FETCHMAILHOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env.pop(var, None)
    # fetchmail as root runs the MDA as the user named here: ourselves.
    env["FETCHMAILUSER"] = pwd.getpwuid(os.getuid()).pw_name
    return env


def _write_private(path, text):
    """An rc file holding a password: mode 0600 from the start (both
    clients also refuse rc files others can read)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _run(argv, home, timeout=CLIENT_TIMEOUT):
    r = subprocess.run(argv, env=_env(home), cwd=str(home), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


# ---- fetchmail ------------------------------------------------------------

def _fetchmail(inst, tmp_path, mode, keep, out):
    """Runs fetchmail once; returns (exit status, output). fetchmail 6.4:
    exit 0 = mail retrieved, 1 = no mail."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    if mode == "pop3s":
        port, tls = inst.pop3s_port, "ssl\n    sslproto TLS1.2+"
    else:
        # sslproto without ssl: STLS is required, no fallback to plain text.
        port, tls = inst.pop3_port, "sslproto TLS1.2+"
    rc = home / "fetchmailrc"
    # One file per message; mktemp never reuses a name. fetchmail runs
    # the MDA through /bin/sh (out has no white space or quotes).
    mda = "cat > $(mktemp %s/msg.XXXXXXXX)" % out
    _write_private(rc,
        "set no syslog\n"
        "set no bouncemail\n"
        "set invisible\n"
        "poll localhost with proto POP3 port %d\n"
        "    timeout 30\n"
        "    user \"%s\" there with password \"%s\"\n"
        "    %s\n"
        "    sslcertck\n"
        "    sslcertfile \"%s\"\n"
        "    %s\n"
        "    no rewrite\n"
        "    mda \"%s\"\n"
        % (port, inst.demo_user, inst.demo_password, tls, inst.cert,
           "keep" if keep else "no keep", mda))
    return _run([FETCHMAIL, "--fetchmailrc", str(rc), "--nodetach", "--verbose",
                 "--idfile", str(home / "fetchids"), "--pidfile", str(home / "fetchmail.pid"),
                 "--nosyslog"], home)


def _collected(out):
    return [_read(os.path.join(out, n)) for n in sorted(os.listdir(out))]


@pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail is not installed (make test-deps)")
@pytest.mark.parametrize("mode", ["stls", "pop3s"])
@pytest.mark.parametrize("keep", [True, False], ids=["keep", "no-keep"])
def test_fetchmail_downloads_byte_for_byte(pop3_instance, delivered, tmp_path, mode, keep):
    inst = pop3_instance
    out = _private_dir(tmp_path, "out")
    status, log = _fetchmail(inst, tmp_path, mode, keep, out)
    assert status == 0, "fetchmail exited %d\n%s\nmaillog:\n%s" % (
        status, log, inst.maillog()[-3000:])
    if mode == "stls":
        assert "STLS" in log, log
    _assert_downloaded(_collected(out), delivered)
    if keep:
        _assert_kept(inst, delivered)
        # A second run must find nothing new. fetchmail asks LAST first
        # (RFC 1725: the highest message number accessed, counting earlier
        # sessions, i.e. messages with the Maildir S flag) and falls back
        # to the UIDLs it remembers when LAST fails: either way the
        # server must remember what was read.
        out2 = _private_dir(tmp_path, "out2")
        status, log = _fetchmail(inst, tmp_path, mode, keep, out2)
        assert status == 1, (
            "second fetchmail run exited %d (1 = no mail); a LAST reply of 0 after the "
            "first session read everything makes fetchmail download it all again\n%s"
            % (status, log))
        assert _collected(out2) == []
        _assert_kept(inst, delivered)
    else:
        _assert_emptied(inst)


# ---- getmail6 -------------------------------------------------------------

def _getmail(inst, tmp_path, mode, keep, maildir, read_all=True):
    """Runs getmail once; returns (exit status, output). As root it
    delivers as nobody: getmail refuses to write a Maildir as root."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    gdir = home / "getmail"
    gdir.mkdir(mode=0o700, exist_ok=True)
    if mode == "pop3s":
        retriever = ("type = SimplePOP3SSLRetriever\nport = %d\nca_certs = %s\n"
                     % (inst.pop3s_port, inst.cert))
    else:
        # getmail6 (6.18) has no STLS for POP3: plain text, which pop3d
        # allows from loopback (disable_plaintext_auth exempts it).
        retriever = "type = SimplePOP3Retriever\nport = %d\n" % inst.pop3_port
    rc = gdir / "getmailrc"
    _write_private(rc,
        "[retriever]\n%s"
        "server = 127.0.0.1\n"
        "username = %s\n"
        "password = %s\n"
        "timeout = 30\n"
        "\n[destination]\n"
        "type = Maildir\n"
        "path = %s/\n"
        "%s"
        "\n[options]\n"
        "verbose = 2\n"
        "read_all = %s\n"
        "delete = %s\n"
        "delivered_to = false\n"
        "received = false\n"
        "message_log_syslog = false\n"
        % (retriever, inst.demo_user, inst.demo_password, maildir,
           "user = nobody\n" if os.geteuid() == 0 else "",
           "true" if read_all else "false", "false" if keep else "true"))
    return _run([GETMAIL, "--getmaildir", str(gdir), "--rcfile", str(rc)], home)


@pytest.fixture
def open_tmp():
    """A directory that getmail's delivery user (nobody, when we are root)
    can reach; pytest's tmp_path lies under a 0700 directory of root's."""
    d = tempfile.mkdtemp(prefix="postern-getmail-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _local_maildir(parent, name):
    d = _private_dir(parent, name)
    for sub in ("tmp", "new", "cur"):
        (d / sub).mkdir(mode=0o700)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in (d, d / "tmp", d / "new", d / "cur"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return d


def _maildir_contents(d):
    return [_read(os.path.join(d, sub, n)) for sub in ("new", "cur")
            for n in sorted(os.listdir(os.path.join(d, sub)))]


@pytest.mark.skipif(GETMAIL is None, reason="getmail6 is not installed (make test-deps)")
@pytest.mark.parametrize("mode", ["plain", "pop3s"])
@pytest.mark.parametrize("keep", [True, False], ids=["keep", "no-keep"])
def test_getmail_downloads_byte_for_byte(pop3_instance, delivered, tmp_path, open_tmp,
                                         mode, keep):
    inst = pop3_instance
    maildir = _local_maildir(open_tmp, "Maildir")
    status, log = _getmail(inst, tmp_path, mode, keep, maildir)
    assert status == 0, "getmail exited %d\n%s\nmaillog:\n%s" % (
        status, log, inst.maillog()[-3000:])
    _assert_downloaded(_maildir_contents(maildir), delivered)
    if keep:
        _assert_kept(inst, delivered)
        # getmail's oldmail file holds the UIDLs: without read_all a
        # second run retrieves nothing.
        maildir2 = _local_maildir(open_tmp, "Maildir2")
        status, log = _getmail(inst, tmp_path, mode, keep, maildir2, read_all=False)
        assert status == 0, "second getmail run exited %d\n%s" % (status, log)
        assert _maildir_contents(maildir2) == []
        _assert_kept(inst, delivered)
    else:
        _assert_emptied(inst)
