#!/bin/sh
# NAME
#	edge-bench.sh - idle SMTP sessions (plain and STARTTLS) and STARTTLS
#	throughput: Postern's smtpd against Debian's Postfix, one run
# SYNOPSIS
#	sh bench/edge-bench.sh BUILD        (make bench-edge)
# DESCRIPTION
#	Figures, never pass/fail. Builds nothing: BUILD must hold postern,
#	master, smtpd, qmgr, local, postconf, smtp-load and smtp-sessions.
#
#	Sessions: for each repetition, session count (BENCH_EDGE_COUNTS) and
#	mode (plain, starttls), each system in turn gets a fresh instance;
#	smtp-sessions opens the sessions (greeting, EHLO, with -t STARTTLS,
#	handshake and EHLO again) and keeps them idle; once all are idle (or
#	failed), proc-sampler.py reads the sum of RSS and PSS of the
#	instance's whole process tree (master and all descendants) and the
#	number of processes for BENCH_EDGE_SAMPLE seconds; then the sessions
#	QUIT and the instance is stopped.
#
#	STARTTLS throughput: smtp-load -t (STARTTLS before MAIL on every
#	connection) sends BENCH_MESSAGES messages of BENCH_SIZE bytes over
#	BENCH_SESSIONS concurrent sessions to a fresh instance of each system
#	(after one warm-up message), the systems interleaved per repetition;
#	ratios are taken pairwise per repetition.
#
#	Postern: `postern init` with smtpd_process_session_limit,
#	smtpd_client_connection_count_limit raised above the session count
#	and smtpd_timeout 600s. smtpd raises its own RLIMIT_NOFILE up to the
#	hard limit (lib/server.c server_fit_session_limit); this script first
#	tries to raise the hard limit (needs CAP_SYS_RESOURCE) and notes
#	what it got. Postfix: bench/postfix-setup.sh, plus
#	default_process_limit, no connection count limit, smtpd_timeout 600s
#	and the same certificate and key with smtpd_tls_security_level=may.
# ENVIRONMENT
#	BENCH_EDGE_COUNTS ("1000 10000") BENCH_EDGE_MODES ("plain starttls")
#	BENCH_REPS (3; repetitions of the throughput runs)
#	BENCH_SESSION_REPS (BENCH_REPS; repetitions of the session runs)
#	BENCH_EDGE_PF_BIG_REPS (BENCH_SESSION_REPS: Postfix with more than
#	1,000 sessions only in the first N repetitions; one such run takes
#	about 5 minutes and 16 GiB here)
#	BENCH_SYSTEMS ("postfix postern") BENCH_MESSAGES (2000)
#	BENCH_SIZE (4096) BENCH_SESSIONS (10) BENCH_EDGE_SAMPLE (3 s)
#	BENCH_EDGE_MEM_FLOOR_MB (4096: the open phase is stopped when the
#	machine's MemAvailable falls below it) BENCH_EDGE_PF_PROCS (10100:
#	Postfix default_process_limit) BENCH_DIR (/tmp/postern-edge-bench,
#	emptied) BENCH_EDGE_POSTFIX_PORT (10225; relay-bench.sh uses 10125)
#	BENCH_EDGE_PORT_OFFSET (17000, Postern SMTP on 19525)
#	BENCH_OUT (bench/results/edge-latest.md)
#	BENCH_TOOLS (where smtp-load and smtp-sessions are; default BUILD)
# LIMITS
#	Every client stops by itself (smtp-sessions -O 300 -h 120 -T 600,
#	smtp-load -T 240); the memory floor stops the open phase early; every
#	instance is stopped after its run (what is left after 10 s is killed
#	by pid) and an EXIT/INT/TERM trap stops everything this script
#	started. Loopback only. Needs root (Postfix) and /usr/bin/python3.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh bench/edge-bench.sh BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "edge-bench: no build directory $1" >&2; exit 2; }
bench_name=edge-bench
. "$src/bench/lib.sh"

