"""smtpd protocol tests: every command, pipelining, limits and bad input,
against a real instance (smtplib and raw sockets)."""

import os
import re
import smtplib
import time

import pytest
from smtp_raw import Raw


def edit_main_cf(inst, **params):
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        for k, v in params.items():
            f.write("%s = %s\n" % (k, v))


def queue_files(inst, sub):
    d = os.path.join(inst.dir, "queue", sub)
    return [n for n in os.listdir(d) if not n.startswith(".")] if os.path.isdir(d) else []


def rcpt(inst):
    return inst.demo_user


def start_tx(r, inst):
    assert r.cmd("EHLO client.example")[-1].startswith("250")
    assert r.cmd("MAIL FROM:<sender@remote.example>")[0].startswith("250 2.1.0")
    assert r.cmd("RCPT TO:<%s>" % rcpt(inst))[0].startswith("250 2.1.5")
    assert r.cmd("DATA")[0].startswith("354")


# ---- every command ----

def test_greeting_and_ehlo_advertise_extensions(instance):
    r = Raw(instance.smtp_port)
    assert r.greeting[0].startswith("220 ")
    lines = r.cmd("EHLO client.example")
    keywords = [l[4:] for l in lines[1:]]
    assert "PIPELINING" in keywords
    assert any(k.startswith("SIZE ") for k in keywords)
    assert "ENHANCEDSTATUSCODES" in keywords and "8BITMIME" in keywords
    assert "SMTPUTF8" in keywords and "VRFY" in keywords
    assert "STARTTLS" in keywords   # smtp service: smtpd_tls_security_level=may
    assert not any(k.startswith(("AUTH", "CHUNKING", "DSN", "ETRN")) for k in keywords)
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]
    assert r.closed()


def test_helo_noop_rset_help_quit(instance):
    r = Raw(instance.smtp_port)
    assert r.cmd("HELO client.example")[0].startswith("250 ")
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]
    assert r.cmd("RSET") == ["250 2.0.0 Ok"]
    assert r.cmd("HELP")[0].startswith("214 2.0.0")
    assert r.cmd("HELO")[0].startswith("501 5.5.4")
    assert r.cmd("QUIT") == ["221 2.0.0 Bye"]


def test_mail_rcpt_data_queue_and_log(instance):
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@remote.example")
        s.rcpt(rcpt(instance))
        code, text = s.data(b"Subject: hi\r\nMessage-ID: <m1@remote.example>\r\n\r\nbody\r\n")
        assert code == 250
        m = re.match(rb"2\.0\.0 Ok: queued as ([0-9A-F]{17})$", text)
        assert m, text
        qid = m.group(1).decode()
        s.quit()
    instance.wait_log(r"%s: client=localhost\[127\.0\.0\.1\]" % qid)
    instance.wait_log(r"%s: message-id=<m1@remote\.example>" % qid)
    instance.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 "
                      r"data=1 quit=1 commands=5")


def test_bad_sequences(instance):
    r = Raw(instance.smtp_port)
    assert r.cmd("RCPT TO:<%s>" % rcpt(instance)) == ["503 5.5.1 Error: need MAIL command"]
    assert r.cmd("DATA") == ["503 5.5.1 Error: need RCPT command"]
    assert r.cmd("MAIL FROM:<a@remote.example>")[0].startswith("250")
    assert r.cmd("MAIL FROM:<a@remote.example>") == ["503 5.5.1 Error: nested MAIL command"]
    assert r.cmd("DATA") == ["554 5.5.1 Error: no valid recipients"]
    assert r.cmd("DATA x") == ["501 5.5.4 Syntax: DATA"]
    assert r.cmd("MAIL TO:<x>")[0].startswith("503")   # state first, then syntax


