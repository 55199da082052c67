"""Run a load command and time it until a smtp-sink has received its mail.

usage: relay-count.py SINK_OUT WANT TIMEOUT CMD [ARG]...

SINK_OUT is the stdout of `smtp-sink -c ...`, which rewrites its counters
("sess=N quit=N mesg=N", separated by CR) whenever a session ends, QUIT
is seen or a message's final "." arrives. The count already there when
this starts is the baseline (warm-up mail). CMD (smtp-load) is started;
from just before its start, the tail of SINK_OUT is read every 20 ms
until the sink counts WANT messages more than the baseline (or, once CMD
has exited, as many as CMD reports accepted=, if fewer), or TIMEOUT
seconds pass. Prints CMD's own key=value line followed by
  relayed=N relay_secs=X relay_rate=R relay_complete=0|1 sink_sessions=N sink_base_sessions=N
relay_secs is from CMD's start (its first connect is a few ms later) to
the sample that saw the last message; relay_rate is relayed / relay_secs.
Used by relay-bench.sh.
"""
import os
import re
import subprocess
import sys
import time

COUNT = re.compile(rb"sess=(\d+) quit=\d+ mesg=(\d+)")


def sink_counts(path):
    """(sessions, messages) as the sink last reported them."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 256))
            tail = f.read()
    except OSError:
        return 0, 0
    found = COUNT.findall(tail)
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def main():
    if len(sys.argv) < 5:
        sys.stderr.write(__doc__)
        return 2
    sink_out, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    cmd = sys.argv[4:]
    base_sess, base = sink_counts(sink_out)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    deadline = t0 + timeout
    t_done = None
    got = 0
    cmd_line = None
    while True:
        now = time.monotonic()
        got = sink_counts(sink_out)[1] - base
        if cmd_line is None and proc.poll() is not None:
            cmd_line = proc.stdout.read().decode(errors="replace").strip()
            m = re.search(r"\baccepted=(\d+)", cmd_line)
            if m and int(m.group(1)) < want:
                want = int(m.group(1))
        if got >= want:
            t_done = now
            break
        if now >= deadline:
            break
        time.sleep(0.02)
    if cmd_line is None:
        try:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        cmd_line = out.decode(errors="replace").strip()
    secs = (t_done - t0) if t_done is not None else -1.0
    rate = got / secs if secs > 0 else 0.0
    # The sink counts a session when it ends: cached sessions still open
    # now are missing from this figure.
    sess = sink_counts(sink_out)[0] - base_sess
    print("%s relayed=%d relay_secs=%.3f relay_rate=%.1f relay_complete=%d sink_sessions=%d"
          " sink_base_sessions=%d" % (
              cmd_line, got, secs, rate, 1 if t_done is not None else 0, sess, base_sess))
    return 0


if __name__ == "__main__":
    sys.exit(main())
