/*
 * NAME
 *	smtp_proto - what an outbound SMTP session does with each reply
 * DESCRIPTION
 *	One handler per state of smtp_session.c (on_greeting, on_ehlo,
 *	on_helo, on_starttls, on_mail, on_rcpt, on_data, on_body_reply,
 *	on_dot, on_rset), the STARTTLS hand-over, and the start of a
 *	transaction.
 *
 *	EHLO $smtp_helo_name; HELO when EHLO gets a 5xx. STARTTLS when the
 *	server offers it and smtp_tls_security_level is may or encrypt,
 *	then EHLO again (RFC 3207: what the server said before TLS is
 *	forgotten). After the 220 reply to STARTTLS, any byte already
 *	received ends the session: it came in plaintext and could be
 *	injected (STARTTLS-injection). With level may, a refused STARTTLS
 *	continues in plaintext in the same session, and a failed handshake
 *	makes the delivery reconnect to the same address without STARTTLS;
 *	with encrypt both are failures of that host.
 *
 *	MAIL FROM:<sender> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8]; with
 *	PIPELINING (RFC 2920) MAIL, every RCPT TO and DATA leave in one
 *	write and the replies are read in order, else each command waits
 *	for the previous reply. RCPT 2xx accepts, 4xx defers, 5xx bounces
 *	a recipient; without an accepted recipient no message is sent
 *	(and a pipelined DATA that still gets 354 is ended with a lone
 *	"."). 5xx to MAIL bounces every recipient; 4xx to MAIL is a host
 *	failure. The message is never sent before a 354 reply to DATA: a
 *	2xx reply to DATA, or any reply while the body is being sent, ends
 *	the session. The reply to "." decides every accepted recipient.
 * DIAGNOSTICS
 *	Reasons quote the server: "host host[addr] said: 451 4.3.0 text
 *	(in reply to RCPT TO command)"; a greeting failure is "host
 *	host[addr] refused to talk to me: 554 ...". A sent recipient's
 *	reason is the server's reply ("250 2.0.0 Ok: queued as X").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "smtp.h"
#include "tls.h"
#include "xalloc.h"

static void after_hello(struct smtp_session *s);

/* "(in reply to <command>)" */
static const char *command_text(enum smtp_state state)
{
    switch (state) {
    case SMTP_ST_GREETING: return "initial greeting";
    case SMTP_ST_EHLO: return "EHLO command";
    case SMTP_ST_HELO: return "HELO command";
    case SMTP_ST_STARTTLS: return "STARTTLS command";
    case SMTP_ST_MAIL: return "MAIL FROM command";
    case SMTP_ST_RCPT: return "RCPT TO command";
    case SMTP_ST_DATA: return "DATA command";
    case SMTP_ST_BODY: return "message body";
    case SMTP_ST_DOT: return "end of DATA command";
    case SMTP_ST_RSET: return "RSET command";
    case SMTP_ST_QUIT: return "QUIT command";
    default: return "no command";
    }
}

/* "host X said: 550 5.1.1 text (in reply to RCPT TO command)" */
static void reply_reason(struct smtp_session *s, const struct smtp_reply *reply,
                         struct buf *out)
{
    buf_printf(out, "host %s said: ", s->label);
    smtp_reply_format(reply, out, SMTP_REASON_TEXT_MAX);
    buf_printf(out, " (in reply to %s)", command_text(s->state));
}

/* A 4xx/5xx that ends the session before any recipient is decided. */
static void fail_with_reply(struct smtp_session *s, const struct smtp_reply *reply, int polite)
{
    struct buf reason;
    buf_init(&reason, 0);
    if (s->state == SMTP_ST_GREETING) {
        buf_printf(&reason, "host %s refused to talk to me: ", s->label);
        smtp_reply_format(reply, &reason, SMTP_REASON_TEXT_MAX);
    } else {
        reply_reason(s, reply, &reason);
    }
    char dsn[SMTP_REPLY_ENHANCED_SIZE];
    smtp_reply_dsn(reply, dsn, sizeof(dsn));
    smtp_session_fail(s, reply->code >= 500, dsn, polite, "%s", reason.data);
    buf_free(&reason);
}