def test_mail_and_rcpt_syntax_and_parameters(instance):
    r = Raw(instance.smtp_port)
    r.cmd("EHLO c")
    assert r.cmd("MAIL FROM:x@@y") == ["501 5.1.7 Bad sender address syntax"]
    assert r.cmd("MAIL <a@b>") == ["501 5.5.4 Syntax: MAIL FROM:<address>"]
    assert r.cmd("MAIL FROM:<a@b.example> FOO=1") == ["555 5.5.4 Unsupported option: FOO=1"]
    assert r.cmd("MAIL FROM:<a@b.example> SIZE=999999999999")[0].startswith("552 5.3.4")
    assert r.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME")[0].startswith("501 5.5.4")
    assert r.cmd("MAIL FROM:<\u00e9@b.example>")[0].startswith("553 5.6.7")
    assert r.cmd("MAIL FROM:<\u00e9@b.example> SMTPUTF8 BODY=8BITMIME")[0].startswith("250")
    assert r.cmd("RCPT TO:<>") == ["501 5.1.3 Bad recipient address syntax"]
    assert r.cmd("RCPT TO:<%s> NOTIFY=NEVER" % rcpt(instance))[0].startswith("555 5.5.4")


def test_unknown_expn_and_unoffered_commands(instance):
    r = Raw(instance.smtp_port)
    assert r.cmd("FOO bar") == ["502 5.5.2 Error: command not recognized"]
    assert r.cmd("EXPN postmaster") == ["502 5.5.2 Error: command not recognized"]
    assert r.cmd("AUTH PLAIN") == ["503 5.5.1 Error: authentication not enabled"]
    assert r.cmd("STARTTLS now") == ["501 5.5.4 Syntax: STARTTLS"]
    assert r.cmd("BDAT 10 LAST") == ["502 5.5.1 Error: command not implemented"]
    assert r.cmd("") == ["500 5.5.2 Error: bad syntax"]


def test_vrfy_known_and_unknown(instance):
    r = Raw(instance.smtp_port)
    assert r.cmd("VRFY <%s>" % rcpt(instance)) == ["252 2.0.0 <%s>" % rcpt(instance)]
    assert r.cmd("VRFY no-such-user@%s" % instance.domain)[0].startswith("550 5.1.1")
    assert r.cmd("VRFY") == ["501 5.5.4 Syntax: VRFY address"]


def test_unknown_recipient_rejected(instance):
    r = Raw(instance.smtp_port)
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<a@remote.example>")
    line = r.cmd("RCPT TO:<no-such-user@%s>" % instance.domain)[0]
    assert line.startswith("550 5.1.1 <no-such-user@%s>: Recipient address rejected: "
                           "User unknown" % instance.domain)
    instance.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.1\.1")


def test_relay_denied_outside_mynetworks(instance_factory):
    inst = instance_factory(start=False)
    edit_main_cf(inst, mynetworks="192.0.2.0/24")
    inst.start()
    r = Raw(inst.smtp_port)
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<a@remote.example>")
    assert r.cmd("RCPT TO:<x@elsewhere.example>") == [
        "554 5.7.1 <x@elsewhere.example>: Relay access denied"]
    assert r.cmd("RCPT TO:<%s>" % inst.demo_user)[0].startswith("250")


def test_relay_allowed_from_mynetworks(instance):
    r = Raw(instance.smtp_port)
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<a@remote.example>")
    assert r.cmd("RCPT TO:<x@elsewhere.example>") == ["250 2.1.5 Ok"]


# ---- pipelining ----

def test_pipelined_transactions_in_one_write(instance):
    r = Raw(instance.smtp_port)
    r.cmd("EHLO c")
    batch = b""
    for i in range(5):
        batch += (b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                  b"Subject: %d\r\n\r\nbody\r\n.\r\n" % (rcpt(instance).encode(), i))
    r.send(batch + b"QUIT\r\n")
    codes = [r.code() for _ in range(5 * 4 + 1)]
    assert codes == [250, 250, 354, 250] * 5 + [221]


def test_too_many_recipients(instance):
    r = Raw(instance.smtp_port)
    r.cmd("EHLO c")
    r.cmd("MAIL FROM:<a@remote.example>")
    r.send(b"".join(b"RCPT TO:<x%d@elsewhere.example>\r\n" % i for i in range(2000)))
    replies = [r.reply()[0] for _ in range(2000)]
    assert sum(l.startswith("250 2.1.5") for l in replies) == 1000
    assert sum(l == "452 4.5.3 Error: too many recipients" for l in replies) == 1000
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]   # the overshoot is not abuse