COUNTS=${BENCH_EDGE_COUNTS:-1000 10000}
MODES=${BENCH_EDGE_MODES:-plain starttls}
REPS=${BENCH_REPS:-3}
SREPS=${BENCH_SESSION_REPS:-$REPS}
PF_BIG_REPS=${BENCH_EDGE_PF_BIG_REPS:-$SREPS}
SYSTEMS=${BENCH_SYSTEMS:-postfix postern}
N=${BENCH_MESSAGES:-2000}
SIZE=${BENCH_SIZE:-4096}
LOAD_SESSIONS=${BENCH_SESSIONS:-10}
SAMPLE=${BENCH_EDGE_SAMPLE:-3}
MEM_FLOOR=${BENCH_EDGE_MEM_FLOOR_MB:-4096}
PF_PROCS=${BENCH_EDGE_PF_PROCS:-10100}
WORK=${BENCH_DIR:-/tmp/postern-edge-bench}
PF_PORT=${BENCH_EDGE_POSTFIX_PORT:-10225}
PORT_OFFSET=${BENCH_EDGE_PORT_OFFSET:-17000}
OUT=${BENCH_OUT:-$src/bench/results/edge-latest.md}
PY=/usr/bin/python3
tools=$(cd "${BENCH_TOOLS:-$build}" 2>/dev/null && pwd) || { echo "edge-bench: no directory ${BENCH_TOOLS:-}" >&2; exit 2; }

for tool in smtp-load smtp-sessions; do
    [ -x "$tools/$tool" ] || { echo "edge-bench: $tools/$tool is missing" >&2; exit 2; }
done
for b in postern master smtpd qmgr local postconf; do
    [ -x "$build/$b" ] || { echo "edge-bench: $build/$b is missing" >&2; exit 2; }
done
[ -x "$PY" ] || { echo "edge-bench: $PY is needed for the /proc sampler" >&2; exit 2; }