/* ---- replies, one handler per state ---- */

static void on_greeting(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (s->delivery != NULL)
        s->delivery->sessions_greeted++;
    if (reply->code >= 400) {
        fail_with_reply(s, reply, 1);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_EHLO);
    smtp_session_send(s, "EHLO %s", smtp_var.helo_name);
}

static void on_ehlo(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (reply->code >= 500) {
        /* RFC 5321 3.2: an old server; HELO without extensions. */
        smtp_session_set_state(s, SMTP_ST_HELO);
        smtp_session_send(s, "HELO %s", smtp_var.helo_name);
        return;
    }
    if (reply->code >= 400) {
        fail_with_reply(s, reply, 1);
        return;
    }
    smtp_ehlo_parse(reply, &s->ehlo);
    after_hello(s);
}

static void on_helo(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (reply->code >= 400) {
        fail_with_reply(s, reply, 1);
        return;
    }
    memset(&s->ehlo, 0, sizeof(s->ehlo));
    after_hello(s);
}

/* EHLO/HELO done: STARTTLS when offered and wanted, else ready. */
static void after_hello(struct smtp_session *s)
{
    if (!s->tls_active && !s->no_tls && smtp_var.tls_level != SMTP_TLS_NONE &&
        smtp_var.tls_ctx != NULL && (s->ehlo.flags & SMTP_EHLO_STARTTLS)) {
        smtp_session_set_state(s, SMTP_ST_STARTTLS);
        smtp_session_send(s, "STARTTLS");
        return;
    }
    if (smtp_var.tls_level == SMTP_TLS_ENCRYPT && !s->tls_active) {
        if (smtp_var.tls_ctx == NULL)
            smtp_session_fail(s, 0, "4.7.5", 1,
                              "TLS is required, but the TLS client could not be initialized");
        else
            smtp_session_fail(s, 0, "4.7.4", 1, "TLS is required, but was not offered by host %s",
                              s->label);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_READY);
    if (s->delivery != NULL)
        smtp_delivery_session_ready(s->delivery, s);
}

static void on_starttls(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (reply->code >= 300) {
        if (smtp_var.tls_level == SMTP_TLS_ENCRYPT) {
            struct buf reason;
            buf_init(&reason, 0);
            reply_reason(s, reply, &reason);
            smtp_session_fail(s, 0, "4.7.4", 1, "TLS is required, but %s", reason.data);
            buf_free(&reason);
            return;
        }
        /* Opportunistic: the session is still in plaintext and in step. */
        if (s->delivery != NULL)
            msg_info("%s: %s refused STARTTLS; continuing without TLS", s->delivery->queue_id,
                     s->relay);
        s->no_tls = 1;
        after_hello(s);
        return;
    }
    if (s->conn->in.len > 0) {
        smtp_session_fail(s, 0, "4.5.0", 0,
                          "host %s sent data after its reply to STARTTLS (protocol error)",
                          s->label);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_TLS);
    smtp_reply_parser_reset(s->parser);
    conn_start_tls_client(s->conn, smtp_var.tls_ctx, s->host);
}

void smtp_proto_tls_ready(struct smtp_session *s)
{
    s->tls_active = 1;
    if (s->delivery != NULL) {
        char text[200];
        tls_describe(s->conn->ssl, text, sizeof(text));
        msg_info("%s: %s TLS connection established to %s: %s", s->delivery->queue_id,
                 smtp_var.tls_level == SMTP_TLS_ENCRYPT ? "Verified" : "Untrusted", s->relay,
                 text);
    }
    /* RFC 3207 4.2: forget what EHLO said in plaintext. */
    memset(&s->ehlo, 0, sizeof(s->ehlo));
    smtp_reply_parser_reset(s->parser);
    smtp_session_set_state(s, SMTP_ST_EHLO);
    smtp_session_send(s, "EHLO %s", smtp_var.helo_name);
}

