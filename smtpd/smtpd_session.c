/*
 * NAME
 *	smtpd_session - SMTP server sessions: life cycle, I/O, input loop
 * DESCRIPTION
 *	One process serves many sessions in one event loop. Each session
 *	reads and writes through a lib/conn.h connection (plain, STARTTLS
 *	or SMTPS): input lands in the bounded conn->in and is cut into
 *	commands by the pure parser (lib/smtp_command.c) or, in DATA,
 *	decoded by lib/smtp_data.c; during AUTH the next line is a SASL
 *	response. Replies are queued in conn->out and flushed in the
 *	before-sleep hook, so the replies to pipelined commands leave in
 *	one write. A session is freed through event_defer(), never inside
 *	its own callback.
 *
 *	Input is paused while the session waits for a group commit, for a
 *	password check or an AUTH failure delay, while an error delay runs
 *	(then its replies are held back too), while the client does not
 *	read its replies, and once closing.
 *
 *	TLS: with smtpd_tls_wrappermode the handshake starts at accept and
 *	the greeting follows it. STARTTLS queues "220 2.0.0 Ready to start
 *	TLS"; conn_start_tls() sends it in the clear, throws away whatever
 *	the client sent behind the command (the STARTTLS-injection class
 *	of attacks) and makes the handshake. Afterwards the session starts
 *	over as RFC 3207 4.2 demands: no HELO, no transaction, no AUTH, a
 *	fresh command parser; only the TLS facts remain. A handshake that
 *	fails ends the session.
 * LIMITS
 *	smtpd_process_session_limit sessions per process ("421 4.7.0
 *	Server busy" beyond; SMTPS clients are just closed);
 *	per-client limits through lib/anvil (smtpd_policy.c);
 *	smtpd_timeout per command line: the timer restarts when a command
 *	(or SASL response) line is complete, not at every byte, so a client
 *	that trickles a line cannot hold the session longer; in DATA it
 *	restarts every SMTPD_DATA_PROGRESS bytes (a minimum rate of that
 *	many bytes per smtpd_timeout); also for a TLS handshake.
 *	smtpd_soft_error_limit / smtpd_hard_error_limit errors.
 *	smtpd_greet_wait: the banner waits that long; a client (outside
 *	mynetworks) that talks first is a pre-greeting talker: "521 5.5.1
 *	Protocol error" and close (postscreen's words).
 *	Input buffer SMTPD_IN_MAX bytes; output beyond SMTPD_OUT_MAX pauses
 *	input; a SASL response line is at most SMTPD_SASL_LINE_MAX bytes
 *	(RFC 4954 4: 12288), longer ones are refused and skipped.
 * DIAGNOSTICS
 *	Postfix-shaped log lines: "connect from", "disconnect from ...
 *	commands=N", "lost connection after X from", "timeout after X from",
 *	"Anonymous TLS connection established from name[addr]: TLSv1.3
 *	with cipher ..." (Trusted / Untrusted with a client certificate),
 *	"PREGREET 11 after 0.52 from name[addr]: EHLO x\r\n" (postscreen's
 *	shape, without the port).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "content_filter.h"
#include "log.h"
#include "policy.h"
#include "resolve.h"
#include "server.h"
#include "smtpd.h"
#include "tls.h"
#include "xalloc.h"

#define SMTPD_IN_MAX  (64 * 1024)
#define SMTPD_OUT_MAX (64 * 1024)
#define SMTPD_SASL_LINE_MAX 12288
#define SMTPD_DATA_PROGRESS 1024
#define PREGREET_SHOW 100

static struct smtpd_session *session_list;
static int session_count;

static const char *const state_names[] = {
    "INIT", "HELO", "MAIL", "RCPT", "DATA", "WAIT_COMMIT", "CLOSING", "TLS", "SASL",
    "AUTH_CHECK",
};

static const char *const counter_names[SMTPD_CNT_COUNT] = {
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat",
    "rset", "noop", "vrfy", "expn", "help", "etrn", "quit", "unknown",
};

static void session_process(struct smtpd_session *s);
static void session_update_events(struct smtpd_session *s);
static void flush_all(void);
static void pregreet(struct smtpd_session *s);

const char *smtpd_client(const struct smtpd_session *s)
{
    static char text[128];
    snprintf(text, sizeof(text), "%s[%s]", s->name, s->addr);
    return text;
}

void smtpd_set_state(struct smtpd_session *s, enum smtpd_state state)
{
    if (s->state == state)
        return;
    if (log_verbose)
        msg_debug("%s: state %s -> %s", smtpd_client(s), state_names[s->state],
                  state_names[state]);
    s->state = state;
}

const char *smtpd_protocol(const struct smtpd_session *s)
{
    /* RFC 3848 and RFC 6531 4.3: S for TLS, A for SMTP AUTH. */
    static char text[16];
    snprintf(text, sizeof(text), "%s%s%s",
             s->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP", s->tls ? "S" : "",
             s->sasl_username != NULL ? "A" : "");
    return text;
}

