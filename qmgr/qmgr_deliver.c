/*
 * NAME
 *	qmgr_deliver - connections to the local delivery agent
 * DESCRIPTION
 *	Up to qmgr_local_connections non-blocking connections to
 *	$queue_directory/private/local. Requests are pipelined, at most
 *	QMGR_PIPELINE_MAX outstanding per connection; local answers in
 *	order, so each connection keeps a FIFO of outstanding requests and
 *	checks that every reply repeats the id at its head. A new
 *	connection is opened while every open one has QMGR_SPREAD_AT or more
 *	requests outstanding.
 *
 *	When local cannot be reached or a connection is lost, the affected
 *	recipients go back to pending and dispatch pauses (1 s, doubling up
 *	to 30 s) -- mail is never dropped for that. A recipient whose
 *	request was lost QMGR_MAX_LOSSES times (a message that crashes
 *	local) is deferred like any temporary failure.
 * DIAGNOSTICS
 *	A malformed or unexpected reply is a bug in local: logged loudly,
 *	the connection is dropped and its requests are dispatched again.
 *	A connection whose requests get no answer for QMGR_STALL_MS (no
 *	local process took it, or local hangs) is closed and its requests
 *	are dispatched again.
 *
 *	On SIGTERM (stop, or a reload, which restarts qmgr) the replies to
 *	requests local (and the outbound agents, qmgr_transport.c) already
 *	have are collected before exiting, so that a finished delivery is
 *	recorded rather than repeated.
 * LIMITS
 *	Reply frames are bounded by ATTR_MAX_MSG; idle connections are
 *	closed after QMGR_IDLE_CLOSE_MS so local processes can recycle.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "qmgr.h"
#include "server.h"
#include "xalloc.h"

struct pending_req {
    unsigned long long id;
    struct qmgr_msg *msg;
    size_t rcpt;
};

struct qmgr_conn {
    int fd;
    int connecting;
    int connected_once;
    struct buf in, out;
    struct pending_req fifo[QMGR_PIPELINE_MAX];
    size_t head, count;
    long long last_used_ms;
    long long last_progress_ms;   /* connect, a reply, or work on an idle connection */
};

static struct qmgr_conn *conns[QMGR_MAX_CONNECTIONS];
static size_t conn_count;
static long long down_until_ms;
static long long retry_ms = QMGR_RETRY_MIN_MS;
static struct event_timer *retry_timer;
static unsigned long long next_request_id;

static size_t conn_limit(void)
{
    long long n = config_int("qmgr_local_connections");
    if (n < 1)
        n = 1;
    if (n > QMGR_MAX_CONNECTIONS)
        n = QMGR_MAX_CONNECTIONS;
    return (size_t)n;
}

static void free_conn_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_conn *c = ctx;
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

static void retry_cb(struct event_loop *loop, void *ctx)
{
    (void)ctx;
    retry_timer = NULL;
    qmgr_deliver_pump(loop, NULL);
}

/* Local is unreachable or failed: pause dispatch for a while. */
static void pause_dispatch(void)
{
    long long now = event_now_ms(qmgr_loop);
    down_until_ms = now + retry_ms;
    if (retry_timer == NULL)
        retry_timer = event_timer_add(qmgr_loop, retry_ms, retry_cb, NULL);
    retry_ms *= 2;
    if (retry_ms > QMGR_RETRY_MAX_MS)
        retry_ms = QMGR_RETRY_MAX_MS;
}

/* Closes c and puts its outstanding requests back. count_loss: the
   requests may have been delivered (local died while working on them). */
static void conn_close(struct qmgr_conn *c, int failed)
{
    for (size_t k = 0; k < conn_count; k++) {
        if (conns[k] == c) {
            conns[k] = conns[--conn_count];
            conns[conn_count] = NULL;
            break;
        }
    }
    event_fd_del(qmgr_loop, c->fd);
    close(c->fd);
    c->fd = -1;
    int count_loss = c->connected_once && !c->connecting;
    size_t n = c->count;
    struct pending_req saved[QMGR_PIPELINE_MAX];
    for (size_t k = 0; k < n; k++)
        saved[k] = c->fifo[(c->head + k) % QMGR_PIPELINE_MAX];
    c->count = 0;
    event_defer(qmgr_loop, free_conn_cb, c);
    if (failed || n > 0)
        pause_dispatch();
    /* Requeue after the connection is gone: a requeue may finish a message. */
    for (size_t k = 0; k < n; k++)
        qmgr_active_requeue(saved[k].msg, saved[k].rcpt, count_loss);
}

