"""A raw SMTP client connection for the smtpd tests: exact bytes out, one
(multi-line) reply back, optionally switched to TLS (certificate not
checked: these tests look at the SMTP conversation, test_smtpd_tls_auth
checks certificates with real clients)."""

import socket
import ssl


class Raw:
    def __init__(self, port, timeout=10, tls=False, greeting=True, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        if tls:
            self.wrap()
        self.greeting = self.reply() if greeting else None

    def wrap(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One (multi-line) reply as a list of lines."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def code(self):
        return int(self.reply()[-1][:3])

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def one(self, text):
        """The last line of the reply to text."""
        return self.cmd(text)[-1]

    def nothing_within(self, seconds):
        """True when the server sends nothing for this long."""
        self.sock.settimeout(seconds)
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        finally:
            self.sock.settimeout(10)
        self.buf += d
        return False

    def closed(self, timeout=5):
        """True when the server closes the connection (reading what is left)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()