void smtp_proto_tls_failed(struct smtp_session *s)
{
    const char *why = s->conn->tls_failure[0] != '\0' ? s->conn->tls_failure
                                                     : "connection closed";
    if (smtp_var.tls_level == SMTP_TLS_MAY && s->delivery != NULL && !s->reused) {
        /* Opportunistic TLS must not make mail undeliverable: the
           delivery reconnects to this address in plaintext. */
        struct smtp_delivery *d = smtp_session_detach(s);
        char *reason = xasprintf("TLS handshake with %s failed: %s", s->label, why);
        s->reusable = 0;
        smtp_session_close(s);
        smtp_delivery_host_failed(d, 0, 1, "4.7.5", s->relay, reason);
        free(reason);
        return;
    }
    smtp_session_fail(s, 0, "4.7.5", 0, "TLS handshake with %s failed: %s", s->label, why);
}

/* Transaction over without the reply to "." (nothing to send). */
static void transaction_over(struct smtp_session *s, int needs_rset)
{
    s->needs_rset = needs_rset;
    smtp_session_set_state(s, SMTP_ST_READY);
    struct smtp_delivery *d = s->delivery;
    if (d != NULL)
        smtp_delivery_transaction_done(d);
}

static void send_rcpt(struct smtp_session *s, size_t k)
{
    struct smtp_delivery *d = s->delivery;
    smtp_session_send(s, "RCPT TO:<%s>", d->rcpts[s->tx_rcpts[k]].address);
    s->rcpt_sent = k + 1;
}

static void on_mail(struct smtp_session *s, const struct smtp_reply *reply)
{
    struct smtp_delivery *d = s->delivery;
    if (reply->code >= 500) {
        /* The sender is refused: every recipient bounces; with
           PIPELINING the RCPT and DATA replies still come and are
           skipped. */
        struct buf reason;
        buf_init(&reason, 0);
        reply_reason(s, reply, &reason);
        char dsn[SMTP_REPLY_ENHANCED_SIZE];
        smtp_reply_dsn(reply, dsn, sizeof(dsn));
        for (size_t k = 0; k < s->tx_count; k++)
            smtp_rcpt_result(d, s->tx_rcpts[k], SMTP_STATUS_BOUNCED, dsn, "%s", reason.data);
        buf_free(&reason);
        s->mail_failed = 1;
        s->tx_started = 1;
        if (s->pipelining) {
            smtp_session_set_state(s, SMTP_ST_RCPT);
            return;
        }
        transaction_over(s, 1);
        return;
    }
    if (reply->code >= 400) {
        fail_with_reply(s, reply, !s->pipelining);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_RCPT);
    if (!s->pipelining)
        send_rcpt(s, 0);
}

static void on_rcpt(struct smtp_session *s, const struct smtp_reply *reply)
{
    struct smtp_delivery *d = s->delivery;
    size_t k = s->rcpt_replied++;
    if (!s->mail_failed) {
        size_t i = s->tx_rcpts[k];
        s->tx_started = 1;
        if (reply->code < 400) {
            d->rcpts[i].accepted = 1;
            s->accepted++;
        } else {
            struct buf reason;
            buf_init(&reason, 0);
            reply_reason(s, reply, &reason);
            char dsn[SMTP_REPLY_ENHANCED_SIZE];
            smtp_reply_dsn(reply, dsn, sizeof(dsn));
            smtp_rcpt_result(d, i, reply->code >= 500 ? SMTP_STATUS_BOUNCED
                                                      : SMTP_STATUS_DEFERRED,
                             dsn, "%s", reason.data);
            buf_free(&reason);
        }
    }
    if (s->rcpt_replied < s->tx_count) {
        smtp_session_rearm(s);
        if (!s->pipelining)
            send_rcpt(s, s->rcpt_replied);
        return;
    }
    if (s->pipelining) {
        smtp_session_set_state(s, SMTP_ST_DATA);   /* DATA went with the RCPTs */
        return;
    }
    if (s->accepted == 0) {
        transaction_over(s, 1);   /* RFC 5321 3.3: no DATA without a recipient */
        return;
    }
    smtp_session_set_state(s, SMTP_ST_DATA);
    smtp_session_send(s, "DATA");
}