int smtpd_starttls_offered(const struct smtpd_session *s)
{
    return smtpd_var.tls_ctx != NULL && smtpd_var.tls_level != SMTPD_TLS_NONE && !s->tls;
}

int smtpd_auth_offered(const struct smtpd_session *s)
{
    return smtpd_var.sasl_enable && (s->tls || !smtpd_var.tls_auth_only);
}

/* ---- output ---- */

static void reply_v(struct smtpd_session *s, int count, const char *fmt, va_list ap)
{
    if (s->lost || s->conn->closed)
        return;
    struct buf *out = &s->conn->out;
    size_t start = out->len;
    buf_vprintf(out, fmt, ap);
    buf_append(out, "\r\n", 2);
    if (log_verbose)
        msg_debug("> %s: %.*s", smtpd_client(s), (int)(out->len - start - 2),
                  out->data + start);
    char code = out->data[start];
    /* The error delay itself is armed by session_process() after the
       command, so a handler may send several lines first. */
    if (count && (code == '4' || code == '5'))
        s->errors++;
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_v(s, 1, fmt, ap);
    va_end(ap);
}

void smtpd_reply_nocount(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_v(s, 0, fmt, ap);
    va_end(ap);
}

/* Returns 0 when everything was written, 1 when output is pending,
   -1 when the peer is gone (conn then reports CLOSED: at once, or
   right after the running conn callback). */
static int session_flush(struct smtpd_session *s)
{
    if (s->lost || s->conn->closed)
        return -1;
    if (s->conn->out.len == 0)
        return 0;
    return conn_flush(s->conn);
}

/* ---- life cycle ---- */

static void session_free(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    if (s->qw != NULL) {
        queue_writer_abort(&s->qw);
    }
    smtpd_queue_forget(s);
    smtpd_auth_forget(s);
    smtpd_policy_disconnect(s);
    event_timer_cancel(loop, &s->greet_timer);
    xfree(&s->connect_reject);
    char counts[512];
    size_t off = 0;
    unsigned ok = 0, all = 0;
    counts[0] = '\0';
    for (int i = 0; i < SMTPD_CNT_COUNT; i++) {
        ok += s->counts_ok[i];
        all += s->counts_all[i];
        if (s->counts_all[i] == 0)
            continue;
        int n = s->counts_ok[i] == s->counts_all[i]
                    ? snprintf(counts + off, sizeof(counts) - off, " %s=%u", counter_names[i],
                               s->counts_ok[i])
                    : snprintf(counts + off, sizeof(counts) - off, " %s=%u/%u",
                               counter_names[i], s->counts_ok[i], s->counts_all[i]);
        if (n > 0 && (size_t)n < sizeof(counts) - off)
            off += (size_t)n;
    }
    if (ok == all)
        msg_info("disconnect from %s%s commands=%u", smtpd_client(s), counts, ok);
    else
        msg_info("disconnect from %s%s commands=%u/%u", smtpd_client(s), counts, ok, all);
    event_timer_cancel(loop, &s->idle_timer);
    event_timer_cancel(loop, &s->sleep_timer);
    conn_destroy(&s->conn);
    s->state = SMTPD_STATE_CLOSING;
    smtpd_transaction_reset(s);
    smtp_command_parser_destroy(&s->parser);
    buf_free(&s->piece);
    free(s->helo);
    free(s->tls_info);
    free(s->tls_peer);
    free(s->sasl_username);
    if (s->prev)
        s->prev->next = s->next;
    else
        session_list = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    session_count--;
    server_session_count(session_count);
}

