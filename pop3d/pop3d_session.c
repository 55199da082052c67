/*
 * NAME
 *	pop3d_session - POP3 sessions: life cycle, state machine, I/O
 * DESCRIPTION
 *	One process serves many sessions in one event loop. Each session
 *	reads and writes through a lib/conn.h connection (plain, STLS or
 *	POP3S), cuts its input into commands with the pure parser
 *	(lib/pop3_command.c) and queues replies in conn->out; the
 *	before-sleep hook flushes them, so the replies to pipelined
 *	commands (RFC 2449 PIPELINING) leave in one write.
 *
 *	RETR and TOP do not build the message in memory: the before-sleep
 *	hook converts the next chunk of the file whenever conn->out has
 *	drained below POP3D_OUT_FILL, and commands pipelined behind them
 *	wait until the message is out. A session is freed through
 *	event_defer(), never inside its own callback.
 *
 *	States (pop3d.h): TLS -> AUTHORIZATION <-> SASL / AUTH_DELAY ->
 *	TRANSACTION -> UPDATE -> CLOSING. Only pop3d_set_state() changes
 *	the state (logged with -v).
 * LIMITS
 *	pop3d_session_limit sessions per process ("-ERR [SYS/TEMP] Server
 *	busy" beyond; POP3S clients are just closed); pop3d_timeout idle
 *	time; pop3d_error_limit bad commands; input POP3D_IN_MAX bytes
 *	buffered; reading pauses while more than POP3D_OUT_MAX bytes of
 *	output wait; SASL responses up to POP3D_SASL_MAX bytes.
 * DIAGNOSTICS
 *	"login: user=<x>, method=PLAIN, rip=ADDR, tls=yes|no",
 *	"auth failed: user=<x>, rip=ADDR",
 *	"disconnect: user=<x> top=N retr=N/BYTES del=N/N size=N",
 *	"disconnect: user=<>, rip=ADDR" for sessions that never logged in,
 *	"timeout: rip=ADDR", "too many errors: rip=ADDR".
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "pop3d.h"
#include "server.h"
#include "tls.h"
#include "xalloc.h"

#define POP3D_IN_MAX   (16 * 1024)
#define POP3D_OUT_MAX  (256 * 1024)
#define POP3D_OUT_FILL (64 * 1024)
/* An emptied output buffer larger than this is given back (see
   session_pump); RETR/TOP streaming stays below it. */
#define POP3D_OUT_KEEP (4 * POP3D_OUT_FILL)
#define POP3D_SASL_MAX 8192
/* Fill/flush turns per session and loop round, so one fast reader of a
   big message cannot starve the other sessions. */
#define POP3D_PUMP_TURNS 16

static struct pop3d_session *session_list;
static int session_count;

static const char *const state_names[] = {
    "TLS", "AUTHORIZATION", "SASL", "AUTH_CHECK", "AUTH_DELAY", "TRANSACTION", "UPDATE",
    "CLOSING",
};

static void session_process(struct pop3d_session *s);

void pop3d_set_state(struct pop3d_session *s, enum pop3d_state state)
{
    if (s->state == state)
        return;
    if (log_verbose)
        msg_debug("%s: state %s -> %s", s->addr, state_names[s->state], state_names[state]);
    s->state = state;
}

int pop3d_tls_active(const struct pop3d_session *s)
{
    return s->conn->tls_ready;
}

/* ---- output ---- */

static void reply_v(struct pop3d_session *s, const char *prefix, const char *fmt, va_list ap)
{
    if (s->freed || s->conn->closed)
        return;
    struct buf *out = &s->conn->out;
    size_t start = out->len;
    buf_append_str(out, prefix);
    buf_vprintf(out, fmt, ap);
    if (log_verbose)
        msg_debug("> %s: %.*s", s->addr, (int)(out->len - start), out->data + start);
    buf_append(out, "\r\n", 2);
}

void pop3d_reply(struct pop3d_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_v(s, "", fmt, ap);
    va_end(ap);
}

void pop3d_reply_error(struct pop3d_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_v(s, "-ERR ", fmt, ap);
    va_end(ap);
    s->errors++;
}

/* ---- life cycle ---- */