case $WORK in /*) ;; *) WORK=$(pwd)/$WORK ;; esac
rm -rf "$WORK"
mkdir -p "$WORK/tls" || exit 2
chmod 755 "$WORK"
raw=$WORK/raw.tsv
notes=$WORK/notes.txt
: > "$notes"
note() { echo "$*" | tee -a "$notes" >&2; }

# The open file limit: smtpd raises its soft limit to the hard one; try to
# raise the hard limit for everything started from here.
fd_before=$(ulimit -Hn)
want_fd=65536
ulimit -Hn $want_fd 2>/dev/null && ulimit -Sn $want_fd 2>/dev/null
fd_hard=$(ulimit -Hn)
ulimit -Sn "$fd_hard" 2>/dev/null
if [ "$fd_hard" != "$want_fd" ] && [ "$fd_hard" != unlimited ]; then
    note "RLIMIT_NOFILE hard limit stays $fd_hard (raising it to $want_fd failed: no CAP_SYS_RESOURCE here); Postern's smtpd budgets 3 descriptors per 2 sessions plus 32, so one smtpd holds at most $(( (fd_hard - 32) * 2 / 3 )) sessions"
fi

# --- what is running, so the trap can stop it ---------------------------
cur_system=""
cur_dir=""
sampler_pid=""
client_pid=""

cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    if [ -n "$cur_system" ]; then
        instance_stop "$cur_system" "$cur_dir"
        cur_system=""
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# One certificate for both systems: the one `postern init` makes (P-256,
# self-signed), kept from a throw-away instance.
"$build/postern" init "$WORK/certsrc" --port-offset "$PORT_OFFSET" > "$WORK/setup.log" 2>&1 ||
    { echo "edge-bench: postern init failed; see $WORK/setup.log" >&2; exit 2; }
cp "$WORK/certsrc/etc/tls/cert.pem" "$WORK/tls/cert.pem"
cp "$WORK/certsrc/etc/tls/key.pem" "$WORK/tls/key.pem"
chmod 644 "$WORK/tls/cert.pem"
chmod 600 "$WORK/tls/key.pem"
cert_desc=$(openssl x509 -in "$WORK/tls/cert.pem" -noout -text 2>/dev/null |
    awk '/Public Key Algorithm/ { sub(/^ +/, ""); a = $0 } /ASN1 OID/ { sub(/^ +/, ""); b = $0 } END { print a ", " b }')

# --- instances -----------------------------------------------------------
# $1 system, $2 session count to configure for. Sets dir, port, rcpt, newdir.
instance_start() {
    local limit
    limit=$(( $2 + $2 / 5 + 100 ))
    dir=$WORK/$1
    rm -rf "$dir"
    # Another benchmark on the same port would take half the sessions.
    local p_check
    case $1 in postfix) p_check=$PF_PORT ;; *) p_check=$((2525 + PORT_OFFSET)) ;; esac
    if ss -ltnH "sport = :$p_check" 2>/dev/null | grep -q .; then
        note "port $p_check is already in use by another program: $1 not started"
        return 1
    fi
    case $1 in
    postfix)
        sh "$src/bench/postfix-setup.sh" "$dir" "$PF_PORT" >> "$WORK/setup.log" 2>&1 || return 1
        cp "$WORK/tls/cert.pem" "$WORK/tls/key.pem" "$dir/etc/"
        chmod 600 "$dir/etc/key.pem"
        postconf -c "$dir/etc" -e \
            "default_process_limit = $PF_PROCS" \
            "smtpd_client_connection_count_limit = 0" \
            "smtpd_timeout = 600s" \
            "smtpd_tls_security_level = may" \
            "smtpd_tls_cert_file = $dir/etc/cert.pem" \
            "smtpd_tls_key_file = $dir/etc/key.pem" >> "$WORK/setup.log" 2>&1 || return 1
        port=$PF_PORT
        rcpt=user@bench.test
        newdir=$dir/mail/bench.test/user/new
        cur_system=postfix cur_dir=$dir
        postfix -c "$dir/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        ;;
    postern)
        "$build/postern" init "$dir" --port-offset "$PORT_OFFSET" >> "$WORK/setup.log" 2>&1 || return 1
        cp "$WORK/tls/cert.pem" "$dir/etc/tls/cert.pem"
        cp "$WORK/tls/key.pem" "$dir/etc/tls/key.pem"
        "$build/postconf" -c "$dir/etc" -e \
            "smtpd_process_session_limit = $limit" \
            "smtpd_client_connection_count_limit = $limit" \
            "smtpd_timeout = 600s" >> "$WORK/setup.log" 2>&1 || return 1
        port=$((2525 + PORT_OFFSET))
        rcpt=demo@example.test
        newdir=$dir/mail/example.test/demo/new
        cur_system=postern cur_dir=$dir
        timeout 20 "$build/postern" -c "$dir/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        ;;
    esac
    # Up when one STARTTLS message is accepted.
    local i=0 w
    while [ $i -lt 15 ]; do
        w=$("$tools/smtp-load" -s "127.0.0.1:$port" -n 1 -c 1 -S 1000 -r "$rcpt" -t -T 10 \
            2>>"$WORK/setup.log")
        case $w in *"accepted=1 "*) sleep 1; return 0 ;; esac
        sleep 1
        i=$((i + 1))
    done
    echo "edge-bench: $1 instance in $dir did not accept a warm-up message" >&2
    return 1
}

mem_available_mb() {
    awk '/MemAvailable/ { print int($2 / 1024) }' /proc/meminfo
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'kind\tsystem\tcount\tmode\trep\tline\n' > "$raw"
sess_cmds=""
broken=""

# --- idle sessions ------------------------------------------------------------
r=1
while [ $r -le "$SREPS" ]; do
    for count in $COUNTS; do
        for mode in $MODES; do
            for system in $SYSTEMS; do
                case " $broken " in *" $system "*) continue ;; esac
                [ "$system" = postfix ] && [ "$count" -gt 1000 ] && [ "$r" -gt "$PF_BIG_REPS" ] &&
                    continue
                if ! instance_start "$system" "$count"; then
                    note "$system could not be started (count $count); see $WORK/setup.log"
                    instance_stop "$system" "$WORK/$system"
                    cur_system=""
                    continue
                fi
                mpid=$(master_pid "$dir")
                tflag=""
                [ "$mode" = starttls ] && tflag=" -t"
                ready=$WORK/ready
                rm -f "$ready" "$WORK/sessions.out"
                cmd="smtp-sessions -s 127.0.0.1:PORT -n $count$tflag -p 200 -o 60 -O 300 -h 120 -T 600 -R $ready"
                "$tools"/smtp-sessions -s "127.0.0.1:$port" -n "$count"$tflag -p 200 -o 60 -O 300 \
                    -h 120 -T 600 -R "$ready" > "$WORK/sessions.out" 2>> "$WORK/sessions.log" &
                client_pid=$!
                guard=""
                mem_min=$(mem_available_mb)
                while [ ! -e "$ready" ] && kill -0 "$client_pid" 2>/dev/null; do
                    m=$(mem_available_mb)
                    [ "$m" -lt "$mem_min" ] && mem_min=$m
                    if [ -z "$guard" ] && [ "$m" -lt "$MEM_FLOOR" ]; then
                        guard="memory_guard=1"
                        note "$system $count $mode rep $r: MemAvailable ${m} MiB < $MEM_FLOOR MiB: open phase stopped"
                        kill -TERM "$client_pid" 2>/dev/null
                    fi
                    sleep 0.2
                done
                ready_line=$(cat "$ready" 2>/dev/null)
                # Idle now: measure the whole tree for SAMPLE seconds.
                "$PY" "$src/bench/proc-sampler.py" "$mpid" "$WORK/sample.out" smtpd 1 &
                sampler_pid=$!
                sleep "$SAMPLE"
                kill "$sampler_pid" 2>/dev/null
                wait "$sampler_pid" 2>/dev/null
                sampler_pid=""
                sample=$(cat "$WORK/sample.out" 2>/dev/null)
                rm -f "$WORK/sample.out"
                kill -TERM "$client_pid" 2>/dev/null
                wait "$client_pid" 2>/dev/null
                client_pid=""
                line=$(cat "$WORK/sessions.out" 2>/dev/null)
                instance_stop "$system" "$dir"
                cur_system=""
                printf 'sessions\t%s\t%s\t%s\t%s\t%s %s mem_avail_min_mb=%s %s\n' "$system" "$count" \
                    "$mode" "$r" "$line" "$sample" "$mem_min" "$guard" >> "$raw"
                echo "$system n=$count $mode rep=$r: $line $sample mem_avail_min_mb=$mem_min $guard"
                [ -n "$ready_line" ] || echo "edge-bench: no ready line ($system $count $mode)" >&2
                case $sess_cmds in *"-n $count$tflag "*) ;; *) sess_cmds="$sess_cmds
    $cmd" ;; esac
                sleep 2
            done
        done
    done
    r=$((r + 1))
done

# --- STARTTLS throughput ---------------------------------------------------
load_cmd=""
r=1
while [ $r -le "$REPS" ]; do
    for system in $SYSTEMS; do
        case " $broken " in *" $system "*) continue ;; esac
        if ! instance_start "$system" 100; then
            note "$system could not be started (throughput); see $WORK/setup.log"
            instance_stop "$system" "$WORK/$system"
            cur_system=""
            continue
        fi
        mpid=$(master_pid "$dir")
        "$PY" "$src/bench/proc-sampler.py" "$mpid" "$WORK/sample.out" &
        sampler_pid=$!
        sleep 0.2
        load_cmd="smtp-load -t -s 127.0.0.1:PORT -n $N -S $SIZE -c $LOAD_SESSIONS -r RCPT -w NEWDIR -W 120 -T 240"
        line=$("$tools/smtp-load" -t -s "127.0.0.1:$port" -n "$N" -S "$SIZE" -c "$LOAD_SESSIONS" \
            -r "$rcpt" -w "$newdir" -W 120 -T 240 2>>"$WORK/load.log")
        kill "$sampler_pid" 2>/dev/null
        wait "$sampler_pid" 2>/dev/null
        sampler_pid=""
        sample=$(cat "$WORK/sample.out" 2>/dev/null)
        rm -f "$WORK/sample.out"
        instance_stop "$system" "$dir"
        cur_system=""
        printf 'starttls-load\t%s\t%s\tstarttls\t%s\t%s %s\n' "$system" "$LOAD_SESSIONS" "$r" \
            "$line" "$sample" >> "$raw"
        echo "$system starttls load rep=$r: $line $sample"
    done
    r=$((r + 1))
done

# --- the report ----------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
versions=""
for system in $SYSTEMS; do
    case $system in
        postfix) versions="$versions Postfix $(postconf -h mail_version 2>/dev/null);" ;;
        postern) versions="$versions Postern (build $build);" ;;
    esac
done
cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
ports=$(cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' '-')
pidmax=$(cat /proc/sys/kernel/pid_max)

"$PY" - "$raw" "$OUT" <<EOF
import statistics, sys
raw, out = sys.argv[1], sys.argv[2]
rows = []
with open(raw) as f:
    next(f)
    for line in f:
        kind, system, count, mode, rep, kv = line.rstrip("\n").split("\t")
        d = dict(x.split("=", 1) for x in kv.split() if "=" in x)
        rows.append((kind, system, int(count), mode, int(rep), d))

def spread(vals, fmt):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(vals), max(vals))

t = ["| system | sessions asked | mode | held (idle) | failed | open s | total PSS MiB | total RSS MiB | PSS KiB / session | processes |",
     "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
keys = []
for r in rows:
    if r[0] == "sessions" and r[1:4] not in keys:
        keys.append(r[1:4])
for k in keys:
    ds = [r[5] for r in rows if r[0] == "sessions" and r[1:4] == k]
    num = lambda key: [float(d[key]) for d in ds if key in d]
    per = [float(d["peak_pss_kb"]) / float(d["idle"]) for d in ds
           if float(d.get("idle", 0)) > 0 and "peak_pss_kb" in d]
    guard = " (memory floor hit)" if any("memory_guard" in d for d in ds) else ""
    t.append("| %s | %d | %s | %s%s | %s | %s | %s | %s | %s | %s |" % (
        k[0], k[1], k[2], spread(num("held"), "%.0f"), guard, spread(num("failed"), "%.0f"),
        spread(num("open_secs"), "%.1f"),
        spread([v / 1024 for v in num("peak_pss_kb")], "%.0f"),
        spread([v / 1024 for v in num("peak_rss_kb")], "%.0f"),
        spread(per, "%.0f"), spread(num("peak_procs"), "%.0f")))
t += ["", "| system | STARTTLS accepted msgs/s | delivered msgs/s (end to end) | errors | peak PSS MiB | CPU s / 1000 msgs |",
      "|---|---:|---:|---:|---:|---:|"]
for system in sorted({r[1] for r in rows if r[0] == "starttls-load"}):
    ds = [r[5] for r in rows if r[0] == "starttls-load" and r[1] == system]
    num = lambda key: [float(d[key]) for d in ds if key in d]
    e2e = [float(d["e2e_rate"]) for d in ds if d.get("e2e_complete") == "1"]
    cpu = [float(d["cpu_secs"]) * 1000 / float(d["accepted"]) for d in ds
           if "cpu_secs" in d and float(d.get("accepted", 0)) > 0]
    t.append("| %s | %s | %s | %d | %s | %s |" % (
        system, spread(num("accept_rate"), "%.0f"), spread(e2e, "%.0f"),
        sum(int(d.get("errors", 0)) for d in ds),
        spread([v / 1024 for v in num("peak_pss_kb")], "%.0f"), spread(cpu, "%.2f")))
ratios, e2e_ratios = [], []
for rep in sorted({r[4] for r in rows if r[0] == "starttls-load"}):
    pf = [r[5] for r in rows if r[0] == "starttls-load" and r[1] == "postfix" and r[4] == rep]
    pn = [r[5] for r in rows if r[0] == "starttls-load" and r[1] == "postern" and r[4] == rep]
    if pf and pn and float(pf[0].get("accept_rate", 0)) > 0:
        ratios.append(float(pn[0]["accept_rate"]) / float(pf[0]["accept_rate"]))
        if pf[0].get("e2e_complete") == "1" and pn[0].get("e2e_complete") == "1":
            e2e_ratios.append(float(pn[0]["e2e_rate"]) / float(pf[0]["e2e_rate"]))
if ratios:
    t += ["", "Postern / Postfix, STARTTLS accepted msgs/s, median of per-repetition ratios (min–max): "
          + spread(ratios, "%.2f") + "; delivered msgs/s: " + spread(e2e_ratios, "%.2f")]
text = "\n".join(t)
print(text)
with open(raw) as f:
    raw_text = f.read()
with open(out, "w") as f:
    f.write("""# Edge benchmark results (latest run)

Written by \`sh bench/edge-bench.sh\` (\`make bench-edge\`). Figures, never
pass/fail: median of the repetitions, (min–max) in brackets. Method:
docs/benchmarks.md, section "Edge".

- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $cpu, $(nproc) cores, $mem RAM, kernel $(uname -r); ephemeral ports $ports; pid_max $pidmax
- Open files: hard limit $fd_before before, $fd_hard after trying to raise it to $want_fd
- Systems:$versions
- Certificate (both systems): $cert_desc, self-signed, from \`postern init\`
- Session repetitions: $SREPS (Postfix above 1,000 sessions: $PF_BIG_REPS); throughput repetitions: $REPS
- Load average (1, 5, 15 min) before: $load_start; after: $load_end

""")
    notes = open("$notes").read().strip()
    if notes:
        f.write("Notes:\n\n" + "\n".join("- " + l for l in notes.splitlines()) + "\n\n")
    f.write(text + "\n\n")
    f.write("""Command lines (tools from $tools):

\`\`\`
# each run: a fresh instance, one STARTTLS warm-up message, the client, stop
sh bench/postfix-setup.sh $WORK/postfix $PF_PORT   # + postconf -e default_process_limit=$PF_PROCS smtpd_client_connection_count_limit=0 smtpd_timeout=600s smtpd_tls_security_level=may smtpd_tls_cert_file/key_file
BUILD/postern init $WORK/postern --port-offset $PORT_OFFSET   # + postconf -e smtpd_process_session_limit=smtpd_client_connection_count_limit=1.2*N+100 smtpd_timeout=600s
# sessions; PORT: Postfix $PF_PORT, Postern $((2525 + PORT_OFFSET)) (then proc-sampler.py MASTER_PID OUT smtpd 1 for $SAMPLE s while idle)$sess_cmds
# STARTTLS throughput
    $load_cmd
\`\`\`

Raw results (one line per run):

\`\`\`
""" + raw_text + "\`\`\`\n")
EOF
echo "edge-bench: report written to $OUT"
