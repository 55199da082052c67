#!/bin/sh
# NAME
#	pop3-bench.sh - Postern's pop3d against Debian's Dovecot POP3, one run
# SYNOPSIS
#	sh bench/pop3-bench.sh BUILD
# DESCRIPTION
#	Figures, never pass/fail. Builds nothing: BUILD must hold pop3-load
#	(and postern, master, pop3d for the Postern side; without them only
#	Dovecot is measured and the report says so).
#
#	One seed Maildir of $BENCH_POP3_MESSAGES messages of $BENCH_POP3_SIZE
#	bytes is generated once, as Postern's local(8) leaves mail (LF line
#	endings, names "time.MusecPpidQn.host,S=size": the size on disk, not
#	the CRLF size POP3 reports, so both servers read every file once to
#	build their index), and copied for each
#	system (owned by that system's mail user). Users bench1..bench10
#	@example.test exist on both, each with its own copy of the mailbox
#	(hard links of the system's copy: POP3 sessions only rename files).
#	The same password hash (Postern's, yescrypt) is used by both.
#
#	For each repetition ($BENCH_REPS), each client count in
#	$BENCH_POP3_CLIENTS, each system (the order alternates between
#	repetitions): fresh mailboxes (no index), start the server, run
#	pop3-load twice: "first" (the servers build their index) and "warm"
#	(the index exists, messages are in cur/ with the S flag), once in
#	plaintext on the POP3 port and once over TLS on the POP3S port
#	(pop3-load -S; $BENCH_POP3_TLS picks the modes, fresh mailboxes for
#	each), stop the server. pop3-load: every client logs in to its own mailbox (USER/
#	PASS), STAT, LIST, UIDL, RETR of every message, QUIT, no DELE.
#
#	During each load run a sampler reads /proc every 100 ms: peak sum of
#	RSS and PSS (smaps_rollup, every 200 ms) of the server's whole
#	process tree, and of its session processes alone (Postern: pop3d;
#	Dovecot: pop3, pop3-login, auth), their CPU time (utime+stime, plus
#	cutime+cstime, so reaped children count), and the peak process count.
#	The table goes to stdout and, with the command lines, date and
#	machine notes, to bench/results/pop3-latest.md.
#
#	Dovecot (installed with the packages dovecot-core and dovecot-pop3d
#	when missing; the system service is stopped again if the install
#	started it) runs from a private configuration in the work directory:
#	127.0.0.1:$BENCH_POP3_DOVECOT_PORT and POP3S on that port + 885 with
#	Postern's test certificate, passwd-file passdb
#	and userdb, mail_location maildir, files owned by the system user
#	$BENCH_POP3_USER (created when missing).
# ENVIRONMENT
#	BENCH_POP3_MESSAGES (10000) BENCH_POP3_SIZE (4096)
#	BENCH_POP3_CLIENTS ("1 10") BENCH_REPS (3)
#	BENCH_POP3_SYSTEMS ("dovecot postern") BENCH_POP3_TLS ("no yes")
#	BENCH_POP3_DEPTH (1: RETR
#	one at a time) BENCH_POP3_DIR (work directory, default
#	/tmp/postern-pop3-bench; it is emptied) BENCH_POP3_DOVECOT_PORT
#	(10110) BENCH_PORT_OFFSET (Postern, 20000: POP3 on 22110)
#	BENCH_POP3_USER (popbench) BENCH_POP3_OUT
#	(bench/results/pop3-latest.md) BENCH_TOOLS (where pop3-load is;
#	default BUILD)
# LIMITS
#	Each load run stops by itself (pop3-load -T 600); servers are
#	stopped after each pair of runs and whatever they left is killed by
#	pid; an EXIT/INT/TERM trap stops everything this script started.
#	Needs root (package install, a system user, Dovecot's privilege
#	separation), /usr/bin/python3 (seed generator and sampler) and
#	about 3 x MESSAGES x SIZE bytes of disk in the work directory.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh bench/pop3-bench.sh BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "pop3-bench: no build directory $1" >&2; exit 2; }
bench_name=pop3-bench
. "$src/bench/lib.sh"