static void session_schedule_free(struct smtpd_session *s)
{
    if (s->freed)
        return;
    s->freed = 1;
    s->closing = 1;
    event_timer_cancel(s->loop, &s->sleep_timer);
    event_timer_cancel(s->loop, &s->greet_timer);
    if (!s->conn->closed) {
        conn_pause_input(s->conn, 1);
        conn_hold_output(s->conn, 1);
    }
    event_defer(s->loop, session_free, s);
}

void smtpd_close(struct smtpd_session *s)
{
    s->closing = 1;
    smtpd_set_state(s, SMTPD_STATE_CLOSING);
    session_update_events(s);
}

/* The peer went away (EOF, reset, TLS failure) before QUIT. */
static void session_lost(struct smtpd_session *s)
{
    if (!s->closing) {
        if (s->state == SMTPD_STATE_DATA) {
            msg_info("lost connection after DATA (%lld bytes) from %s", s->data.size,
                     smtpd_client(s));
            if (s->counts_ok[SMTPD_CNT_DATA] > 0)
                s->counts_ok[SMTPD_CNT_DATA]--;
        }
        else
            msg_info("lost connection after %s from %s", s->where, smtpd_client(s));
    }
    s->lost = 1;
    if (s->qw != NULL)
        queue_writer_abort(&s->qw);
    /* WAIT_COMMIT: the file is already in incoming/; the commit still
       happens and qmgr delivers it (the client will see no reply and may
       send it again: a duplicate at worst, never a loss). */
    if (s->state != SMTPD_STATE_WAIT_COMMIT)
        session_schedule_free(s);
}

void smtpd_transaction_reset(struct smtpd_session *s)
{
    if (s->qw != NULL)
        queue_writer_abort(&s->qw);
    content_filter_destroy(&s->cf);
    xfree(&s->sender);
    xfree(&s->sender_raw);
    for (size_t i = 0; i < s->prepend_count; i++)
        free(s->prepend[i]);
    xfree(&s->prepend);
    s->prepend_count = 0;
    s->discard = 0;
    s->hold = 0;
    for (size_t i = 0; i < s->rcpt_count; i++)
        free(s->rcpts[i]);
    xfree(&s->rcpts);
    s->rcpt_count = s->rcpt_alloc = 0;
    s->smtputf8 = 0;
    s->body_8bit = 0;
    s->queue_id[0] = '\0';
    xfree(&s->message_id);
    s->write_errno = 0;
    buf_reset(&s->piece);
    if (s->state != SMTPD_STATE_CLOSING)
        smtpd_set_state(s, s->helo != NULL ? SMTPD_STATE_HELO : SMTPD_STATE_INIT);
}

/* ---- events ---- */

/* Reading stops while the session cannot take input; conn itself also
   stops while conn->in is full or too much output waits. Replies are
   held back during the error delay. */
static void session_update_events(struct smtpd_session *s)
{
    if (s->freed || s->conn->closed)
        return;
    int held = s->sleep_timer != NULL;
    if (held != s->output_held) {
        s->output_held = held;
        conn_hold_output(s->conn, held);
    }
    /* During the greet wait input is read: it is what gives a
       pre-greeting talker away. */
    conn_pause_input(s->conn, s->closing || s->lost || s->sleep_timer != NULL ||
                                  s->state == SMTPD_STATE_WAIT_COMMIT ||
                                  s->state == SMTPD_STATE_AUTH_CHECK ||
                                  (s->pcheck != NULL && s->greet_timer == NULL));
}

static void idle_timeout(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    s->idle_timer = NULL;
    if (s->closing) {
        session_schedule_free(s);
        return;
    }
    msg_info("timeout after %s from %s", s->state == SMTPD_STATE_DATA ? "DATA" : s->where,
             smtpd_client(s));
    if (s->state == SMTPD_STATE_TLS) {
        /* Mid-handshake: there is no channel for a reply. */
        session_schedule_free(s);
        return;
    }
    smtpd_reply_nocount(s, "421 4.4.2 %s Error: timeout exceeded", smtpd_var.myhostname);
    smtpd_close(s);
    session_update_events(s);
    /* A client that does not read its 421 either is dropped after one
       more period. */
    s->idle_timer = event_timer_add(s->loop, smtpd_var.timeout_ms, idle_timeout, s);
}

