/*
 * NAME
 *	qmgr_transport - connections to an outbound transport's agent
 * DESCRIPTION
 *	Non-blocking UNIX connections to $queue_directory/private/<name>
 *	(private/smtp). Each carries ONE request at a time (lib/attr.h
 *	framing; fields in docs/qmgr.md): the agent works on many
 *	connections at once, so concurrency is the number of connections
 *	with a request outstanding. After its reply a connection goes to
 *	the transport's idle list (most recently used first) and carries
 *	the next request; idle connections are closed after
 *	QMGR_TP_IDLE_CLOSE_MS so agent processes can recycle.
 *
 *	Trouble is reported to qmgr_dest.c, which decides what happens to
 *	the mail: a connect that fails (at once or asynchronously) gives
 *	the request back without counting a loss; a connection lost after
 *	the whole request was written counts a loss for its recipients
 *	(the agent may have delivered them); both pause the transport.
 * DIAGNOSTICS
 *	A malformed reply, a reply with the wrong id, a reply when nothing
 *	is outstanding or a second frame behind a reply is a bug in the
 *	agent: logged loudly and the connection is dropped (its request is
 *	dispatched again). A request without an answer for
 *	QMGR_TP_STALL_MS (the agent hangs, or no agent process takes the
 *	connection) is given up the same way.
 * LIMITS
 *	Reply frames up to ATTR_MAX_MSG; at most qmgr_transport_delivery_limit
 *	connections busy per transport, and no more idle ones than that.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "attr.h"
#include "log.h"
#include "qmgr.h"
#include "xalloc.h"

struct qmgr_tconn {
    struct qmgr_transport *tp;
    int fd;
    int connecting;
    struct buf in, out;
    struct qmgr_entry *entry;        /* outstanding request, NULL when idle */
    unsigned long long req_id;
    unsigned long uses;              /* requests sent on it */
    long long last_used_ms;          /* idle since */
    long long sent_ms;               /* request sent at */
    int in_idle;
    struct qmgr_tconn *prev, *next;            /* tp->conns */
    struct qmgr_tconn *idle_prev, *idle_next;  /* tp->idle */
};

static unsigned long long next_request_id;

static void idle_remove(struct qmgr_tconn *c)
{
    if (!c->in_idle)
        return;
    if (c->idle_prev != NULL)
        c->idle_prev->idle_next = c->idle_next;
    else
        c->tp->idle = c->idle_next;
    if (c->idle_next != NULL)
        c->idle_next->idle_prev = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->in_idle = 0;
}

static void idle_push(struct qmgr_tconn *c)
{
    c->entry = NULL;
    c->last_used_ms = event_now_ms(qmgr_loop);
    c->idle_prev = NULL;
    c->idle_next = c->tp->idle;
    if (c->tp->idle != NULL)
        c->tp->idle->idle_prev = c;
    c->tp->idle = c;
    c->in_idle = 1;
}

static void free_conn_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_tconn *c = ctx;
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

/* Closes c. Its request, if any, goes back to qmgr_dest (with a loss
   counted when the agent got all of it), and the transport learns what
   happened. */
