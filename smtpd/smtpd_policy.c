/*
 * NAME
 *	smtpd_policy - restriction lists (lib/policy) and per-client limits
 *	(lib/anvil) at the SMTP stages
 * DESCRIPTION
 *	One policy (with a lib/dns resolver from dns_servers, dns_timeout,
 *	dns_tries) and one anvil table per process; one policy session per
 *	SMTP session. A command whose stage has restrictions starts a check
 *	and the session reads nothing more (the idle timer stops: the
 *	client waits for us) until the callback, which logs the engine's
 *	lines and finishes the command: the 250/252/354, or the engine's
 *	reply. The pending command is remembered in the session
 *	(s->pending and its address).
 *
 *	Results: ACCEPT goes on; HOLD marks the transaction for hold/;
 *	PREPEND lines are kept (once each: with smtpd_delay_reject the
 *	client, helo and sender lists run again at every RCPT) and written
 *	after smtpd's Received: header; DISCARD accepts and marks the
 *	transaction to be dropped at the end of data ("250 ... queued as
 *	ID", nothing kept), and no further check runs in that transaction.
 *	A CONNECT rejection (smtpd_delay_reject = no) replaces the banner;
 *	every later command but QUIT then gets "503 5.7.0 Error: access
 *	denied for <name[addr]>".
 *
 *	anvil: smtpd_client_connection_count_limit and
 *	smtpd_client_connection_rate_limit at accept (421 and close), the
 *	message, recipient and AUTH rates at MAIL, RCPT and AUTH (450, the
 *	command fails); smtpd_client_event_limit_exceptions are not
 *	counted.
 * DIAGNOSTICS
 *	Configuration errors in the restriction lists are logged once at
 *	start ("warning: smtpd restriction problem: ...") and each affected
 *	stage answers 451 4.3.5 (the engine's reply). Without a usable
 *	resolver DNS restrictions see temporary failures (a warning).
 * LIMITS
 *	One check per session at a time; POLICY_MAX_EVENTS prepended
 *	header lines per transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "policy.h"
#include "smtpd.h"
#include "xalloc.h"

static struct event_loop *policy_loop;
static struct dns_resolver *policy_resolver;

static long long dns_ms(const char *name, long long fallback_s)
{
    long long v = config_time(name);
    if (v <= 0)
        v = fallback_s;
    return v * 1000;
}

void smtpd_policy_init(struct event_loop *loop)
{
    policy_loop = loop;
    const char *error = NULL;
    policy_resolver = dns_resolver_create(loop, config_str("dns_servers"),
                                          (int)dns_ms("dns_timeout", 5),
                                          (int)config_int_positive("dns_tries", 3), &error);
    if (policy_resolver == NULL)
        msg_warn("cannot set up the DNS resolver (%s): DNS restrictions will tempfail",
                 error ? error : "unknown error");
    smtpd_var.policy = policy_create(loop, policy_resolver);
    const char *perr = policy_error(smtpd_var.policy);
    if (perr != NULL) {
        /* One warning per problem: the engine joins them with newlines. */
        char *copy = xstrdup(perr);
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save))
            msg_warn("smtpd restriction problem: %s", line);
        free(copy);
    }
    smtpd_var.anvil = anvil_create_config();
    /* Postfix's "for service smtp": master.cf names our services by
       address ("127.0.0.1:2525"), so take the role from syslog_name
       ("postern/submission"), as the log lines show it. */
    const char *syslog_name = config_str("syslog_name");
    const char *slash = strrchr(syslog_name, '/');
    smtpd_var.service = slash != NULL && slash[1] != '\0' ? slash + 1 : "smtp";
}

/* ---- anvil ---- */

static void anvil_refusal(enum anvil_status st, long long value, const char *client,
                          const char *addr, char *text, size_t size)
{
    struct buf t;
    buf_init(&t, 0);
    anvil_warning(&t, st, value, client, smtpd_var.service);
    msg_warn("%s", t.data);
    buf_reset(&t);
    anvil_reply(&t, st, smtpd_var.myhostname, addr);
    snprintf(text, size, "%s", t.data);
    buf_free(&t);
}

int smtpd_anvil_connect(const char *addr, const char *name, char *text, size_t size)
{
    long long value = 0;
    long long now = event_now_ms(policy_loop);
    enum anvil_status st = anvil_connect(smtpd_var.anvil, addr, now, &value);
    if (st == ANVIL_OK)
        return 0;
    char client[128];
    snprintf(client, sizeof(client), "%s[%s]", name, addr);
    anvil_refusal(st, value, client, addr, text, size);
    anvil_disconnect(smtpd_var.anvil, addr, now);
    return -1;
}

