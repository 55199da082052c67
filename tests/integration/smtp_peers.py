"""Scripted SMTP servers for the smtp client's fault tests.

    peer = ScriptedPeer("127.0.0.5", port, scripts.silent).start()
    ... make Postern deliver to it ...
    peer.wait_sessions(1)
    peer.sessions[0].received      every byte the client sent
    peer.transactions              what a well-behaved script accepted
    peer.stop()

A script is a function script(conv) run in its own thread per accepted
connection; conv offers send(), readline(), read_data() and records what
arrived. Everything is bounded: each peer stops accepting at its deadline
(default 60 s), every read times out (conv.timeout, default 10 s, and never
past the deadline), and stop() closes every connection, so a misbehaving
client cannot keep a test waiting. Loopback only.

Scripts (module-level, some are factories):
    good(...)          a correct ESMTP server that records transactions with
                       the raw (still dot-stuffed) DATA bytes; options for
                       multi-line replies, PIPELINING, per-RCPT replies
    multiline          good() with every reply multi-line
    garbage(n)         n bytes (default 10 MiB) of junk right after connect
    silent             accept and never say anything
    close_mid_reply    220, then a reply to EHLO cut off mid-line, close
    close_mid_greeting "220-" continuation line, then close
    early_data_250     correct up to DATA, then "250" instead of "354"
    greeting(code)     e.g. greeting("421 4.3.2 go away") then wait for QUIT
"""

import socket
import threading
import time


