/*
 * NAME
 *	smtp_session - one outbound SMTP session: life cycle, I/O, timers
 * DESCRIPTION
 *	States (smtp.h): CONNECT -> GREETING -> EHLO (-> HELO) [-> STARTTLS
 *	-> TLS -> EHLO] -> READY -> MAIL -> RCPT -> DATA -> BODY -> DOT ->
 *	READY ... and, once the delivery is done with the session, RSET ->
 *	CACHED, or QUIT. Only smtp_session_set_state() changes the state
 *	(logged with -v); it also starts the timer of the new state with
 *	that state's smtp_*_timeout. The reply handler of each state is in
 *	smtp_proto.c; this file owns everything else: connect, input,
 *	timeouts, failures, the cache hand-over, QUIT, and the before-sleep
 *	pump that feeds message bodies.
 *
 *	The connect is non-blocking: connect() gives EINPROGRESS, the
 *	socket is watched for writability under smtp_connect_timeout and
 *	SO_ERROR says how it went; then the socket becomes a lib/conn.h
 *	connection (bounded input, queued output, OpenSSL for STARTTLS).
 *	Input goes through the pure parser lib/smtp_reply.c, one reply at
 *	a time, so pipelined replies (RFC 2920) are matched to commands in
 *	order.
 *
 *	A session reports to its delivery through the up-calls of smtp.h.
 *	Before any recipient has been decided, a failure is the host's
 *	(the delivery tries the next address); afterwards it decides the
 *	remaining recipients of the transaction. A session taken from the
 *	cache that turns out dead before its first reply (closed, reset,
 *	timed out, 421) is reported stale and does not count as a failure.
 *
 *	The message body is converted chunk by chunk (smtp_body.c) when
 *	the output buffer has drained below SMTP_OUT_FILL, so a large
 *	message never sits in memory; smtp_data_xfer_timeout counts from
 *	the last write progress.
 *
 *	Sessions are freed through event_defer(), never inside their own
 *	callbacks.
 * DIAGNOSTICS
 *	Failure reasons name the server and the phase: "connect to
 *	host[addr]:port: Connection refused", "lost connection with
 *	host[addr] while sending message body", "conversation with
 *	host[addr] timed out while receiving the initial server greeting",
 *	"host host[addr] sent malformed reply while performing the EHLO
 *	handshake (reply line too long)".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "server.h"
#include "smtp.h"
#include "tls.h"
#include "xalloc.h"

static struct smtp_session *session_list;
static int session_total;

/* Body fill/flush turns per session and loop round, so one fast
   server cannot starve the other sessions. */
#define SMTP_PUMP_TURNS 16

static const char *const state_names[] = {
    "CONNECT", "GREETING", "EHLO", "HELO", "STARTTLS", "TLS", "READY", "MAIL",
    "RCPT", "DATA", "BODY", "DOT", "RSET", "CACHED", "QUIT", "DEAD",
};

/* "lost connection with X while <phase>" */
const char *smtp_session_phase(enum smtp_state state)
{
    switch (state) {
    case SMTP_ST_GREETING: return "receiving the initial server greeting";
    case SMTP_ST_EHLO: return "performing the EHLO handshake";
    case SMTP_ST_HELO: return "performing the HELO handshake";
    case SMTP_ST_STARTTLS: return "sending STARTTLS";
    case SMTP_ST_TLS: return "performing the TLS handshake";
    case SMTP_ST_MAIL: return "sending MAIL FROM";
    case SMTP_ST_RCPT: return "sending RCPT TO";
    case SMTP_ST_DATA: return "sending DATA command";
    case SMTP_ST_BODY: return "sending message body";
    case SMTP_ST_DOT: return "sending end of data -- message may be sent more than once";
    case SMTP_ST_RSET: return "sending RSET";
    case SMTP_ST_QUIT: return "sending QUIT";
    default: return "waiting for the next transaction";
    }
}

