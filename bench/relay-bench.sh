#!/bin/sh
# NAME
#	relay-bench.sh - outbound relay: Postern's qmgr + smtp against Postfix
# SYNOPSIS
#	sh bench/relay-bench.sh BUILD        (make bench-relay)
# DESCRIPTION
#	Figures, never pass/fail. Builds nothing: BUILD must hold smtp-load,
#	postern, postconf, postqueue, master, smtpd, qmgr, smtp, local.
#	Two parts ($BENCH_RELAY_PARTS):
#
#	throughput: $BENCH_RELAY_MESSAGES messages of $BENCH_SIZE bytes, one
#	recipient user@remote.test each, sent by smtp-load over
#	$BENCH_RELAY_SESSIONS concurrent sessions (one message per
#	connection) to the system's SMTP server, which relays them to one
#	smtp-sink (Postfix's /usr/sbin/smtp-sink) on a loopback port: both
#	systems have relayhost = [127.0.0.1]:SINKPORT, so no DNS is
#	involved (Postern's dns_servers is a dead loopback port anyway,
#	Postfix has smtp_dns_support_level = disabled). The time is from the
#	start of smtp-load to the moment the sink's counter ("smtp-sink -c",
#	read every 20 ms by relay-count.py) shows all messages. Per run: a
#	fresh sink and a fresh instance, one warm-up message relayed, then
#	the load, while proc-sampler.py samples the instance's process tree
#	(peak RSS/PSS sum, CPU). Each repetition ($BENCH_REPS) runs both
#	systems back to back, their order alternating between repetitions;
#	ratios are medians of the per-repetition pairs.
#
#	drain: the outbound side alone. The instance starts with its
#	relayhost port closed (no sink yet); smtp-load sends the same
#	$BENCH_RELAY_MESSAGES messages, which the system defers (connection
#	refused, then the destination is suspended/dead); once all of them
#	sit in deferred/, the sink starts and `postqueue -f` is run; the time
#	is from the flush to the sink counting them all. Same sampling,
#	pairing and order alternation as throughput.
#
#	backlog (Postern only): $BENCH_RELAY_BACKLOG queue files written
#	straight into deferred/ (relay-backlog.py gen; recipient
#	user@dead.test routed by relayhost to a dead loopback port, next try
#	a day away, so the start-up scan leaves them), Postern started, one
#	probe message to the local user demo@example.test timed (idle), then
#	`postqueue -f` and relay-backlog.py watch: time until every backlog
#	message logged its next "status=deferred", qmgr's RSS/PSS every
#	0.5 s, and probe messages to the local user every few seconds while
#	the backlog is being retried (their end-to-end latency is the
#	figure that says whether new mail is starved).
#
#	Tables go to stdout and, with command lines, settings, date and
#	machine notes, to $BENCH_RELAY_OUT.
# ENVIRONMENT
#	BENCH_RELAY_PARTS ("throughput drain backlog") BENCH_REPS (3)
#	BENCH_RELAY_MESSAGES (10000) BENCH_SIZE (4096) BENCH_RELAY_SESSIONS (10)
#	BENCH_RELAY_SYSTEMS ("postfix postern") BENCH_RELAY_BACKLOG (100000)
#	BENCH_RELAY_BACKLOG_REPS (BENCH_REPS)
#	BENCH_RELAY_DIR (work directory, default /tmp/postern-relay-bench; it
#	is emptied) BENCH_RELAY_POSTFIX_PORT (10125) BENCH_RELAY_SINK_PORT
#	(10126) BENCH_RELAY_DEAD_PORT (10127, nothing may listen there)
#	BENCH_RELAY_DNS_PORT (10153, nothing listens) BENCH_RELAY_PORT_OFFSET
#	(26000: Postern SMTP 28525; the backlog instance uses +1000)
#	BENCH_RELAY_OUT (bench/results/relay-latest.md)
#	BENCH_TOOLS (where smtp-load is; default BUILD)
# LIMITS
#	Every load run stops by itself (smtp-load -T 600, the sink waited for
#	at most 600 s, the backlog watch at most 1200 s, the sink is run
#	under timeout(1)); instances are stopped after each run and whatever
#	they left is killed by pid; an EXIT/INT/TERM trap stops everything
#	this script started. Needs root (the postfix package and its
#	alternate_config_directories; smtp-sink -u nobody; Postern's daemons
#	as mail_owner), /usr/bin/python3, and for the backlog about
#	BACKLOG x (SIZE + 300) bytes of disk. Loopback only.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh bench/relay-bench.sh BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "relay-bench: no build directory $1" >&2; exit 2; }
bench_name=relay-bench
. "$src/bench/lib.sh"