static void idle_restart(struct smtpd_session *s)
{
    event_timer_cancel(s->loop, &s->idle_timer);
    s->idle_timer = event_timer_add(s->loop, smtpd_var.timeout_ms, idle_timeout, s);
}

void smtpd_auth_pause(struct smtpd_session *s)
{
    smtpd_set_state(s, SMTPD_STATE_AUTH_CHECK);
    /* The client waits for us: no idle timeout meanwhile. */
    event_timer_cancel(s->loop, &s->idle_timer);
    session_update_events(s);
}

static void sleep_done(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    s->sleep_timer = NULL;
    idle_restart(s);
    session_process(s);
    session_update_events(s);
}

/* ---- TLS ---- */

static struct smtp_command_parser *parser_new(void)
{
    struct smtp_command_limits limits;
    smtp_command_limits_default(&limits);
    limits.max_line = smtpd_var.line_length_limit > 2 ? (size_t)smtpd_var.line_length_limit - 2
                                                      : 510;
    limits.forbid_bare_newline = smtpd_var.forbid_bare_newline;
    limits.smtputf8 = smtpd_var.smtputf8_enable;
    return smtp_command_parser_create(&limits);
}

void smtpd_start_tls(struct smtpd_session *s)
{
    if (s->conn->in.len > 0 && !s->pipelining_logged) {
        s->pipelining_logged = 1;
        msg_info("improper command pipelining after STARTTLS from %s", smtpd_client(s));
    }
    /* RFC 3207 4.2: forget everything the client said before. */
    smtpd_transaction_reset(s);
    xfree(&s->helo);
    s->esmtp = 0;
    xfree(&s->sasl_username);
    s->sasl_method = NULL;
    smtpd_set_state(s, SMTPD_STATE_TLS);
    /* Discards conn->in; the command parser holds no input of its own
       (STARTTLS was a complete line), but a fresh one is certain. */
    smtp_command_parser_destroy(&s->parser);
    s->parser = parser_new();
    (void)conn_start_tls(s->conn, smtpd_var.tls_ctx);   /* failure: CLOSED follows */
}

static void tls_ready(struct smtpd_session *s)
{
    if (s->state != SMTPD_STATE_TLS)
        return;
    char text[200], peer[300];
    tls_describe(s->conn->ssl, text, sizeof(text));
    enum tls_peer_status st = tls_peer_summary(s->conn->ssl, smtpd_var.tls_ask_ccert, peer,
                                               sizeof(peer));
    s->tls = 1;
    free(s->tls_info);
    s->tls_info = xstrdup(text);
    free(s->tls_peer);
    s->tls_peer = xstrdup(peer);
    msg_info("%s TLS connection established from %s: %s",
             st == TLS_PEER_TRUSTED ? "Trusted" : st == TLS_PEER_UNTRUSTED ? "Untrusted"
                                                                        : "Anonymous",
             smtpd_client(s), text);
    if (log_verbose)
        msg_debug("%s: TLS session %s; %s", smtpd_client(s),
                  SSL_session_reused(s->conn->ssl) ? "reused" : "new", peer);
    smtpd_set_state(s, SMTPD_STATE_INIT);
    if (smtpd_var.tls_wrappermode && !s->banner_sent)   /* SMTPS: greeting through TLS */
        smtpd_banner(s);
    idle_restart(s);
    session_process(s);
}

static void session_conn_event(struct conn *conn, enum conn_event event, void *ctx)
{
    struct smtpd_session *s = ctx;
    if (s->freed)
        return;
    switch (event) {
    case CONN_EVENT_INPUT:
        if (s->closing || s->state == SMTPD_STATE_TLS) {
            buf_reset(&conn->in);
            break;
        }
        if (s->greet_timer != NULL) {
            pregreet(s);
            break;
        }
        /* No idle_restart() here: the timer runs per command line
           (session_process), so trickled bytes do not extend it. */
        session_process(s);
        /* The client half-closed after its last commands: their replies
           still go out before the CLOSED that follows. */
        if (conn->read_eof && s->sleep_timer == NULL)
            session_flush(s);
        break;
    case CONN_EVENT_CLOSED:
        session_lost(s);
        break;
    case CONN_EVENT_TLS_READY:
        tls_ready(s);
        break;
    }
}

/* ---- input loop ---- */