static long long state_timeout_ms(enum smtp_state state)
{
    switch (state) {
    case SMTP_ST_GREETING:
    case SMTP_ST_EHLO:
    case SMTP_ST_HELO: return smtp_var.helo_ms;
    case SMTP_ST_STARTTLS:
    case SMTP_ST_TLS: return smtp_var.starttls_ms;
    case SMTP_ST_MAIL:
    case SMTP_ST_RSET: return smtp_var.mail_ms;
    case SMTP_ST_RCPT: return smtp_var.rcpt_ms;
    case SMTP_ST_DATA: return smtp_var.data_init_ms;
    case SMTP_ST_BODY: return smtp_var.data_xfer_ms;
    case SMTP_ST_DOT: return smtp_var.data_done_ms;
    case SMTP_ST_CACHED: return smtp_var.cache_ms;
    case SMTP_ST_QUIT: return smtp_var.quit_ms;
    default: return 0;
    }
}

static void session_timeout(struct event_loop *loop, void *ctx);
static void session_input(struct smtp_session *s);

/* Enters state and (re)starts its timer. */
void smtp_session_set_state(struct smtp_session *s, enum smtp_state state)
{
    if (log_verbose && s->state != state)
        msg_debug("%s: state %s -> %s", s->label, state_names[s->state], state_names[state]);
    s->state = state;
    event_timer_cancel(s->loop, &s->timer);
    long long ms = state_timeout_ms(state);
    if (ms > 0 && state != SMTP_ST_DEAD)
        s->timer = event_timer_add(s->loop, ms, session_timeout, s);
    if (state == SMTP_ST_BODY)
        s->progress_ms = event_now_ms(s->loop);
}

/* Restarts the timer of the current state (the next pipelined reply). */
void smtp_session_rearm(struct smtp_session *s)
{
    event_timer_cancel(s->loop, &s->timer);
    long long ms = state_timeout_ms(s->state);
    if (ms > 0)
        s->timer = event_timer_add(s->loop, ms, session_timeout, s);
}

void smtp_session_send(struct smtp_session *s, const char *fmt, ...)
{
    if (s->conn == NULL || s->conn->closed)
        return;
    struct buf *out = &s->conn->out;
    size_t start = out->len;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(out, fmt, ap);
    va_end(ap);
    if (log_verbose)
        msg_debug("> %s: %.*s", s->label, (int)(out->len - start), out->data + start);
    buf_append(out, "\r\n", 2);
}

/* ---- life cycle ---- */

static struct smtp_session *session_new(struct event_loop *loop)
{
    struct smtp_session *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->fd = -1;
    s->reusable = 1;
    s->state = SMTP_ST_CONNECT;
    s->parser = smtp_reply_parser_create(&smtp_var.reply_limits);
    s->next = session_list;
    if (session_list != NULL)
        session_list->prev = s;
    session_list = s;
    session_total++;
    smtp_update_session_count();
    return s;
}

static void session_free(struct event_loop *loop, void *ctx)
{
    struct smtp_session *s = ctx;
    event_timer_cancel(loop, &s->timer);
    event_timer_cancel(loop, &s->connect_timer);
    smtp_cache_remove(s);
    if (s->fd >= 0) {
        event_fd_del(loop, s->fd);
        close(s->fd);
    }
    conn_destroy(&s->conn);
    smtp_reply_parser_destroy(&s->parser);
    free(s->cache_key_pending);
    free(s->host);
    free(s->relay);
    free(s->label);
    free(s->tx_rcpts);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        session_list = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
    session_total--;
    smtp_update_session_count();
}

/* Detaches from the delivery (if any) without telling it. */
struct smtp_delivery *smtp_session_detach(struct smtp_session *s)
{
    struct smtp_delivery *d = s->delivery;
    s->delivery = NULL;
    if (d != NULL && d->session == s)
        d->session = NULL;
    return d;
}

/* Closes now; the memory goes after this round. */
void smtp_session_close(struct smtp_session *s)
{
    if (s->state == SMTP_ST_DEAD)
        return;
    smtp_session_set_state(s, SMTP_ST_DEAD);
    event_timer_cancel(s->loop, &s->connect_timer);
    smtp_cache_remove(s);
    if (s->conn != NULL && !s->conn->closed)
        conn_pause_input(s->conn, 1);
    event_defer(s->loop, session_free, s);
}