static int handle_reply(struct qmgr_conn *c, const struct attr_msg *reply)
{
    if (c->count == 0) {
        msg_warn("unexpected reply from local (nothing outstanding); dropping the connection");
        return -1;
    }
    struct pending_req *p = &c->fifo[c->head];
    long long id = attr_msg_get_num(reply, "id");
    const char *status = attr_msg_get(reply, "status");
    if (id < 0 || (unsigned long long)id != p->id || status == NULL) {
        msg_warn("malformed reply from local (id %lld, expected %llu); dropping the connection",
                 id, p->id);
        return -1;
    }
    enum qmgr_result result;
    if (strcmp(status, "sent") == 0)
        result = QMGR_SENT;
    else if (strcmp(status, "bounced") == 0)
        result = QMGR_BOUNCED;
    else if (strcmp(status, "deferred") == 0)
        result = QMGR_DEFERRED;
    else {
        msg_warn("bad status \"%s\" from local; dropping the connection", status);
        return -1;
    }
    const char *dsn = attr_msg_get(reply, "dsn");
    const char *reason = attr_msg_get(reply, "reason");
    struct qmgr_msg *m = p->msg;
    size_t rcpt = p->rcpt;
    c->head = (c->head + 1) % QMGR_PIPELINE_MAX;
    c->count--;
    c->last_used_ms = c->last_progress_ms = event_now_ms(qmgr_loop);
    retry_ms = QMGR_RETRY_MIN_MS;
    qmgr_active_result(m, rcpt, result,
                       dsn ? dsn : result == QMGR_SENT ? "2.0.0" : result == QMGR_BOUNCED ? "5.0.0"
                                                                                        : "4.0.0",
                       reason ? reason : "");
    return 0;
}

static void conn_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    (void)fd;
    struct qmgr_conn *c = ctx;
    if (c->connecting && (events & (EVENT_WRITE | EVENT_ERROR))) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            msg_warn("connect to local: %s", strerror(err));
            conn_close(c, 1);
            return;
        }
        c->connecting = 0;
        c->connected_once = 1;
        c->last_progress_ms = event_now_ms(loop);
    }
    if (events & EVENT_WRITE) {
        int r = buf_flush_fd(&c->out, c->fd);
        if (r < 0) {
            msg_warn("write to local: %s", strerror(errno));
            conn_close(c, 1);
            return;
        }
    }
    if (events & (EVENT_READ | EVENT_ERROR)) {
        ssize_t n = buf_read_fd(&c->in, c->fd, 65536);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            if (c->count > 0)
                msg_warn("lost connection with local (%zu requests outstanding)", c->count);
            conn_close(c, c->count > 0);
            return;
        }
        for (;;) {
            struct attr_msg reply;
            attr_msg_init(&reply);
            const char *error = NULL;
            enum attr_status st = attr_msg_decode(&c->in, &reply, &error);
            if (st == ATTR_NEED_MORE) {
                attr_msg_clear(&reply);
                break;
            }
            if (st == ATTR_BAD) {
                msg_warn("malformed reply from local: %s; dropping the connection", error);
                attr_msg_clear(&reply);
                conn_close(c, 1);
                return;
            }
            int r = handle_reply(c, &reply);
            attr_msg_clear(&reply);
            if (r < 0) {
                conn_close(c, 1);
                return;
            }
        }
    }
    event_fd_set(loop, c->fd, EVENT_READ | (c->out.len > 0 || c->connecting ? EVENT_WRITE : 0));
}

static struct qmgr_conn *conn_open(void)
{
    int connecting = 0;
    int fd = qmgr_connect_private("local", &connecting);
    if (fd < 0)
        return NULL;
    struct qmgr_conn *c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->connecting = connecting;
    c->connected_once = !connecting;
    buf_init(&c->in, 0);
    buf_init(&c->out, 0);
    c->last_used_ms = c->last_progress_ms = event_now_ms(qmgr_loop);
    if (event_fd_add(qmgr_loop, fd, EVENT_READ | (connecting ? EVENT_WRITE : 0), conn_cb, c) < 0)
        msg_fatal("event_fd_add: %s", strerror(errno));
    conns[conn_count++] = c;
    return c;
}

/* The connection for the next request, opening one when all are busy. */
static struct qmgr_conn *pick_conn(void)
{
    struct qmgr_conn *best = NULL;
    for (size_t k = 0; k < conn_count; k++)
        if (conns[k]->count < QMGR_PIPELINE_MAX && (best == NULL || conns[k]->count < best->count))
            best = conns[k];
    /* Spread only under load: bigger batches give local better group
       commits, and a connection is not left waiting for a free local
       process while another one idles. */
    if ((best == NULL || best->count >= QMGR_SPREAD_AT) && conn_count < conn_limit()) {
        struct qmgr_conn *c = conn_open();
        if (c == NULL) {
            pause_dispatch();
            return best;
        }
        return c;
    }
    return best;
}

char *qmgr_request_path(const struct qmgr_msg *m)
{
    return xasprintf("%s/active/%s", server_queue_directory_outside(), m->id);
}

