#!/bin/sh
# make-run.sh BUILD RUNDIR - `make run`: a development instance in the foreground.
# Creates RUNDIR with `postern init` on first use (later runs keep its users,
# mail and configuration), prints how to talk to it, then runs master in the
# foreground until Ctrl-C.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BUILD RUNDIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
mkdir -p "$2"
run=$(cd "$2" && pwd)
postern="$build/postern"
[ -x "$postern" ] || { echo "make-run: $postern is missing; build first" >&2; exit 1; }

if [ ! -f "$run/etc/main.cf" ]; then
    "$postern" init "$run"
    echo
fi
# As root the daemons run as mail_owner, which must be able to reach RUNDIR.
[ "$(id -u)" = 0 ] && chmod 0755 "$run"

etc="$run/etc"
param() {
    "$build/postconf" -c "$etc" -x -h "$1" 2>/dev/null || sed -n "s/^$1 *= *//p" "$etc/main.cf"
}
domain=$(param mydomain)
[ -n "$domain" ] || domain=example.test
base=$(param virtual_mailbox_base)
[ -n "$base" ] || base="$run/mail"
smtp=$(awk '/^[^#[:space:]]/ && $2 == "inet" && $NF == "smtpd" { print $1; exit }' "$etc/master.cf")
smtp_port=${smtp##*:}

echo "Postern is starting from $etc"
echo "Listeners (from master.cf):"
awk '/^[^#[:space:]]/ && $2 == "inet" { printf "  %-22s %s\n", $1, $8 }' "$etc/master.cf"
echo "Mail domain:    $domain"
echo "Demo user:      demo@$domain"
if [ -r "$etc/demo-password" ]; then
    echo "Demo password:  $(cat "$etc/demo-password")"
fi
echo "Send a test message:"
echo "  swaks --server 127.0.0.1:${smtp_port:-2525} --from you@example.net --to demo@$domain --body \"hello\""
echo "  echo hello | $build/sendmail -c $etc demo@$domain"
echo "Mail lands in:  $base/$domain/demo/new/"
echo "The log:        $(param maillog_file)"
echo "Ctrl-C stops Postern."
echo
exec "$postern" -c "$etc" foreground