static void process_data(struct smtpd_session *s)
{
    struct buf *in = &s->conn->in;
    size_t off = 0;
    while (off < in->len) {
        size_t used;
        enum smtp_data_status st = smtp_data_decode(&s->data, in->data + off, in->len - off,
                                                    &used, &s->piece);
        off += used;
        if (st == SMTP_DATA_NEED_MORE)
            break;
        if (st == SMTP_DATA_PIECE) {
            smtpd_queue_piece(s, s->piece.data, s->piece.len, s->data.piece_ends_line);
            buf_reset(&s->piece);
            continue;
        }
        buf_consume(in, off);
        s->where = "END-OF-MESSAGE";
        s->data_progress = 0;
        smtpd_queue_finish(s);
        if (s->state != SMTPD_STATE_WAIT_COMMIT && s->pcheck == NULL && !s->closing)
            idle_restart(s);
        return;
    }
    buf_consume(in, off);
    s->data_progress += (long long)off;
    if (s->data_progress >= SMTPD_DATA_PROGRESS) {
        s->data_progress = 0;
        idle_restart(s);
    }
    /* Keep the pending partial piece small: it already went through the
       decoder, so write it out now instead of holding it. */
    if (s->piece.len >= s->data.limits.max_piece) {
        smtpd_queue_piece(s, s->piece.data, s->piece.len, 0);
        buf_reset(&s->piece);
    }
}

static void bare_lf(struct smtpd_session *s)
{
    msg_info("disallowed bare <LF> received from %s", smtpd_client(s));
    smtpd_reply_nocount(s, "521 5.5.2 %s Error: bare <LF> received", smtpd_var.myhostname);
    smtpd_close(s);
}

/* One SASL response line. Returns 0 when more input is needed. */
static int process_sasl_line(struct smtpd_session *s)
{
    struct buf *in = &s->conn->in;
    if (s->sasl_skipping) {
        const char *nl = in->len ? memchr(in->data, '\n', in->len) : NULL;
        if (nl == NULL) {
            buf_reset(in);
            return 0;
        }
        buf_consume(in, (size_t)(nl - in->data) + 1);
        s->sasl_skipping = 0;
        return 1;
    }
    const char *line;
    size_t len, consume;
    int crlf;
    switch (buf_read_line(in, SMTPD_SASL_LINE_MAX, &line, &len, &crlf, &consume)) {
    case BUF_LINE_NEED_MORE:
        return 0;
    case BUF_LINE_TOO_LONG: {
        const char *nl = memchr(in->data, '\n', in->len);
        if (nl == NULL) {
            s->sasl_skipping = 1;
            buf_reset(in);
        } else {
            buf_consume(in, (size_t)(nl - in->data) + 1);
        }
        smtpd_auth_response(s, NULL, 0);
        return 1;
    }
    case BUF_LINE_OK:
        break;
    }
    if (!crlf && smtpd_var.forbid_bare_newline) {
        buf_consume(in, consume);
        bare_lf(s);
        return 1;
    }
    char *copy = xstrndup(line, len);
    buf_consume(in, consume);
    smtpd_auth_response(s, copy, len);
    explicit_bzero(copy, len);
    free(copy);
    return 1;
}

static int processable(const struct smtpd_session *s)
{
    return !s->closing && !s->lost && s->sleep_timer == NULL && s->pcheck == NULL &&
           s->banner_sent && s->greet_timer == NULL &&
           s->state != SMTPD_STATE_WAIT_COMMIT && s->state != SMTPD_STATE_TLS &&
           s->state != SMTPD_STATE_AUTH_CHECK && s->conn->out.len < SMTPD_OUT_MAX;
}

