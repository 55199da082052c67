/*
 * NAME
 *	imapd_session - IMAP sessions: life cycle, state machine, input, output
 * DESCRIPTION
 *	One process serves many sessions in one event loop. Each session
 *	reads and writes through a lib/conn.h connection (plain, STARTTLS
 *	or IMAPS) and feeds its input to the resumable command parser
 *	(lib/imap_parser.h), whose results are turned into work here:
 *	commands go to the dispatcher (imapd_commands.c), a synchronizing
 *	literal gets "+ Ready for literal data", the APPEND message streams
 *	into imapd_copy.c, and raw lines (AUTHENTICATE responses, IDLE's
 *	DONE) are read in the SASL state and while idling. Replies are
 *	queued in conn->out; the before-sleep hook flushes them, so the
 *	replies to pipelined commands leave in one write.
 *
 *	Commands that produce much output (FETCH of a large range) run in
 *	rounds (imapd_begin_resumable): the before-sleep hook calls them
 *	again whenever conn->out has drained below IMAPD_OUTPUT_LOW, and
 *	the commands pipelined behind them wait unparsed in conn->in.
 *	A session is freed through event_defer(), never inside its own
 *	callback, and everything it holds is released in session_free().
 *
 *	States (imapd.h): TLS (IMAPS, or after STARTTLS) -> NOT_AUTH <->
 *	SASL / AUTH_CHECK / AUTH_DELAY -> AUTH <-> SELECTED -> LOGOUT.
 *	Only imapd_set_state() changes the state (logged with -v).
 * LIMITS
 *	imapd_session_limit sessions per process ("* BYE [UNAVAILABLE]
 *	Server busy" beyond; IMAPS clients are just closed); imapd_timeout
 *	between commands and for a literal that never comes ("* BYE
 *	Autologout; idle for too long"), imapd_idle_timeout during IDLE;
 *	imapd_error_limit BAD replies ("* BYE Too many invalid commands");
 *	IMAPD_IN_MAX bytes of input buffered (the parser bounds a command,
 *	see lib/imap_parser.h; max_append is message_size_limit); reading
 *	pauses while more than IMAPD_OUT_MAX bytes of output wait; SASL
 *	responses up to IMAPD_SASL_MAX bytes, lines while idling up to
 *	IMAPD_IDLE_LINE_MAX.
 * DIAGNOSTICS
 *	"disconnect: user=<x>, rip=ADDR, fetch=N/BYTES, append=N, expunge=N",
 *	"disconnect: user=<>, rip=ADDR" for sessions that never logged in,
 *	"timeout: user=<x>, rip=ADDR", "too many errors: rip=ADDR",
 *	"session limit N reached: refusing a client" (warning).
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "imapd.h"
#include "log.h"
#include "server.h"
#include "tls.h"
#include "xalloc.h"

/* A command's text is collected inside the parser, so the connection
   only needs room for one read's worth of pipelined input. */
#define IMAPD_IN_MAX (64 * 1024)
#define IMAPD_OUT_MAX (4 * IMAPD_OUTPUT_LOW)
/* An emptied output buffer larger than this is given back. */
#define IMAPD_OUT_KEEP (2 * IMAPD_OUTPUT_LOW)
#define IMAPD_SASL_MAX 8192
#define IMAPD_IDLE_LINE_MAX 1024
/* Resume/flush turns per session and loop round, so one fast reader of
   a big FETCH cannot starve the other sessions. */
#define IMAPD_PUMP_TURNS 16
/* Replies longer than this are cut in the -v log. */
#define IMAPD_LOG_REPLY_MAX 300

static struct imapd_session *session_list;
static int session_count;

static const char *const state_names[] = {
    "TLS", "NOT_AUTH", "SASL", "AUTH_CHECK", "AUTH_DELAY", "AUTH", "SELECTED", "LOGOUT",
};

static void session_process(struct imapd_session *s);
static void idle_restart(struct imapd_session *s);

void imapd_set_state(struct imapd_session *s, enum imapd_state state)
{
    if (s->state == state)
        return;
    if (log_verbose)
        msg_debug("%s: state %s -> %s", s->addr, state_names[s->state], state_names[state]);
    s->state = state;
}

