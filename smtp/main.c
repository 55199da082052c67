/*
 * NAME
 *	smtp - Postern outbound SMTP delivery agent
 * SYNOPSIS
 *	smtp -c config_dir [-n service] [-t unix] [-o name=value]... [-s address] [-v]
 * DESCRIPTION
 *	An event server (lib/server.c) on $queue_directory/private/smtp:
 *	one process serves many qmgr connections and SMTP sessions at
 *	once. This file reads the parameters once (master restarts the
 *	process on reload) and hands the hooks to the skeleton; requests
 *	are in smtp_qmgr.c, routing in smtp_deliver.c, the SMTP client in
 *	smtp_session.c. See docs/smtp.md.
 * DIAGNOSTICS
 *	A bad smtp_bind_address or a resolver that cannot be set up is
 *	fatal. A TLS client context that cannot be built disables TLS
 *	(warning); with smtp_tls_security_level = encrypt every delivery
 *	is then deferred.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "smtp.h"
#include "tls.h"
#include "xalloc.h"

struct smtp_params smtp_var;

/* A qmgr connection, its SMTP session and the queue file, plus room
   for cached and closing sessions. */
#define SMTP_FD_PER_CLIENT 4
#define SMTP_FD_RESERVE 64

static long long timeout_ms(const char *name, long long fallback_s)
{
    long long s = config_time(name);
    if (s <= 0) {
        msg_warn("%s must be positive; using %llds", name, fallback_s);
        s = fallback_s;
    }
    return s * 1000;
}

static void smtp_tls_init(void)
{
    const char *level = config_str("smtp_tls_security_level");
    if (strcmp(level, "none") == 0 || *level == '\0') {
        smtp_var.tls_level = SMTP_TLS_NONE;
        return;
    }
    if (strcmp(level, "encrypt") == 0) {
        smtp_var.tls_level = SMTP_TLS_ENCRYPT;
    } else {
        if (strcmp(level, "may") != 0)
            msg_warn("unknown smtp_tls_security_level \"%s\"; using \"may\"", level);
        smtp_var.tls_level = SMTP_TLS_MAY;
    }
    const char *error = NULL;
    smtp_var.tls_ctx = tls_client_context(config_str("smtp_tls_CAfile"),
                                          smtp_var.tls_level == SMTP_TLS_ENCRYPT, &error);
    if (smtp_var.tls_ctx == NULL)
        msg_warn("outbound TLS disabled: %s", error ? error : "cannot create the TLS context");
    else if (smtp_var.tls_level == SMTP_TLS_ENCRYPT && server_chrooted() &&
             *config_str("smtp_tls_CAfile") == '\0')
        /* The default CA directory is searched at verification time. */
        msg_warn("chrooted with smtp_tls_security_level = encrypt and no smtp_tls_CAfile: "
                 "the system CA directory is outside the chroot and servers will not verify");
}

static void smtp_init(struct event_loop *loop)
{
    long long port = config_int("smtp_tcp_port");
    smtp_var.default_port = port >= 1 && port <= 65535 ? (int)port : 25;
    smtp_var.myhostname = config_str("myhostname");
    smtp_var.helo_name = config_str("smtp_helo_name");
    if (*smtp_var.helo_name == '\0')
        smtp_var.helo_name = smtp_var.myhostname;
    const char *bind_address = config_str("smtp_bind_address");
    if (*bind_address != '\0') {
        if (inet_pton(AF_INET, bind_address, &smtp_var.bind_addr) != 1)
            msg_fatal("smtp_bind_address %s is not an IPv4 address", bind_address);
        smtp_var.bind_set = 1;
    }
    smtp_var.connect_ms = timeout_ms("smtp_connect_timeout", 30);
    smtp_var.helo_ms = timeout_ms("smtp_helo_timeout", 300);
    smtp_var.starttls_ms = timeout_ms("smtp_starttls_timeout", 300);
    smtp_var.mail_ms = timeout_ms("smtp_mail_timeout", 300);
    smtp_var.rcpt_ms = timeout_ms("smtp_rcpt_timeout", 300);
    smtp_var.data_init_ms = timeout_ms("smtp_data_init_timeout", 120);
    smtp_var.data_xfer_ms = timeout_ms("smtp_data_xfer_timeout", 180);
    smtp_var.data_done_ms = timeout_ms("smtp_data_done_timeout", 600);
    smtp_var.quit_ms = timeout_ms("smtp_quit_timeout", 300);
    smtp_var.mx_address_limit = config_int("smtp_mx_address_limit");
    smtp_var.mx_session_limit = config_int("smtp_mx_session_limit");
    smtp_var.cache_ms = config_time("smtp_connection_cache_time_limit") * 1000;
    smtp_var.reuse_limit = config_int("smtp_connection_reuse_count_limit");
    smtp_reply_limits_default(&smtp_var.reply_limits);
    smtp_var.reply_limits.lines_max =
        (size_t)config_int_positive("smtp_reply_line_limit", 1000);
    /* qmgr names queue files as seen from outside any chroot. */
    smtp_var.active_prefix = xasprintf("%s/active/", server_queue_directory_outside());
    smtp_var.client_limit = server_fit_session_limit("smtp qmgr connection limit", 1000,
                                                     SMTP_FD_PER_CLIENT, SMTP_FD_RESERVE);
    smtp_tls_init();

    const char *error = NULL;
    smtp_var.resolver = dns_resolver_create(loop, config_str("dns_servers"),
                                            (int)timeout_ms("dns_timeout", 5),
                                            (int)config_int_positive("dns_tries", 3), &error);
    if (smtp_var.resolver == NULL)
        msg_fatal("cannot set up the DNS resolver: %s", error ? error : "unknown error");
    smtp_qmgr_init(loop);
}

static void smtp_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                        socklen_t peer_len)
{
    smtp_qmgr_accept(loop, fd, peer, peer_len);
}

static void smtp_stop(struct event_loop *loop)
{
    (void)loop;
    smtp_qmgr_stop();
}

int main(int argc, char **argv)
{
    static const struct server_hooks hooks = {
        .on_init = smtp_init,
        .on_accept = smtp_accept,
        .on_stop = smtp_stop,
        .chroot_ok = 1,
    };
    server_main(argc, argv, "smtp", SERVER_EVENT, &hooks);
}