N=${BENCH_POP3_MESSAGES:-10000}
SIZE=${BENCH_POP3_SIZE:-4096}
CLIENTS=${BENCH_POP3_CLIENTS:-1 10}
REPS=${BENCH_REPS:-3}
SYSTEMS=${BENCH_POP3_SYSTEMS:-dovecot postern}
DEPTH=${BENCH_POP3_DEPTH:-1}
WORK=${BENCH_POP3_DIR:-/tmp/postern-pop3-bench}
DC_PORT=${BENCH_POP3_DOVECOT_PORT:-10110}
DC_TLS_PORT=$((DC_PORT + 885))
TLS_MODES=${BENCH_POP3_TLS:-no yes}
PORT_OFFSET=${BENCH_PORT_OFFSET:-20000}
PN_PORT=$((2110 + PORT_OFFSET))
PN_TLS_PORT=$((2995 + PORT_OFFSET))
BUSER=${BENCH_POP3_USER:-popbench}
OUT=${BENCH_POP3_OUT:-$src/bench/results/pop3-latest.md}
PY=/usr/bin/python3
PASSWORD=bench-pop3-secret
DOMAIN=example.test
tools=$(cd "${BENCH_TOOLS:-$build}" 2>/dev/null && pwd) || { echo "pop3-bench: no directory ${BENCH_TOOLS:-}" >&2; exit 2; }

[ "$(id -u)" = 0 ] || { echo "pop3-bench: must run as root (Dovecot, package install)" >&2; exit 2; }
[ -x "$tools/pop3-load" ] || { echo "pop3-bench: $tools/pop3-load is missing (cmake --build BUILD --target pop3-load)" >&2; exit 2; }
[ -x "$PY" ] || { echo "pop3-bench: $PY is needed for the seed generator and sampler" >&2; exit 2; }
maxc=0
for c in $CLIENTS; do [ "$c" -gt "$maxc" ] && maxc=$c; done