PARTS=${BENCH_RELAY_PARTS:-throughput drain backlog}
REPS=${BENCH_REPS:-3}
N=${BENCH_RELAY_MESSAGES:-10000}
SIZE=${BENCH_SIZE:-4096}
SESSIONS=${BENCH_RELAY_SESSIONS:-10}
SYSTEMS=${BENCH_RELAY_SYSTEMS:-postfix postern}
BACKLOG=${BENCH_RELAY_BACKLOG:-100000}
BL_REPS=${BENCH_RELAY_BACKLOG_REPS:-$REPS}
WORK=${BENCH_RELAY_DIR:-/tmp/postern-relay-bench}
PF_PORT=${BENCH_RELAY_POSTFIX_PORT:-10125}
SINK_PORT=${BENCH_RELAY_SINK_PORT:-10126}
DEAD_PORT=${BENCH_RELAY_DEAD_PORT:-10127}
DNS_PORT=${BENCH_RELAY_DNS_PORT:-10153}
PORT_OFFSET=${BENCH_RELAY_PORT_OFFSET:-26000}
OUT=${BENCH_RELAY_OUT:-$src/bench/results/relay-latest.md}
PY=/usr/bin/python3
SINK=/usr/sbin/smtp-sink
tools=$(cd "${BENCH_TOOLS:-$build}" 2>/dev/null && pwd) || { echo "relay-bench: no directory ${BENCH_TOOLS:-}" >&2; exit 2; }
RCPT=user@remote.test

[ -x "$tools/smtp-load" ] || { echo "relay-bench: $tools/smtp-load is missing (make bench-relay builds it)" >&2; exit 2; }
[ -x "$PY" ] || { echo "relay-bench: $PY is needed" >&2; exit 2; }