static void session_free(struct event_loop *loop, void *ctx)
{
    struct pop3d_session *s = ctx;
    pop3d_mailbox_stream_stop(s);
    if (s->login != NULL)
        msg_info("disconnect: user=<%s> top=%u retr=%u/%llu del=%u/%zu size=%llu", s->login,
                 s->top_count, s->retr_count, (unsigned long long)s->retr_bytes, s->del_count,
                 s->msg_count, (unsigned long long)s->total_size);
    else
        msg_info("disconnect: user=<>, rip=%s", s->addr);
    auth_check_cancel(&s->auth);
    /* A session that did not reach UPDATE changes nothing (RFC 1939 6). */
    pop3d_mailbox_close(s);
    event_timer_cancel(loop, &s->idle_timer);
    event_timer_cancel(loop, &s->delay_timer);
    conn_destroy(&s->conn);
    pop3_command_parser_destroy(&s->parser);
    free(s->delayed_reply);
    free(s->user);
    free(s->sasl_user);
    free(s->auth_user);
    free(s->login);
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

static void session_schedule_free(struct pop3d_session *s)
{
    if (s->freed)
        return;
    s->freed = 1;
    event_timer_cancel(s->loop, &s->idle_timer);
    event_timer_cancel(s->loop, &s->delay_timer);
    if (!s->conn->closed)
        conn_pause_input(s->conn, 1);
    event_defer(s->loop, session_free, s);
}

void pop3d_close(struct pop3d_session *s)
{
    pop3d_set_state(s, POP3D_STATE_CLOSING);
    pop3d_mailbox_stream_stop(s);
    event_timer_cancel(s->loop, &s->delay_timer);
    if (!s->conn->closed)
        conn_pause_input(s->conn, 1);
}

/* ---- timers ---- */

static void idle_timeout(struct event_loop *loop, void *ctx)
{
    struct pop3d_session *s = ctx;
    s->idle_timer = NULL;
    if (s->state == POP3D_STATE_CLOSING) {
        /* The client does not read our last reply: give up on it. */
        session_schedule_free(s);
        return;
    }
    msg_info("timeout: rip=%s", s->addr);
    if (s->state != POP3D_STATE_TLS)
        pop3d_reply(s, "-ERR Disconnected for inactivity.");
    pop3d_close(s);
    s->idle_timer = event_timer_add(loop, pop3d_var.timeout_ms, idle_timeout, s);
}

static void idle_restart(struct pop3d_session *s)
{
    if (s->freed)
        return;
    event_timer_cancel(s->loop, &s->idle_timer);
    s->idle_timer = event_timer_add(s->loop, pop3d_var.timeout_ms, idle_timeout, s);
}

static void delay_done(struct event_loop *loop, void *ctx)
{
    struct pop3d_session *s = ctx;
    s->delay_timer = NULL;
    if (s->delayed_reply != NULL) {
        pop3d_reply(s, "%s", s->delayed_reply);
        xfree(&s->delayed_reply);
    }
    if (s->state == POP3D_STATE_AUTH_DELAY)
        pop3d_set_state(s, POP3D_STATE_AUTHORIZATION);
    conn_pause_input(s->conn, 0);
    idle_restart(s);
    session_process(s);
}

void pop3d_resume(struct pop3d_session *s)
{
    if (s->freed || s->conn->closed)
        return;
    conn_pause_input(s->conn, 0);
    idle_restart(s);
    session_process(s);
}

void pop3d_delay_reply(struct pop3d_session *s, long long msec, const char *reply)
{
    if (msec <= 0) {
        pop3d_reply(s, "%s", reply);
        return;
    }
    free(s->delayed_reply);
    s->delayed_reply = xstrdup(reply);
    pop3d_set_state(s, POP3D_STATE_AUTH_DELAY);
    conn_pause_input(s->conn, 1);
    /* The client waits for us now, so no idle timeout meanwhile. */
    event_timer_cancel(s->loop, &s->idle_timer);
    event_timer_cancel(s->loop, &s->delay_timer);
    s->delay_timer = event_timer_add(s->loop, msec, delay_done, s);
}

/* ---- TLS ---- */

void pop3d_start_tls(struct pop3d_session *s)
{
    pop3d_set_state(s, POP3D_STATE_TLS);
    /* Anything pipelined behind STLS was sent in the clear: conn drops
       it, and the parser must not keep skipping into the TLS stream. */
    pop3_command_parser_reset(s->parser);
    xfree(&s->user);
    if (conn_start_tls(s->conn, pop3d_var.tls_ctx) < 0)
        msg_info("cannot start TLS for %s", s->addr);
}

/* ---- input ---- */

static int processable(const struct pop3d_session *s)
{
    return s->state == POP3D_STATE_AUTHORIZATION || s->state == POP3D_STATE_TRANSACTION ||
           s->state == POP3D_STATE_SASL;
}

/* Handles complete lines while the session can take commands: not
   while a message is being sent, nor while too much output waits. */
static void session_process(struct pop3d_session *s)
{
    while (!s->freed && !s->conn->closed && processable(s) && s->stream.fd < 0 &&
           s->conn->out.len < POP3D_OUT_FILL) {
        enum pop3_command_error err;
        if (s->state == POP3D_STATE_SASL) {
            char *line;
            size_t len;
            enum pop3_command_status st = pop3_command_parser_next_line(
                s->parser, &s->conn->in, POP3D_SASL_MAX, &line, &len, &err);
            if (st == POP3_COMMAND_NEED_MORE)
                break;
            if (st == POP3_COMMAND_ERROR) {
                pop3d_set_state(s, POP3D_STATE_AUTHORIZATION);
                xfree(&s->sasl_user);
                pop3d_reply_error(s, "%s", pop3_command_error_reply(err) + 5);
            } else {
                pop3d_sasl_response(s, line, len);
                explicit_bzero(line, len);
                free(line);
            }
        } else {
            struct pop3_command cmd;
            enum pop3_command_status st = pop3_command_parser_next(s->parser, &s->conn->in,
                                                                   &cmd, &err);
            if (st == POP3_COMMAND_NEED_MORE)
                break;
            if (st == POP3_COMMAND_ERROR) {
                pop3d_reply_error(s, "%s", pop3_command_error_reply(err) + 5);
            } else {
                if (log_verbose)
                    msg_debug("< %s: %s%s", s->addr, cmd.name,
                              cmd.verb == POP3_VERB_PASS || cmd.verb == POP3_VERB_AUTH
                                  ? " ..." : "");
                pop3d_command_dispatch(s, &cmd);
                pop3_command_clear(&cmd);
            }
        }
        if (s->errors >= pop3d_var.error_limit && s->state != POP3D_STATE_CLOSING) {
            msg_info("too many errors: rip=%s", s->addr);
            pop3d_close(s);
        }
    }
    if (!s->freed && !s->conn->closed)
        conn_update(s->conn);
}

static void session_conn_event(struct conn *conn, enum conn_event event, void *ctx)
{
    struct pop3d_session *s = ctx;
    if (s->freed)
        return;
    switch (event) {
    case CONN_EVENT_INPUT:
        if (s->state == POP3D_STATE_CLOSING || s->state == POP3D_STATE_TLS) {
            /* Nothing more is read from a closing session. */
            buf_reset(&conn->in);
            break;
        }
        idle_restart(s);
        session_process(s);
        break;
    case CONN_EVENT_CLOSED:
        /* A dropped connection changes nothing in the mailbox. */
        pop3d_mailbox_stream_stop(s);
        session_schedule_free(s);
        break;
    case CONN_EVENT_TLS_READY:
        if (s->state != POP3D_STATE_TLS)
            break;
        if (log_verbose) {
            char text[200];
            tls_describe(conn->ssl, text, sizeof(text));
            msg_debug("%s: TLS established: %s", s->addr, text);
        }
        pop3d_set_state(s, POP3D_STATE_AUTHORIZATION);
        pop3_command_parser_reset(s->parser);
        if (!s->greeted) {
            pop3d_reply(s, "+OK Postern POP3 ready.");
            s->greeted = 1;
        }
        idle_restart(s);
        session_process(s);
        break;
    }
}

/* ---- before sleep: streams, flushing, closing ---- */

static void wake(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
}

static void session_pump(struct pop3d_session *s)
{
    int rc = 0;
    for (int turn = 0; turn < POP3D_PUMP_TURNS; turn++) {
        if (s->stream.fd >= 0) {
            size_t before = s->conn->out.len;
            int r = pop3d_mailbox_stream_fill(s, POP3D_OUT_FILL);
            if (r < 0) {
                /* Half a message was sent after +OK: only a close
                   tells the client it is incomplete. */
                pop3d_mailbox_stream_stop(s);
                buf_reset(&s->conn->in);
                session_schedule_free(s);
                return;
            }
            if (r == 0) {
                pop3d_mailbox_stream_stop(s);
                idle_restart(s);
                session_process(s);
            } else if (s->conn->out.len > before) {
                /* The client is reading: a long download is not idle. */
                idle_restart(s);
            }
        } else if (processable(s) && s->conn->in.len > 0) {
            session_process(s);
        }
        rc = conn_flush(s->conn);
        if (s->freed)
            return;
        if (rc != 0)
            break;
        /* LIST and UIDL of a big mailbox queue the whole listing: do not
           keep a buffer that size for the rest of the session. */
        if (s->conn->out.len == 0 && s->conn->out.size > POP3D_OUT_KEEP) {
            buf_free(&s->conn->out);
            malloc_trim(0);
        }
        /* All written: go on only when something more can be produced. */
        if (s->stream.fd < 0 &&
            !(processable(s) && s->conn->in.len > 0 && memchr(s->conn->in.data, '\n',
                                                              s->conn->in.len) != NULL))
            break;
    }
    if (rc == 0 && s->stream.fd >= 0)
        event_defer(s->loop, wake, NULL);   /* more to send: no sleeping */
    if (s->state == POP3D_STATE_CLOSING && (rc < 0 || s->conn->out.len == 0))
        session_schedule_free(s);
}

static void before_sleep(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
    for (struct pop3d_session *s = session_list; s != NULL; s = s->next) {
        if (s->freed || s->conn->closed)
            continue;
        /* Most sessions wait for their client: nothing to do. */
        if (s->conn->out.len == 0 && s->conn->in.len == 0 && s->stream.fd < 0 &&
            s->state != POP3D_STATE_CLOSING)
            continue;
        session_pump(s);
    }
}

void pop3d_session_init(struct event_loop *loop)
{
    event_before_sleep(loop, before_sleep, NULL);
}

/* ---- accept ---- */

void pop3d_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len)
{
    if (session_count >= pop3d_var.session_limit) {
        msg_warn("session limit %lld reached: refusing a client", pop3d_var.session_limit);
        server_refuse(fd, pop3d_var.wrappermode ? NULL : "-ERR [SYS/TEMP] Server busy, try again later.");
        return;
    }
    if (pop3d_var.wrappermode && pop3d_var.tls_ctx == NULL) {
        server_refuse(fd, NULL);
        return;
    }
    struct pop3d_session *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->stream.fd = -1;
    s->conn = conn_create(loop, fd, peer, peer_len, POP3D_IN_MAX, POP3D_OUT_MAX,
                          session_conn_event, s);
    /* UNIX sockets (tests with -s /path) are local clients. */
    snprintf(s->addr, sizeof(s->addr), "%s",
             strcmp(s->conn->addr, "local") == 0 ? "127.0.0.1" : s->conn->addr);
    struct pop3_command_limits limits;
    pop3_command_limits_default(&limits);
    s->parser = pop3_command_parser_create(&limits);
    s->next = session_list;
    if (session_list)
        session_list->prev = s;
    session_list = s;
    session_count++;
    server_session_count(session_count);
    if (log_verbose)
        msg_debug("connect from %s", s->addr);
    idle_restart(s);
    if (pop3d_var.wrappermode) {
        s->state = POP3D_STATE_TLS;
        if (conn_start_tls(s->conn, pop3d_var.tls_ctx) < 0)
            session_schedule_free(s);
        return;
    }
    s->state = POP3D_STATE_AUTHORIZATION;
    s->greeted = 1;
    pop3d_reply(s, "+OK Postern POP3 ready.");
}

/* SIGTERM (exit follows) or SIGHUP (drain): push out what is queued. */
void pop3d_session_stop_all(struct event_loop *loop)
{
    (void)loop;
    for (struct pop3d_session *s = session_list; s != NULL; s = s->next)
        if (!s->freed && !s->conn->closed)
            conn_flush(s->conn);
}