static void conn_close(struct qmgr_tconn *c, enum qmgr_tp_event event)
{
    struct qmgr_transport *tp = c->tp;
    idle_remove(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        tp->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    tp->conn_count--;
    event_fd_del(qmgr_loop, c->fd);
    close(c->fd);
    c->fd = -1;
    struct qmgr_entry *e = c->entry;
    int count_loss = !c->connecting && c->out.len == 0;
    c->entry = NULL;
    event_defer(qmgr_loop, free_conn_cb, c);
    /* Requeue first, so that an unavailable transport defers it too. */
    if (e != NULL)
        qmgr_dest_lost(e, count_loss && event != QMGR_TP_CONNECT_FAILED);
    if (event != QMGR_TP_OK && event != QMGR_TP_CONNECTED)
        qmgr_dest_transport_event(tp, event);
}

/* 0 done with this frame, -1 drop the connection. */
static int handle_reply(struct qmgr_tconn *c, const struct attr_msg *reply)
{
    const char *name = c->tp->name;
    if (c->entry == NULL) {
        msg_warn("unexpected reply from the %s agent (nothing outstanding); "
                 "dropping the connection", name);
        return -1;
    }
    long long id = attr_msg_get_num(reply, "id");
    if (id < 0 || (unsigned long long)id != c->req_id) {
        msg_warn("reply with id %lld from the %s agent, expected %llu; dropping the connection",
                 id, name, c->req_id);
        return -1;
    }
    if (qmgr_dest_reply(c->entry, reply) < 0)
        return -1;
    idle_push(c);   /* qmgr_dest_reply freed the entry */
    return 0;
}

static void conn_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    (void)fd;
    struct qmgr_tconn *c = ctx;
    const char *name = c->tp->name;
    if (c->connecting && (events & (EVENT_WRITE | EVENT_ERROR))) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            msg_warn("connect to the %s agent: %s", name, strerror(err));
            conn_close(c, QMGR_TP_CONNECT_FAILED);
            return;
        }
        c->connecting = 0;
        qmgr_dest_transport_event(c->tp, QMGR_TP_CONNECTED);
    }
    if ((events & EVENT_WRITE) && !c->connecting && c->out.len > 0) {
        if (buf_flush_fd(&c->out, c->fd) < 0) {
            if (errno == EPIPE && c->uses > 1) {
                /* The agent let go of this idle connection before our
                   request arrived: not trouble, just try another one. */
                conn_close(c, QMGR_TP_OK);
                return;
            }
            msg_warn("write to the %s agent: %s", name, strerror(errno));
            conn_close(c, QMGR_TP_LOST);
            return;
        }
    }
    if (events & (EVENT_READ | EVENT_ERROR)) {
        ssize_t n = buf_read_fd(&c->in, c->fd, 65536);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            if (c->entry != NULL) {
                msg_warn("lost connection with the %s agent (request outstanding)", name);
                conn_close(c, QMGR_TP_LOST);
            } else {
                conn_close(c, QMGR_TP_OK);   /* an idle connection the agent let go */
            }
            return;
        }
        if (n > 0) {
            struct attr_msg reply;
            attr_msg_init(&reply);
            const char *error = NULL;
            enum attr_status st = attr_msg_decode(&c->in, &reply, &error);
            if (st == ATTR_BAD) {
                msg_warn("malformed reply from the %s agent: %s; dropping the connection",
                         name, error);
                attr_msg_clear(&reply);
                conn_close(c, QMGR_TP_LOST);
                return;
            }
            if (st == ATTR_OK) {
                int r = handle_reply(c, &reply);
                attr_msg_clear(&reply);
                if (r < 0) {
                    conn_close(c, QMGR_TP_LOST);
                    return;
                }
                if (c->in.len > 0) {
                    msg_warn("the %s agent sent more than one reply to one request; "
                             "dropping the connection", name);
                    conn_close(c, QMGR_TP_LOST);
                    return;
                }
            } else {
                attr_msg_clear(&reply);
            }
        }
    }
    event_fd_set(loop, c->fd, EVENT_READ | (c->out.len > 0 || c->connecting ? EVENT_WRITE : 0));
}

int qmgr_connect_private(const char *service, int *connecting_r)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/private/%s", qmgr_queue_dir,
                     service);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
        msg_fatal("socket path too long: %s/private/%s", qmgr_queue_dir, service);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        msg_warn("socket: %s", strerror(errno));
        return -1;
    }
    *connecting_r = 0;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (errno != EINPROGRESS) {
            /* ENOENT/ECONNREFUSED: no agent; EAGAIN: its backlog is full. */
            msg_warn("connect to %s: %s (will retry)", sun.sun_path, strerror(errno));
            close(fd);
            return -1;
        }
        *connecting_r = 1;
    }
    return fd;
}

/* A new connection, or NULL (reported) when the agent cannot be reached. */
static struct qmgr_tconn *conn_open(struct qmgr_transport *tp)
{
    int connecting = 0;
    int fd = qmgr_connect_private(tp->name, &connecting);
    if (fd < 0) {
        qmgr_dest_transport_event(tp, QMGR_TP_CONNECT_FAILED);
        return NULL;
    }
    struct qmgr_tconn *c = xcalloc(1, sizeof(*c));
    c->tp = tp;
    c->fd = fd;
    c->connecting = connecting;
    buf_init(&c->in, ATTR_MAX_MSG + 4);
    buf_init(&c->out, 0);
    c->last_used_ms = event_now_ms(qmgr_loop);
    if (event_fd_add(qmgr_loop, fd, EVENT_READ | (connecting ? EVENT_WRITE : 0), conn_cb, c) < 0)
        msg_fatal("event_fd_add: %s", strerror(errno));
    c->next = tp->conns;
    if (tp->conns != NULL)
        tp->conns->prev = c;
    tp->conns = c;
    tp->conn_count++;
    if (!connecting)
        qmgr_dest_transport_event(tp, QMGR_TP_CONNECTED);
    return c;
}

struct qmgr_tconn *qmgr_transport_conn(struct qmgr_transport *tp)
{
    struct qmgr_tconn *c = tp->idle;
    if (c != NULL) {
        idle_remove(c);
        return c;
    }
    return conn_open(tp);
}

void qmgr_transport_release(struct qmgr_tconn *c)
{
    idle_push(c);
}