case $WORK in /*) ;; *) WORK=$(pwd)/$WORK ;; esac
rm -rf "$WORK"
mkdir -p "$WORK" || exit 2
chmod 755 "$WORK"
raw=$WORK/raw.tsv
braw=$WORK/backlog.tsv
draw=$WORK/drain.tsv
notes=$WORK/notes.txt
: > "$notes"
: > "$braw"
printf 'system\trep\tline\n' > "$draw"

# --- what is running, so the trap can stop it ---------------------------
cur_system=""
cur_dir=""
sampler_pid=""
sink_pid=""

child_named() {   # child_named PARENT COMM
    ps -eo pid=,ppid=,comm= | awk -v p="$1" -v c="$2" '$2 == p && $3 == c { print $1; exit }'
}

sink_stop() {
    if [ -n "$sink_pid" ]; then
        kill "$sink_pid" 2>/dev/null   # timeout(1) passes it on to smtp-sink
        wait "$sink_pid" 2>/dev/null
        sink_pid=""
    fi
}

cleanup() {
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    sampler_pid=""
    if [ -n "$cur_system" ]; then
        instance_stop "$cur_system" "$cur_dir"
        cur_system=""
    fi
    sink_stop
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

port_busy() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# A fresh smtp-sink; its counters go to $WORK/sink.out.
sink_start() {
    local i
    if port_busy "$SINK_PORT"; then
        echo "relay-bench: something already listens on 127.0.0.1:$SINK_PORT" >&2
        return 1
    fi
    : > "$WORK/sink.out"
    timeout 1500 "$SINK" -c -u nobody "127.0.0.1:$SINK_PORT" 256 > "$WORK/sink.out" 2>&1 &
    sink_pid=$!
    i=0
    while [ $i -lt 50 ]; do
        port_busy "$SINK_PORT" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "relay-bench: smtp-sink did not start" >&2
    return 1
}

# --- instances -----------------------------------------------------------
# instance_start SYSTEM DIR PORT_OFFSET RELAYPORT; sets dir, port.
instance_start() {
    dir=$2
    rm -rf "$dir"
    case $1 in
    postfix)
        sh "$src/bench/postfix-setup.sh" "$dir" "$PF_PORT" >> "$WORK/setup.log" 2>&1 || return 1
        # Same relay route as Postern; the bracketed address needs no DNS,
        # and DNS is off so nothing else can ask the machine's resolver.
        postconf -c "$dir/etc" -e \
            "relayhost = [127.0.0.1]:$4" \
            "smtp_dns_support_level = disabled" \
            "smtp_host_lookup = native" >> "$WORK/setup.log" 2>&1 || return 1
        port=$PF_PORT
        cur_system=postfix cur_dir=$dir
        postfix -c "$dir/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        ;;
    postern)
        "$build/postern" init "$dir" --port-offset "$3" >> "$WORK/setup.log" 2>&1 || return 1
        "$build/postconf" -c "$dir/etc" -e \
            "relayhost=[127.0.0.1]:$4" \
            "dns_servers=127.0.0.1:$DNS_PORT" \
            "inet_protocols=ipv4" >> "$WORK/setup.log" 2>&1 || return 1
        port=$((2525 + $3))
        cur_system=postern cur_dir=$dir
        timeout 20 "$build/postern" -c "$dir/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        ;;
    esac
    return 0
}

# Warm-up: one message relayed to the sink proves the chain works and
# starts the long-lived processes before the measurement.
warm_up() {
    local i w
    i=0
    while [ $i -lt 15 ]; do
        w=$("$PY" "$src/bench/relay-count.py" "$WORK/sink.out" 1 10 \
            "$tools/smtp-load" -s "127.0.0.1:$port" -n 1 -c 1 -S 1000 -r "$RCPT" -T 10 \
            2>>"$WORK/setup.log")
        case $w in *"accepted=1 "*"relay_complete=1"*) sleep 1; return 0 ;; esac
        echo "warm-up $1: $w" >> "$WORK/setup.log"
        sleep 1
        i=$((i + 1))
    done
    return 1
}

version_of() {
    case $1 in
        postfix) postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /' ;;
        postern) echo "Postern (build $build)" ;;
    esac
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
commands=""
broken=""

# --- part 1: relay throughput ---------------------------------------------
run_throughput() {
    local measured missing b system r order line sample mpid cmd sent deferred tot_sess base_sess
    measured=""
    for system in $SYSTEMS; do
        if [ "$system" = postern ]; then
            missing=""
            for b in postern postconf master smtpd qmgr smtp local; do
                [ -x "$build/$b" ] || missing="$missing $b"
            done
            if [ -n "$missing" ]; then
                echo "Postern not measured: missing in $build:$missing" | tee -a "$notes" >&2
                continue
            fi
        fi
        measured="$measured $system"
    done
    [ -x "$SINK" ] || sh "$src/bench/postfix-setup.sh" "$WORK/pf-probe" "$PF_PORT" >> "$WORK/setup.log" 2>&1
    [ -x "$SINK" ] || { echo "relay-bench: $SINK missing (postfix package)" | tee -a "$notes" >&2; return 1; }
    printf 'system\trep\tline\n' > "$raw"
    r=1
    while [ "$r" -le "$REPS" ]; do
        # Alternate the order: a system that always runs second would
        # always meet the page cache and the disk in the same state.
        if [ $((r % 2)) -eq 1 ]; then order=$measured; else
            order=""; for system in $measured; do order="$system $order"; done; fi
        for system in $order; do
            case " $broken " in *" $system "*) continue ;; esac
            if ! sink_start; then
                echo "rep $r $system: no sink" >> "$notes"
                continue
            fi
            if ! instance_start "$system" "$WORK/$system" "$PORT_OFFSET" "$SINK_PORT" || ! warm_up "$system"; then
                echo "$system could not be started or relay a warm-up message; see $WORK/setup.log" | tee -a "$notes" >&2
                tail -5 "$WORK/setup.log" >&2
                instance_stop "$system" "$WORK/$system"
                cur_system=""
                sink_stop
                broken="$broken $system"
                continue
            fi
            mpid=$(master_pid "$dir")
            "$PY" "$src/bench/proc-sampler.py" "$mpid" "$WORK/sample.out" &
            sampler_pid=$!
            sleep 0.2
            cmd="smtp-load -s 127.0.0.1:$port -n $N -S $SIZE -c $SESSIONS -m 1 -r $RCPT -T 600"
            line=$("$PY" "$src/bench/relay-count.py" "$WORK/sink.out" "$N" 600 \
                   "$tools"/$cmd 2>>"$WORK/load.log")
            kill "$sampler_pid" 2>/dev/null
            wait "$sampler_pid" 2>/dev/null
            sampler_pid=""
            sample=$(cat "$WORK/sample.out" 2>/dev/null)
            rm -f "$WORK/sample.out"
            instance_stop "$system" "$dir"
            cur_system=""
            # Sessions the sink saw for the load (cached ones included now
            # that the instance closed them), and what the system logged.
            base_sess=$(echo "$line" | sed -n 's/.*sink_base_sessions=\([0-9]*\).*/\1/p')
            tot_sess=$(tr '\r' '\n' < "$WORK/sink.out" | sed -n 's/^sess=\([0-9]*\) .*/\1/p' | tail -1)
            sent=$(grep -c "to=<$RCPT>.*status=sent" "$dir/log/maillog")
            deferred=$(grep -c "to=<$RCPT>.*status=deferred" "$dir/log/maillog")
            sink_stop
            printf '%s\t%s\t%s %s sink_sessions_total=%s sent_lines=%s deferred_lines=%s\n' \
                "$system" "$r" "$line" "$sample" "$((${tot_sess:-0} - ${base_sess:-0}))" \
                "$sent" "$deferred" >> "$raw"
            echo "$system rep=$r: $line $sample sent_lines=$sent deferred_lines=$deferred"
            cp "$dir/log/maillog" "$WORK/maillog-$system-$r" 2>/dev/null
            case $commands in *"$cmd"*) ;; *) commands="$commands
    relay-count.py SINK_OUT $N 600 $cmd" ;; esac
        done
        r=$((r + 1))
    done
}

