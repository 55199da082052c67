/*
 * NAME
 *	smtpd - Postern SMTP server
 * SYNOPSIS
 *	smtpd -c config_dir -n service -t inet [-o name=value]... [-v] [-s address]
 * DESCRIPTION
 *	An event server (lib/server.c): one process, many SMTP sessions.
 *	This file reads the parameters once and hands the server hooks to
 *	the skeleton; the protocol lives in smtpd_session.c,
 *	smtpd_commands.c and smtpd_queue.c. See docs/smtpd.md.
 * LIMITS
 *	smtpd_process_session_limit is lowered to what the open file limit
 *	allows (the soft limit is first raised toward the hard one), so
 *	that surplus clients get "421 Server busy" instead of waiting
 *	unaccepted in the listen queue.
 *
 *	Chroot (master.cf chroot = y): this init runs before the chroot
 *	(lib/server.h), so the certificate and key, the c-ares setup and
 *	the tables are read outside; with SMTP AUTH enabled passwd_file is
 *	kept open, and when it is replaced (a user added or a password
 *	changed) AUTH answers 454 and the process restarts to read it.
 * DIAGNOSTICS
 *	A TLS context is built only when smtpd_tls_security_level is may or
 *	encrypt, or smtpd_tls_wrappermode is set. Without a usable
 *	certificate STARTTLS is not offered, SMTPS refuses every
 *	connection and the encrypt level accepts no mail (logged once).
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "content_filter.h"
#include "log.h"
#include "server.h"
#include "smtpd.h"
#include "tls.h"
#include "users.h"

struct smtpd_params smtpd_var;

/* A session holds its socket and, during DATA only, its queue file:
   the budget assumes at most one session in two is in DATA at once (3
   descriptors per 2 sessions). A session beyond that whose queue file
   cannot be opened gets a temporary 451 and the client retries. The
   reserve covers the listener, log, tables, the qmgr connection, group
   commit and the descriptor a refused client needs for its 421. */
#define SMTPD_FD_PER_2_SESSIONS 3
#define SMTPD_FD_RESERVE 32


static void smtpd_tls_init(void)
{
    const char *level = config_str("smtpd_tls_security_level");
    if (*level == '\0' || strcmp(level, "none") == 0) {
        smtpd_var.tls_level = SMTPD_TLS_NONE;
    } else if (strcmp(level, "may") == 0) {
        smtpd_var.tls_level = SMTPD_TLS_MAY;
    } else if (strcmp(level, "encrypt") == 0) {
        smtpd_var.tls_level = SMTPD_TLS_ENCRYPT;
    } else {
        msg_warn("unknown smtpd_tls_security_level \"%s\": using none", level);
        smtpd_var.tls_level = SMTPD_TLS_NONE;
    }
    smtpd_var.tls_wrappermode = config_bool("smtpd_tls_wrappermode");
    smtpd_var.tls_ask_ccert = config_bool("smtpd_tls_ask_ccert");
    smtpd_var.tls_received_header = config_bool("smtpd_tls_received_header");
    if (smtpd_var.tls_level == SMTPD_TLS_NONE && !smtpd_var.tls_wrappermode)
        return;
    const char *cert = config_str("smtpd_tls_cert_file");
    const char *key = config_str("smtpd_tls_key_file");
    struct tls_server_options opts = {
        .protocols = config_str("smtpd_tls_protocols"),
        .ciphers = TLS_CIPHERS_MODERN,
        .session_timeout = config_time("smtpd_tls_session_cache_timeout"),
        .ask_ccert = smtpd_var.tls_ask_ccert,
        .cafile = config_str("smtpd_tls_CAfile"),
    };
    const char *error = NULL;
    smtpd_var.tls_ctx = tls_server_context_opts(cert, key, &opts, &error);
    if (smtpd_var.tls_ctx != NULL)
        return;
    if (smtpd_var.tls_wrappermode)
        msg_warn("smtpd_tls_wrappermode = yes but TLS is unusable (%s): refusing all "
                 "connections", error ? error : "unknown error");
    else if (smtpd_var.tls_level == SMTPD_TLS_ENCRYPT)
        msg_warn("smtpd_tls_security_level = encrypt but TLS is unusable (%s): mail will "
                 "not be accepted", error ? error : "unknown error");
    else
        msg_warn("TLS disabled: %s", error ? error : "cannot create the TLS context");
}