int smtp_session_count(void)
{
    return session_total;
}

/* ---- failures ---- */

/* A failure of the session while it works for a delivery. polite: the
   conversation is in step (no reply outstanding), so QUIT is sent;
   otherwise the connection is just closed. */
void smtp_session_fail(struct smtp_session *s, int permanent, const char *dsn, int polite,
                       const char *fmt, ...)
{
    struct smtp_delivery *d = smtp_session_detach(s);
    int reached = s->conn != NULL;
    int stale = s->reused;
    s->reusable = 0;
    if (polite && reached && !s->conn->closed && !stale)
        smtp_session_quit(s);
    else
        smtp_session_close(s);
    if (d == NULL)
        return;
    if (stale) {
        if (log_verbose)
            msg_debug("%s: cached session to %s is dead", d->queue_id, s->relay);
        smtp_delivery_session_stale(d);
        return;
    }
    struct buf reason;
    buf_init(&reason, 0);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&reason, fmt, ap);
    va_end(ap);
    if (s->tx_started) {
        /* Recipients were decided by this server: the others of the
           transaction share its fate, no other host is tried. */
        for (size_t k = 0; k < s->tx_count; k++)
            smtp_rcpt_result(d, s->tx_rcpts[k],
                             permanent ? SMTP_STATUS_BOUNCED : SMTP_STATUS_DEFERRED, dsn, "%s",
                             reason.data);
        smtp_delivery_transaction_done(d);
    } else {
        smtp_delivery_host_failed(d, permanent, 0, dsn, reached ? s->relay : NULL, reason.data);
    }
    buf_free(&reason);
}

/* ---- connect ---- */

static void connect_failed(struct smtp_session *s, int err)
{
    event_timer_cancel(s->loop, &s->connect_timer);
    smtp_session_fail(s, 0, "4.4.1", 0, "connect to %s: %s", s->relay, strerror(err));
}

static void connect_timeout(struct event_loop *loop, void *ctx)
{
    struct smtp_session *s = ctx;
    s->connect_timer = NULL;
    connect_failed(s, s->connect_errno != 0 ? s->connect_errno : ETIMEDOUT);
}

static void session_conn_event(struct conn *conn, enum conn_event event, void *ctx);

static void connect_ready(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct smtp_session *s = ctx;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    event_fd_del(loop, fd);
    if (err != 0) {
        connect_failed(s, err);
        return;
    }
    event_timer_cancel(loop, &s->connect_timer);
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0) {
        connect_failed(s, errno);
        return;
    }
    s->fd = -1;
    s->conn = conn_create(loop, fd, (struct sockaddr *)&peer, peer_len, SMTP_IN_MAX,
                          SMTP_OUT_LIMIT, session_conn_event, s);
    smtp_session_set_state(s, SMTP_ST_GREETING);
}

struct smtp_session *smtp_session_connect(struct smtp_delivery *d, const struct smtp_target *t,
                                          int no_tls)
{
    struct smtp_session *s = session_new(d->loop);
    s->delivery = d;
    s->host = xstrdup(t->host);
    snprintf(s->addr, sizeof(s->addr), "%s", t->addr_text);
    s->port = t->port;
    s->no_tls = no_tls;
    s->relay = xasprintf("%s[%s]:%d", t->host, t->addr_text, t->port);
    s->label = xasprintf("%s[%s]", t->host, t->addr_text);
    d->session = s;

    socklen_t len = t->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    if (fd < 0) {
        err = errno;
    } else if (t->addr.ss_family == AF_INET && smtp_var.bind_set) {
        struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr = smtp_var.bind_addr};
        if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0)
            err = errno;
    }
    if (err == 0 && connect(fd, (const struct sockaddr *)&t->addr, len) < 0 &&
        errno != EINPROGRESS)
        err = errno;
    if (err == 0 && event_fd_add(d->loop, fd, EVENT_WRITE, connect_ready, s) < 0)
        err = errno;
    if (err != 0) {
        if (fd >= 0)
            close(fd);
        /* Reported from the loop: the caller is still setting up. */
        s->connect_errno = err;
        s->connect_timer = event_timer_add(d->loop, 0, connect_timeout, s);
        return s;
    }
    s->fd = fd;
    s->connect_timer = event_timer_add(d->loop, smtp_var.connect_ms, connect_timeout, s);
    return s;
}