# --- part 2: draining a deferred queue to the sink --------------------------
# queue_count SYSTEM DIR SUBDIR: files in that queue directory (Postfix
# hashes deferred/ into subdirectories).
queue_count() {
    find "$2/queue/$3" -type f 2>/dev/null | wc -l
}

run_drain() {
    local measured system r order line sample mpid w i inq flushcmd t0 wait_secs tot_sess base_sess sent deferred
    measured=""
    for system in $SYSTEMS; do
        case " $broken " in *" $system "*) continue ;; esac
        measured="$measured $system"
    done
    [ -x "$SINK" ] || { echo "drain not measured: $SINK missing" | tee -a "$notes" >&2; return 1; }
    r=1
    while [ "$r" -le "$REPS" ]; do
        if [ $((r % 2)) -eq 1 ]; then order=$measured; else
            order=""; for system in $measured; do order="$system $order"; done; fi
        for system in $order; do
            if port_busy "$SINK_PORT"; then
                echo "drain rep $r $system: something listens on $SINK_PORT" | tee -a "$notes" >&2
                continue
            fi
            if ! instance_start "$system" "$WORK/$system-drain" "$PORT_OFFSET" "$SINK_PORT"; then
                echo "drain rep $r: $system could not be started; see $WORK/setup.log" | tee -a "$notes" >&2
                instance_stop "$system" "$WORK/$system-drain"
                cur_system=""
                continue
            fi
            sleep 1
            w=$("$tools/smtp-load" -s "127.0.0.1:$port" -n "$N" -S "$SIZE" -c "$SESSIONS" -m 1 \
                -r "$RCPT" -T 600 2>>"$WORK/load.log")
            # Wait (at most 300 s) until every message sits in deferred/
            # and nothing is in incoming/ or active/.
            t0=$(date +%s)
            i=0
            while [ $i -lt 600 ]; do
                inq=$(( $(queue_count "$system" "$dir" incoming) + $(queue_count "$system" "$dir" active) ))
                [ "$inq" -eq 0 ] && [ "$(queue_count "$system" "$dir" deferred)" -ge "$N" ] && break
                sleep 0.5
                i=$((i + 1))
            done
            wait_secs=$(( $(date +%s) - t0 ))
            ndef=$(queue_count "$system" "$dir" deferred)
            sink_start || { instance_stop "$system" "$dir"; cur_system=""; continue; }
            case $system in
                postfix) flushcmd="postqueue -c $dir/etc -f" ;;
                postern) flushcmd="$build/postqueue -c $dir/etc -f" ;;
            esac
            mpid=$(master_pid "$dir")
            "$PY" "$src/bench/proc-sampler.py" "$mpid" "$WORK/sample.out" &
            sampler_pid=$!
            sleep 0.2
            line=$("$PY" "$src/bench/relay-count.py" "$WORK/sink.out" "$ndef" 600 $flushcmd \
                   2>>"$WORK/load.log")
            kill "$sampler_pid" 2>/dev/null
            wait "$sampler_pid" 2>/dev/null
            sampler_pid=""
            sample=$(cat "$WORK/sample.out" 2>/dev/null)
            rm -f "$WORK/sample.out"
            instance_stop "$system" "$dir"
            cur_system=""
            base_sess=$(echo "$line" | sed -n 's/.*sink_base_sessions=\([0-9]*\).*/\1/p')
            tot_sess=$(tr '\r' '\n' < "$WORK/sink.out" | sed -n 's/^sess=\([0-9]*\) .*/\1/p' | tail -1)
            sent=$(grep -c "to=<$RCPT>.*status=sent" "$dir/log/maillog")
            deferred=$(grep -c "to=<$RCPT>.*status=deferred" "$dir/log/maillog")
            sink_stop
            w=$(echo "$w" | sed 's/\([a-z0-9_]*\)=/inject_\1=/g')
            printf '%s\t%s\t%s deferred_before=%s defer_wait_secs=%s %s %s sink_sessions_total=%s sent_lines=%s deferred_lines=%s\n' \
                "$system" "$r" "$w" "$ndef" "$wait_secs" "$line" "$sample" \
                "$((${tot_sess:-0} - ${base_sess:-0}))" "$sent" "$deferred" >> "$draw"
            echo "drain $system rep=$r: deferred_before=$ndef defer_wait_secs=$wait_secs $line $sample sent_lines=$sent deferred_lines=$deferred"
            cp "$dir/log/maillog" "$WORK/maillog-drain-$system-$r" 2>/dev/null
            rm -rf "$dir"
        done
        r=$((r + 1))
    done
    commands="$commands
    # drain: relayhost port closed while smtp-load sends, then smtp-sink started and
    smtp-load -s 127.0.0.1:PORT -n $N -S $SIZE -c $SESSIONS -m 1 -r $RCPT -T 600
    relay-count.py SINK_OUT DEFERRED 600 postqueue -c ETC -f"
}