int imapd_tls_active(const struct imapd_session *s)
{
    return s->conn->tls_ready;
}

struct buf *imapd_out(struct imapd_session *s)
{
    return &s->conn->out;
}

/* ---- output ---- */

static int output_closed(const struct imapd_session *s)
{
    /* After the BYE nothing more may follow it. */
    return s->freed || s->conn->closed || s->state == IMAPD_STATE_LOGOUT;
}

static void log_reply(const struct imapd_session *s, size_t start)
{
    const struct buf *out = &s->conn->out;
    size_t len = out->len - start;
    msg_debug("> %s: %.*s%s", s->addr, (int)(len > IMAPD_LOG_REPLY_MAX ? IMAPD_LOG_REPLY_MAX : len),
              out->data + start, len > IMAPD_LOG_REPLY_MAX ? "..." : "");
}

static void reply_v(struct imapd_session *s, const char *prefix, const char *fmt, va_list ap)
{
    if (output_closed(s))
        return;
    struct buf *out = &s->conn->out;
    size_t start = out->len;
    buf_append_str(out, prefix);
    buf_vprintf(out, fmt, ap);
    if (log_verbose)
        log_reply(s, start);
    buf_append(out, "\r\n", 2);
}

/* A line as it is: continuation requests, delayed replies. */
static void reply_line(struct imapd_session *s, const char *line)
{
    if (output_closed(s))
        return;
    struct buf *out = &s->conn->out;
    size_t start = out->len;
    buf_append_str(out, line);
    if (log_verbose)
        log_reply(s, start);
    buf_append(out, "\r\n", 2);
}

void imapd_untagged(struct imapd_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_v(s, "* ", fmt, ap);
    va_end(ap);
}

void imapd_tagged(struct imapd_session *s, const char *tag, const char *status,
                  const char *fmt, ...)
{
    if (output_closed(s))
        return;
    char prefix[IMAP_TAG_MAX + 16];
    snprintf(prefix, sizeof(prefix), "%s %s ", tag != NULL && *tag != '\0' ? tag : "*", status);
    va_list ap;
    va_start(ap, fmt);
    reply_v(s, prefix, fmt, ap);
    va_end(ap);
    if (strcmp(status, "BAD") == 0)
        s->errors++;
}

/* A parser error: "TAG BAD text", "* BAD text" or "TAG NO [...] text". */
static void reply_parse_error(struct imapd_session *s, const struct imap_parse_error *error)
{
    if (!error->no)
        s->errors++;
    if (output_closed(s))
        return;
    size_t start = s->conn->out.len;
    imap_parse_error_format(error, &s->conn->out);
    if (log_verbose && s->conn->out.len >= start + 2) {
        s->conn->out.len -= 2;   /* log without the CRLF */
        log_reply(s, start);
        s->conn->out.len += 2;
    }
}

/* ---- resumable commands ---- */

void imapd_begin_resumable(struct imapd_session *s, struct imap_command *cmd,
                           imapd_resume_fn *handler, void *state)
{
    if (s->resume != NULL)
        msg_panic("imapd_begin_resumable: %s while another command resumes",
                  imap_cmd_name(cmd->cmd));
    s->resume = handler;
    s->resume_cmd = cmd;
    s->resume_state = state;
    s->busy = IMAPD_BUSY_COMMAND;
}

/* The handler said DONE: it freed its state itself. */
static void resumable_end(struct imapd_session *s)
{
    imap_command_destroy(&s->resume_cmd);
    s->resume = NULL;
    s->resume_state = NULL;
    s->resume_free = NULL;
    if (s->busy == IMAPD_BUSY_COMMAND)
        s->busy = IMAPD_BUSY_NONE;
}

/* The session ends in the middle of the command. */
static void resumable_drop(struct imapd_session *s)
{
    if (s->resume == NULL)
        return;
    if (s->resume_state != NULL) {
        if (s->resume_free != NULL)
            s->resume_free(s->resume_state);
        else
            free(s->resume_state);
    }
    resumable_end(s);
}

/* ---- life cycle ---- */