static void send_request(struct qmgr_conn *c, struct qmgr_msg *m, size_t i)
{
    const struct queue_file *qf = m->qf;
    struct attr_msg req;
    attr_msg_init(&req);
    unsigned long long id = ++next_request_id;
    attr_msg_addf(&req, "id", "%llu", id);
    attr_msg_add(&req, "queue_id", m->id);
    char *path = qmgr_request_path(m);
    attr_msg_add(&req, "path", path);
    free(path);
    attr_msg_addf(&req, "offset", "%lld", (long long)qf->message_offset);
    attr_msg_addf(&req, "length", "%lld", (long long)qf->message_len);
    attr_msg_add(&req, "sender", qf->sender);
    attr_msg_add(&req, "recipient", qmgr_active_address(m, i));
    attr_msg_add(&req, "orig_recipient", qf->rcpts[i].address);
    attr_msg_addf(&req, "arrival", "%lld.%06ld", qf->arrival_sec, qf->arrival_usec);
    const char *utf8 = queue_file_attr(qf, "smtputf8");
    attr_msg_add(&req, "flags", utf8 != NULL && strcmp(utf8, "0") != 0 ? "smtputf8" : "");
    attr_msg_encode(&req, &c->out);
    attr_msg_clear(&req);
    if (c->count == 0)
        c->last_progress_ms = event_now_ms(qmgr_loop);
    c->fifo[(c->head + c->count) % QMGR_PIPELINE_MAX] =
        (struct pending_req){ .id = id, .msg = m, .rcpt = i };
    c->count++;
    c->last_used_ms = event_now_ms(qmgr_loop);
}

void qmgr_deliver_pump(struct event_loop *loop, void *ctx)
{
    (void)ctx;
    long long now = event_now_ms(loop);
    /* Let idle connections go so local processes can recycle. */
    for (size_t k = 0; k < conn_count;) {
        struct qmgr_conn *c = conns[k];
        if (c->count == 0 && c->out.len == 0 && now - c->last_used_ms > QMGR_IDLE_CLOSE_MS) {
            conn_close(c, 0);
            continue;
        }
        if (c->count > 0 && now - c->last_progress_ms > QMGR_STALL_MS) {
            /* No local process serves it, or local hangs: try elsewhere. */
            msg_warn("local has not answered for %lld s (%zu requests outstanding); "
                     "closing the connection", (now - c->last_progress_ms) / 1000, c->count);
            conn_close(c, 1);
            continue;
        }
        k++;
    }
    if (now < down_until_ms)
        return;
    while (qmgr_active_has_work()) {
        struct qmgr_conn *c = pick_conn();
        if (c == NULL)
            break;
        size_t i;
        struct qmgr_msg *m = qmgr_active_next(&i);
        if (m == NULL)
            break;
        send_request(c, m, i);
        event_fd_set(loop, c->fd, EVENT_READ | EVENT_WRITE);
        if (now < down_until_ms)
            break;
    }
}

void qmgr_deliver_init(void)
{
    event_before_sleep(qmgr_loop, qmgr_deliver_pump, NULL);
}

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Requests local already holds may be delivered while we stop (local
   finishes its batch; on a reload it is not stopped at all). Without
   their replies the messages would be delivered again after the
   restart, so send what is buffered and collect the replies, for at
   most QMGR_STOP_DRAIN_MS (master's SIGKILL comes at 5 s). */
static void drain_replies(void)
{
    long long deadline = monotonic_ms() + QMGR_STOP_DRAIN_MS;
    size_t tp_max = QMGR_TP_DELIVERY_MAX * 2;
    struct pollfd *pfd = xcalloc(QMGR_MAX_CONNECTIONS + tp_max, sizeof(*pfd));
    struct qmgr_conn *pc[QMGR_MAX_CONNECTIONS];
    void **tc = xcalloc(tp_max, sizeof(*tc));
    for (;;) {
        nfds_t n = 0;
        for (size_t k = 0; k < conn_count; k++) {
            struct qmgr_conn *c = conns[k];
            if (c->count == 0)
                continue;
            pfd[n] = (struct pollfd){ .fd = c->fd,
                                      .events = POLLIN | (c->out.len > 0 || c->connecting
                                                              ? POLLOUT : 0) };
            pc[n++] = c;
        }
        nfds_t nlocal = n;
        n += qmgr_transport_drain_fds(pfd + nlocal, tc, tp_max);
        long long left = deadline - monotonic_ms();
        if (n == 0 || left <= 0)
            break;
        int r = poll(pfd, n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (nfds_t k = 0; k < n; k++) {
            if (pfd[k].revents == 0)
                continue;
            int events = (pfd[k].revents & POLLIN ? EVENT_READ : 0) |
                         (pfd[k].revents & POLLOUT ? EVENT_WRITE : 0) |
                         (pfd[k].revents & (POLLERR | POLLHUP) ? EVENT_ERROR : 0);
            /* May close the connection; its memory lives until the deferred free. */
            if (k < nlocal)
                conn_cb(qmgr_loop, pfd[k].fd, events, pc[k]);
            else
                qmgr_transport_drain_event(tc[k - nlocal], events);
        }
    }
    free(pfd);
    free(tc);
}

void qmgr_deliver_stop(void)
{
    drain_replies();
    qmgr_transport_stop();
    while (conn_count > 0) {
        struct qmgr_conn *c = conns[0];
        c->count = 0;   /* active/ is recovered at the next start */
        conn_close(c, 0);
    }
}
