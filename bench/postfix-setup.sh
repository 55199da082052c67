#!/bin/sh
# NAME
#	postfix-setup.sh - a private Debian Postfix instance for the benchmark
# SYNOPSIS
#	sh bench/postfix-setup.sh DIR PORT
# DESCRIPTION
#	Installs Debian's postfix package when it is missing (no system
#	configuration, system instance left stopped), then builds a separate
#	instance in DIR: DIR/etc (main.cf, master.cf, vmailbox), DIR/queue,
#	DIR/data, DIR/mail (virtual_mailbox_base), DIR/log/maillog. SMTP
#	listens on 127.0.0.1:PORT only; mail for user@bench.test goes by
#	virtual(8) to the Maildir DIR/mail/bench.test/user/. Durability is
#	Postfix's default: queue files and Maildir files are fsynced.
#	The instance is NOT started: `postfix -c DIR/etc start` / `stop`.
# LIMITS
#	Needs root (package install, /etc/postfix/main.cf gets the instance's
#	config directory in alternate_config_directories, which Postfix
#	requires before it accepts `postfix -c DIR/etc`).
set -eu

dir=${1:?usage: postfix-setup.sh DIR PORT}
port=${2:?usage: postfix-setup.sh DIR PORT}
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac

if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
    echo "postfix-setup: installing Debian postfix (no configuration)" >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postfix >/dev/null
fi

# The system instance must not run beside ours (it would want port 25 and
# share nothing with the benchmark): stop it when it is running.
if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
    postfix stop >/dev/null 2>&1 || true
fi

# Postfix refuses `postfix -c DIR` unless the default main.cf lists DIR.
# With "No configuration" there is no /etc/postfix/main.cf: write a
# minimal one (the system instance stays unconfigured and stopped).
if [ ! -f /etc/postfix/main.cf ]; then
    cat > /etc/postfix/main.cf <<'EOM'
# Written by Postern's bench/postfix-setup.sh: only lists the benchmark's
# private instances (the system instance is not configured).
compatibility_level = 3.6
alternate_config_directories =
EOM
fi
alt=$(postconf -h -c /etc/postfix alternate_config_directories 2>/dev/null || true)
case " $(echo "$alt" | tr ',' ' ') " in
    *" $dir/etc "*) ;;
    *) postconf -c /etc/postfix -e "alternate_config_directories = ${alt:+$alt }$dir/etc" ;;
esac

uid=$(id -u postfix)
gid=$(id -g postfix)

mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/mail" "$dir/log"
chown postfix:postfix "$dir/data" "$dir/mail"
chmod 755 "$dir" "$dir/etc" "$dir/queue" "$dir/mail"
if [ -f /etc/postfix/master.cf ]; then
    cp /etc/postfix/master.cf "$dir/etc/master.cf"
else
    cp /usr/share/postfix/master.cf.dist "$dir/etc/master.cf"
fi
# Compiled-in defaults for everything not set below (Debian's main.cf.dist
# has empty sendmail_path and friends, which `postfix check` rejects).
echo "# Postfix benchmark instance, written by Postern's bench/postfix-setup.sh" > "$dir/etc/main.cf"
echo "user@bench.test bench.test/user/" > "$dir/etc/vmailbox"
: > "$dir/log/maillog"

postconf -c "$dir/etc" -e \
    "compatibility_level = 3.6" \
    "queue_directory = $dir/queue" \
    "data_directory = $dir/data" \
    "command_directory = /usr/sbin" \
    "daemon_directory = /usr/lib/postfix/sbin" \
    "shlib_directory = /usr/lib/postfix" \
    "meta_directory = /etc/postfix" \
    "mail_owner = postfix" \
    "setgid_group = postdrop" \
    "myhostname = postfix-bench.localdomain" \
    "mydomain = localdomain" \
    "myorigin = \$myhostname" \
    "inet_interfaces = 127.0.0.1" \
    "inet_protocols = ipv4" \
    "mydestination = localhost" \
    "mynetworks = 127.0.0.0/8" \
    "relayhost =" \
    "alias_maps =" \
    "alias_database =" \
    "virtual_mailbox_domains = bench.test" \
    "virtual_mailbox_base = $dir/mail" \
    "virtual_mailbox_maps = texthash:$dir/etc/vmailbox" \
    "virtual_uid_maps = static:$uid" \
    "virtual_gid_maps = static:$gid" \
    "virtual_minimum_uid = 1" \
    "maillog_file = $dir/log/maillog" \
    "maillog_file_prefixes = $dir/log" \
    "syslog_name = postfix-bench" \
    "default_process_limit = 200" \
    "smtpd_client_connection_count_limit = 1000" \
    "smtpd_client_connection_rate_limit = 0" \
    "smtpd_client_message_rate_limit = 0" \
    "smtpd_client_recipient_rate_limit = 0" \
    "smtpd_client_event_limit_exceptions = 127.0.0.0/8" \
    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
    "smtpd_tls_security_level =" \
    "smtp_tls_security_level =" \
    "biff = no" \
    "smtputf8_enable = no"

# SMTP only on 127.0.0.1:PORT (replaces the stock "smtp inet" line; the
# other inet services of the stock file are commented out already).
awk -v port="$port" '
    $1 == "smtp" && $2 == "inet" { print "127.0.0.1:" port "  inet  n  -  n  -  -  smtpd"; next }
    { print }
' "$dir/etc/master.cf" > "$dir/etc/master.cf.new"
mv "$dir/etc/master.cf.new" "$dir/etc/master.cf"
grep -q '^postlog' "$dir/etc/master.cf" ||
    echo "postlog   unix-dgram n  -       n       -       1       postlogd" >> "$dir/etc/master.cf"
postconf -c "$dir/etc" -F '*/*/chroot = n'

# Creates the queue directories with their owners (postfix check would on
# start, but doing it here makes start faster and errors visible now).
# Postfix prints its errors only to a terminal or its log: give it one.
if ! postfix -c "$dir/etc" check; then
    echo "postfix-setup: postfix check failed:" >&2
    script -qc "postfix -c '$dir/etc' check" /dev/null >&2 || true
    exit 1
fi
echo "postfix-setup: instance ready in $dir (smtp 127.0.0.1:$port, rcpt user@bench.test)" >&2