static void session_free(struct event_loop *loop, void *ctx)
{
    struct imapd_session *s = ctx;
    if (s->busy == IMAPD_BUSY_APPEND || s->append != NULL)
        imapd_append_abort(s);
    if (s->busy == IMAPD_BUSY_IDLE || s->idle != NULL)
        imapd_idle_stop(s, 0);
    resumable_drop(s);
    s->busy = IMAPD_BUSY_NONE;
    /* Leaving without CLOSE expunges nothing (RFC 3501 6.4.2). */
    if (s->mbox != NULL)
        imapd_mailbox_unselect(s, 0);
    if (s->login != NULL)
        msg_info("disconnect: user=<%s>, rip=%s, fetch=%u/%llu, append=%u, expunge=%u",
                 s->login, s->addr, s->fetch_count, (unsigned long long)s->fetch_bytes,
                 s->append_count, s->expunge_count);
    else
        msg_info("disconnect: user=<>, rip=%s", s->addr);
    auth_check_cancel(&s->auth);
    event_timer_cancel(loop, &s->idle_timer);
    event_timer_cancel(loop, &s->delay_timer);
    conn_destroy(&s->conn);
    imap_parser_destroy(&s->parser);
    int had_login = s->login != NULL;
    free(s->delayed_reply);
    free(s->auth_user);
    free(s->login);
    free(s->maildir);
    if (s->prev)
        s->prev->next = s->next;
    else
        session_list = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    session_count--;
    server_session_count(session_count);
    /* A closed index and a big FETCH leave pages in the heap that would
       otherwise count as the remaining sessions' memory. */
    if (had_login)
        malloc_trim(0);
}

static void session_schedule_free(struct imapd_session *s)
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

/* The APPEND file, IDLE watch and a resumed command are released in
   session_free(): this may run inside their own callbacks. */
void imapd_close(struct imapd_session *s)
{
    imapd_set_state(s, IMAPD_STATE_LOGOUT);
    auth_check_cancel(&s->auth);
    event_timer_cancel(s->loop, &s->delay_timer);
    if (!s->conn->closed)
        conn_pause_input(s->conn, 1);
}

static void check_error_limit(struct imapd_session *s)
{
    if (s->freed || s->state == IMAPD_STATE_LOGOUT || s->errors < imapd_var.error_limit)
        return;
    msg_info("too many errors: rip=%s", s->addr);
    imapd_untagged(s, "BYE Too many invalid commands");
    imapd_close(s);
}

/* ---- timers ---- */

static void idle_timeout(struct event_loop *loop, void *ctx)
{
    struct imapd_session *s = ctx;
    s->idle_timer = NULL;
    if (s->state == IMAPD_STATE_LOGOUT || s->resume != NULL) {
        /* The client does not read what we sent: a BYE would not reach
           it (and must not land inside a FETCH literal). */
        if (s->state != IMAPD_STATE_LOGOUT)
            msg_info("timeout: user=<%s>, rip=%s, output not read", s->login ? s->login : "",
                     s->addr);
        session_schedule_free(s);
        return;
    }
    msg_info("timeout: user=<%s>, rip=%s%s", s->login ? s->login : "", s->addr,
             s->busy == IMAPD_BUSY_IDLE ? ", in IDLE" : "");
    if (s->state != IMAPD_STATE_TLS)
        imapd_untagged(s, "BYE Autologout; idle for too long");
    imapd_close(s);
    /* Time to write the BYE, then give up. */
    s->idle_timer = event_timer_add(loop, imapd_var.timeout_ms, idle_timeout, s);
}

static void idle_restart(struct imapd_session *s)
{
    if (s->freed || s->state == IMAPD_STATE_LOGOUT)
        return;
    event_timer_cancel(s->loop, &s->idle_timer);
    long long ms = s->busy == IMAPD_BUSY_IDLE ? imapd_var.idle_timeout_ms : imapd_var.timeout_ms;
    s->idle_timer = event_timer_add(s->loop, ms, idle_timeout, s);
}

static void delay_done(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct imapd_session *s = ctx;
    s->delay_timer = NULL;
    if (s->state == IMAPD_STATE_AUTH_DELAY)
        imapd_set_state(s, IMAPD_STATE_NOT_AUTH);
    if (s->delayed_reply != NULL) {
        reply_line(s, s->delayed_reply);
        xfree(&s->delayed_reply);
    }
    imapd_resume_input(s);
}