# ---- bad input ----

def test_overlong_command_line(instance):
    r = Raw(instance.smtp_port)
    r.send(b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n")
    assert r.reply() == ["500 5.5.2 Error: line too long"]
    assert r.reply() == ["250 2.0.0 Ok"]


def test_nul_in_command(instance):
    r = Raw(instance.smtp_port)
    r.send(b"NO\0OP\r\n")
    assert r.reply()[0].startswith("500 5.5.2")
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]


def test_bare_lf_command_disconnects(instance):
    r = Raw(instance.smtp_port)
    r.send(b"NOOP\n")
    assert r.reply()[0].startswith("521 5.5.2")
    assert r.closed()


def test_oversized_message_rejected_nothing_queued(instance_factory):
    inst = instance_factory(start=False)
    edit_main_cf(inst, message_size_limit="20000")
    inst.start()
    r = Raw(inst.smtp_port)
    start_tx(r, inst)
    r.send((b"x" * 998 + b"\r\n") * 30 + b".\r\n")
    assert r.reply() == ["552 5.3.4 Error: message file too big"]
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]
    assert queue_files(inst, "tmp") == []


@pytest.mark.parametrize("ending", [b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r"])
def test_smuggling_variants_do_not_end_data(instance, ending):
    r = Raw(instance.smtp_port)
    start_tx(r, instance)
    smuggled = (b"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                b"Subject: smuggled\r\n\r\nevil\r\n" % rcpt(instance).encode())
    r.send(b"Subject: x\r\n\r\nbody" + ending + smuggled + b".\r\n")
    line = r.reply()[0]
    assert line.startswith("521 5.5.2") and "bare" in line
    assert r.closed()
    time.sleep(0.3)
    assert "evil@remote.example" not in instance.maillog()
    assert queue_files(instance, "tmp") == []


def test_client_vanishes_mid_data(instance):
    r = Raw(instance.smtp_port)
    start_tx(r, instance)
    r.send(b"Subject: cut\r\n\r\nhalf a mess")
    r.close()
    instance.wait_log(r"lost connection after DATA \(\d+ bytes\) from localhost")
    assert queue_files(instance, "tmp") == []


def test_hard_error_limit_disconnects(instance_factory):
    inst = instance_factory(start=False)
    edit_main_cf(inst, smtpd_error_sleep_time="0", smtpd_hard_error_limit="5")
    inst.start()
    r = Raw(inst.smtp_port)
    r.send(b"FOO\r\n" * 10)
    replies = [r.reply()[0] for _ in range(6)]
    assert replies[:5] == ["502 5.5.2 Error: command not recognized"] * 5
    assert replies[5].startswith("421 4.7.0") and "too many errors" in replies[5]
    assert r.closed()


def test_idle_timeout(instance_factory):
    inst = instance_factory(start=False)
    edit_main_cf(inst, smtpd_timeout="2s")
    inst.start()
    r = Raw(inst.smtp_port)
    r.cmd("EHLO c")
    r.sock.settimeout(6)
    line = r.reply()[0]
    assert line.startswith("421 4.4.2") and "timeout exceeded" in line
    inst.wait_log(r"timeout after EHLO from localhost")


@pytest.mark.chain
def test_dot_unstuffed_and_received_header_in_delivery(instance):
    r = Raw(instance.smtp_port)
    start_tx(r, instance)
    r.send(b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n")
    assert r.reply()[0].startswith("250 2.0.0 Ok: queued as")
    files = instance.wait_for_maildir(instance.demo_user, 1)
    with open(files[0], "rb") as f:
        text = f.read()
    # local prepends Return-Path and Delivered-To; smtpd's Received is next.
    assert text.startswith(b"Return-Path: <")
    assert b"\nReceived: from client.example (localhost [127.0.0.1])" in text
    assert b"\n.leading dot\n" in text
