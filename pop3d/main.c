/*
 * NAME
 *	pop3d - Postern POP3 server
 * SYNOPSIS
 *	pop3d -c config_dir -n service -t inet [-o name=value]... [-v] [-s address]
 * DESCRIPTION
 *	An event server (lib/server.c): one process, many POP3 sessions
 *	(RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034). master.cf
 *	runs it twice: plain POP3 with STLS, and POP3S with
 *	-o pop3d_tls_wrappermode=yes. This file reads the parameters once
 *	and hands the hooks to the skeleton; the protocol lives in
 *	pop3d_session.c, pop3d_commands.c and pop3d_mailbox.c. See
 *	docs/pop3d.md.
 * LIMITS
 *	pop3d_session_limit is lowered to what the open file limit allows
 *	(the soft limit is first raised toward the hard one), so surplus
 *	clients get "-ERR [SYS/TEMP] Server busy" instead of waiting
 *	unaccepted in the listen queue.
 * DIAGNOSTICS
 *	Without a usable certificate STLS is not offered, and POP3S
 *	refuses every connection (logged once at start).
 */
#include <malloc.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "pop3d.h"
#include "server.h"
#include "tls.h"

struct pop3d_params pop3d_var;

/* A logged-in session holds its socket, the index (LMDB data and lock
   files), the mailbox lock and, during RETR, the message: most sessions
   are between commands, so two per session plus a reserve for the
   listener, log, passwd and table files and a refused client's -ERR. */
#define POP3D_FD_PER_SESSION 2
#define POP3D_FD_RESERVE 32


static void pop3d_tls_init(void)
{
    pop3d_var.tls_cert_file = config_str("pop3d_tls_cert_file");
    pop3d_var.tls_key_file = config_str("pop3d_tls_key_file");
    if (*pop3d_var.tls_cert_file == '\0' || *pop3d_var.tls_key_file == '\0') {
        if (pop3d_var.wrappermode)
            msg_warn("pop3d_tls_wrappermode = yes but pop3d_tls_cert_file or "
                     "pop3d_tls_key_file is empty: refusing all connections");
        return;
    }
    const char *error = NULL;
    pop3d_var.tls_ctx = tls_server_context(pop3d_var.tls_cert_file, pop3d_var.tls_key_file,
                                           &error);
    if (pop3d_var.tls_ctx == NULL)
        msg_warn("TLS disabled: %s", error ? error : "cannot create the TLS context");
}

static void pop3d_init(struct event_loop *loop)
{
    pop3d_var.timeout_ms = config_time("pop3d_timeout") * 1000;
    if (pop3d_var.timeout_ms <= 0)
        pop3d_var.timeout_ms = 600000;
    pop3d_var.error_limit = config_int_positive("pop3d_error_limit", 10);
    pop3d_var.session_limit = config_int_positive("pop3d_session_limit", 1000);
    pop3d_var.session_limit = server_fit_session_limit(
        "pop3d_session_limit", pop3d_var.session_limit, POP3D_FD_PER_SESSION, POP3D_FD_RESERVE);
    pop3d_var.wrappermode = config_bool("pop3d_tls_wrappermode");
    pop3d_tls_init();
    pop3d_session_init(loop);
}

static void pop3d_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                         socklen_t peer_len)
{
    pop3d_session_accept(loop, fd, peer, peer_len);
}

static void pop3d_stop(struct event_loop *loop)
{
    pop3d_session_stop_all(loop);
}

int main(int argc, char **argv)
{
    /* Each open mailbox index holds LMDB's write-transaction lists (3 MiB,
       of which a sync touches a few KiB). A fixed threshold keeps such
       blocks in mmap'd chunks, so untouched pages never become resident
       and a closed index gives them back; glibc's sliding threshold would
       otherwise move them into the heap after the first free. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    static const struct server_hooks hooks = {
        .on_init = pop3d_init,
        .on_accept = pop3d_accept,
        .on_stop = pop3d_stop,
    };
    server_main(argc, argv, "pop3d", SERVER_EVENT, &hooks);
}