static void session_process(struct smtpd_session *s)
{
    while (processable(s)) {
        if (s->state == SMTPD_STATE_DATA) {
            if (s->conn->in.len == 0)
                break;
            process_data(s);
            continue;
        }
        if (s->errors >= smtpd_var.hard_error_limit) {
            msg_info("too many errors after %s from %s", s->where, smtpd_client(s));
            smtpd_reply_nocount(s, "421 4.7.0 %s Error: too many errors",
                                smtpd_var.myhostname);
            smtpd_close(s);
            break;
        }
        int errors_before = s->errors;
        /* The tail of an overlong SASL response is skipped even though
           the exchange already ended. */
        if (s->state == SMTPD_STATE_SASL || s->sasl_skipping) {
            if (!process_sasl_line(s))
                break;
        } else {
            struct smtp_command cmd;
            enum smtp_command_error err;
            enum smtp_command_status st = smtp_command_parser_next(s->parser, &s->conn->in,
                                                                   &cmd, &err);
            if (st == SMTP_COMMAND_NEED_MORE)
                break;
            if (st == SMTP_COMMAND_ERROR) {
                if (err == SMTP_CMDERR_BARE_LF) {
                    bare_lf(s);
                    break;
                }
                smtpd_reply(s, "%s", smtp_command_error_reply(err));
            } else {
                smtpd_command_dispatch(s, &cmd);
                smtp_command_clear(&cmd);
            }
        }
        /* A complete line was handled: the next one gets a full
           smtpd_timeout (unless the session now waits for us). */
        if (!s->closing && !s->lost && s->pcheck == NULL &&
            s->state != SMTPD_STATE_AUTH_CHECK && s->state != SMTPD_STATE_WAIT_COMMIT) {
            if (s->state == SMTPD_STATE_DATA)
                s->data_progress = 0;
            idle_restart(s);
        }
        if (s->errors > errors_before && s->errors >= smtpd_var.soft_error_limit &&
            smtpd_var.error_sleep_ms > 0 && !s->closing && !s->lost) {
            /* The reply is held back with the rest of the input; the
               client is not waited for meanwhile, so no idle timeout. */
            event_timer_cancel(s->loop, &s->idle_timer);
            s->sleep_timer = event_timer_add(s->loop, smtpd_var.error_sleep_ms, sleep_done, s);
        }
    }
    session_update_events(s);
}

void smtpd_session_resume(struct smtpd_session *s)
{
    if (s->lost) {
        session_schedule_free(s);
        return;
    }
    idle_restart(s);
    session_process(s);
}

/* Before-sleep: group commit first (it queues replies), then one write
   per session with pending output. */
static void before_sleep(struct event_loop *loop, void *ctx)
{
    do {
        smtpd_queue_group_commit(loop);
        flush_all();
        /* Pipelined input processed while flushing may have finished
           another message: commit it before sleeping. */
    } while (smtpd_queue_pending());
}

static void flush_all(void)
{
    for (struct smtpd_session *s = session_list; s != NULL; s = s->next) {
        if (s->freed)
            continue;
        /* A failed flush reports CLOSED at once: session_lost() then
           schedules the free (or keeps a WAIT_COMMIT session). */
        if (s->sleep_timer == NULL && s->conn->out.len > 0 && session_flush(s) < 0)
            continue;
        if (s->closing && (s->conn->out.len == 0 || s->lost)) {
            session_schedule_free(s);
            continue;
        }
        /* Output drained below the limit: more pipelined input can run. */
        if (!s->closing && s->conn->in.len > 0 && s->sleep_timer == NULL)
            session_process(s);
        session_update_events(s);
    }
}

void smtpd_session_init(struct event_loop *loop)
{
    smtpd_queue_init(loop);
    event_before_sleep(loop, before_sleep, NULL);
}

/* ---- accept ---- */

static void peer_address(const struct sockaddr *peer, socklen_t len, char *addr, size_t size)
{
    if (peer->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, addr, (socklen_t)size);
    } else if (peer->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr, (socklen_t)size);
        else
            inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)size);
    } else {
        /* UNIX socket (tests with -s /path): a local client. */
        snprintf(addr, size, "127.0.0.1");
    }
}

/* ---- greeting ---- */

void smtpd_banner(struct smtpd_session *s)
{
    if (s->banner_sent || s->greet_timer != NULL || s->pcheck != NULL ||
        s->state == SMTPD_STATE_TLS || s->closing || s->lost)
        return;
    s->banner_sent = 1;
    /* Input before the banner: the client did not wait for it
       (reject_unauth_pipelining). */
    if (s->conn->in.len > 0)
        s->unauth_pipelining = 1;
    if (s->connect_reject != NULL) {
        smtpd_reply_nocount(s, "%s", s->connect_reject);
        return;
    }
    smtpd_reply_nocount(s, "220 %s", smtpd_var.smtpd_banner);
}

