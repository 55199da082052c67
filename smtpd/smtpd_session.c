/*
 * NAME
 *	smtpd_session - SMTP server sessions: life cycle, I/O, input loop
 * DESCRIPTION
 *	One process serves many sessions in one event loop. Input is read
 *	into a bounded buffer and cut into commands by the pure parser
 *	(lib/smtp_command.c) or, in DATA, decoded by lib/smtp_data.c.
 *	Replies are queued in the session's output buffer and flushed in
 *	the before-sleep hook, so the replies to pipelined commands leave
 *	in one write. A session is freed through event_defer(), never
 *	inside its own callback.
 *
 *	Input is paused (the fd is not watched for reading) while the
 *	session waits for a group commit, while an error delay runs, while
 *	the client does not read its replies, and once closing.
 * LIMITS
 *	smtpd_process_session_limit sessions per process ("421 4.7.0
 *	Server busy" beyond); smtpd_client_connection_count_limit per
 *	client address and process (mynetworks exempt); smtpd_timeout per
 *	read; smtpd_soft_error_limit / smtpd_hard_error_limit errors.
 *	Input buffer SMTPD_IN_MAX bytes; output beyond SMTPD_OUT_MAX
 *	pauses input.
 * DIAGNOSTICS
 *	Postfix-shaped log lines: "connect from", "disconnect from ...
 *	commands=N", "lost connection after X from", "timeout after X from".
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

#include "log.h"
#include "resolve.h"
#include "server.h"
#include "smtpd.h"
#include "xalloc.h"

#define SMTPD_IN_MAX  (64 * 1024)
#define SMTPD_READ    (16 * 1024)
#define SMTPD_OUT_MAX (64 * 1024)

static struct smtpd_session *session_list;
static int session_count;

static const char *const state_names[] = {
    "INIT", "HELO", "MAIL", "RCPT", "DATA", "WAIT_COMMIT", "CLOSING",
};

static const char *const counter_names[SMTPD_CNT_COUNT] = {
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat",
    "rset", "noop", "vrfy", "expn", "help", "etrn", "quit", "unknown",
};

static void session_process(struct smtpd_session *s);
static void session_update_events(struct smtpd_session *s);
static void flush_all(void);

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

/* ---- output ---- */