static int expects_reply(enum smtp_state state)
{
    switch (state) {
    case SMTP_ST_GREETING:
    case SMTP_ST_EHLO:
    case SMTP_ST_HELO:
    case SMTP_ST_STARTTLS:
    case SMTP_ST_MAIL:
    case SMTP_ST_RCPT:
    case SMTP_ST_DATA:
    case SMTP_ST_BODY:
    case SMTP_ST_DOT:
    case SMTP_ST_RSET:
    case SMTP_ST_QUIT:
    case SMTP_ST_READY:
        return 1;
    default:
        return 0;
    }
}

static void session_input(struct smtp_session *s)
{
    struct conn *conn = s->conn;
    if (s->state == SMTP_ST_CACHED) {
        /* Idle sessions have nothing to hear: probably a 421 timeout. */
        if (log_verbose)
            msg_debug("%s: cached session got input; closing", s->relay);
        buf_reset(&conn->in);
        smtp_session_close(s);
        return;
    }
    while (s->state != SMTP_ST_DEAD && !conn->closed && expects_reply(s->state) &&
           conn->in.len > 0) {
        const struct smtp_reply *reply = NULL;
        enum smtp_reply_error err;
        enum smtp_reply_status st = smtp_reply_parser_next(s->parser, &conn->in, &reply, &err);
        if (st == SMTP_REPLY_NEED_MORE)
            break;
        if (st == SMTP_REPLY_ERROR) {
            buf_reset(&conn->in);
            smtp_session_fail(s, 0, "4.5.0", 0, "host %s sent malformed reply while %s (%s)",
                              s->label, smtp_session_phase(s->state), smtp_reply_error_text(err));
            return;
        }
        smtp_proto_reply(s, reply);
    }
    if (s->state == SMTP_ST_DEAD || s->state == SMTP_ST_TLS)
        return;
    if (!conn->closed)
        conn_update(conn);
}

static void session_conn_event(struct conn *conn, enum conn_event event, void *ctx)
{
    struct smtp_session *s = ctx;
    if (s->state == SMTP_ST_DEAD)
        return;
    switch (event) {
    case CONN_EVENT_INPUT:
        session_input(s);
        break;
    case CONN_EVENT_TLS_READY:
        if (s->state == SMTP_ST_TLS)
            smtp_proto_tls_ready(s);
        break;
    case CONN_EVENT_CLOSED:
        if (s->state == SMTP_ST_TLS) {
            smtp_proto_tls_failed(s);
        } else if (s->delivery == NULL) {
            smtp_session_close(s);   /* cached, RSET or QUIT: nothing to report */
        } else {
            smtp_session_fail(s, 0, "4.4.2", 0, "lost connection with %s while %s", s->label,
                              smtp_session_phase(s->state));
        }
        break;
    }
}

static void session_timeout(struct event_loop *loop, void *ctx)
{
    struct smtp_session *s = ctx;
    s->timer = NULL;
    if (s->state == SMTP_ST_BODY) {
        /* smtp_data_xfer_timeout counts from the last progress. */
        long long idle = event_now_ms(loop) - s->progress_ms;
        if (idle < smtp_var.data_xfer_ms) {
            s->timer = event_timer_add(loop, smtp_var.data_xfer_ms - idle, session_timeout, s);
            return;
        }
    }
    switch (s->state) {
    case SMTP_ST_CACHED:
        smtp_cache_remove(s);
        smtp_session_quit(s);
        break;
    case SMTP_ST_QUIT:
    case SMTP_ST_RSET:
        smtp_session_close(s);
        break;
    default:
        if (s->delivery == NULL) {
            smtp_session_close(s);
            break;
        }
        smtp_session_fail(s, 0, "4.4.2", 0, "conversation with %s timed out while %s", s->label,
                          smtp_session_phase(s->state));
        break;
    }
}

/* ---- transactions ---- */