static const char *request_flags(const struct queue_file *qf, char *buf, size_t size)
{
    const char *utf8 = queue_file_attr(qf, "smtputf8");
    const char *body = queue_file_attr(qf, "body");
    int need_utf8 = utf8 != NULL && strcmp(utf8, "0") != 0;
    int eight = body != NULL && strcasecmp(body, "8BITMIME") == 0;
    snprintf(buf, size, "%s%s%s", need_utf8 ? "smtputf8" : "", need_utf8 && eight ? " " : "",
             eight ? "8bitmime" : "");
    return buf;
}

void qmgr_transport_send(struct qmgr_tconn *c, struct qmgr_entry *e, const char *nexthop)
{
    const struct qmgr_msg *m = e->msg;
    const struct queue_file *qf = m->qf;
    struct attr_msg req;
    attr_msg_init(&req);
    c->req_id = ++next_request_id;
    attr_msg_addf(&req, "id", "%llu", c->req_id);
    attr_msg_add(&req, "queue_id", m->id);
    char *path = qmgr_request_path(m);
    attr_msg_add(&req, "path", path);
    free(path);
    attr_msg_addf(&req, "offset", "%lld", (long long)qf->message_offset);
    attr_msg_addf(&req, "length", "%lld", (long long)qf->message_len);
    attr_msg_add(&req, "sender", qf->sender);
    attr_msg_addf(&req, "arrival", "%lld.%06ld", qf->arrival_sec, qf->arrival_usec);
    attr_msg_add(&req, "nexthop", nexthop);
    char flags[32];
    attr_msg_add(&req, "flags", request_flags(qf, flags, sizeof(flags)));
    attr_msg_addf(&req, "rcpt_count", "%zu", e->count);
    char name[32];
    for (size_t k = 0; k < e->count; k++) {
        snprintf(name, sizeof(name), "rcpt_%zu", k);
        attr_msg_add(&req, name, qmgr_active_address(m, e->rcpts[k]));
        snprintf(name, sizeof(name), "orig_rcpt_%zu", k);
        attr_msg_add(&req, name, qf->rcpts[e->rcpts[k]].address);
    }
    attr_msg_encode(&req, &c->out);
    attr_msg_clear(&req);
    c->entry = e;
    c->uses++;
    c->sent_ms = event_now_ms(qmgr_loop);
    event_fd_set(qmgr_loop, c->fd, EVENT_READ | EVENT_WRITE);
}

void qmgr_transport_pump(void)
{
    long long now = event_now_ms(qmgr_loop);
    for (struct qmgr_transport *tp = qmgr_transports(); tp != NULL; tp = tp->next) {
        struct qmgr_tconn *c = tp->conns;
        while (c != NULL) {
            struct qmgr_tconn *next = c->next;
            if (c->entry == NULL && now - c->last_used_ms > QMGR_TP_IDLE_CLOSE_MS) {
                conn_close(c, QMGR_TP_OK);
            } else if (c->entry != NULL && now - c->sent_ms > QMGR_TP_STALL_MS) {
                msg_warn("the %s agent has not answered for %lld s; closing the connection",
                         tp->name, (now - c->sent_ms) / 1000);
                conn_close(c, QMGR_TP_LOST);
            } else if (c->entry == NULL && tp->conn_count > (size_t)tp->delivery_limit) {
                conn_close(c, QMGR_TP_OK);   /* more idle ones than can ever be busy */
            }
            c = next;
        }
    }
}

size_t qmgr_transport_drain_fds(struct pollfd *pfd, void **ctx_r, size_t max)
{
    size_t n = 0;
    for (struct qmgr_transport *tp = qmgr_transports(); tp != NULL; tp = tp->next)
        for (struct qmgr_tconn *c = tp->conns; c != NULL && n < max; c = c->next) {
            if (c->entry == NULL)
                continue;
            pfd[n] = (struct pollfd){ .fd = c->fd,
                                      .events = POLLIN | (c->out.len > 0 || c->connecting
                                                              ? POLLOUT : 0) };
            ctx_r[n++] = c;
        }
    return n;
}

void qmgr_transport_drain_event(void *ctx, int events)
{
    struct qmgr_tconn *c = ctx;
    /* May close c; its memory lives until the deferred free. */
    conn_cb(qmgr_loop, c->fd, events, c);
}

void qmgr_transport_stop(void)
{
    for (struct qmgr_transport *tp = qmgr_transports(); tp != NULL; tp = tp->next)
        while (tp->conns != NULL) {
            struct qmgr_tconn *c = tp->conns;
            c->entry = NULL;   /* abandoned: active/ is recovered at the next start */
            conn_close(c, QMGR_TP_OK);
        }
}