/* Every accepted recipient of the transaction gets the reply. */
static void accepted_result(struct smtp_session *s, const struct smtp_reply *reply)
{
    struct smtp_delivery *d = s->delivery;
    struct buf reason;
    buf_init(&reason, 0);
    enum smtp_status status;
    if (reply->code < 400) {
        status = SMTP_STATUS_SENT;
        smtp_reply_format(reply, &reason, SMTP_REASON_TEXT_MAX);
    } else {
        status = reply->code >= 500 ? SMTP_STATUS_BOUNCED : SMTP_STATUS_DEFERRED;
        reply_reason(s, reply, &reason);
    }
    char dsn[SMTP_REPLY_ENHANCED_SIZE];
    smtp_reply_dsn(reply, dsn, sizeof(dsn));
    for (size_t k = 0; k < s->tx_count; k++)
        if (d->rcpts[s->tx_rcpts[k]].accepted)
            smtp_rcpt_result(d, s->tx_rcpts[k], status, dsn, "%s", reason.data);
    buf_free(&reason);
}

static void on_data(struct smtp_session *s, const struct smtp_reply *reply)
{
    struct smtp_delivery *d = s->delivery;
    if (s->mail_failed || s->accepted == 0) {
        if (reply->code == 354) {
            /* Pipelined DATA accepted with nobody to deliver to: end it
               at once; the server has no recipient for it. */
            s->empty_data = 1;
            smtp_session_set_state(s, SMTP_ST_DOT);
            smtp_session_send(s, ".");
            return;
        }
        transaction_over(s, 1);
        return;
    }
    if (reply->code >= 400) {
        accepted_result(s, reply);
        transaction_over(s, 1);
        return;
    }
    if (reply->code != 354) {
        smtp_session_fail(s, 0, "4.5.0", 0,
                          "host %s answered DATA with %d before the message was sent "
                          "(protocol error)", s->label, reply->code);
        return;
    }
    smtp_body_start(&s->body, d->msg_fd, d->offset, d->length);
    s->last_out_len = s->conn->out.len;
    smtp_session_set_state(s, SMTP_ST_BODY);
}

static void on_body_reply(struct smtp_session *s, const struct smtp_reply *reply)
{
    /* The server spoke while the message was still being sent: take
       its word for the recipients, and end a session out of step. */
    struct smtp_delivery *d = smtp_session_detach(s);
    s->reusable = 0;
    smtp_session_close(s);
    if (d == NULL)
        return;
    struct buf reason;
    buf_init(&reason, 0);
    reply_reason(s, reply, &reason);
    char dsn[SMTP_REPLY_ENHANCED_SIZE];
    smtp_reply_dsn(reply, dsn, sizeof(dsn));
    if (reply->code < 400)
        snprintf(dsn, sizeof(dsn), "4.5.0");
    for (size_t k = 0; k < s->tx_count; k++)
        smtp_rcpt_result(d, s->tx_rcpts[k],
                         reply->code >= 500 ? SMTP_STATUS_BOUNCED : SMTP_STATUS_DEFERRED, dsn,
                         "%s", reason.data);
    buf_free(&reason);
    smtp_delivery_transaction_done(d);
}

static void on_dot(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (s->empty_data) {
        transaction_over(s, 1);
        return;
    }
    accepted_result(s, reply);
    transaction_over(s, 0);
}