# --- part 3: Postern's qmgr with a large deferred queue --------------------
run_backlog() {
    local r bdir bport mpid qpid u g t0 gen_secs idle w res sample
    for b in postern postconf postqueue master smtpd qmgr smtp local; do
        [ -x "$build/$b" ] || { echo "backlog not measured: $build/$b missing" | tee -a "$notes" >&2; return 1; }
    done
    if port_busy "$DEAD_PORT"; then
        echo "backlog not measured: something listens on the dead port $DEAD_PORT" | tee -a "$notes" >&2
        return 1
    fi
    u=$(id -u postern 2>/dev/null || id -u)
    g=$(id -g postern 2>/dev/null || id -g)
    bdir=$WORK/backlog
    bport=$((PORT_OFFSET + 1000))
    r=1
    while [ "$r" -le "$BL_REPS" ]; do
        rm -rf "$bdir"
        "$build/postern" init "$bdir" --port-offset "$bport" >> "$WORK/setup.log" 2>&1 &&
        "$build/postconf" -c "$bdir/etc" -e "relayhost=[127.0.0.1]:$DEAD_PORT" \
            "dns_servers=127.0.0.1:$DNS_PORT" "inet_protocols=ipv4" >> "$WORK/setup.log" 2>&1 || {
            echo "backlog rep $r: postern init failed" | tee -a "$notes" >&2; return 1; }
        u=$(stat -c %u "$bdir/queue/deferred")
        g=$(stat -c %g "$bdir/queue/deferred")
        t0=$(date +%s.%N)
        "$PY" "$src/bench/relay-backlog.py" gen "$bdir/queue" "$BACKLOG" "$SIZE" \
            sender@example.test user@dead.test $(($(date +%s) + 86400)) "$u" "$g" || {
            echo "backlog rep $r: generating the queue failed" | tee -a "$notes" >&2; return 1; }
        gen_secs=$(echo "$t0 $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
        sync
        # Start-up: qmgr walks deferred/ once (nothing is due) and idles.
        t0=$(date +%s.%N)
        cur_system=postern cur_dir=$bdir
        timeout 20 "$build/postern" -c "$bdir/etc" start >> "$WORK/setup.log" 2>&1 || {
            echo "backlog rep $r: postern start failed" | tee -a "$notes" >&2; return 1; }
        port=$((2525 + bport))
        newdir=$bdir/mail/example.test/demo/new
        probe="smtp-load -s 127.0.0.1:$port -n 1 -c 1 -S $SIZE -r demo@example.test -w $newdir -W 120 -T 130"
        probe_async="smtp-load -s 127.0.0.1:$port -n 1 -c 1 -S $SIZE -r demo@example.test -T 130"
        w=""
        i=0
        while [ $i -lt 15 ]; do
            w=$("$tools"/$probe 2>>"$WORK/setup.log")
            case $w in *"e2e_complete=1"*) break ;; esac
            sleep 1
            i=$((i + 1))
        done
        start_secs=$(echo "$t0 $(date +%s.%N)" | awk '{ printf "%.2f", $2 - $1 }')
        start_e2e=$(echo "$w" | sed -n 's/.*e2e_secs=\([0-9.-]*\).*/\1/p')
        # Idle with the backlog on disk: one more probe after 5 s.
        sleep 5
        w=$("$tools"/$probe 2>>"$WORK/setup.log")
        idle_e2e=$(echo "$w" | sed -n 's/.*e2e_secs=\([0-9.-]*\).*/\1/p')
        idle=$(grep 'to=<demo@example.test>.*status=sent' "$bdir/log/maillog" | tail -1 |
               sed -n 's/.* delay=\([0-9.]*\),.*/\1/p')
        mpid=$(master_pid "$bdir")
        qpid=$(child_named "$mpid" qmgr)
        if [ -z "$qpid" ]; then
            echo "backlog rep $r: no qmgr process" | tee -a "$notes" >&2
            instance_stop postern "$bdir"; cur_system=""; return 1
        fi
        "$PY" "$src/bench/proc-sampler.py" "$mpid" "$WORK/sample.out" qmgr &
        sampler_pid=$!
        "$PY" "$src/bench/relay-backlog.py" watch "$bdir/log/maillog" "$qpid" "$bdir/queue" \
            "$BACKLOG" 1200 "$WORK/watch.out" "$WORK/series-$r.tsv" 1 1 "to=<demo@example.test>" \
            -- "$build/postqueue" -c "$bdir/etc" -f -- "$tools"/$probe_async
        kill "$sampler_pid" 2>/dev/null
        wait "$sampler_pid" 2>/dev/null
        sampler_pid=""
        res=$(cat "$WORK/watch.out" 2>/dev/null)
        sample=$(cat "$WORK/sample.out" 2>/dev/null)
        rm -f "$WORK/watch.out" "$WORK/sample.out"
        qpid_after=$(child_named "$mpid" qmgr)
        left=$(ls "$bdir/queue/deferred" | wc -l)
        instance_stop postern "$bdir"
        cur_system=""
        grep -E 'warning|panic|fatal' "$bdir/log/maillog" | head -20 > "$WORK/backlog-warnings-$r.txt"
        # Every probe's own log lines (arrival, queue active, delivery).
        for id in $(grep 'to=<demo@example.test>.*status=sent' "$bdir/log/maillog" |
                    sed -n 's/.*\]: \([0-9A-F]*\): to=.*/\1/p'); do
            grep "$id" "$bdir/log/maillog"
        done > "$WORK/backlog-probes-$r.txt"
        line="gen_secs=$gen_secs start_probe_secs=$start_secs start_probe_e2e_secs=$start_e2e idle_probe_secs=$idle idle_probe_e2e_secs=$idle_e2e $res $sample qmgr_pid_same=$([ "$qpid" = "$qpid_after" ] && echo 1 || echo 0) deferred_files_after=$left"
        printf 'postern\t%s\t%s\n' "$r" "$line" >> "$braw"
        echo "backlog rep=$r: $line"
        r=$((r + 1))
    done
    rm -rf "$bdir"
    commands="$commands
    relay-backlog.py gen QUEUE $BACKLOG $SIZE sender@example.test user@dead.test NOW+86400 UID GID
    relay-backlog.py watch MAILLOG QMGR_PID QUEUE $BACKLOG 1200 OUT SERIES 1 1 'to=<demo@example.test>' -- postqueue -c ETC -f -- $probe_async"
}