void imapd_resume_input(struct imapd_session *s)
{
    if (s->freed || s->conn->closed || s->state == IMAPD_STATE_LOGOUT)
        return;
    conn_pause_input(s->conn, 0);
    idle_restart(s);
    session_process(s);
}

void imapd_delay_reply(struct imapd_session *s, long long msec, const char *reply)
{
    if (msec <= 0) {
        reply_line(s, reply);
        return;
    }
    free(s->delayed_reply);
    s->delayed_reply = xstrdup(reply);
    imapd_set_state(s, IMAPD_STATE_AUTH_DELAY);
    conn_pause_input(s->conn, 1);
    /* The client waits for us now: no autologout meanwhile. */
    event_timer_cancel(s->loop, &s->idle_timer);
    event_timer_cancel(s->loop, &s->delay_timer);
    s->delay_timer = event_timer_add(s->loop, msec, delay_done, s);
}

/* ---- TLS ---- */

void imapd_start_tls(struct imapd_session *s)
{
    imapd_set_state(s, IMAPD_STATE_TLS);
    /* Whatever was pipelined behind STARTTLS came in the clear: it must
       not run after the handshake (conn_start_tls drops conn->in, the
       parser forgets what it already took). */
    imap_parser_reset(s->parser);
    buf_reset(&s->conn->in);
    if (conn_start_tls(s->conn, imapd_var.tls_ctx) < 0)
        msg_info("cannot start TLS for %s", s->addr);
}

/* ---- input ---- */

static int processable(const struct imapd_session *s)
{
    switch (s->state) {
    case IMAPD_STATE_NOT_AUTH:
    case IMAPD_STATE_SASL:
    case IMAPD_STATE_AUTH:
    case IMAPD_STATE_SELECTED:
        return s->busy != IMAPD_BUSY_COMMAND;
    default:
        return 0;
    }
}

/* Raw lines (not commands) are read in the SASL exchange and in IDLE. */
static int line_mode(const struct imapd_session *s)
{
    return s->state == IMAPD_STATE_SASL || s->busy == IMAPD_BUSY_IDLE;
}

/* 1 when session_process() can make progress with what is buffered. */
static int input_ready(const struct imapd_session *s)
{
    const struct buf *in = &s->conn->in;
    if (!processable(s) || in->len == 0)
        return 0;
    return !line_mode(s) || memchr(in->data, '\n', in->len) != NULL;
}

static void process_sasl(struct imapd_session *s, struct imap_parse_result *res,
                         enum imap_parse_status st)
{
    if (st == IMAP_PARSE_ERROR) {
        imapd_set_state(s, IMAPD_STATE_NOT_AUTH);
        imapd_tagged(s, s->sasl_tag, "BAD", "%s", res->error.text);
        return;
    }
    imapd_sasl_response(s, res->data, res->data_len);
    /* The response holds the password (base64 is no protection). */
    explicit_bzero((void *)(uintptr_t)res->data, res->data_len);
}

static void process_idle(struct imapd_session *s, struct imap_parse_result *res,
                         enum imap_parse_status st)
{
    char tag[IMAP_TAG_MAX + 1];
    snprintf(tag, sizeof(tag), "%s", s->idle_tag);
    int done = st == IMAP_PARSE_LINE && imap_line_is_done(res->data, res->data_len);
    imapd_idle_stop(s, done);
    s->busy = IMAPD_BUSY_NONE;
    /* Like Dovecot: anything else ends IDLE as an error. */
    if (!done)
        imapd_tagged(s, tag, "BAD", "Expected DONE");
    idle_restart(s);
}

/* The APPEND message literal was announced (res->command: the preview). */
static void process_append_literal(struct imapd_session *s, struct imap_command *preview)
{
    if (!imapd_command_check_state(s, preview))
        imap_parser_reject_literal(s->parser);
    else if (imapd_append_begin(s, preview) == 0) {
        s->busy = IMAPD_BUSY_APPEND;
        if (preview->u.append.sync)
            reply_line(s, "+ Ready for literal data");
    } else {
        imap_parser_reject_literal(s->parser);
    }
    imap_command_destroy(&preview);
}

