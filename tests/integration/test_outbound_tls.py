"""Outbound STARTTLS (issue 5): smtp_tls_security_level none | may | encrypt
against an aiosmtpd sink that offers STARTTLS with a certificate made for
the test, and smtp_tls_CAfile verifying it when TLS is required."""

import os
import shutil
import ssl
import subprocess
import tempfile
import time

import pytest

from test_outbound import A_ADDR, BASE_RECORDS, SINK_ADDR, message

MX_NAME = "mx.sink.test"


def make_cert(directory, name):
    """A self-signed certificate for name (it is its own CA)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name,
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


@pytest.fixture
def tls_net(outbound_net):
    net = outbound_net
    net.dns(BASE_RECORDS + [("MX", "sink.test", MX_NAME, 10), ("A", MX_NAME, SINK_ADDR)])
    # Readable by mail_owner, which the daemons run as under root (pytest's
    # own tmp_path is private to root).
    directory = tempfile.mkdtemp(prefix="postern-tls-test-")
    os.chmod(directory, 0o755)
    net.cert, net.key = make_cert(directory, MX_NAME)
    net.other_cert, _ = make_cert(directory, "someone-else.test")
    for path in (net.cert, net.other_cert):
        os.chmod(path, 0o644)
    yield net
    shutil.rmtree(directory, ignore_errors=True)


def sender(net, **params):
    return net.instance("a.test", A_ADDR, users=["alice@a.test"], hostname="mail.a.test",
                        main_cf=params)


def test_may_uses_starttls_when_offered(tls_net):
    sink = tls_net.sink(SINK_ADDR, tls_context=server_context(tls_net.cert, tls_net.key))
    a = sender(tls_net, smtp_tls_security_level="may")
    msg = message("over tls", to="x@sink.test")
    a.send("alice@a.test", ["x@sink.test"], msg)
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.tls
    assert t.data.endswith(msg)
    # Not verified at level may, but named in the log.
    a.wait_log(r"Untrusted TLS connection established to mx\.sink\.test\[127\.0\.0\.4\]:%d: "
               r"TLSv1\.[23]" % tls_net.port)
    a.wait_log(r"to=<x@sink\.test>, relay=mx\.sink\.test\[127\.0\.0\.4\]:%d, .*status=sent"
               % tls_net.port)


def test_none_never_starts_tls(tls_net):
    sink = tls_net.sink(SINK_ADDR, tls_context=server_context(tls_net.cert, tls_net.key))
    a = sender(tls_net, smtp_tls_security_level="none")
    a.send("alice@a.test", ["x@sink.test"], message("plain", to="x@sink.test"))
    t = sink.wait_transactions(1, timeout=20)[0]
    assert not t.tls
    assert "TLS connection established" not in a.maillog()


def test_encrypt_verifies_the_server_against_the_cafile(tls_net):
    sink = tls_net.sink(SINK_ADDR, tls_context=server_context(tls_net.cert, tls_net.key))
    a = sender(tls_net, smtp_tls_security_level="encrypt", smtp_tls_CAfile=tls_net.cert)
    a.send("alice@a.test", ["x@sink.test"], message("verified", to="x@sink.test"))
    t = sink.wait_transactions(1, timeout=20)[0]
    assert t.tls
    a.wait_log(r"Verified TLS connection established to mx\.sink\.test\[127\.0\.0\.4\]")


def test_encrypt_defers_when_the_certificate_does_not_verify(tls_net):
    sink = tls_net.sink(SINK_ADDR, tls_context=server_context(tls_net.cert, tls_net.key))
    # Trusting another certificate: the sink's chain does not verify.
    a = sender(tls_net, smtp_tls_security_level="encrypt", smtp_tls_CAfile=tls_net.other_cert)
    a.send("alice@a.test", ["x@sink.test"], message("unverified", to="x@sink.test"))
    a.wait_log(r"to=<x@sink\.test>, relay=.*dsn=4\.7\.5, status=deferred \(TLS handshake "
               r"with mx\.sink\.test\[127\.0\.0\.4\] failed: .*certificate verify failed",
               timeout=20)
    time.sleep(0.5)
    assert sink.transactions == []
    assert sink.rcpt_attempts == []   # nothing was said in the clear


def test_encrypt_defers_when_starttls_is_not_offered(tls_net):
    sink = tls_net.sink(SINK_ADDR)   # no tls_context: no STARTTLS in EHLO
    a = sender(tls_net, smtp_tls_security_level="encrypt", smtp_tls_CAfile=tls_net.cert)
    a.send("alice@a.test", ["x@sink.test"], message("no tls", to="x@sink.test"))
    a.wait_log(r"to=<x@sink\.test>, relay=.*dsn=4\.7\.4, status=deferred \(TLS is required, "
               r"but was not offered by host mx\.sink\.test\[127\.0\.0\.4\]\)", timeout=20)
    assert sink.transactions == [] and sink.rcpt_attempts == []