static void pregreet(struct smtpd_session *s)
{
    struct buf *in = &s->conn->in;
    char shown[PREGREET_SHOW * 4 + 1];
    size_t o = 0;
    for (size_t i = 0; i < in->len && i < PREGREET_SHOW && o + 4 < sizeof(shown); i++) {
        unsigned char c = (unsigned char)in->data[i];
        if (c == '\r') {
            shown[o++] = '\\';
            shown[o++] = 'r';
        } else if (c == '\n') {
            shown[o++] = '\\';
            shown[o++] = 'n';
        } else {
            shown[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
    }
    shown[o] = '\0';
    long long ms = event_now_ms(s->loop) - s->accept_ms;
    msg_info("PREGREET %zu after %lld.%02lld from %s: %s", in->len, ms / 1000,
             (ms % 1000) / 10, smtpd_client(s), shown);
    event_timer_cancel(s->loop, &s->greet_timer);
    buf_reset(in);
    s->banner_sent = 1;
    s->where = "CONNECT";
    smtpd_reply_nocount(s, "521 5.5.1 Protocol error");
    smtpd_close(s);
}

static void greet_done(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    (void)loop;
    s->greet_timer = NULL;
    if (s->conn->in.len > 0) {
        pregreet(s);
        return;
    }
    smtpd_banner(s);
    session_update_events(s);
}

/* text NULL: just close (SMTPS clients expect a TLS record, not text). */
void smtpd_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len)
{
    char addr[64];
    peer_address(peer, peer_len, addr, sizeof(addr));
    int wrapper = smtpd_var.tls_wrappermode;
    if (session_count >= smtpd_var.process_session_limit) {
        msg_warn("session limit %lld reached: refusing %s", smtpd_var.process_session_limit,
                 addr);
        char text[200];
        snprintf(text, sizeof(text), "421 4.7.0 %s Server busy", smtpd_var.myhostname);
        server_refuse(fd, wrapper ? NULL : text);
        return;
    }
    if (wrapper && smtpd_var.tls_ctx == NULL) {
        server_refuse(fd, NULL);   /* logged once at start */
        return;
    }
    const char *name = strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0 ? "localhost"
                                                                                 : "unknown";
    /* smtpd_client_connection_count_limit / _rate_limit (lib/anvil). */
    char text[300];
    if (smtpd_anvil_connect(addr, name, text, sizeof(text)) < 0) {
        server_refuse(fd, wrapper ? NULL : text);
        return;
    }
    struct smtpd_session *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->anvil_counted = 1;
    s->accept_ms = event_now_ms(loop);
    memcpy(s->addr, addr, sizeof(s->addr));
    s->name = name;
    s->state = SMTPD_STATE_INIT;
    s->where = "CONNECT";
    buf_init(&s->piece, 0);
    s->parser = parser_new();
    s->conn = conn_create(loop, fd, peer, peer_len, SMTPD_IN_MAX, SMTPD_OUT_MAX - 1,
                          session_conn_event, s);
    s->next = session_list;
    if (session_list)
        session_list->prev = s;
    session_list = s;
    session_count++;
    server_session_count(session_count);
    msg_info("connect from %s", smtpd_client(s));
    idle_restart(s);
    smtpd_policy_connect(s);
    if (smtpd_policy_wanted(s, POLICY_STAGE_CONNECT))
        smtpd_policy_start(s, POLICY_STAGE_CONNECT, SMTPD_PENDING_CONNECT, NULL);
    if (s->pcheck != NULL)   /* smtpd_policy_start() stopped it: the check bounds itself */
        idle_restart(s);
    if (wrapper) {
        s->state = SMTPD_STATE_TLS;
        (void)conn_start_tls(s->conn, smtpd_var.tls_ctx);   /* failure: CLOSED at once */
        return;
    }
    if (smtpd_var.greet_wait_ms > 0 && !resolve_in_mynetworks(addr))
        s->greet_timer = event_timer_add(loop, smtpd_var.greet_wait_ms, greet_done, s);
    smtpd_banner(s);
    session_update_events(s);
}

/* SIGTERM (exit follows) or SIGHUP (drain): push out what is queued;
   sessions themselves go on while draining. */
void smtpd_session_stop_all(struct event_loop *loop)
{
    for (struct smtpd_session *s = session_list; s != NULL; s = s->next)
        if (!s->freed && s->sleep_timer == NULL)
            session_flush(s);
}