/* Takes one parser result. Returns 0 when more input is needed. */
static int process_one(struct imapd_session *s)
{
    struct imap_parse_result res;
    enum imap_parse_status st;
    if (line_mode(s)) {
        st = imap_parser_next_line(s->parser, &s->conn->in,
                                   s->state == IMAPD_STATE_SASL ? IMAPD_SASL_MAX
                                                                : IMAPD_IDLE_LINE_MAX,
                                   &res);
        if (st == IMAP_PARSE_NEED_MORE)
            return 0;
        if (s->state == IMAPD_STATE_SASL)
            process_sasl(s, &res, st);
        else
            process_idle(s, &res, st);
        return 1;
    }
    st = imap_parser_next(s->parser, &s->conn->in, &res);
    switch (st) {
    case IMAP_PARSE_NEED_MORE:
        return 0;
    case IMAP_PARSE_COMMAND:
        if (s->busy == IMAPD_BUSY_APPEND) {
            imapd_append_finish(s, res.command);
            s->busy = IMAPD_BUSY_NONE;
        } else {
            imapd_command_dispatch(s, res.command);
            /* IDLE has its own, longer, autologout timer. */
            if (s->busy == IMAPD_BUSY_IDLE)
                idle_restart(s);
        }
        return 1;
    case IMAP_PARSE_ERROR:
        if (s->busy == IMAPD_BUSY_APPEND) {
            imapd_append_abort(s);
            s->busy = IMAPD_BUSY_NONE;
        }
        reply_parse_error(s, &res.error);
        return 1;
    case IMAP_PARSE_CONTINUE:
        reply_line(s, "+ Ready for literal data");
        return 1;
    case IMAP_PARSE_APPEND_LITERAL:
        process_append_literal(s, res.command);
        return 1;
    case IMAP_PARSE_LITERAL_DATA:
        if (s->busy != IMAPD_BUSY_APPEND)
            msg_panic("imapd: APPEND data without an accepted APPEND");
        imapd_append_data(s, res.data, res.data_len);
        return 1;
    case IMAP_PARSE_LINE:
        break;
    }
    msg_panic("imapd: unexpected parser result %d", (int)st);
}

/* Handles input while the session can take it: not while a command
   resumes, nor while too much output waits. */
static void session_process(struct imapd_session *s)
{
    while (!s->freed && !s->conn->closed && processable(s) &&
           s->conn->out.len < IMAPD_OUTPUT_LOW) {
        int more = process_one(s);
        check_error_limit(s);
        if (!more)
            break;
    }
    if (!s->freed && !s->conn->closed)
        conn_update(s->conn);
}

static void session_conn_event(struct conn *conn, enum conn_event event, void *ctx)
{
    struct imapd_session *s = ctx;
    if (s->freed)
        return;
    switch (event) {
    case CONN_EVENT_INPUT:
        if (s->state == IMAPD_STATE_LOGOUT || s->state == IMAPD_STATE_TLS) {
            /* Nothing more is read from a closing session. */
            buf_reset(&conn->in);
            break;
        }
        idle_restart(s);
        session_process(s);
        /* The client sent its last command and closed its side: let
           the replies go out before the CLOSED event frees us. */
        if (conn->read_eof && !s->freed && !conn->closed)
            conn_flush(conn);
        break;
    case CONN_EVENT_CLOSED:
        session_schedule_free(s);
        break;
    case CONN_EVENT_TLS_READY:
        if (s->state != IMAPD_STATE_TLS)
            break;
        if (log_verbose) {
            char text[200];
            tls_describe(conn->ssl, text, sizeof(text));
            msg_debug("%s: TLS established: %s", s->addr, text);
        }
        imapd_set_state(s, IMAPD_STATE_NOT_AUTH);
        imap_parser_reset(s->parser);
        if (!s->greeted) {
            imapd_untagged(s, "OK [CAPABILITY %s] Postern IMAP4rev1 ready",
                           imapd_capabilities(s));
            s->greeted = 1;
        }
        idle_restart(s);
        session_process(s);
        break;
    }
}

/* ---- before sleep: resumed commands, flushing, closing ---- */

static void wake(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
}