static void reply_v(struct smtpd_session *s, int count, const char *fmt, va_list ap)
{
    if (s->lost)
        return;
    size_t start = s->out.len;
    buf_vprintf(&s->out, fmt, ap);
    buf_append(&s->out, "\r\n", 2);
    if (log_verbose)
        msg_debug("> %s: %.*s", smtpd_client(s), (int)(s->out.len - start - 2),
                  s->out.data + start);
    char code = s->out.data[start];
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
   -1 when the peer is gone. */
static int session_flush(struct smtpd_session *s)
{
    if (s->lost)
        return -1;
    if (s->out.len == 0)
        return 0;
    for (;;) {
        ssize_t n = send(s->fd, s->out.data, s->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&s->out, (size_t)n);
            if (s->out.len == 0)
                return 0;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        s->lost = 1;
        buf_reset(&s->out);
        return -1;
    }
}

/* ---- life cycle ---- */

static void session_free(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    if (s->qw != NULL) {
        queue_writer_abort(&s->qw);
    }
    smtpd_queue_forget(s);
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
    event_fd_del(loop, s->fd);
    close(s->fd);
    s->state = SMTPD_STATE_CLOSING;
    smtpd_transaction_reset(s);
    smtp_command_parser_destroy(&s->parser);
    buf_free(&s->in);
    buf_free(&s->out);
    buf_free(&s->piece);
    free(s->helo);
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
    event_fd_set(s->loop, s->fd, 0);
    s->mask = 0;
    event_defer(s->loop, session_free, s);
}

void smtpd_close(struct smtpd_session *s)
{
    s->closing = 1;
    smtpd_set_state(s, SMTPD_STATE_CLOSING);
    session_update_events(s);
}

/* The peer went away (EOF, reset) before QUIT. */
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
    buf_reset(&s->out);
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
    xfree(&s->sender);
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

static int want_read(const struct smtpd_session *s)
{
    return !s->closing && !s->lost && s->state != SMTPD_STATE_WAIT_COMMIT &&
           s->sleep_timer == NULL && s->in.len < SMTPD_IN_MAX && s->out.len < SMTPD_OUT_MAX;
}

static void session_update_events(struct smtpd_session *s)
{
    if (s->freed)
        return;
    int mask = (want_read(s) ? EVENT_READ : 0) |
               (s->out.len > 0 && s->sleep_timer == NULL ? EVENT_WRITE : 0);
    if (mask != s->mask) {
        event_fd_set(s->loop, s->fd, mask);
        s->mask = mask;
    }
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
    smtpd_reply_nocount(s, "421 4.4.2 %s Error: timeout exceeded", smtpd_var.myhostname);
    smtpd_close(s);
    session_update_events(s);
}

static void idle_restart(struct smtpd_session *s)
{
    event_timer_cancel(s->loop, &s->idle_timer);
    s->idle_timer = event_timer_add(s->loop, smtpd_var.timeout_ms, idle_timeout, s);
}

static void sleep_done(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    s->sleep_timer = NULL;
    idle_restart(s);
    session_process(s);
    session_update_events(s);
}

static void session_io(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct smtpd_session *s = ctx;
    if (s->freed)
        return;
    if (events & EVENT_WRITE) {
        if (session_flush(s) < 0) {
            session_lost(s);
            return;
        }
    }
    if ((events & (EVENT_READ | EVENT_ERROR)) && want_read(s)) {
        ssize_t n = buf_read_fd(&s->in, fd, SMTPD_READ);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            /* Commands that arrived together with the EOF still count,
               and a client that half-closed after QUIT gets its reply. */
            session_process(s);
            if (s->sleep_timer == NULL)
                session_flush(s);
            session_lost(s);
            return;
        }
        if (n > 0) {
            idle_restart(s);
            session_process(s);
        }
    }
    session_update_events(s);
}

/* ---- input loop ---- */

static void process_data(struct smtpd_session *s)
{
    size_t off = 0;
    while (off < s->in.len) {
        size_t used;
        enum smtp_data_status st = smtp_data_decode(&s->data, s->in.data + off,
                                                    s->in.len - off, &used, &s->piece);
        off += used;
        if (st == SMTP_DATA_NEED_MORE)
            break;
        if (st == SMTP_DATA_PIECE) {
            smtpd_queue_piece(s, s->piece.data, s->piece.len, s->data.piece_ends_line);
            buf_reset(&s->piece);
            continue;
        }
        buf_consume(&s->in, off);
        s->where = "END-OF-MESSAGE";
        smtpd_queue_finish(s);
        return;
    }
    buf_consume(&s->in, off);
    /* Keep the pending partial piece small: it already went through the
       decoder, so write it out now instead of holding it. */
    if (s->piece.len >= s->data.limits.max_piece) {
        smtpd_queue_piece(s, s->piece.data, s->piece.len, 0);
        buf_reset(&s->piece);
    }
}

