"""The operator's commands against a real instance: postern, postconf,
sendmail, mailq (postqueue -p) and postsuper.

Tests marked `chain` need the whole delivery chain (master, smtpd, qmgr,
local, postqueue, postsuper); the others need only postern and master.
"""

import os
import re
import stat
import subprocess
import tempfile
import time
import warnings

import pytest

QUEUE_ID = r"[0-9A-F]{17}"


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def crypt_matches(password, hashed):
    """True when libcrypt says password produces hashed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, still the stdlib door to libcrypt
    return crypt.crypt(password, hashed) == hashed


# ---- postern init ----

def test_init_creates_layout_config_and_tables(instance_factory):
    inst = instance_factory(start=False)
    for sub in ("etc", "etc/tls", "queue", "queue/maildrop", "queue/incoming",
                "queue/active", "queue/deferred", "queue/hold", "queue/corrupt",
                "mail", "log", "mail/example.test/demo/new", "mail/example.test/demo/cur",
                "mail/example.test/demo/tmp"):
        assert os.path.isdir(os.path.join(inst.dir, sub)), sub
    for f in ("main.cf", "master.cf", "aliases", "aliases.lmdb", "vmailbox",
              "vmailbox.lmdb", "passwd", "demo-password", "tls/cert.pem", "tls/key.pem"):
        assert os.path.isfile(os.path.join(inst.etc, f)), f

    main_cf = read(os.path.join(inst.etc, "main.cf"))
    master_cf = read(os.path.join(inst.etc, "master.cf"))
    assert not re.search(r"@[A-Z_]+@", main_cf + master_cf), "unsubstituted placeholder"
    assert inst.dir in main_cf
    assert "127.0.0.1:%d" % inst.smtp_port in master_cf
    assert "127.0.0.1:%d" % inst.submission_port in master_cf

    aliases = read(os.path.join(inst.etc, "aliases"))
    for name in ("postmaster", "root", "mailer-daemon", "abuse"):
        assert re.search(r"^%s:\s*demo@example\.test\s*$" % name, aliases, re.M), name
    assert "demo@example.test example.test/demo/" in read(os.path.join(inst.etc, "vmailbox"))

    # The demo password: 16 alphanumerics, private, printed once.
    assert re.fullmatch(r"[A-Za-z0-9]{16}", inst.demo_password)
    assert stat.S_IMODE(os.stat(os.path.join(inst.etc, "demo-password")).st_mode) == 0o600
    assert inst.demo_password in inst.init_output


def test_init_makes_self_signed_certificate_with_sans(instance_factory):
    inst = instance_factory(domain="cli.test", start=False)
    cert = os.path.join(inst.etc, "tls", "cert.pem")
    key = os.path.join(inst.etc, "tls", "key.pem")
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", cert],
                          capture_output=True, text=True, check=True).stdout
    assert "Subject: CN = mail.cli.test" in text
    for san in ("DNS:mail.cli.test", "DNS:cli.test", "DNS:localhost", "IP Address:127.0.0.1"):
        assert san in text, san
    assert "Version: 3" in text
    # Ten years, give or take a day.
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert],
                         capture_output=True, text=True, check=True).stdout
    year = int(re.search(r" (\d{4}) GMT", end).group(1))
    assert year >= time.gmtime().tm_year + 9
    assert subprocess.run(["openssl", "verify", "-CAfile", cert, cert],
                          capture_output=True).returncode == 0
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if os.geteuid() == 0:
        import pwd
        assert st.st_uid == pwd.getpwnam("postern").pw_uid
    # The key belongs to the certificate.
    pub_cert = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", cert],
                              capture_output=True, check=True).stdout
    pub_key = subprocess.run(["openssl", "pkey", "-pubout", "-in", key],
                             capture_output=True, check=True).stdout
    assert pub_cert == pub_key


def test_init_refuses_existing_instance_without_force(instance_factory):
    inst = instance_factory(start=False)
    postern = inst.bin("postern")
    r = subprocess.run([postern, "init", inst.dir], capture_output=True, text=True)
    assert r.returncode != 0
    assert "exists" in r.stderr
    r = subprocess.run([postern, "init", inst.dir, "--force",
                        "--port-offset", str(inst.port_offset)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # --force gives the demo user a new password, and only one entry.
    new_password = read(os.path.join(inst.etc, "demo-password")).strip()
    assert new_password != inst.demo_password
    assert read(os.path.join(inst.etc, "passwd")).count("demo@example.test:") == 1


def test_init_as_root_gives_queue_and_mail_to_mail_owner(instance_factory):
    if os.geteuid() != 0:
        pytest.skip("ownership is only changed when running as root")
    import pwd
    uid = pwd.getpwnam("postern").pw_uid
    inst = instance_factory(start=False)
    for sub in ("queue", "queue/incoming", "mail", "mail/example.test/demo/new", "log"):
        assert os.stat(os.path.join(inst.dir, sub)).st_uid == uid, sub
    passwd = os.stat(os.path.join(inst.etc, "passwd"))
    assert passwd.st_uid == 0 and passwd.st_gid == pwd.getpwnam("postern").pw_gid
    assert stat.S_IMODE(passwd.st_mode) == 0o640


# ---- users ----

def test_user_add_list_passwd_del(instance_factory):
    inst = instance_factory(start=False)
    passwd_path = os.path.join(inst.etc, "passwd")

    r = inst.postern("user", "add", "Alice@Users.Test", input="first-Secret\n")
    assert r.returncode == 0, r.stderr
    text = read(passwd_path)
    m = re.search(r"^alice@users\.test:\{CRYPT\}(\$y\$\S+)$", text, re.M)
    assert m, text
    assert "first-Secret" not in text
    assert crypt_matches("first-Secret", m.group(1))
    assert not crypt_matches("wrong", m.group(1))
    # The mailbox exists, is mapped, and its domain is ours now.
    for sub in ("new", "cur", "tmp"):
        assert os.path.isdir(os.path.join(inst.dir, "mail", "users.test", "alice", sub))
    assert "alice@users.test users.test/alice/" in read(os.path.join(inst.etc, "vmailbox"))
    domains = inst.run("postconf", "-h", "virtual_mailbox_domains").stdout
    assert "users.test" in domains

    r = inst.postern("user", "list")
    assert r.returncode == 0
    assert r.stdout.split() == ["demo@example.test", "alice@users.test"]

    r = inst.postern("user", "add", "alice@users.test", input="again\n")
    assert r.returncode != 0 and "already exists" in r.stderr

    r = inst.postern("user", "passwd", "alice@users.test", input="second-Secret\n")
    assert r.returncode == 0, r.stderr
    hashed = re.search(r"^alice@users\.test:\{CRYPT\}(\S+)$", read(passwd_path), re.M).group(1)
    assert crypt_matches("second-Secret", hashed)
    assert not crypt_matches("first-Secret", hashed)
    assert "second-Secret" not in read(passwd_path)

    r = inst.postern("user", "del", "alice@users.test")
    assert r.returncode == 0, r.stderr
    assert "kept" in r.stdout
    assert "alice@users.test" not in read(passwd_path)
    assert "alice@users.test" not in read(os.path.join(inst.etc, "vmailbox"))
    assert os.path.isdir(os.path.join(inst.dir, "mail", "users.test", "alice", "new"))
    assert inst.postern("user", "list").stdout.split() == ["demo@example.test"]

    r = inst.postern("user", "del", "alice@users.test")
    assert r.returncode != 0 and "no such user" in r.stderr
    r = inst.postern("user", "passwd", "nobody@users.test", input="x\n")
    assert r.returncode != 0


@pytest.mark.parametrize("address", ["noat", "../evil@users.test", "a/b@users.test",
                                     "x@../../etc", "sp ace@users.test", "a:b@users.test"])
def test_user_add_refuses_bad_addresses(instance_factory, address):
    inst = instance_factory(start=False)
    r = inst.postern("user", "add", address, input="pw\n")
    assert r.returncode != 0
    assert not os.path.exists(os.path.join(inst.dir, "etc", "evil"))
    assert inst.postern("user", "list").stdout.split() == ["demo@example.test"]


def test_user_add_refuses_empty_password(instance_factory):
    inst = instance_factory(start=False)
    r = inst.postern("user", "add", "empty@example.test", input="\n")
    assert r.returncode != 0
    assert "empty@example.test" not in read(os.path.join(inst.etc, "passwd"))


# ---- postconf ----

def test_postconf_shows_edits_and_defaults(instance_factory):
    inst = instance_factory(start=False)
    r = inst.run("postconf", "-n")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^myhostname = mail\.example\.test$", r.stdout, re.M)
    assert re.search(r"^queue_directory = %s/queue$" % re.escape(inst.dir), r.stdout, re.M)

    r = inst.run("postconf", "-e", "message_size_limit=2048000")
    assert r.returncode == 0, r.stderr
    assert inst.run("postconf", "-h", "message_size_limit").stdout.strip() == "2048000"
    assert "message_size_limit = 2048000" in read(os.path.join(inst.etc, "main.cf"))

    r = inst.run("postconf", "-d", "message_size_limit")
    assert r.stdout.strip() == "message_size_limit = 10240000"


# ---- start, stop, status ----

def test_status_stop_start(instance):
    r = instance.postern("status")
    assert r.returncode == 0
    m = re.search(r"the Postern mail system is running: PID: (\d+)", r.stdout + r.stderr)
    assert m and int(m.group(1)) == instance.master_pid()

    r = instance.postern("stop")
    assert r.returncode == 0, r.stderr
    r = instance.postern("status")
    assert r.returncode == 1
    assert "is not running" in r.stdout + r.stderr
    assert instance.postern("stop").returncode != 0
    assert instance.postern("reload").returncode != 0

    instance.start()
    assert instance.postern("status").returncode == 0
    assert instance.postern("reload").returncode == 0
    assert instance.postern("status").returncode == 0


def test_second_master_refuses_to_start(instance):
    r = instance.postern("start")
    assert r.returncode != 0
    assert "already running" in r.stdout + r.stderr
    # master itself, past the CLI's check: the instance lock refuses it.
    with tempfile.TemporaryFile() as err:
        r = subprocess.run([instance.bin("master"), "-c", instance.etc, "-w"],
                           stdout=subprocess.DEVNULL, stderr=err, timeout=20)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    assert r.returncode != 0
    assert "already running" in stderr + instance.maillog()
    assert instance.postern("status").returncode == 0


def test_check_passes_on_a_fresh_instance(instance_factory):
    inst = instance_factory(start=False)
    r = inst.postern("check")
    assert r.returncode == 0, r.stderr
    assert "0 errors" in r.stderr


# ---- sendmail, mailq, postsuper (the whole chain) ----

@pytest.mark.chain
def test_sendmail_delivers_to_demo_maildir(instance):
    msg = "Subject: cli test\n\nhello from sendmail\n.\nnot part of the message\n"
    r = instance.run("sendmail", "-f", "root@example.test", instance.demo_user, input=msg)
    assert r.returncode == 0, r.stderr
    files = instance.wait_for_maildir(instance.demo_user, 1)
    body = read(files[0])
    assert "hello from sendmail" in body
    assert "not part of the message" not in body
    assert re.search(r"^Received: by mail\.example\.test \(Postern, from userid \d+\)", body, re.M)
    assert re.search(r"^Message-ID: <\d{14}\.%s@mail\.example\.test>$" % QUEUE_ID, body, re.M)
    assert re.search(r"^Date: ", body, re.M)
    assert re.search(r"^From: root@example\.test$", body, re.M)
    instance.wait_log(r"status=sent")


@pytest.mark.chain
def test_sendmail_t_takes_recipients_from_headers_and_drops_bcc(instance):
    instance.add_user("bob@example.test", "bob-pw")
    msg = ("To: Demo User <demo@example.test>\r\n"
           "Bcc: bob@example.test\r\n"
           "Subject: extracted\r\n\r\nbody line\r\n")
    r = instance.run("sendmail", "-t", "-i", "-F", "Root Operator", "-f", "root@example.test",
                     input=msg)
    assert r.returncode == 0, r.stderr
    for rcpt in ("demo@example.test", "bob@example.test"):
        body = read(instance.wait_for_maildir(rcpt, 1)[0])
        assert "Bcc:" not in body
        assert "\r" not in body
        assert re.search(r"^From: Root Operator <root@example\.test>$", body, re.M)


def test_sendmail_without_recipients_is_a_usage_error(instance_factory):
    inst = instance_factory(start=False)
    r = inst.run("sendmail", input="Subject: x\n\nbody\n")
    assert r.returncode == 64  # EX_USAGE
    assert "no recipients" in r.stderr
    r = inst.run("sendmail", "-t", input="Subject: x\n\nbody\n")
    assert r.returncode == 64
    assert os.listdir(os.path.join(inst.dir, "queue", "maildrop")) == []


def test_sendmail_queues_in_maildrop_while_stopped(instance_factory):
    inst = instance_factory(start=False)
    r = inst.run("sendmail", "demo", input="Subject: queued\n\nwhile stopped\n")
    assert r.returncode == 0, r.stderr
    files = os.listdir(os.path.join(inst.dir, "queue", "maildrop"))
    assert len(files) == 1 and re.fullmatch(QUEUE_ID, files[0])
    text = read(os.path.join(inst.dir, "queue", "maildrop", files[0]))
    # A bare local part gets @$myorigin; the sender is the login name.
    assert re.search(r"^R. demo@", text, re.M)
    assert re.search(r"^A protocol=local$", text, re.M)
    assert re.search(r"^A uid=%d$" % os.getuid(), text, re.M)
    assert text.endswith("E\n")


def _queue_deferred_message(inst):
    """Queues mail to a remote domain, which qmgr defers (no outbound
    delivery yet); returns its queue ID once it is in deferred/."""
    r = inst.run("sendmail", "-f", "root@example.test", "someone@remote.invalid",
                 input="Subject: stuck\n\nstays in the queue\n")
    assert r.returncode == 0, r.stderr
    deferred = os.path.join(inst.dir, "queue", "deferred")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ids = [n for n in os.listdir(deferred) if re.fullmatch(QUEUE_ID, n)]
        if ids:
            return ids[0]
        time.sleep(0.05)
    raise AssertionError("no deferred message\n" + inst.maillog()[-2000:])


@pytest.mark.chain
def test_mailq_lists_deferred_message(instance):
    qid = _queue_deferred_message(instance)
    r = instance.run("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^%s\s+\d+ " % qid, r.stdout, re.M), r.stdout
    assert "root@example.test" in r.stdout
    assert "someone@remote.invalid" in r.stdout
    assert re.search(r"in 1 Request", r.stdout)
    # sendmail -bp is mailq.
    assert qid in instance.run("sendmail", "-bp").stdout


@pytest.mark.chain
def test_postsuper_hold_release_delete(instance):
    qid = _queue_deferred_message(instance)
    queue = os.path.join(instance.dir, "queue")

    r = instance.run("postsuper", "-h", qid)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(queue, "hold", qid))
    assert re.search(r"^%s!" % qid, instance.run("postqueue", "-p").stdout, re.M)

    r = instance.run("postsuper", "-H", qid)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(queue, "hold", qid))
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(queue, "deferred", qid)):
        assert time.monotonic() < deadline, "released message did not return to deferred/"
        time.sleep(0.05)

    r = instance.run("postsuper", "-d", qid)
    assert r.returncode == 0, r.stderr
    for sub in ("deferred", "hold", "incoming", "active"):
        assert not os.path.exists(os.path.join(queue, sub, qid))
    assert "Mail queue is empty" in instance.run("postqueue", "-p").stdout