static void run_resumable(struct imapd_session *s)
{
    size_t before = s->conn->out.len;
    enum imapd_cmd_status st = s->resume(s);
    if (st == IMAPD_CMD_DONE) {
        resumable_end(s);
        check_error_limit(s);
        idle_restart(s);
        session_process(s);
    } else if (s->conn->out.len > before) {
        /* The client is reading: a long download is not idle. */
        idle_restart(s);
    }
}

static void session_pump(struct imapd_session *s)
{
    int rc = 0;
    for (int turn = 0; turn < IMAPD_PUMP_TURNS; turn++) {
        if (s->resume != NULL && s->state != IMAPD_STATE_LOGOUT) {
            if (s->conn->out.len < IMAPD_OUTPUT_LOW)
                run_resumable(s);
        } else if (input_ready(s)) {
            session_process(s);
        }
        rc = conn_flush(s->conn);
        if (s->freed)
            return;
        if (rc != 0)
            break;
        /* A big FETCH or LIST needed a big buffer once: do not keep it
           for the rest of the session. */
        if (s->conn->out.len == 0 && s->conn->out.size > IMAPD_OUT_KEEP)
            buf_free(&s->conn->out);
        /* All written: go on only when something more can be produced. */
        if ((s->resume == NULL || s->state == IMAPD_STATE_LOGOUT) && !input_ready(s))
            break;
    }
    if (rc == 0 && s->resume != NULL && s->state != IMAPD_STATE_LOGOUT)
        event_defer(s->loop, wake, NULL);   /* more to send: no sleeping */
    if (s->state == IMAPD_STATE_LOGOUT && (rc < 0 || s->conn->out.len == 0))
        session_schedule_free(s);
}

static void before_sleep(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
    for (struct imapd_session *s = session_list; s != NULL; s = s->next) {
        if (s->freed || s->conn->closed)
            continue;
        /* Most sessions wait for their client: nothing to do. */
        if (s->conn->out.len == 0 && s->resume == NULL && s->state != IMAPD_STATE_LOGOUT &&
            !input_ready(s))
            continue;
        session_pump(s);
    }
}

void imapd_session_init(struct event_loop *loop)
{
    event_before_sleep(loop, before_sleep, NULL);
}

/* ---- accept ---- */

void imapd_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len)
{
    if (session_count >= imapd_var.session_limit) {
        msg_warn("session limit %lld reached: refusing a client", imapd_var.session_limit);
        server_refuse(fd, imapd_var.wrappermode ? NULL : "* BYE [UNAVAILABLE] Server busy, try again later");
        return;
    }
    if (imapd_var.wrappermode && imapd_var.tls_ctx == NULL) {
        server_refuse(fd, NULL);
        return;
    }
    struct imapd_session *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->conn = conn_create(loop, fd, peer, peer_len, IMAPD_IN_MAX, IMAPD_OUT_MAX,
                          session_conn_event, s);
    /* UNIX sockets (tests with -s /path) are local clients. */
    snprintf(s->addr, sizeof(s->addr), "%s",
             strcmp(s->conn->addr, "local") == 0 ? "127.0.0.1" : s->conn->addr);
    struct imap_parser_limits limits;
    imap_parser_limits_default(&limits);
    if (imapd_var.message_size_limit > 0)
        limits.max_append = (uint64_t)imapd_var.message_size_limit;
    s->parser = imap_parser_create(&limits);
    s->next = session_list;
    if (session_list)
        session_list->prev = s;
    session_list = s;
    session_count++;
    server_session_count(session_count);
    if (log_verbose)
        msg_debug("connect from %s", s->addr);
    idle_restart(s);
    if (imapd_var.wrappermode) {
        s->state = IMAPD_STATE_TLS;
        if (conn_start_tls(s->conn, imapd_var.tls_ctx) < 0)
            session_schedule_free(s);
        return;
    }
    s->state = IMAPD_STATE_NOT_AUTH;
    s->greeted = 1;
    imapd_untagged(s, "OK [CAPABILITY %s] Postern IMAP4rev1 ready", imapd_capabilities(s));
}

/* SIGTERM (exit follows) or SIGHUP (drain): push out what is queued. */
void imapd_session_stop_all(struct event_loop *loop)
{
    (void)loop;
    for (struct imapd_session *s = session_list; s != NULL; s = s->next)
        if (!s->freed && !s->conn->closed)
            conn_flush(s->conn);
}