static void session_process(struct smtpd_session *s)
{
    while (!s->closing && !s->lost && s->sleep_timer == NULL &&
           s->state != SMTPD_STATE_WAIT_COMMIT && s->out.len < SMTPD_OUT_MAX) {
        if (s->state == SMTPD_STATE_DATA) {
            if (s->in.len == 0)
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
        struct smtp_command cmd;
        enum smtp_command_error err;
        int errors_before = s->errors;
        enum smtp_command_status st = smtp_command_parser_next(s->parser, &s->in, &cmd, &err);
        if (st == SMTP_COMMAND_NEED_MORE)
            break;
        if (st == SMTP_COMMAND_ERROR) {
            if (err == SMTP_CMDERR_BARE_LF) {
                msg_info("disallowed bare <LF> received from %s", smtpd_client(s));
                smtpd_reply_nocount(s, "521 5.5.2 %s Error: bare <LF> received",
                                    smtpd_var.myhostname);
                smtpd_close(s);
                break;
            }
            smtpd_reply(s, "%s", smtp_command_error_reply(err));
        } else {
            smtpd_command_dispatch(s, &cmd);
            smtp_command_clear(&cmd);
        }
        if (s->errors > errors_before && s->errors >= smtpd_var.soft_error_limit &&
            smtpd_var.error_sleep_ms > 0 && !s->closing) {
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
        if (s->sleep_timer == NULL && s->out.len > 0 && session_flush(s) < 0) {
            if (!s->closing)
                session_lost(s);
            else
                session_schedule_free(s);
            continue;
        }
        if (s->closing && (s->out.len == 0 || s->lost)) {
            session_schedule_free(s);
            continue;
        }
        /* Output drained below the limit: more pipelined input can run. */
        if (!s->closing && s->in.len > 0 && s->sleep_timer == NULL)
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

static void refuse(int fd, const char *text)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\r\n", text);
    if (n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* best effort: the connection is closed either way */
    }
    close(fd);
}

void smtpd_session_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                          socklen_t peer_len)
{
    char addr[64];
    peer_address(peer, peer_len, addr, sizeof(addr));
    if (session_count >= smtpd_var.process_session_limit) {
        msg_warn("session limit %lld reached: refusing %s", smtpd_var.process_session_limit,
                 addr);
        char text[200];
        snprintf(text, sizeof(text), "421 4.7.0 %s Server busy", smtpd_var.myhostname);
        refuse(fd, text);
        return;
    }
    if (smtpd_var.client_connection_limit > 0) {
        long long same = 0;
        for (struct smtpd_session *o = session_list; o != NULL; o = o->next)
            if (!o->freed && strcmp(o->addr, addr) == 0)
                same++;
        if (same >= smtpd_var.client_connection_limit && !resolve_in_mynetworks(addr)) {
            msg_warn("too many connections from %s", addr);
            char text[200];
            snprintf(text, sizeof(text), "421 4.7.0 %s Error: too many connections from %s",
                     smtpd_var.myhostname, addr);
            refuse(fd, text);
            return;
        }
    }
    struct smtpd_session *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->fd = fd;
    memcpy(s->addr, addr, sizeof(s->addr));
    s->name = strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0 ? "localhost"
                                                                           : "unknown";
    s->state = SMTPD_STATE_INIT;
    s->where = "CONNECT";
    buf_init(&s->in, 0);
    buf_init(&s->out, 0);
    buf_init(&s->piece, 0);
    struct smtp_command_limits limits;
    smtp_command_limits_default(&limits);
    limits.max_line = smtpd_var.line_length_limit > 2 ? (size_t)smtpd_var.line_length_limit - 2
                                                      : 510;
    limits.forbid_bare_newline = smtpd_var.forbid_bare_newline;
    limits.smtputf8 = smtpd_var.smtputf8_enable;
    s->parser = smtp_command_parser_create(&limits);
    if (event_fd_add(loop, fd, EVENT_READ, session_io, s) < 0) {
        msg_warn("cannot watch connection from %s: %m", addr);
        smtp_command_parser_destroy(&s->parser);
        free(s);
        close(fd);
        return;
    }
    s->mask = EVENT_READ;
    s->next = session_list;
    if (session_list)
        session_list->prev = s;
    session_list = s;
    session_count++;
    server_session_count(session_count);
    msg_info("connect from %s", smtpd_client(s));
    smtpd_reply_nocount(s, "220 %s", smtpd_var.smtpd_banner);
    idle_restart(s);
}

/* SIGTERM (exit follows) or SIGHUP (drain): push out what is queued;
   sessions themselves go on while draining. */
void smtpd_session_stop_all(struct event_loop *loop)
{
    for (struct smtpd_session *s = session_list; s != NULL; s = s->next)
        if (!s->freed && s->sleep_timer == NULL)
            session_flush(s);
}
