# NAME
#	lib.sh - shell functions the benchmark scripts share (sourced)
# DESCRIPTION
#	run-all.sh, pop3-bench.sh, relay-bench.sh and edge-bench.sh stop what
#	they started by pid, never by name: these find a server's process
#	tree and make sure all of it is gone. The sourcing script sets
#	$bench_name (for messages) and $build (Postern's programs).
#
#	pop3-bench.sh and imap-bench.sh install and prepare Debian's Dovecot
#	with dovecot_prepare (they also set $WORK, their work directory, and
#	$BUSER, the system user owning Dovecot's copy of the mail).

# Descendants of a pid (itself included), from one ps snapshot.
tree_pids() {
    ps -eo pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) { p = pids[i]
                    if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
            }
            for (p in keep) if (p != "") print p
        }'
}

# The master pid of a Postern or Postfix instance in DIR.
master_pid() {
    f=$1/queue/pid/master.pid
    [ -r "$f" ] && tr -d ' \n' < "$f"
}

# reap_pids LABEL PID...: waits up to 10 s for the pids to go, then
# kills what is left.
reap_pids() {
    local r_label r_alive r_i r_p
    r_label=$1
    shift
    r_i=0
    while [ $r_i -lt 100 ]; do
        r_alive=""
        for r_p in "$@"; do kill -0 "$r_p" 2>/dev/null && r_alive="$r_alive $r_p"; done
        [ -z "$r_alive" ] && return 0
        sleep 0.1
        r_i=$((r_i + 1))
    done
    echo "$bench_name: $r_label left $(echo $r_alive | wc -w) processes; killing them" >&2
    for r_p in $r_alive; do kill -9 "$r_p" 2>/dev/null; done
}

# instance_stop SYSTEM DIR: stops the postfix or postern instance in DIR
# and everything its master started.
instance_stop() {
    local s_system s_dir s_mpid left
    s_system=$1 s_dir=$2
    [ -n "$s_dir" ] && [ -d "$s_dir" ] || return 0
    s_mpid=$(master_pid "$s_dir")
    left=""
    [ -n "$s_mpid" ] && kill -0 "$s_mpid" 2>/dev/null && left=$(tree_pids "$s_mpid")
    case $s_system in
        postfix) timeout 60 postfix -c "$s_dir/etc" stop >/dev/null 2>&1 ;;
        postern) timeout 20 "$build/postern" -c "$s_dir/etc" stop >/dev/null 2>&1 ;;
    esac
    reap_pids "$s_system" $left
}

# Dovecot masters that are not the benchmark's (those name $WORK).
system_dovecot_pids() {
    local p
    for p in $(pgrep -x dovecot 2>/dev/null); do
        tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "$WORK/" || echo "$p"
    done
}

# dovecot_prepare PACKAGE: installs dovecot-core and PACKAGE (dovecot-pop3d,
# dovecot-imapd) when missing, without leaving a system service the
# install started running, and makes $BUSER. Sets policy_rc while the
# install runs (the caller's trap removes it). Exits 2 on failure.
dovecot_prepare() {
    local d_pkg d_before d_p d_u
    d_pkg=$1
    d_before=$(system_dovecot_pids)
    if ! dpkg-query -W -f='${Status}' "$d_pkg" 2>/dev/null | grep -q "install ok installed"; then
        echo "$bench_name: installing Debian dovecot-core and $d_pkg" >&2
        # No service start during the install, when nothing else forbids it.
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            policy_rc=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' > "$policy_rc"
            chmod 755 "$policy_rc"
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends dovecot-core "$d_pkg" \
            > "$WORK/apt.log" 2>&1 || { echo "$bench_name: apt-get install failed:" >&2; tail -5 "$WORK/apt.log" >&2; exit 2; }
        [ -n "$policy_rc" ] && rm -f "$policy_rc"
        policy_rc=""
    fi
    # The system service must not be left running when the install started it.
    for d_p in $(system_dovecot_pids); do
        case " $d_before " in *" $d_p "*) continue ;; esac
        echo "$bench_name: stopping the system dovecot (pid $d_p) the install started" >&2
        kill -TERM "$d_p" 2>/dev/null
    done
    for d_u in dovecot dovenull; do
        id "$d_u" >/dev/null 2>&1 || { echo "$bench_name: user $d_u missing (dovecot-core creates it)" >&2; exit 2; }
    done
    if ! id "$BUSER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$BUSER" ||
            { echo "$bench_name: cannot create user $BUSER" >&2; exit 2; }
    fi
}