for part in $PARTS; do
    case $part in
        throughput) run_throughput ;;
        drain) run_drain ;;
        backlog) run_backlog ;;
        *) echo "relay-bench: unknown part $part" >&2 ;;
    esac
done

# --- the report ------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
versions=""
for system in $SYSTEMS; do versions="$versions $(version_of "$system");"; done
cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fstype=$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
[ -f "$raw" ] || printf 'system\trep\tline\n' > "$raw"

"$PY" - "$raw" "$braw" "$OUT" "$draw" <<EOF
import statistics, sys
raw, braw, out, draw = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

def parse(path, header):
    rows = []
    with open(path) as f:
        if header:
            next(f, None)
        for line in f:
            system, rep, kv = line.rstrip("\n").split("\t")
            d = dict(x.split("=", 1) for x in kv.split() if "=" in x)
            rows.append((system, int(rep), d))
    return rows

def spread(vals, fmt):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(vals), max(vals))

def relay_table(rows, drain):
    text = []
    if not rows:
        return text
    head = ("| system | %s msgs/s | wall s | %s | errors | relayed / sent lines / deferred lines "
            "| sink sessions | peak RSS sum MiB | peak PSS sum MiB | peak procs | CPU s / 1000 msgs |"
            % (("drained (flush to sink)", "inject msgs/s; wait until all deferred s") if drain else
               ("relayed (end to end)", "accepted msgs/s")))
    text += [head, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for system in [s for s in "$SYSTEMS".split() if any(r[0] == s for r in rows)]:
        ds = [r[2] for r in rows if r[0] == system]
        num = lambda k: [float(d[k]) for d in ds if k in d]
        ok = [d for d in ds if d.get("relay_complete") == "1"]
        inc = len(ds) - len(ok)
        cpu = [float(d["cpu_secs"]) * 1000 / float(d["relayed"]) for d in ds
               if "cpu_secs" in d and float(d.get("relayed", 0)) > 0]
        if drain:
            third = "%s; %s" % (spread(num("inject_accept_rate"), "%.0f"), spread(num("defer_wait_secs"), "%.0f"))
            errors = sum(int(d.get("inject_errors", 0)) for d in ds)
        else:
            third = spread(num("accept_rate"), "%.0f")
            errors = sum(int(d.get("errors", 0)) for d in ds)
        text.append("| %s | %s%s | %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
            system, spread([float(d["relay_rate"]) for d in ok], "%.0f"),
            " (%d incomplete)" % inc if inc else "",
            spread([float(d["relay_secs"]) for d in ok], "%.1f"), third, errors,
            ", ".join("%s/%s/%s" % (d.get("relayed"), d.get("sent_lines"), d.get("deferred_lines")) for d in ds),
            spread(num("sink_sessions_total"), "%.0f"),
            spread([v / 1024 for v in num("peak_rss_kb")], "%.0f"),
            spread([v / 1024 for v in num("peak_pss_kb")], "%.1f"),
            spread(num("peak_procs"), "%.0f"), spread(cpu, "%.2f")))
    ratios, cpur, pssr = [], [], []
    for rep in sorted({r[1] for r in rows}):
        pf = [r[2] for r in rows if r[0] == "postfix" and r[1] == rep]
        pn = [r[2] for r in rows if r[0] == "postern" and r[1] == rep]
        if not pf or not pn:
            continue
        a, b = pf[0], pn[0]
        if a.get("relay_complete") == "1" and b.get("relay_complete") == "1":
            ratios.append(float(b["relay_rate"]) / float(a["relay_rate"]))
        if float(a.get("cpu_secs", 0)) > 0 and float(b.get("cpu_secs", 0)) > 0:
            cpur.append((float(a["cpu_secs"]) / float(a["relayed"])) /
                        (float(b["cpu_secs"]) / float(b["relayed"])))
        if float(b.get("peak_pss_kb", 0)) > 0:
            pssr.append(float(a["peak_pss_kb"]) / float(b["peak_pss_kb"]))
    if ratios:
        text += ["", "| Postern / Postfix, %s msgs/s: median of per-repetition ratios (min–max) "
                 "| Postfix / Postern, CPU per message | Postfix / Postern, peak PSS |"
                 % ("drained" if drain else "relayed"),
                 "|---:|---:|---:|",
                 "| %s | %s | %s |" % (spread(ratios, "%.2f"), spread(cpur, "%.2f"), spread(pssr, "%.1f"))]
    return text