static void smtpd_init(struct event_loop *loop)
{
    smtpd_var.queue_directory = config_str("queue_directory");
    smtpd_var.myhostname = config_str("myhostname");
    smtpd_var.myorigin = config_str("myorigin");
    smtpd_var.mail_name = config_str("mail_name");
    smtpd_var.smtpd_banner = config_str("smtpd_banner");
    smtpd_var.message_size_limit = config_int("message_size_limit");
    smtpd_var.recipient_limit = config_int("smtpd_recipient_limit");
    smtpd_var.timeout_ms = config_time("smtpd_timeout") * 1000;
    if (smtpd_var.timeout_ms <= 0)
        smtpd_var.timeout_ms = 300000;
    smtpd_var.hard_error_limit = config_int_positive("smtpd_hard_error_limit", 20);
    smtpd_var.soft_error_limit = config_int_positive("smtpd_soft_error_limit", 10);
    smtpd_var.error_sleep_ms = config_time("smtpd_error_sleep_time") * 1000;
    smtpd_var.process_session_limit = config_int_positive("smtpd_process_session_limit", 1000);
    smtpd_var.process_session_limit = server_fit_session_limit_ratio(
        "smtpd_process_session_limit", smtpd_var.process_session_limit, SMTPD_FD_PER_2_SESSIONS,
        2, SMTPD_FD_RESERVE);
    smtpd_var.greet_wait_ms = config_time("smtpd_greet_wait") * 1000;
    smtpd_var.hopcount_limit = config_int_positive("hopcount_limit", 50);
    smtpd_var.line_length_limit = config_int("line_length_limit");
    if (smtpd_var.line_length_limit < 512)
        smtpd_var.line_length_limit = 512;   /* RFC 5321 4.5.3.1.4 minimum */
    smtpd_var.disable_vrfy = config_bool("disable_vrfy_command");
    smtpd_var.helo_required = config_bool("smtpd_helo_required");
    smtpd_var.forbid_bare_newline = config_bool("smtpd_forbid_bare_newline");
    smtpd_var.smtputf8_enable = config_bool("smtputf8_enable");
    smtpd_var.sasl_enable = config_bool("smtpd_sasl_auth_enable");
    smtpd_var.tls_auth_only = config_bool("smtpd_tls_auth_only");
    if (smtpd_var.sasl_enable && server_chrooted()) {
        const char *passwd_error;
        if (users_keep_open(config_str("passwd_file"), &passwd_error) < 0)
            msg_warn("SMTP AUTH inside the chroot: %s", passwd_error);
    }
    smtpd_tls_init();
    /* Postfix: the encrypt level implies smtpd_tls_auth_only. */
    if (smtpd_var.tls_level == SMTPD_TLS_ENCRYPT)
        smtpd_var.tls_auth_only = 1;
    smtpd_policy_init(loop);
    const char *error = NULL;
    smtpd_var.content_checks = content_checks_open_config(&error);
    if (smtpd_var.content_checks == NULL) {
        /* Fail closed, as Postfix's cleanup defers: every DATA gets 451. */
        msg_warn("content checks unusable (%s): mail will be deferred",
                 error ? error : "unknown error");
        smtpd_var.content_checks_broken = 1;
    }
    smtpd_session_init(loop);
}

static void smtpd_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                         socklen_t peer_len)
{
    smtpd_session_accept(loop, fd, peer, peer_len);
}

static void smtpd_stop(struct event_loop *loop)
{
    smtpd_session_stop_all(loop);
}

int main(int argc, char **argv)
{
    static const struct server_hooks hooks = {
        .on_init = smtpd_init,
        .on_accept = smtpd_accept,
        .on_stop = smtpd_stop,
        .chroot_ok = 1,
    };
    server_main(argc, argv, "smtpd", SERVER_EVENT, &hooks);
}
