/*
 * NAME
 *	imapd - Postern IMAP4rev1 server
 * SYNOPSIS
 *	imapd -c config_dir -n service -t inet [-o name=value]... [-v] [-s address]
 * DESCRIPTION
 *	An event server (lib/server.c): one process, many IMAP sessions
 *	(RFC 3501 with IDLE, UIDPLUS, MOVE, LITERAL+, NAMESPACE, ENABLE,
 *	UNSELECT, ID, CHILDREN, SPECIAL-USE, SASL-IR, CONDSTORE). master.cf
 *	runs it twice: plain IMAP with STARTTLS, and IMAPS with
 *	-o imapd_tls_wrappermode=yes. This file reads the parameters once
 *	and hands the hooks to the skeleton; the protocol lives in the
 *	other imapd_*.c files (see imapd.h). See docs/imapd.md.
 * LIMITS
 *	imapd_session_limit is lowered to what the open file limit allows
 *	(the soft limit is first raised toward the hard one), so surplus
 *	clients get "* BYE [UNAVAILABLE] Server busy" instead of waiting
 *	unaccepted in the listen queue. imapd_timeout below RFC 3501's 30
 *	minutes is allowed (tests use it) but logged.
 * DIAGNOSTICS
 *	Without a usable certificate STARTTLS is not offered, and IMAPS
 *	refuses every connection (logged once at start).
 */
#include <malloc.h>
#include <stdlib.h>

#include "config.h"
#include "imapd.h"
#include "log.h"
#include "server.h"
#include "tls.h"

struct imapd_params imapd_var;

/* A selected session holds its socket and the folder's index (LMDB data
   file and lock file); IDLE adds an inotify descriptor and APPEND a tmp/
   file for a moment. Most sessions are idle between commands, so three
   per session plus a reserve for the listener, log, passwd and table
   files, and a refused client's BYE. */
#define IMAPD_FD_PER_SESSION 3
#define IMAPD_FD_RESERVE 32

/* RFC 3501 5.4: the autologout timer is at least 30 minutes. */
#define IMAPD_RFC_TIMEOUT_MS (30LL * 60 * 1000)

static void imapd_tls_init(void)
{
    imapd_var.tls_cert_file = config_str("imapd_tls_cert_file");
    imapd_var.tls_key_file = config_str("imapd_tls_key_file");
    if (*imapd_var.tls_cert_file == '\0' || *imapd_var.tls_key_file == '\0') {
        if (imapd_var.wrappermode)
            msg_warn("imapd_tls_wrappermode = yes but imapd_tls_cert_file or "
                     "imapd_tls_key_file is empty: refusing all connections");
        return;
    }
    const char *error = NULL;
    imapd_var.tls_ctx = tls_server_context(imapd_var.tls_cert_file, imapd_var.tls_key_file,
                                           &error);
    if (imapd_var.tls_ctx == NULL)
        msg_warn("TLS disabled: %s", error ? error : "cannot create the TLS context");
}

static void imapd_init(struct event_loop *loop)
{
    imapd_var.timeout_ms = config_time("imapd_timeout") * 1000;
    if (imapd_var.timeout_ms <= 0)
        imapd_var.timeout_ms = IMAPD_RFC_TIMEOUT_MS;
    if (imapd_var.timeout_ms < IMAPD_RFC_TIMEOUT_MS)
        msg_info("imapd_timeout is below RFC 3501's 30 minutes: clients may be logged out "
                 "between their NOOPs");
    imapd_var.idle_timeout_ms = config_time("imapd_idle_timeout") * 1000;
    if (imapd_var.idle_timeout_ms <= 0)
        imapd_var.idle_timeout_ms = IMAPD_RFC_TIMEOUT_MS;
    imapd_var.error_limit = config_int_positive("imapd_error_limit", 10);
    imapd_var.session_limit = config_int_positive("imapd_session_limit", 1000);
    imapd_var.session_limit = server_fit_session_limit(
        "imapd_session_limit", imapd_var.session_limit, IMAPD_FD_PER_SESSION, IMAPD_FD_RESERVE);
    imapd_var.message_size_limit = config_int("message_size_limit");
    imapd_var.wrappermode = config_bool("imapd_tls_wrappermode");
    imapd_tls_init();
    imapd_session_init(loop);
}

static void imapd_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                         socklen_t peer_len)
{
    imapd_session_accept(loop, fd, peer, peer_len);
}

static void imapd_stop(struct event_loop *loop)
{
    imapd_session_stop_all(loop);
}

int main(int argc, char **argv)
{
    /* As in pop3d: a selected folder's index holds LMDB's transaction
       lists; a fixed mmap threshold keeps such blocks out of the heap,
       so closing an index gives the memory back. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    static const struct server_hooks hooks = {
        .on_init = imapd_init,
        .on_accept = imapd_accept,
        .on_stop = imapd_stop,
    };
    server_main(argc, argv, "imapd", SERVER_EVENT, &hooks);
}