text = []
rows = parse(raw, True)
if rows:
    text += ["Relay, end to end (smtp-load -> system -> smtp-sink):", ""] + relay_table(rows, False)
drows = parse(draw, True)
if drows:
    if text:
        text.append("")
    text += ["Drain (deferred queue -> smtp-sink after postqueue -f):", ""] + relay_table(drows, True)

brows = parse(braw, False)
if brows:
    if text:
        text.append("")
    text += ["Backlog (Postern):", "", "| rep | backlog | retry s (all re-deferred) | msgs/s | settled s | qmgr RSS MiB before / peak / after "
             "| qmgr PSS MiB peak | active peak | probe delay s: idle; during retry median / max (n) "
             "| tree CPU s | start-up: postern start to first probe delivered s |",
             "|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|"]
    for _, rep, d in brows:
        mib = lambda k: "%.1f" % (float(d.get(k, 0)) / 1024)
        text.append("| %d | %s | %s | %s | %s | %s / %s / %s | %s | %s | %s; %s / %s (%s%s) | %s | %s |" % (
            rep, d.get("want"), d.get("retry_secs"), d.get("retry_rate"), d.get("settle_secs"),
            mib("qmgr_rss_before_kb"), mib("sess_rss_kb"), mib("qmgr_rss_after_kb"),
            mib("sess_pss_kb"), d.get("active_peak"), d.get("idle_probe_secs"),
            d.get("probe_median_secs"), d.get("probe_max_secs"), d.get("probes"),
            ", %s lost" % d["probes_lost"] if d.get("probes_lost", "0") != "0" else "",
            d.get("cpu_secs"), d.get("start_probe_secs")))
    f = lambda k, fmt, scale=1.0: spread([float(d[k]) / scale for _, _, d in brows
                                          if k in d and float(d[k]) >= 0], fmt)
    text.append("| median (min–max) | | %s | %s | %s | %s / %s / %s | %s | | %s; %s / %s | %s | %s |" % (
        f("retry_secs", "%.1f"), f("retry_rate", "%.0f"), f("settle_secs", "%.1f"),
        f("qmgr_rss_before_kb", "%.1f", 1024), f("sess_rss_kb", "%.1f", 1024),
        f("qmgr_rss_after_kb", "%.1f", 1024), f("sess_pss_kb", "%.1f", 1024),
        f("idle_probe_secs", "%.2f"), f("probe_median_secs", "%.2f"), f("probe_max_secs", "%.2f"),
        f("cpu_secs", "%.1f"), f("start_probe_secs", "%.2f")))
    text.append("")
    text.append("Probe messages during the retry: sent at (s after the flush); delay= of each delivery (s, log order):")
    text.append("")
    for _, rep, d in brows:
        text.append("- rep %d: sent at %s; delays %s" % (rep, d.get("probe_sent_at", "").replace(",", ", "),
                                                       d.get("probe_delays", "").replace(",", ", ")))
