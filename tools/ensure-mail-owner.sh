#!/bin/sh
# Tests run as root in CI: the daemons then drop to mail_owner, which must exist.
[ "$(id -u)" = 0 ] || exit 0
getent passwd postern >/dev/null && exit 0
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postern