int smtpd_anvil_event(struct smtpd_session *s, int rate)
{
    long long value = 0;
    enum anvil_status st = anvil_event(smtpd_var.anvil, s->addr, (enum anvil_rate)rate,
                                       event_now_ms(s->loop), &value);
    if (st == ANVIL_OK)
        return 0;
    char text[300];
    anvil_refusal(st, value, smtpd_client(s), s->addr, text, sizeof(text));
    smtpd_reply(s, "%s", text);
    return -1;
}

/* ---- sessions ---- */

void smtpd_policy_connect(struct smtpd_session *s)
{
    s->psess = policy_session_create(smtpd_var.policy);
}

void smtpd_policy_disconnect(struct smtpd_session *s)
{
    smtpd_policy_forget(s);
    policy_session_destroy(&s->psess);
    if (s->anvil_counted) {
        anvil_disconnect(smtpd_var.anvil, s->addr, event_now_ms(s->loop));
        s->anvil_counted = 0;
    }
}

void smtpd_policy_forget(struct smtpd_session *s)
{
    policy_cancel(&s->pcheck);
    s->pending = SMTPD_PENDING_NONE;
    xfree(&s->pending_path);
}

int smtpd_policy_wanted(struct smtpd_session *s, int stage)
{
    if (s->psess == NULL || !policy_stage_active(smtpd_var.policy, (enum policy_stage)stage))
        return 0;
    /* A discarded transaction is accepted without further checks. */
    if (s->discard && stage != POLICY_STAGE_CONNECT && stage != POLICY_STAGE_HELO)
        return 0;
    return 1;
}

/* ---- results ---- */

static void add_prepend(struct smtpd_session *s, const char *line)
{
    for (size_t i = 0; i < s->prepend_count; i++)
        if (strcmp(s->prepend[i], line) == 0)
            return;
    if (s->prepend_count >= POLICY_MAX_EVENTS) {
        msg_warn("%s: too many PREPEND headers: \"%s\" dropped", smtpd_client(s), line);
        return;
    }
    s->prepend = xreallocarray(s->prepend, s->prepend_count + 1, sizeof(*s->prepend));
    s->prepend[s->prepend_count++] = xstrdup(line);
}

static void fail_command(struct smtpd_session *s, const char *reply)
{
    if (s->counts_ok[s->pending_counter] > 0)
        s->counts_ok[s->pending_counter]--;
    smtpd_reply(s, "%s", reply);
}