table_text = "\n".join(text)
print(table_text)

with open(raw) as f:
    raw_text = f.read()
with open(braw) as f:
    braw_text = f.read()
with open(draw) as f:
    draw_text = f.read()
notes = open("$notes").read().strip()
with open(out, "w") as f:
    f.write("""# Outbound relay benchmark (latest run)

Written by \`sh bench/relay-bench.sh\` (\`make bench-relay\`). Figures, never
pass/fail: median of the repetitions, (min–max) in brackets. Method:
docs/benchmarks.md, section "Outbound relay: Postern smtp and Postfix".

- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $cpu, $(nproc) cores, $mem RAM, kernel $(uname -r); work directory $WORK ($fstype)
- Systems:$versions
- Parts: $PARTS; repetitions $REPS (backlog $BL_REPS)
- Relay: $N messages of $SIZE bytes, one recipient $RCPT, $SESSIONS sessions in, one message
  per connection, relayhost [127.0.0.1]:$SINK_PORT (smtp-sink -c -u nobody 127.0.0.1:$SINK_PORT 256)
- Backlog: $BACKLOG deferred messages of $SIZE bytes for user@dead.test (relayhost
  [127.0.0.1]:$DEAD_PORT, nothing listens), probes to demo@example.test (local)
- Load average (1, 5, 15 min) before: $load_start; after: $load_end

""")
    if notes:
        f.write("Notes:\n\n" + "\n".join("- " + l for l in notes.splitlines()) + "\n\n")
    f.write(table_text + "\n\n")
    f.write("""Settings (everything else is each system's default):

- Postern: \`postern init DIR --port-offset $PORT_OFFSET\`, then \`postconf -e
  relayhost=[127.0.0.1]:$SINK_PORT dns_servers=127.0.0.1:$DNS_PORT inet_protocols=ipv4\`
  (defaults: smtp_destination_concurrency_limit = \$default_destination_concurrency_limit = 20,
  initial_destination_concurrency 5, qmgr_transport_delivery_limit 100,
  smtp_connection_cache_time_limit 2s; master.cf smtp maxproc 2, event-driven)
- Postfix: \`bench/postfix-setup.sh DIR $PF_PORT\` (as for \`make bench\`), then
  \`postconf -e "relayhost = [127.0.0.1]:$SINK_PORT" "smtp_dns_support_level = disabled"
  "smtp_host_lookup = native"\` (defaults: default_destination_concurrency_limit 20,
  initial_destination_concurrency 5, smtp_connection_cache_on_demand yes,
  default_process_limit 200 from postfix-setup.sh)
- Drain: the same instances; the sink is started only after every message was deferred
  (relayhost port closed while they came in), then \`postqueue -f\` (both systems lift the
  dead/suspended state of the destination with it)

Command lines (BUILD=$build, tools from $tools):

\`\`\`$commands
\`\`\`

Raw results, relay (one line per run):

\`\`\`
""" + raw_text + "\`\`\`\n\nRaw results, drain:\n\n\`\`\`\n" + draw_text + "\`\`\`\n\nRaw results, backlog:\n\n\`\`\`\n" + braw_text + "\`\`\`\n")
EOF
echo "relay-bench: report written to $OUT"