class Conversation:
    def __init__(self, peer, sock, addr):
        self.peer = peer
        self.sock = sock
        self.addr = addr
        self.received = b""       # every byte read from the client
        self.commands = []        # command lines (CRLF stripped)
        self.sent = b""
        self.closed_by_client = False
        self.timeout = 10.0
        self._buf = b""

    def _remaining(self):
        return max(0.05, min(self.timeout, self.peer.deadline - time.monotonic()))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.settimeout(self._remaining())
        self.sock.sendall(data)
        self.sent += data

    def _fill(self):
        if time.monotonic() > self.peer.deadline or self.peer.stopping.is_set():
            raise TimeoutError("peer deadline")
        self.sock.settimeout(min(0.5, self._remaining()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        if not chunk:
            self.closed_by_client = True
            raise EOFError("client closed")
        self.received += chunk
        self._buf += chunk
        return chunk

    def readline(self, timeout=None):
        """One line including CRLF; None on timeout; EOFError when closed."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self._buf:
            if time.monotonic() > end:
                return None
            self._fill()
        line, self._buf = self._buf.split(b"\n", 1)
        return line + b"\n"

    def command(self, timeout=None):
        line = self.readline(timeout)
        if line is None:
            return None
        cmd = line.rstrip(b"\r\n")
        self.commands.append(cmd)
        return cmd

    def read_data(self, timeout=None):
        """The raw DATA bytes up to (not including) the ".\\r\\n" line."""
        data = b""
        while True:
            line = self.readline(timeout)
            if line is None:
                raise TimeoutError("DATA never ended")
            if line == b".\r\n":
                return data
            data += line

    def wait_close(self, timeout=None):
        """Reads and discards until the client closes (or timeout)."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            while time.monotonic() < end:
                self._fill()
        except (EOFError, TimeoutError, OSError):
            pass


class PeerTransaction:
    def __init__(self, mail, rcpts, raw_data):
        self.mail = mail                # the whole MAIL FROM command line (bytes)
        self.rcpts = rcpts              # accepted RCPT TO command lines
        self.raw_data = raw_data        # as on the wire: CRLF, dot-stuffed

    @property
    def data(self):
        """DATA with dot-stuffing undone."""
        lines = self.raw_data.split(b"\r\n")
        return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


class ScriptedPeer:
    def __init__(self, host, port, script, deadline=60.0):
        self.host = host
        self.port = port
        self.script = script
        self.deadline = time.monotonic() + deadline
        self.sessions = []
        self.transactions = []
        self.errors = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._listener = None
        self._threads = []

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._listener = s
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _accept_loop(self):
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            try:
                sock, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conv = Conversation(self, sock, addr)
            with self.lock:
                self.sessions.append(conv)
            t = threading.Thread(target=self._run, args=(conv,), daemon=True)
            t.start()
            self._threads.append(t)
        try:
            self._listener.close()
        except OSError:
            pass

    def _run(self, conv):
        try:
            self.script(conv)
        except (EOFError, TimeoutError, ConnectionError, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - reported through errors
            self.errors.append(repr(e))
        finally:
            try:
                conv.sock.close()
            except OSError:
                pass

    def wait_sessions(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.sessions) < count:
            if time.monotonic() > deadline:
                raise AssertionError("peer %s:%d got %d of %d connections" % (
                    self.host, self.port, len(self.sessions), count))
            time.sleep(0.05)
        return self.sessions

    def wait_transactions(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.transactions) < count:
            if time.monotonic() > deadline:
                raise AssertionError("peer %s:%d got %d of %d transactions; commands %r" % (
                    self.host, self.port, len(self.transactions), count,
                    [c.commands for c in self.sessions]))
            time.sleep(0.05)
        return self.transactions

    def stop(self):
        self.stopping.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        for conv in list(self.sessions):
            try:
                conv.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conv.sock.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)

    def __repr__(self):
        return "<ScriptedPeer %s:%d %s>" % (self.host, self.port,
                                             getattr(self.script, "__name__", "?"))


# ---- scripts ----

def _reply(conv, code, lines, multiline):
    """Sends code with the given text lines; multi-line when asked or when
    there are several lines."""
    if isinstance(lines, str):
        lines = [lines]
    if multiline and len(lines) == 1:
        lines = ["%s (first line)" % lines[0], lines[0]]
    out = ""
    for i, text in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out += "%s%s%s\r\n" % (code, sep, text)
    conv.send(out)


def good(multiline=False, pipelining=True, rcpt_replies=None, extensions=None,
         greeting_lines=None, data_reply="250 2.0.0 Ok: queued as PEER"):
    """A correct ESMTP server. rcpt_replies maps a lower-case address to
    "NNN text"; extensions replaces the EHLO keyword list."""
    rcpt_replies = rcpt_replies or {}

    def script(conv):
        peer = conv.peer
        _reply(conv, 220, greeting_lines or ["peer.test ESMTP scripted"], multiline)
        mail, rcpts = None, []
        while True:
            cmd = conv.command()
            if cmd is None:
                return
            verb = cmd[:4].upper()
            if verb == b"EHLO":
                exts = extensions if extensions is not None else (
                    ["SIZE 10240000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
                    + (["PIPELINING"] if pipelining else []))
                lines = ["peer.test greets you"] + list(exts)
                if multiline:
                    lines = ["peer.test"] + ["X-FILLER-%d" % i for i in range(30)] + lines[1:]
                _reply(conv, 250, lines, False)
            elif verb == b"HELO":
                _reply(conv, 250, "peer.test", multiline)
            elif verb == b"MAIL":
                mail, rcpts = cmd, []
                _reply(conv, 250, "2.1.0 Ok", multiline)
            elif verb == b"RCPT":
                addr = cmd.split(b":", 1)[1].strip().split(b" ")[0].strip(b"<>")
                reply = rcpt_replies.get(addr.decode("utf-8", "replace").lower(), "250 2.1.5 Ok")
                code, text = reply.split(" ", 1)
                if code.startswith("2"):
                    rcpts.append(cmd)
                _reply(conv, int(code), text, multiline)
            elif verb == b"DATA":
                if mail is None or not rcpts:
                    _reply(conv, 554, "5.5.1 no valid recipients", multiline)
                    continue
                _reply(conv, 354, "End data with <CR><LF>.<CR><LF>", multiline)
                raw = conv.read_data()
                with peer.lock:
                    peer.transactions.append(PeerTransaction(mail, rcpts, raw))
                code, text = data_reply.split(" ", 1)
                _reply(conv, int(code), text, multiline)
                mail, rcpts = None, []
            elif verb == b"RSET":
                mail, rcpts = None, []
                _reply(conv, 250, "2.0.0 Ok", multiline)
            elif verb == b"NOOP":
                _reply(conv, 250, "2.0.0 Ok", multiline)
            elif verb == b"QUIT":
                _reply(conv, 221, "2.0.0 Bye", multiline)
                return
            else:
                _reply(conv, 502, "5.5.2 command not recognized", multiline)

    script.__name__ = "good"
    return script


multiline = good(multiline=True)
multiline.__name__ = "multiline"


def garbage(size=10 * 1024 * 1024, newlines=False):
    """Junk from the first byte: never a 3-digit reply. Without newlines
    the client sees one endless line; with them, endless malformed lines."""

    def script(conv):
        chunk = (b"\x00garbage\xff" * 6554)[:65536] if not newlines else \
            (b"this is not smtp at all\r\n" * 2700)[:65536]
        sent = 0
        while sent < size and not conv.peer.stopping.is_set():
            conv.send(chunk)
            sent += len(chunk)
        conv.wait_close(timeout=5)

    script.__name__ = "garbage"
    return script


def silent(conv):
    conv.wait_close(timeout=conv.peer.deadline - time.monotonic())


def close_mid_reply(conv):
    conv.send("220 peer.test ESMTP\r\n")
    cmd = conv.command()
    if cmd is None:
        return
    conv.send("250-peer.test\r\n250-PIPEL")   # then the connection drops


def close_mid_greeting(conv):
    conv.send("220-peer.test ESMTP, more to com")


def early_data_250(conv):
    """Answers DATA with 250 at once, as if the data had already arrived:
    the client must abandon the session, never send the body."""
    peer = conv.peer
    conv.send("220 peer.test ESMTP\r\n")
    saw_data = False
    while True:
        cmd = conv.command()
        if cmd is None:
            return
        verb = cmd[:4].upper()
        if verb == b"EHLO":
            conv.send("250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n")
        elif verb == b"HELO":
            conv.send("250 peer.test\r\n")
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            conv.send("250 2.0.0 Ok\r\n")
        elif verb == b"DATA" and not saw_data:
            saw_data = True
            conv.send("250 2.0.0 Ok: queued as EARLY\r\n")
            with peer.lock:
                peer.early_data_offset = len(conv.received) - len(conv._buf)
        elif verb == b"QUIT":
            conv.send("221 2.0.0 Bye\r\n")
            conv.wait_close(timeout=2)
            return
        else:
            conv.send("250 2.0.0 Ok\r\n")


def greeting(reply):
    """Greets with reply ("421 4.3.2 go away"); answers QUIT, else 503."""

    def script(conv):
        conv.send(reply + "\r\n")
        while True:
            cmd = conv.command()
            if cmd is None:
                return
            if cmd[:4].upper() == b"QUIT":
                conv.send("221 2.0.0 Bye\r\n")
                return
            conv.send("503 5.5.1 go away\r\n")

    script.__name__ = "greeting"
    return script


def bytes_after_data(conv):
    """What the client sent after its DATA command (for early_data_250)."""
    offset = getattr(conv.peer, "early_data_offset", None)
    if offset is None:
        return None
    return conv.received[offset:]


__all__ = ["ScriptedPeer", "Conversation", "PeerTransaction", "good", "multiline",
           "garbage", "silent", "close_mid_reply", "close_mid_greeting",
           "early_data_250", "greeting", "bytes_after_data"]