static void policy_done(const struct policy_result *r, void *ctx)
{
    struct smtpd_session *s = ctx;
    s->pcheck = NULL;
    for (size_t i = 0; i < r->warning_count; i++)
        msg_warn("%s", r->warnings[i]);
    for (size_t i = 0; i < r->log_count; i++)
        msg_info("%s", r->log_lines[i]);
    enum smtpd_pending pending = s->pending;
    s->pending = SMTPD_PENDING_NONE;
    char *path = s->pending_path;
    s->pending_path = NULL;
    if (s->freed) {   /* policy_session_destroy() follows; nothing to answer */
        free(path);
        return;
    }
    if (s->lost || s->closing) {
        free(path);
        smtpd_session_resume(s);
        return;
    }
    int ok = r->decision == POLICY_ACCEPT || r->decision == POLICY_DISCARD;
    const char *reply = r->reply != NULL ? r->reply : "451 4.3.0 Error: internal error";
    /* HOLD and PREPEND belong to a transaction; at CONNECT and HELO
       (smtpd_delay_reject = no) there is none yet. */
    int in_transaction = pending == SMTPD_PENDING_MAIL || pending == SMTPD_PENDING_RCPT ||
                         pending == SMTPD_PENDING_DATA || pending == SMTPD_PENDING_END_OF_DATA;
    if (ok && in_transaction) {
        if (r->hold)
            s->hold = 1;
        if (pending == SMTPD_PENDING_END_OF_DATA && r->prepend_count > 0)
            msg_warn("%s: PREPEND at END-OF-MESSAGE ignored: the headers are written",
                     smtpd_client(s));
        else
            for (size_t i = 0; i < r->prepend_count; i++)
                add_prepend(s, r->prepend[i]);
    } else if (ok && (r->hold || r->prepend_count > 0)) {
        msg_warn("%s: HOLD/PREPEND before MAIL FROM ignored", smtpd_client(s));
    }
    switch (pending) {
    case SMTPD_PENDING_NONE:
        break;
    case SMTPD_PENDING_CONNECT:
        if (!ok) {
            s->connect_reject = xstrdup(reply);
            s->access_denied = 1;
        }
        smtpd_banner(s);
        break;
    case SMTPD_PENDING_HELO:
        if (ok) {
            smtpd_set_state(s, SMTPD_STATE_HELO);
            smtpd_helo_reply(s);
        } else {
            xfree(&s->helo);
            s->esmtp = 0;
            smtpd_set_state(s, SMTPD_STATE_INIT);
            fail_command(s, reply);
        }
        break;
    case SMTPD_PENDING_MAIL:
        if (ok) {
            smtpd_mail_accept(s, path, s->pending_smtputf8, s->pending_body_8bit);
            if (r->decision == POLICY_DISCARD)
                s->discard = 1;
        } else {
            fail_command(s, reply);
        }
        break;
    case SMTPD_PENDING_RCPT:
        if (ok) {
            if (r->decision == POLICY_DISCARD)
                s->discard = 1;
            smtpd_rcpt_accept(s, path);
        } else {
            fail_command(s, reply);
        }
        break;
    case SMTPD_PENDING_VRFY:
        if (ok) {
            char *address = smtpd_qualify(path);
            smtpd_reply(s, "252 2.0.0 <%s>", address);
            free(address);
        } else {
            fail_command(s, reply);
        }
        break;
    case SMTPD_PENDING_DATA:
        if (ok) {
            if (r->decision == POLICY_DISCARD)
                s->discard = 1;
            if (smtpd_data_start(s) < 0 && s->counts_ok[SMTPD_CNT_DATA] > 0)
                s->counts_ok[SMTPD_CNT_DATA]--;
        } else {
            fail_command(s, reply);
        }
        break;
    case SMTPD_PENDING_END_OF_DATA:
        if (r->decision == POLICY_DISCARD) {
            smtpd_queue_discard(s);
        } else if (ok) {
            smtpd_queue_commit(s);
        } else {
            smtpd_queue_reject(s);
            smtpd_reply(s, "%s", reply);
        }
        break;
    }
    free(path);
    smtpd_session_resume(s);
}

void smtpd_policy_start(struct smtpd_session *s, int stage, enum smtpd_pending pending,
                        const char *path)
{
    if (s->pcheck != NULL)
        msg_panic("%s: policy check while one is outstanding", smtpd_client(s));
    struct policy_ctx ctx = {
        .client_addr = s->addr,
        .client_name = s->name,
        .helo = s->helo,
        .esmtp = s->esmtp,
        .tls = s->tls,
        .sasl_username = s->sasl_username,
        .sender = s->sender_raw,
        .rcpt_count = s->rcpt_count,
        .unauth_pipelining = s->cmd_unauth_pipelining || s->unauth_pipelining,
        .queue_id = s->queue_id[0] ? s->queue_id : NULL,
    };
    switch (pending) {
    case SMTPD_PENDING_HELO:
        ctx.command = s->esmtp ? "EHLO" : "HELO";
        break;
    case SMTPD_PENDING_MAIL:
        ctx.sender = path;
        s->pending_counter = SMTPD_CNT_MAIL;
        break;
    case SMTPD_PENDING_RCPT:
        ctx.recipient = path;
        s->pending_counter = SMTPD_CNT_RCPT;
        break;
    case SMTPD_PENDING_VRFY:
        ctx.recipient = path;
        ctx.command = "VRFY";
        ctx.sender = NULL;
        s->pending_counter = SMTPD_CNT_VRFY;
        break;
    case SMTPD_PENDING_DATA:
    case SMTPD_PENDING_END_OF_DATA:
        if (s->rcpt_count == 1)
            ctx.recipient = s->rcpts[0];
        s->pending_counter = SMTPD_CNT_DATA;
        break;
    default:
        break;
    }
    if (pending == SMTPD_PENDING_HELO)
        s->pending_counter = s->esmtp ? SMTPD_CNT_EHLO : SMTPD_CNT_HELO;
    s->pending = pending;
    xfree(&s->pending_path);
    if (path != NULL)
        s->pending_path = xstrdup(path);
    /* The client waits for our answer: no idle timeout meanwhile (the
       resolver has its own). */
    event_timer_cancel(s->loop, &s->idle_timer);
    s->pcheck = policy_check(s->psess, &ctx, (enum policy_stage)stage, policy_done, s);
}
