"""An SMTP sink for integration tests: aiosmtpd (Debian's python3-aiosmtpd)
in a thread on 127.0.0.x:port, recording every transaction exactly.

    sink = Sink("127.0.0.4", port).start()
    sink.rcpt_replies["nosuch@b.test"] = "550 5.1.1 no such user"
    sink.rcpt_default = "451 4.3.0 try later"      # every other recipient
    ... deliver ...
    t = sink.wait_transactions(1)[0]
    t.mail_from, t.rcpt_tos, t.data (bytes: CRLF, dot-unstuffed by aiosmtpd),
    t.mail_options (["SIZE=123", "BODY=8BITMIME", "SMTPUTF8"]), t.peer,
    t.tls (the transaction ran inside STARTTLS)
    sink.stop()

With tls_context (an ssl.SSLContext for the server side) the sink offers
STARTTLS.

Replies are "NNN text" strings as aiosmtpd returns them. A transaction is
recorded when DATA completes with a 2xx reply from the sink (data_reply,
default "250 2.0.0 Ok: queued as SINK<n>"); refused DATA is recorded in
refused_data instead. All attributes may be changed while it runs.
"""

import asyncio
import threading
import time

from aiosmtpd.controller import Controller


class Transaction:
    def __init__(self, session_peer, envelope, accepted_rcpts):
        self.peer = session_peer
        self.mail_from = envelope.mail_from
        self.mail_options = list(envelope.mail_options or [])
        self.rcpt_tos = list(accepted_rcpts)
        self.rcpt_options = list(envelope.rcpt_options or [])
        self.data = envelope.original_content
        self.smtputf8 = envelope.smtp_utf8
        self.tls = False

    def __repr__(self):
        return "<Transaction from=%r to=%r %d bytes opts=%r>" % (
            self.mail_from, self.rcpt_tos, len(self.data or b""), self.mail_options)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.sink.lock:
            self.sink.ehlo_names.append(hostname)
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        sink = self.sink
        with sink.lock:
            sink.mail_froms.append((address, list(mail_options)))
            reply = sink.mail_reply
        if reply.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        sink = self.sink
        with sink.lock:
            sink.rcpt_attempts.append(address)
            reply = sink.rcpt_replies.get(address.lower(), sink.rcpt_default)
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return reply

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        with sink.lock:
            sink.active_data += 1
            sink.max_active_data = max(sink.max_active_data, sink.active_data)
        if sink.data_delay > 0:
            await asyncio.sleep(sink.data_delay)
        with sink.lock:
            sink.active_data -= 1
        with sink.lock:
            reply = sink.data_reply
            t = Transaction(session.peer, envelope, envelope.rcpt_tos)
            t.tls = session.ssl is not None
            if reply.startswith("2"):
                sink.count += 1
                reply = reply.replace("<n>", str(sink.count))
                sink.transactions.append(t)
            else:
                sink.refused_data.append(t)
        return reply


class Sink:
    def __init__(self, host, port, smtputf8=True, hostname="sink.test", tls_context=None):
        self.host = host
        self.port = port
        self.lock = threading.Lock()
        self.transactions = []
        self.refused_data = []
        self.mail_froms = []
        self.rcpt_attempts = []
        self.ehlo_names = []
        self.count = 0
        self.mail_reply = "250 2.1.0 Ok"
        self.rcpt_default = "250 2.1.5 Ok"
        self.rcpt_replies = {}
        self.data_reply = "250 2.0.0 Ok: queued as SINK<n>"
        self.data_delay = 0.0   # seconds before the reply to the final dot
        self.active_data = 0       # transactions between the final dot and the reply
        self.max_active_data = 0
        self._controller = Controller(_Handler(self), hostname=host, port=port,
                                      server_hostname=hostname, ready_timeout=5,
                                      enable_SMTPUTF8=smtputf8, tls_context=tls_context)

    def start(self):
        self._controller.start()
        return self

    def stop(self):
        try:
            self._controller.stop()
        except AssertionError:
            pass

    def wait_transactions(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.transactions) >= count:
                    return list(self.transactions)
            if time.monotonic() > deadline:
                raise AssertionError("sink %s:%d got %d of %d transactions in %ss "
                                     "(rcpt attempts %r, refused data %r)" % (
                                         self.host, self.port, len(self.transactions),
                                         count, timeout, self.rcpt_attempts,
                                         self.refused_data))
            time.sleep(0.05)

    def __repr__(self):
        return "<Sink %s:%d>" % (self.host, self.port)