case $WORK in /*) ;; *) WORK=$(pwd)/$WORK ;; esac

# --- what is running, so the trap can stop it ---------------------------
cur_system=""
sampler_pid=""
load_pid=""
policy_rc=""

server_pid() {
    case $1 in
        postern) f=$WORK/postern/queue/pid/master.pid ;;
        dovecot) f=$WORK/dovecot/run/master.pid ;;
    esac
    [ -r "$f" ] && tr -d ' \n' < "$f"
}

server_stop() {
    local s_pid left
    s_pid=$(server_pid "$1")
    left=""
    [ -n "$s_pid" ] && kill -0 "$s_pid" 2>/dev/null && left=$(tree_pids "$s_pid")
    case $1 in
        postern) timeout 20 "$build/postern" -c "$WORK/postern/etc" stop >/dev/null 2>&1 ;;
        dovecot) [ -n "$s_pid" ] && kill -TERM "$s_pid" 2>/dev/null ;;
    esac
    reap_pids "$1" $left
}

cleanup() {
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    if [ -n "$cur_system" ]; then
        server_stop "$cur_system"
        cur_system=""
    fi
    [ -n "$policy_rc" ] && rm -f "$policy_rc"
    policy_rc=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

wait_port() {
    local i=0
    while [ $i -lt 100 ]; do
        "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1).close()" \
            2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# --- which systems can be measured -----------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK" || exit 2
chmod 755 "$WORK"
notes=$WORK/notes.txt
: > "$notes"
measured=""
for system in $SYSTEMS; do
    case $system in
    postern)
        missing=""
        for b in postern master pop3d; do
            [ -x "$build/$b" ] || missing="$missing $b"
        done
        if [ -n "$missing" ]; then
            echo "pop3-bench: Postern not measured: missing in $build:$missing" | tee -a "$notes" >&2
            continue
        fi
        ;;
    dovecot) ;;
    *) echo "pop3-bench: unknown system $system" >&2; exit 2 ;;
    esac
    measured="$measured $system"
done

# --- Dovecot: package, system service stopped, bench user ------------------
case " $measured " in *" dovecot "*) dovecot_prepare dovecot-pop3d ;; esac
[ -n "$measured" ] || { echo "pop3-bench: nothing to measure" >&2; exit 2; }

# --- the seed Maildir --------------------------------------------------------
echo "pop3-bench: generating $N messages of $SIZE bytes" >&2
"$PY" - "$WORK/seed" "$N" "$SIZE" <<'EOF'
"""A Maildir as Postern's local(8) leaves it: N files in new/, LF line endings."""
import os, sys, time
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for sub in ("tmp", "new", "cur"):
    os.makedirs(os.path.join(path, sub), mode=0o700)
os.chmod(path, 0o700)
t0 = int(time.time()) - n
words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua").split()
for i in range(n):
    head = ("Return-Path: <sender%d@bench.test>\n"
            "Delivered-To: bench@example.test\n"
            "Received: from bench.test (localhost [127.0.0.1])\n"
            "\tby mail.example.test (Postern) with ESMTP id B%08d\n"
            "\tfor <bench@example.test>; Thu, 01 Jan 2026 00:00:00 +0000\n"
            "From: Sender %d <sender%d@bench.test>\n"
            "To: bench@example.test\n"
            "Subject: POP3 benchmark message %d\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "Message-ID: <pop3bench.%d@bench.test>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n") % (i, i, i, i, i, i)
    body, k = [], i
    room = size - len(head)
    while room > 0:
        line = []
        while len(" ".join(line)) < 71:
            line.append(words[k % len(words)])
            k += 7
        text = " ".join(line)[:72]
        if len(text) + 1 > room:
            text = text[:max(room - 1, 0)]
        body.append(text + "\n")
        room -= len(text) + 1
    data = (head + "".join(body)).encode()
    # Postern's local(8) name shape: time.MusecPpidQcounter.host,S=size,W=crlf,P=pop3
    # (lib/maildir.h; Dovecot reads S= and W= too). No line starts with '.',
    # and the last one ends in LF, so P= equals W=.
    crlf = len(data) + data.count(b"\n")
    name = "%d.M%06dP%dQ%d.bench,S=%d,W=%d,P=%d" % (t0 + i, i % 1000000, os.getpid(), i + 1,
                                                   len(data), crlf, crlf)
    with open(os.path.join(path, "new", name), "wb") as f:
        f.write(data)
    os.utime(os.path.join(path, "new", name), (t0 + i, t0 + i))
EOF
[ $? -eq 0 ] || { echo "pop3-bench: seed generation failed" >&2; exit 2; }

# --- instances -----------------------------------------------------------------
# The password hash both systems verify: Postern's (yescrypt), when Postern runs.
setup_postern() {
    local d=$WORK/postern i owner
    "$build/postern" init "$d" --port-offset "$PORT_OFFSET" >> "$WORK/setup.log" 2>&1 || return 1
    grep -q pop3d "$d/etc/master.cf" || { echo "postern init wrote no pop3d service" >> "$WORK/setup.log"; return 1; }
    i=1
    while [ $i -le "$maxc" ]; do
        printf '%s\n' "$PASSWORD" | "$build/postern" -c "$d/etc" user add "bench$i@$DOMAIN" \
            >> "$WORK/setup.log" 2>&1 || return 1
        i=$((i + 1))
    done
    owner=$("$build/postconf" -c "$d/etc" -h mail_owner 2>/dev/null)
    [ -n "$owner" ] || owner=postern
    cp -a "$WORK/seed" "$WORK/seed-postern" && chown -R "$owner:" "$WORK/seed-postern"
}

setup_dovecot() {
    local d=$WORK/dovecot i uid gid hash
    uid=$(id -u "$BUSER") gid=$(id -g "$BUSER")
    mkdir -p "$d/etc" "$d/run" "$d/state" "$d/log" "$d/mail" || return 1
    chmod 755 "$d" "$d/mail"
    : > "$d/etc/passwd"
    i=1
    while [ $i -le "$maxc" ]; do
        hash=""
        [ -r "$WORK/postern/etc/passwd" ] &&
            hash=$(awk -F: -v u="bench$i@$DOMAIN" '$1 == u { sub(/^[^:]*:/, ""); print; exit }' "$WORK/postern/etc/passwd")
        [ -n "$hash" ] || hash="{PLAIN}$PASSWORD"
        printf '%s:%s:%s:%s::%s::\n' "bench$i@$DOMAIN" "$hash" "$uid" "$gid" "$d/mail/bench$i" >> "$d/etc/passwd"
        i=$((i + 1))
    done
    chmod 640 "$d/etc/passwd"
    chgrp dovecot "$d/etc/passwd"
    cat > "$d/etc/dovecot.conf" <<EOC
# Dovecot POP3 for Postern's bench/pop3-bench.sh: loopback only; POP3S with Postern's test certificate.
base_dir = $d/run
state_dir = $d/state
instance_name = postern-pop3-bench
protocols = pop3
listen = 127.0.0.1
log_path = $d/log/dovecot.log
info_log_path = $d/log/dovecot.log
ssl = yes
ssl_cert = <$WORK/postern/etc/tls/cert.pem
ssl_key = <$WORK/postern/etc/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
login_trusted_networks = 127.0.0.0/8
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = 100
first_valid_uid = $uid
last_valid_uid = $uid
mail_location = maildir:~
passdb {
  driver = passwd-file
  args = username_format=%u $d/etc/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $d/etc/passwd
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DC_PORT
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $DC_TLS_PORT
    ssl = yes
  }
}
EOC
    cp -a "$WORK/seed" "$WORK/seed-dovecot" && chown -R "$BUSER:" "$WORK/seed-dovecot"
}

# Fresh mailboxes (no index, everything in new/) for users 1..count.
fresh_mailboxes() {
    local i=1 base seed
    case $1 in
        postern) base=$WORK/postern/mail/$DOMAIN seed=$WORK/seed-postern ;;
        dovecot) base=$WORK/dovecot/mail seed=$WORK/seed-dovecot ;;
    esac
    while [ $i -le "$2" ]; do
        rm -rf "$base/bench$i"
        cp -al "$seed" "$base/bench$i" || return 1
        i=$((i + 1))
    done
    sync
}

server_start() {
    case $1 in
    postern)
        cur_system=postern
        timeout 20 "$build/postern" -c "$WORK/postern/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        wait_port "$PN_PORT" || return 1
        ;;
    dovecot)
        cur_system=dovecot
        dovecot -c "$WORK/dovecot/etc/dovecot.conf" >> "$WORK/setup.log" 2>&1 || return 1
        wait_port "$DC_PORT" || return 1
        ;;
    esac
    # Dovecot may listen before it writes master.pid; the sampler needs it.
    local i=0 p
    while [ $i -lt 100 ]; do
        p=$(server_pid "$1")
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# --- set-up ------------------------------------------------------------------
ready=""
# Postern first: Dovecot's passwd-file takes the hashes Postern made.
for system in postern dovecot; do
    case " $measured " in *" $system "*) ;; *) continue ;; esac
    if "setup_$system" >> "$WORK/setup.log" 2>&1; then
        ready="$ready $system"
    else
        echo "pop3-bench: $system could not be set up; see $WORK/setup.log" | tee -a "$notes" >&2
        tail -5 "$WORK/setup.log" >&2
    fi
done
[ -n "$ready" ] || exit 1

version_of() {
    case $1 in
        dovecot) echo "Dovecot $(dovecot --version 2>/dev/null)" ;;
        postern) echo "Postern (build $build)" ;;
    esac
}

session_names() {
    case $1 in
        postern) echo pop3d ;;
        dovecot) echo pop3,pop3-login,auth ;;
    esac
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the runs ------------------------------------------------------------
raw=$WORK/raw.tsv
printf 'system\tclients\trun\trep\tline\n' > "$raw"
commands=""
broken=""
r=1
while [ $r -le "$REPS" ]; do
    # The machine's speed drifts over minutes: every repetition runs each
    # configuration on each system back to back, first one system then
    # the other, and the order alternates between repetitions.
    order=$ready
    [ $((r % 2)) -eq 0 ] && order=$(echo "$ready" | awk '{ for (i = NF; i > 0; i--) printf " %s", $i }')
    for c in $CLIENTS; do
        for system in $order; do
            case " $broken " in *" $system "*) continue ;; esac
            fresh_mailboxes "$system" "$c" || { echo "pop3-bench: cannot copy mailboxes for $system" | tee -a "$notes" >&2; broken="$broken $system"; continue; }
            if ! server_start "$system"; then
                echo "pop3-bench: $system could not be started; see $WORK/setup.log" | tee -a "$notes" >&2
                tail -5 "$WORK/setup.log" >&2
                server_stop "$system"
                cur_system=""
                broken="$broken $system"
                continue
            fi
            for tls in $TLS_MODES; do
            case $system/$tls in
                postern/no) port=$PN_PORT tlsopt="" ;;
                postern/yes) port=$PN_TLS_PORT tlsopt="-S" ;;
                dovecot/no) port=$DC_PORT tlsopt="" ;;
                dovecot/yes) port=$DC_TLS_PORT tlsopt="-S" ;;
            esac
            # Both runs of a TLS mode need an unindexed mailbox again.
            if [ "$tls" != "$(echo $TLS_MODES | cut -d' ' -f1)" ]; then
                server_stop "$system"
                fresh_mailboxes "$system" "$c" || { broken="$broken $system"; break; }
                server_start "$system" || { broken="$broken $system"; break; }
            fi
            for phase in first warm; do
                run=$phase
                [ "$tls" = yes ] && run="$phase-tls"
                "$PY" "$src/bench/proc-sampler.py" "$(server_pid "$system")" "$WORK/sample.out" \
                    "$(session_names "$system")" 2 &
                sampler_pid=$!
                sleep 0.3
                cmd="pop3-load -s 127.0.0.1:$port -u bench%d@$DOMAIN -p PASSWORD -c $c -P $DEPTH -T 600 $tlsopt"
                "$tools/pop3-load" -s "127.0.0.1:$port" -u "bench%d@$DOMAIN" -p "$PASSWORD" \
                    -c "$c" -P "$DEPTH" -T 600 $tlsopt > "$WORK/load.out" 2>>"$WORK/load.log" &
                load_pid=$!
                wait "$load_pid"
                load_pid=""
                line=$(cat "$WORK/load.out")
                kill "$sampler_pid" 2>/dev/null
                wait "$sampler_pid" 2>/dev/null
                sampler_pid=""
                sample=$(cat "$WORK/sample.out" 2>/dev/null)
                rm -f "$WORK/sample.out"
                printf '%s\t%s\t%s\t%s\t%s %s\n' "$system" "$c" "$run" "$r" "$line" "$sample" >> "$raw"
                echo "$system c=$c $run rep=$r: $line $sample"
                case $commands in *"$cmd"*) ;; *) commands="$commands
    $cmd" ;; esac
            done
            done
            server_stop "$system"
            cur_system=""
        done
    done
    r=$((r + 1))
done

# --- the report ----------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
versions=""
for system in $ready; do versions="$versions $(version_of "$system");"; done
cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fstype=$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
seed_bytes=$(du -sb "$WORK/seed/new" | cut -f1)

"$PY" - "$raw" "$OUT" <<EOF
import statistics, sys
raw, out = sys.argv[1], sys.argv[2]
rows = []
with open(raw) as f:
    next(f)
    for line in f:
        system, c, run, rep, kv = line.rstrip("\n").split("\t")
        d = dict(x.split("=", 1) for x in kv.split() if "=" in x)
        rows.append((system, int(c), run, int(rep), d))

def spread(vals, fmt):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(vals), max(vals))

table = ["| system | clients | run | msgs/s | MiB/s | wall s | login ms (max) | STAT+LIST+UIDL ms (max) "
         "| errors | session PSS MiB per client | server PSS MiB | server RSS MiB | procs | CPU s |",
         "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
keys = []
for r in rows:
    if r[:3] not in keys:
        keys.append(r[:3])
def run_order(run):
    return (run.endswith("-tls"), not run.startswith("first"))
keys.sort(key=lambda k: (k[1], run_order(k[2]), k[0]))
for k in keys:
    ds = [r[4] for r in rows if r[:3] == k]
    num = lambda key: [float(d[key]) for d in ds if key in d]
    errors = sum(int(d.get("errors", 1)) for d in ds)
    bad = sum(int(d.get("size_mismatch", 0)) + int(d.get("count_mismatch", 0)) for d in ds)
    table.append("| %s | %d | %s | %s | %s | %s | %s | %s | %d%s | %s | %s | %s | %s | %s |" % (
        k[0], k[1], k[2], spread(num("msgs_per_sec"), "%.0f"), spread(num("mib_per_sec"), "%.1f"),
        spread(num("secs"), "%.2f"), spread(num("login_ms_max"), "%.0f"),
        spread(num("list_ms_max"), "%.0f"), errors,
        " (%d size/count mismatches)" % bad if bad else "",
        spread([v / 1024 / k[1] for v in num("sess_pss_kb")], "%.1f"),
        spread([v / 1024 for v in num("peak_pss_kb")], "%.1f"),
        spread([v / 1024 for v in num("peak_rss_kb")], "%.0f"),
        spread(num("peak_procs"), "%.0f"), spread(num("cpu_secs"), "%.2f")))
# Ratios from back-to-back pairs (same repetition, clients and run).
pairs = ["", "| clients | run | Postern / Dovecot msgs/s: median of per-repetition ratios (min–max) "
         "| Dovecot / Postern CPU s | Dovecot / Postern session PSS |",
         "|---:|---|---:|---:|---:|"]
have = False
for c, run in sorted({(r[1], r[2]) for r in rows}, key=lambda x: (x[0], run_order(x[1]))):
    rate, cpu, mem = [], [], []
    for rep in sorted({r[3] for r in rows}):
        dc = [r[4] for r in rows if r[:4] == ("dovecot", c, run, rep)]
        pn = [r[4] for r in rows if r[:4] == ("postern", c, run, rep)]
        if not dc or not pn:
            continue
        a, b = dc[0], pn[0]
        if a.get("errors") == "0" and b.get("errors") == "0" and float(a["msgs_per_sec"]) > 0:
            rate.append(float(b["msgs_per_sec"]) / float(a["msgs_per_sec"]))
        if float(b.get("cpu_secs", 0)) > 0:
            cpu.append(float(a["cpu_secs"]) / float(b["cpu_secs"]))
        if float(b.get("sess_pss_kb", 0)) > 0:
            mem.append(float(a["sess_pss_kb"]) / float(b["sess_pss_kb"]))
    if rate or cpu:
        have = True
        pairs.append("| %d | %s | %s | %s | %s |" % (c, run, spread(rate, "%.2f"),
                                                     spread(cpu, "%.2f"), spread(mem, "%.2f")))
if have:
    table += pairs
table_text = "\n".join(table)
print(table_text)

with open(raw) as f:
    raw_text = f.read()
with open(out, "w") as f:
    f.write("""# POP3 benchmark results (latest run)

Written by \`sh bench/pop3-bench.sh\`. Figures, never pass/fail: median of
$REPS runs, (min–max) in brackets. Method: docs/benchmarks.md, section
"POP3: Postern pop3d and Dovecot".

- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $cpu, $(nproc) cores, $mem RAM, kernel $(uname -r); work directory $WORK ($fstype)
- Systems:$versions
- Mailbox: $N messages of $SIZE bytes on disk ($seed_bytes bytes in all, LF line endings), one copy per client and system; RETR pipelining depth $DEPTH
- Load average (1, 5, 15 min) before: $load_start; after: $load_end

""")
    notes = open("$notes").read().strip()
    if notes:
        f.write("Notes:\n\n" + "\n".join("- " + l for l in notes.splitlines()) + "\n\n")
    f.write(table_text + "\n\n")
    f.write("""Columns: msgs/s and MiB/s are messages (octets) retrieved by all clients
divided by the wall time of the run (connect to the last QUIT); session PSS
is the peak PSS sum of the session processes (Postern: pop3d; Dovecot: pop3,
pop3-login, auth) divided by the clients; server PSS/RSS and procs cover the
server's whole process tree (master and all descendants); CPU s is that
tree's CPU time during the run.

Command lines (BUILD=$build, tools from $tools):

\`\`\`
# once: the seed Maildir in $WORK/seed, copied to seed-postern and seed-dovecot
BUILD/postern init $WORK/postern --port-offset $PORT_OFFSET
BUILD/postern -c $WORK/postern/etc user add benchN@$DOMAIN      # N = 1..$maxc
# each (repetition, clients, system): cp -al the seed copy to every user's Maildir, then
BUILD/postern -c $WORK/postern/etc start          # or: dovecot -c $WORK/dovecot/etc/dovecot.conf
# the load, twice ("first" builds the index, "warm" finds it)$commands
BUILD/postern -c $WORK/postern/etc stop           # or: kill the dovecot master
\`\`\`

""")
    if "dovecot" in "$ready".split():
        f.write("Dovecot's configuration ($WORK/dovecot/etc/dovecot.conf):\n\n\`\`\`\n"
                + open("$WORK/dovecot/etc/dovecot.conf").read() + "\`\`\`\n\n")
    f.write("Raw results (one line per run):\n\n\`\`\`\n" + raw_text + "\`\`\`\n")
EOF
echo "pop3-bench: report written to $OUT"
