"""smtpd TLS (STARTTLS, SMTPS) and SMTP AUTH (issue 6), with real clients:
smtplib, swaks and openssl s_client against a running instance whose
master.cf has smtp (STARTTLS offered), submission (STARTTLS required, AUTH)
and smtps (TLS from the first byte, AUTH)."""

import base64
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
from smtp_raw import Raw

ALICE = "alice@example.test"


# ---- helpers ----

def starttls(r):
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    assert r.cmd("STARTTLS") == ["220 2.0.0 Ready to start TLS"]
    r.wrap()
    ehlo = r.cmd("EHLO client.example")
    assert ehlo[-1].startswith("250")
    return [l[4:] for l in ehlo[1:]]


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def verify_context(inst):
    """A client context that trusts only the instance's own certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(inst.etc, "tls", "cert.pem"))
    return ctx


def message(subject, to="demo@example.test"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n"
            "body\r\n" % (ALICE, to, subject, subject.replace(" ", "-")))


def delivered_text(inst, subject):
    for path in inst.wait_for_maildir(inst.demo_user, 1):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        if "Subject: %s" % subject in text:
            return text
    return None


def wait_delivered(inst, subject, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = delivered_text(inst, subject)
        if text is not None:
            return text
        time.sleep(0.1)
    raise AssertionError("%r not delivered\n%s" % (subject, inst.maillog()[-3000:]))


@pytest.fixture
def edge(instance_factory):
    """An instance with user alice; failure delay short so tests stay quick."""
    inst = instance_factory(start=False, users=(ALICE,),
                            main_cf={"auth_failure_delay": "1s"})
    inst.start()
    for port in (inst.submission_port, inst.ports["smtps"]):
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return inst


# ---- offers and refusals before TLS ----

def test_smtp_offers_starttls_but_no_auth(edge):
    r = Raw(edge.smtp_port)
    keywords = [l[4:] for l in r.cmd("EHLO client.example")[1:]]
    assert "STARTTLS" in keywords
    assert not any(k.startswith("AUTH") for k in keywords)
    assert r.cmd("AUTH PLAIN") == ["503 5.5.1 Error: authentication not enabled"]
    assert r.cmd("STARTTLS x") == ["501 5.5.4 Syntax: STARTTLS"]
    # The port-25 role still takes mail without TLS.
    assert r.cmd("MAIL FROM:<a@remote.example>")[0].startswith("250")
    assert r.cmd("STARTTLS") == ["503 5.5.1 Error: MAIL transaction in progress"]
    keywords = starttls_after_rset(r)
    assert "STARTTLS" not in keywords
    assert r.cmd("STARTTLS") == ["554 5.5.1 Error: TLS already active"]
    assert r.cmd("AUTH PLAIN") == ["503 5.5.1 Error: authentication not enabled"]
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]


def starttls_after_rset(r):
    assert r.cmd("RSET") == ["250 2.0.0 Ok"]
    return starttls(r)


def test_submission_requires_starttls_before_mail_and_auth(edge):
    r = Raw(edge.submission_port)
    keywords = [l[4:] for l in r.cmd("EHLO client.example")[1:]]
    assert "STARTTLS" in keywords
    # smtpd_tls_auth_only: AUTH is neither offered nor accepted in the clear.
    assert not any(k.startswith("AUTH") for k in keywords)
    assert r.cmd("AUTH PLAIN " + plain(ALICE, edge.passwords[ALICE])) == [
        "538 5.7.11 Encryption required for requested authentication mechanism"]
    assert r.cmd("MAIL FROM:<%s>" % ALICE) == ["530 5.7.0 Must issue a STARTTLS command first"]
    assert r.cmd("VRFY demo") == ["530 5.7.0 Must issue a STARTTLS command first"]
    keywords = starttls_after_rset(r)
    assert "AUTH PLAIN LOGIN" in keywords and "STARTTLS" not in keywords
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]
    log = edge.wait_log(r"postern/submission/smtpd\[\d+\]: disconnect from .*starttls=1.*")
    assert "auth=0/1" in log.group(0) and "mail=0/1" in log.group(0)


# ---- STARTTLS injection ----

def test_commands_pipelined_behind_starttls_are_discarded(instance_factory):
    inst = instance_factory(main_cf={"smtpd_helo_required": "yes"})
    r = Raw(inst.smtp_port)
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    r.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\n")
    assert r.reply() == ["220 2.0.0 Ready to start TLS"]
    assert r.buf == b""
    r.wrap()
    # The MAIL sent in the clear is never answered...
    assert r.nothing_within(1.0)
    # ...nor executed, and the EHLO before TLS is forgotten (RFC 3207 4.2).
    assert r.cmd("RCPT TO:<%s>" % inst.demo_user) == ["503 5.5.1 Error: need MAIL command"]
    assert r.cmd("MAIL FROM:<a@remote.example>") == ["503 5.5.1 Error: send HELO/EHLO first"]
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    assert r.cmd("MAIL FROM:<a@remote.example>")[0].startswith("250")
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]
    inst.wait_log(r"improper command pipelining after STARTTLS from localhost\[127\.0\.0\.1\]")
    assert "injected" not in inst.maillog()


# ---- clients: smtplib, swaks, openssl ----

def test_smtplib_starttls_login_relays_and_headers(edge):
    with smtplib.SMTP("127.0.0.1", edge.submission_port, timeout=10,
                      local_hostname="client.test") as s:
        s.starttls(context=verify_context(edge))
        s.ehlo("client.test")
        assert s.has_extn("auth") and "PLAIN" in s.esmtp_features["auth"]
        code, text = s.login(ALICE, edge.passwords[ALICE])
        assert code == 235 and text == b"2.7.0 Authentication successful"
        assert s.sendmail(ALICE, [edge.demo_user], message("submission tls")) == {}
        # Authenticated: a foreign domain is relayed (queued; its DNS is dead,
        # so it is deferred later, which is not this test's business).
        assert s.sendmail(ALICE, ["bob@remote.example"], message("relay", "bob@remote.example")) == {}
        s.quit()
    text = wait_delivered(edge, "submission tls")
    hdr = re.search(r"^Received: from client\.test \(localhost \[127\.0\.0\.1\]\)\n"
                    r"\t\(using (TLSv1\.[23]) with cipher (\S+) \((\d+)/(\d+) bits\)\)\n"
                    r"\t\(No client certificate requested\)\n"
                    r"\tby mail\.example\.test \(Postern\) with ESMTPSA id (\w+)\n", text, re.M)
    assert hdr, text
    log = edge.wait_log(r"postern/submission/smtpd\[\d+\]: %s: client=localhost\[127\.0\.0\.1\], "
                        r"sasl_method=PLAIN, sasl_username=alice@example\.test$" % hdr.group(5))
    assert log
    edge.wait_log(r"postern/submission/smtpd\[\d+\]: Anonymous TLS connection established from "
                  r"localhost\[127\.0\.0\.1\]: TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)")
    # The relayed message was queued (and deferred: dead DNS), its queue
    # file naming the SASL user.
    m = edge.wait_log(r"(\w+): to=<bob@remote\.example>.*status=deferred")
    path = os.path.join(edge.dir, "queue", "deferred", m.group(1))
    with open(path, "rb") as f:
        data = f.read()
    assert b"sasl_username=alice@example.test" in data and b"protocol=ESMTPSA" in data


def test_submission_refuses_relay_without_auth(edge):
    with smtplib.SMTP("127.0.0.1", edge.submission_port, timeout=10) as s:
        s.starttls(context=verify_context(edge))
        s.ehlo("client.test")
        assert s.mail(ALICE)[0] == 250
        code, text = s.rcpt("bob@remote.example")
        assert code == 554 and text.startswith(b"5.7.1 <bob@remote.example>:")
        # Even our own domains need authentication on this port.
        code, _ = s.rcpt(edge.demo_user)
        assert code == 554
        s.quit()
    edge.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                  r"<bob@remote\.example>")


def test_smtps_implicit_tls_with_verification(edge):
    with smtplib.SMTP_SSL("127.0.0.1", edge.ports["smtps"], timeout=10,
                          local_hostname="client.test", context=verify_context(edge)) as s:
        s.ehlo("client.test")
        assert s.has_extn("auth") and not s.has_extn("starttls")
        s.login(ALICE, edge.passwords[ALICE])
        assert s.sendmail(ALICE, [edge.demo_user], message("over smtps")) == {}
        s.quit()
    text = wait_delivered(edge, "over smtps")
    assert "with ESMTPSA id" in text and "\t(using TLSv1." in text
    edge.wait_log(r"postern/smtps/smtpd\[\d+\]: \w+: client=localhost\[127\.0\.0\.1\], "
                  r"sasl_method=(PLAIN|LOGIN), sasl_username=alice@example\.test")


def test_smtps_plaintext_client_gets_nothing(edge):
    s = socket.create_connection(("127.0.0.1", edge.ports["smtps"]), timeout=5)
    s.sendall(b"EHLO client.example\r\n")
    data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert b"250" not in data and b"220" not in data
    edge.wait_log(r"TLS handshake failed from 127\.0\.0\.1")


def test_starttls_on_smtp_with_esmtps_header(edge):
    with smtplib.SMTP("127.0.0.1", edge.smtp_port, timeout=10, local_hostname="client.test") as s:
        s.starttls(context=verify_context(edge))
        s.ehlo("client.test")
        assert s.sendmail("x@remote.example", [edge.demo_user], message("smtp tls")) == {}
        s.quit()
    text = wait_delivered(edge, "smtp tls")
    assert re.search(r"\tby mail\.example\.test \(Postern\) with ESMTPS id ", text), text


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
@pytest.mark.parametrize("tls_opt,auth,port_name", [
    ("-tls", "PLAIN", "submission"),
    ("-tls", "LOGIN", "submission"),
    ("-tlsc", "PLAIN", "smtps"),
    ("-tlsc", "LOGIN", "smtps"),
])
def test_swaks_tls_and_auth(edge, tls_opt, auth, port_name):
    port = edge.ports[port_name]
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, tls_opt,
                        "--auth", auth, "--auth-user", ALICE,
                        "--auth-password", edge.passwords[ALICE],
                        "--from", ALICE, "--to", edge.demo_user,
                        "--header", "Subject: swaks %s %s" % (auth, port_name),
                        "--helo", "client.test"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 Authentication successful" in r.stdout
    assert re.search(r"250 2\.0\.0 Ok: queued as \w+", r.stdout)
    text = wait_delivered(edge, "swaks %s %s" % (auth, port_name))
    assert "with ESMTPSA id" in text
    edge.wait_log(r"sasl_method=%s, sasl_username=alice@example\.test" % auth)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_wrong_password_fails(edge):
    t0 = time.monotonic()
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % edge.submission_port, "-tls",
                        "--auth", "LOGIN", "--auth-user", ALICE, "--auth-password", "wrong",
                        "--from", ALICE, "--to", edge.demo_user],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "535 5.7.8 Error: authentication failed: authentication failure" in r.stdout
    assert time.monotonic() - t0 >= 0.9
    edge.wait_log(r"warning: localhost\[127\.0\.0\.1\]: SASL LOGIN authentication failed: "
                  r"authentication failure")


def s_client(port, *args, stdin=b"QUIT\r\n", timeout=15):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-starttls", "smtp",
            "-ign_eof", *args]
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def test_openssl_protocol_cipher_and_session_resumption(edge, tmp_path):
    sess = str(tmp_path / "session.pem")
    rc, out = s_client(edge.smtp_port, "-sess_out", sess)
    assert rc == 0, out
    assert re.search(r"^New, TLSv1\.3, Cipher is TLS_", out, re.M), out
    assert "221 2.0.0 Bye" in out
    rc, out = s_client(edge.smtp_port, "-sess_in", sess)
    assert rc == 0, out
    assert re.search(r"^Reused, TLSv1\.3, Cipher is TLS_", out, re.M), out
    # TLS 1.2 with a forward-secret AEAD cipher, and its resumption (ticket).
    sess12 = str(tmp_path / "session12.pem")
    rc, out = s_client(edge.smtp_port, "-tls1_2", "-sess_out", sess12)
    assert rc == 0, out
    m = re.search(r"^New, TLSv1\.2, Cipher is (\S+)", out, re.M)
    assert m and m.group(1).startswith("ECDHE-") and ("GCM" in m.group(1) or "CHACHA" in m.group(1))
    rc, out = s_client(edge.smtp_port, "-tls1_2", "-sess_in", sess12)
    assert re.search(r"^Reused, TLSv1\.2", out, re.M), out
    edge.wait_log(r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: "
                  r"TLSv1\.2 with cipher ECDHE-")


def test_tls_1_1_and_1_0_refused(edge):
    for flag in ("-tls1_1", "-tls1"):
        # SECLEVEL=0: the local OpenSSL client would not even try old
        # protocols at its default security level.
        rc, out = s_client(edge.smtp_port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
        if "no protocols available" in out or "unknown option" in out:
            pytest.skip("the local OpenSSL client cannot offer %s at all" % flag)
        assert rc != 0, out
        assert "Cipher is (NONE)" in out
        assert re.search(r"alert protocol version|unsupported protocol|wrong version", out), out
    edge.wait_log(r"TLS handshake failed from 127\.0\.0\.1: unsupported protocol")


# ---- AUTH exchanges ----

def test_auth_exchanges_cancel_and_repeats(edge):
    pw = edge.passwords[ALICE]
    r = Raw(edge.submission_port)
    starttls(r)
    assert r.cmd("AUTH") == ["501 5.5.4 Syntax: AUTH mechanism"]
    assert r.cmd("AUTH CRAM-MD5") == ["504 5.5.4 Unrecognized authentication type"]
    assert r.cmd("AUTH PLAIN") == ["334 "]
    assert r.cmd("*") == ["501 5.7.0 Authentication aborted"]
    assert r.cmd("AUTH LOGIN") == ["334 VXNlcm5hbWU6"]
    assert r.cmd(base64.b64encode(ALICE.encode()).decode()) == ["334 UGFzc3dvcmQ6"]
    assert r.cmd("*") == ["501 5.7.0 Authentication aborted"]
    # "=" is an empty initial response: LOGIN goes on to the password.
    assert r.cmd("AUTH LOGIN =") == ["334 UGFzc3dvcmQ6"]
    assert r.cmd("*") == ["501 5.7.0 Authentication aborted"]
    assert r.cmd("AUTH PLAIN =") == ["501 5.5.2 Cannot decode response"]
    assert r.cmd("AUTH PLAIN !!!") == ["501 5.5.2 Cannot decode response"]
    # An overlong response line is refused and skipped whole.
    assert r.cmd("AUTH PLAIN") == ["334 "]
    r.send(b"A" * 20000 + b"\r\n")
    assert r.reply() == ["500 5.5.6 Authentication exchange line is too long"]
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]
    # During a transaction, AUTH is refused.
    assert r.cmd("MAIL FROM:<%s>" % ALICE)[0].startswith("250")
    assert r.cmd("AUTH PLAIN " + plain(ALICE, pw)) == [
        "503 5.5.1 Error: MAIL transaction in progress"]
    assert r.cmd("RSET") == ["250 2.0.0 Ok"]
    # LOGIN with an initial response (the user name).
    assert r.cmd("AUTH LOGIN " + base64.b64encode(ALICE.encode()).decode()) == [
        "334 UGFzc3dvcmQ6"]
    assert r.cmd(base64.b64encode(pw.encode()).decode()) == ["235 2.7.0 Authentication successful"]
    assert r.cmd("AUTH PLAIN " + plain(ALICE, pw)) == ["503 5.5.1 Error: already authenticated"]
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]
    edge.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=2 starttls=1 auth=1/11 ")


def test_auth_plain_with_prompt_and_authzid(edge):
    pw = edge.passwords[ALICE]
    r = Raw(edge.ports["smtps"], tls=True)
    assert r.greeting[0].startswith("220 ")
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    assert r.cmd("AUTH PLAIN") == ["334 "]
    token = base64.b64encode(ALICE.encode() + b"\0" + ALICE.encode() + b"\0" + pw.encode())
    assert r.cmd(token.decode()) == ["235 2.7.0 Authentication successful"]
    assert r.cmd("MAIL FROM:<%s>" % ALICE)[0].startswith("250")
    assert r.cmd("RCPT TO:<someone@remote.example>")[0].startswith("250")
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]


def test_auth_failure_is_delayed_and_throttled(instance_factory):
    inst = instance_factory(users=(ALICE,), main_cf={
        "auth_failure_delay": "1s", "auth_failure_limit": "3", "auth_failure_window": "60s"})
    r = Raw(inst.ports["smtps"], tls=True)
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    for _ in range(3):
        t0 = time.monotonic()
        assert r.cmd("AUTH PLAIN " + plain(ALICE, "wrong")) == [
            "535 5.7.8 Error: authentication failed: authentication failure"]
        assert time.monotonic() - t0 >= 0.9
    # The address is now throttled: even the right password ends the session.
    t0 = time.monotonic()
    assert r.cmd("AUTH PLAIN " + plain(ALICE, inst.passwords[ALICE])) == [
        "421 4.7.0 mail.example.test Error: too many errors"]
    assert time.monotonic() - t0 >= 0.9
    assert r.closed()
    # A temporary block: a new session from the same address is refused too.
    r = Raw(inst.ports["smtps"], tls=True)
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    assert r.cmd("AUTH PLAIN " + plain(ALICE, inst.passwords[ALICE])) == [
        "421 4.7.0 mail.example.test Error: too many errors"]
    assert r.closed()
    inst.wait_log(r"too many authentication failures from 127\.0\.0\.1")
    inst.wait_log(r"SASL PLAIN authentication failed: too many failures from this address")


def test_hard_error_limit_ends_a_guessing_session(instance_factory):
    inst = instance_factory(users=(ALICE,), main_cf={
        "auth_failure_delay": "0s", "auth_failure_limit": "0",
        "smtpd_hard_error_limit": "3", "smtpd_soft_error_limit": "10"})
    r = Raw(inst.ports["smtps"], tls=True)
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    for _ in range(3):
        assert r.cmd("AUTH LOGIN " + base64.b64encode(ALICE.encode()).decode()) == [
            "334 UGFzc3dvcmQ6"]
        assert r.cmd(base64.b64encode(b"guess").decode())[0].startswith("535 5.7.8")
    assert r.cmd("NOOP") == ["421 4.7.0 mail.example.test Error: too many errors"]
    assert r.closed()
    inst.wait_log(r"too many errors after AUTH from localhost\[127\.0\.0\.1\]")


def test_client_disconnect_during_auth_check(edge):
    r = Raw(edge.ports["smtps"], tls=True)
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    r.send(("AUTH PLAIN " + plain(ALICE, "wrong") + "\r\n").encode())
    r.close()
    edge.wait_log(r"lost connection after AUTH from localhost\[127\.0\.0\.1\]|"
                  r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 auth=0/1")
    # The process is fine: the next session works.
    with smtplib.SMTP_SSL("127.0.0.1", edge.ports["smtps"], timeout=10,
                          context=verify_context(edge)) as s:
        s.login(ALICE, edge.passwords[ALICE])
        s.quit()


# ---- client certificates ----

def make_client_cert(directory):
    key = os.path.join(directory, "client.key")
    cert = os.path.join(directory, "client.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=client.test", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def test_client_certificate_requested_and_reported(instance_factory):
    d = tempfile.mkdtemp(prefix="postern-ccert-")
    try:
        cert, key = make_client_cert(d)
        os.chmod(d, 0o755)
        os.chmod(cert, 0o644)
        inst = instance_factory(main_cf={"smtpd_tls_ask_ccert": "yes",
                                         "smtpd_tls_CAfile": cert})
        ctx = verify_context(inst)
        ctx.load_cert_chain(cert, key)
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10,
                          local_hostname="client.test") as s:
            s.starttls(context=ctx)
            s.ehlo("client.test")
            s.sendmail("x@remote.example", [inst.demo_user], message("with ccert"))
            s.quit()
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10,
                          local_hostname="client.test") as s:
            s.starttls(context=verify_context(inst))
            s.ehlo("client.test")
            s.sendmail("x@remote.example", [inst.demo_user], message("without ccert"))
            s.quit()
        text = wait_delivered(inst, "with ccert")
        assert '\t(Client CN "client.test", Issuer "client.test" (verified OK))\n' in text, text
        text = wait_delivered(inst, "without ccert")
        assert "\t(Client did not present a certificate)\n" in text, text
        inst.wait_log(r"Trusted TLS connection established from localhost\[127\.0\.0\.1\]: TLSv1")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_received_header_without_tls_comment(instance_factory):
    inst = instance_factory(main_cf={"smtpd_tls_received_header": "no"})
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10, local_hostname="client.test") as s:
        s.starttls(context=verify_context(inst))
        s.ehlo("client.test")
        s.sendmail("x@remote.example", [inst.demo_user], message("no comment"))
        s.quit()
    text = wait_delivered(inst, "no comment")
    assert "(using TLS" not in text
    assert re.search(r"^Received: from client\.test \(localhost \[127\.0\.0\.1\]\)\n\tby "
                     r"mail\.example\.test \(Postern\) with ESMTPS id", text, re.M), text


def test_stalled_tls_handshakes_time_out(instance_factory):
    inst = instance_factory(main_cf={"smtpd_timeout": "2s"})
    # SMTPS: connected, but no ClientHello.
    silent = socket.create_connection(("127.0.0.1", inst.ports["smtps"]), timeout=10)
    # STARTTLS accepted, then no handshake.
    r = Raw(inst.smtp_port)
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    assert r.cmd("STARTTLS") == ["220 2.0.0 Ready to start TLS"]
    assert r.closed(timeout=8)
    silent.settimeout(8)
    assert silent.recv(100) == b""
    silent.close()
    inst.wait_log(r"postern/smtps/smtpd\[\d+\]: timeout after CONNECT from localhost")
    inst.wait_log(r"postern/smtpd\[\d+\]: timeout after STARTTLS from localhost")