void smtp_session_attach(struct smtp_session *s, struct smtp_delivery *d)
{
    s->delivery = d;
    d->session = s;
    s->reused = 1;
    event_timer_cancel(s->loop, &s->timer);
    smtp_session_set_state(s, SMTP_ST_READY);
    conn_pause_input(s->conn, 0);
}

void smtp_session_quit(struct smtp_session *s)
{
    smtp_cache_remove(s);
    if (s->conn == NULL || s->conn->closed) {
        smtp_session_close(s);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_QUIT);
    smtp_session_send(s, "QUIT");
}

void smtp_session_release(struct smtp_session *s)
{
    struct smtp_delivery *d = smtp_session_detach(s);
    if (s->state != SMTP_ST_READY) {
        smtp_session_close(s);
        return;
    }
    int cache = s->reusable && smtp_var.cache_ms > 0 && !smtp_var.draining &&
                (smtp_var.reuse_limit <= 0 || s->transactions < smtp_var.reuse_limit) &&
                d != NULL && d->cache_key != NULL;
    if (!cache) {
        smtp_session_quit(s);
        return;
    }
    free(s->cache_key_pending);
    s->cache_key_pending = xstrdup(d->cache_key);
    if (s->needs_rset) {
        smtp_session_set_state(s, SMTP_ST_RSET);
        smtp_session_send(s, "RSET");
        return;
    }
    smtp_session_set_state(s, SMTP_ST_CACHED);
    if (smtp_cache_put(s, s->cache_key_pending) < 0)
        smtp_session_quit(s);
}

void smtp_session_abort(struct smtp_session *s)
{
    smtp_session_detach(s);
    smtp_session_close(s);
}

void smtp_session_stop_all(void)
{
    for (struct smtp_session *s = session_list; s != NULL; s = s->next) {
        if (s->state != SMTP_ST_CACHED)
            continue;
        smtp_session_quit(s);
        if (s->conn != NULL && !s->conn->closed)
            conn_flush(s->conn);
    }
}

/* ---- before sleep: message bodies and output ---- */

static void wake(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
}

static void body_failed(struct smtp_session *s, int err)
{
    /* The server must not get a truncated message followed by ".":
       closing without it makes the server drop the transaction. */
    struct smtp_delivery *d = s->delivery;
    if (d != NULL)
        msg_warn("%s: cannot read queue file %s: %s", d->queue_id, d->path, strerror(err));
    s->tx_started = 1;
    smtp_session_fail(s, 0, "4.3.0", 0, "error reading queue file: %s", strerror(err));
}

static void session_pump(struct smtp_session *s)
{
    struct conn *conn = s->conn;
    int rc = 0;
    for (int turn = 0; turn < SMTP_PUMP_TURNS; turn++) {
        if (s->state == SMTP_ST_BODY && !s->body.finished && conn->out.len < SMTP_OUT_FILL) {
            if (smtp_body_fill(&s->body, &conn->out, SMTP_OUT_FILL) < 0) {
                body_failed(s, errno);
                return;
            }
            if (s->body.finished)
                smtp_session_set_state(s, SMTP_ST_DOT);
        }
        size_t before = conn->out.len;
        rc = conn_flush(conn);
        if (conn->out.len < before)
            s->progress_ms = event_now_ms(s->loop);
        if (rc != 0 || s->state != SMTP_ST_BODY)
            break;
    }
    if (rc == 0 && s->state == SMTP_ST_BODY)
        event_defer(s->loop, wake, NULL);   /* more to send: do not sleep */
}

void smtp_session_before_sleep(void)
{
    for (struct smtp_session *s = session_list; s != NULL; s = s->next) {
        if (s->state == SMTP_ST_DEAD || s->conn == NULL || s->conn->closed)
            continue;
        if (s->state == SMTP_ST_BODY) {
            /* Progress made by writable events since the last round. */
            if (s->conn->out.len < s->last_out_len)
                s->progress_ms = event_now_ms(s->loop);
            session_pump(s);
            if (s->state != SMTP_ST_DEAD && s->conn != NULL)
                s->last_out_len = s->conn->out.len;
        } else if (s->conn->out.len > 0) {
            conn_flush(s->conn);
        }
    }
}