static void on_rset(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (reply->code >= 400 || !s->reusable) {
        smtp_session_quit(s);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_CACHED);
    if (smtp_cache_put(s, s->cache_key_pending) < 0)
        smtp_session_quit(s);
}

void smtp_proto_reply(struct smtp_session *s, const struct smtp_reply *reply)
{
    if (log_verbose)
        msg_debug("< %s: %d %s", s->label, reply->code, reply->text.data);
    if (s->reused) {
        /* The first reply on a cached session: 421 means the server
           had timed it out; that is not this delivery's failure. */
        if (reply->code == 421) {
            smtp_session_fail(s, 0, "4.4.2", 0, "cached session closed");
            return;
        }
        s->reused = 0;
    }
    if (reply->code == 421)
        s->reusable = 0;   /* the server is closing the session */
    switch (s->state) {
    case SMTP_ST_GREETING: on_greeting(s, reply); break;
    case SMTP_ST_EHLO: on_ehlo(s, reply); break;
    case SMTP_ST_HELO: on_helo(s, reply); break;
    case SMTP_ST_STARTTLS: on_starttls(s, reply); break;
    case SMTP_ST_MAIL: on_mail(s, reply); break;
    case SMTP_ST_RCPT: on_rcpt(s, reply); break;
    case SMTP_ST_DATA: on_data(s, reply); break;
    case SMTP_ST_BODY: on_body_reply(s, reply); break;
    case SMTP_ST_DOT: on_dot(s, reply); break;
    case SMTP_ST_RSET: on_rset(s, reply); break;
    case SMTP_ST_QUIT: smtp_session_close(s); break;
    default:
        smtp_session_fail(s, 0, "4.5.0", 0, "host %s sent an unexpected reply: %d", s->label,
                          reply->code);
        break;
    }
}

/* ---- transactions ---- */

void smtp_session_transaction(struct smtp_session *s)
{
    struct smtp_delivery *d = s->delivery;
    free(s->tx_rcpts);
    s->tx_rcpts = xcalloc(d->rcpt_count, sizeof(*s->tx_rcpts));
    s->tx_count = 0;
    for (size_t i = 0; i < d->rcpt_count; i++) {
        d->rcpts[i].accepted = 0;
        if (!d->rcpts[i].done)
            s->tx_rcpts[s->tx_count++] = i;
    }
    if (s->tx_count == 0)
        msg_panic("%s: transaction without recipients", d->queue_id);
    s->pipelining = (s->ehlo.flags & SMTP_EHLO_PIPELINING) != 0;
    s->rcpt_sent = s->rcpt_replied = 0;
    s->mail_failed = 0;
    s->accepted = 0;
    s->tx_started = 0;
    s->needs_rset = 0;
    s->empty_data = 0;
    s->transactions++;

    struct buf mail;
    buf_init(&mail, 0);
    buf_printf(&mail, "MAIL FROM:<%s>", d->sender);
    if (s->ehlo.flags & SMTP_EHLO_SIZE)
        buf_printf(&mail, " SIZE=%lld", (long long)d->length);
    if ((s->ehlo.flags & SMTP_EHLO_8BITMIME) && (d->declared_8bit || d->body_8bit == 1))
        buf_append_str(&mail, " BODY=8BITMIME");
    if ((s->ehlo.flags & SMTP_EHLO_SMTPUTF8) && d->need_smtputf8)
        buf_append_str(&mail, " SMTPUTF8");
    smtp_session_set_state(s, SMTP_ST_MAIL);
    smtp_session_send(s, "%s", mail.data);
    buf_free(&mail);
    if (s->pipelining) {
        /* RFC 2920: the whole envelope and DATA in one write. */
        for (size_t k = 0; k < s->tx_count; k++)
            send_rcpt(s, k);
        smtp_session_send(s, "DATA");
    }
}

