/*
 * NAME
 *	qmgr_scan - queue directory scans and the control socket
 * DESCRIPTION
 *	Start-up: everything left in active/ by a crash goes back to
 *	incoming/ (at worst a duplicate delivery), then incoming/, maildrop/
 *	and deferred/ are scanned. Afterwards incoming/ and maildrop/ are
 *	rescanned every QMGR_SCAN_INTERVAL_MS (a safety net: normally
 *	"new" requests announce each file) and deferred/ every
 *	queue_run_delay: files whose mtime (the next-try time) has come
 *	go straight into active/, never through incoming/, so a backlog of
 *	retries cannot queue up in front of new mail.
 *
 *	Each scan is a resumable directory walk that handles at most
 *	QMGR_SCAN_CHUNK entries per event-loop round, so a large backlog
 *	neither blocks the loop nor fills memory. A scan asked for while
 *	one runs restarts when it ends. The deferred walk pauses in place
 *	while active/ is full and goes on when a message leaves (after the
 *	incoming walk, which a full active/ also held up, had its turn).
 *
 *	maildrop/ holds files from the sendmail command, written by any
 *	local user: each is parsed strictly and re-written through the
 *	queue writer into incoming/ (so mail_owner owns it, and only
 *	whitelisted attributes survive), fsynced, then removed from
 *	maildrop/. Invalid files go to corrupt/.
 *
 *	Control socket requests (attr.h framing), replies {id, status=ok}:
 *	new (queue_id), flush, flush_id (queue_id), scan.
 * DIAGNOSTICS
 *	A malformed control message is logged and the client dropped.
 * LIMITS
 *	QMGR_CLIENT_MAX control connections; frames up to ATTR_MAX_MSG;
 *	replies a client does not read are capped at ATTR_MAX_MSG.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "qmgr.h"
#include "server.h"
#include "xalloc.h"

enum { WALK_NEXT, WALK_STOP, WALK_PAUSE };

struct qmgr_walk {
    const char *subdir;
    /* WALK_NEXT: next entry; WALK_STOP: end this walk (no room or
       trouble); WALK_PAUSE: keep the place, qmgr_scan_room() goes on. */
    int (*each)(struct qmgr_walk *w, const char *name);
    DIR *dir;
    int paused;
    int rerun;
    int force;        /* deferred: ignore the retry time */
    int force_next;
    struct event_timer *timer;
};

static int incoming_each(struct qmgr_walk *w, const char *name);
static int maildrop_each(struct qmgr_walk *w, const char *name);
static int deferred_each(struct qmgr_walk *w, const char *name);

static struct qmgr_walk walk_incoming = { .subdir = "incoming", .each = incoming_each };
static struct qmgr_walk walk_maildrop = { .subdir = "maildrop", .each = maildrop_each };
static struct qmgr_walk walk_deferred = { .subdir = "deferred", .each = deferred_each };

static struct event_timer *periodic_timer, *deferred_timer;

static void walk_round(struct event_loop *loop, void *ctx);

static void walk_start(struct qmgr_walk *w, int force)
{
    if (w->dir != NULL || w->timer != NULL) {
        w->rerun = 1;
        w->force_next |= force;
        return;
    }
    char *path = xasprintf("%s/%s", qmgr_queue_dir, w->subdir);
    w->dir = opendir(path);
    if (w->dir == NULL) {
        msg_warn("cannot open %s: %s", path, strerror(errno));
        free(path);
        return;
    }
    free(path);
    w->force = force;
    w->timer = event_timer_add(qmgr_loop, 0, walk_round, w);
}

static void walk_round(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_walk *w = ctx;
    w->timer = NULL;
    int done = 0;
    for (int n = 0; n < QMGR_SCAN_CHUNK && !done; n++) {
        errno = 0;
        struct dirent *de = readdir(w->dir);
        if (de == NULL) {
            done = 1;
            break;
        }
        if (de->d_name[0] == '.')
            continue;
        int r = w->each(w, de->d_name);
        if (r == WALK_PAUSE) {
            w->paused = 1;
            return;
        }
        if (r == WALK_STOP)
            done = 1;
    }
    if (!done) {
        w->timer = event_timer_add(qmgr_loop, 0, walk_round, w);
        return;
    }
    closedir(w->dir);
    w->dir = NULL;
    if (w->rerun) {
        int force = w->force_next;
        w->rerun = 0;
        w->force_next = 0;
        walk_start(w, force);
    }
}

/* ---- incoming ---- */

static int incoming_each(struct qmgr_walk *w, const char *name)
{
    (void)w;
    if (!queue_id_valid(name))
        return WALK_NEXT;
    /* No room: the rest waits; the walk restarts when a message leaves. */
    return qmgr_active_take(name) == 0 ? WALK_STOP : WALK_NEXT;
}

void qmgr_scan_incoming(void)
{
    walk_start(&walk_incoming, 0);
    walk_start(&walk_maildrop, 0);
}

/* ---- deferred ---- */

static int deferred_each(struct qmgr_walk *w, const char *name)
{
    if (!queue_id_valid(name))
        return WALK_NEXT;
    char *path = queue_file_path(qmgr_queue_dir, "deferred", name);
    struct stat st;
    time_t now = time(NULL);
    int due = 0;
    if (stat(path, &st) == 0)
        due = w->force || st.st_mtime <= now;
    if (due && w->force) {
        struct timeval tv[2] = { { .tv_sec = now }, { .tv_sec = now } };
        utimes(path, tv);
    }
    free(path);
    if (!due)
        return WALK_NEXT;
    /* Straight into active/: moving a large backlog through incoming/
       would make new mail wait behind it. */
    if (!qmgr_active_room())
        return WALK_PAUSE;
    qmgr_active_take_from("deferred", name);
    return WALK_NEXT;
}

void qmgr_scan_deferred(int force)
{
    walk_start(&walk_deferred, force);
}

void qmgr_scan_room(void)
{
    struct qmgr_walk *w = &walk_deferred;
    if (w->paused && w->timer == NULL && qmgr_active_room()) {
        w->paused = 0;
        w->timer = event_timer_add(qmgr_loop, 0, walk_round, w);
    }
}

int qmgr_flush_id(const char *id)
{
    if (!queue_id_valid(id))
        return -1;
    char *path = queue_file_path(qmgr_queue_dir, "deferred", id);
    struct timeval tv[2] = { { .tv_sec = time(NULL) }, { .tv_sec = time(NULL) } };
    int r = utimes(path, tv);
    free(path);
    if (r < 0)
        return 0;   /* not deferred (any more): nothing to do */
    /* Due now; without room the deferred walk takes it when room frees. */
    if (qmgr_active_take_from("deferred", id) == 0)
        walk_start(&walk_deferred, 0);
    return 0;
}

/* ---- maildrop pickup ---- */

static int is_trusted_attr(const char *name)
{
    static const char *const ok[] = { "smtputf8", "body", "envid", "ret" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(name, ok[i]) == 0)
            return 1;
    return 0;
}

static void move_to_corrupt(const char *name, const char *why)
{
    if (queue_file_move(qmgr_queue_dir, name, "maildrop", "corrupt") < 0 && errno != ENOENT)
        msg_warn("maildrop/%s: %s; cannot move to the corrupt queue: %s", name, why,
                 strerror(errno));
    else
        msg_warn("maildrop/%s: %s; moved to corrupt queue", name, why);
}

static int maildrop_each(struct qmgr_walk *w, const char *name)
{
    (void)w;
    if (strchr(name, '/') != NULL)
        return WALK_NEXT;
    char *path = queue_file_path(qmgr_queue_dir, "maildrop", name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0 || errno == ELOOP) {
            if (fd >= 0)
                close(fd);
            move_to_corrupt(name, "not a regular file");
        } else if (errno != ENOENT) {
            msg_warn("cannot open %s: %s", path, strerror(errno));
        }
        free(path);
        return WALK_NEXT;
    }
    struct queue_file *qf = NULL;
    char *error = NULL;
    if (queue_file_read(path, &qf, &error) < 0) {
        if (errno == EBADMSG)
            move_to_corrupt(name, error ? error : "corrupt");
        else if (errno != ENOENT)
            msg_warn("cannot read %s: %s", path, error ? error : strerror(errno));
        free(error);
        close(fd);
        free(path);
        return WALK_NEXT;
    }
    const char *werr = NULL;
    struct queue_writer *qw = queue_writer_create(qmgr_queue_dir, &werr);
    if (qw == NULL) {
        msg_warn("cannot pick up %s: %s", path, werr ? werr : strerror(errno));
        queue_file_free(&qf);
        close(fd);
        free(path);
        return WALK_STOP;   /* probably out of space: try again with the next scan */
    }
    long long limit = config_int("message_size_limit");
    if (limit > 0)
        queue_writer_set_max_size(qw, (off_t)limit);
    char *new_id = xstrdup(queue_writer_id(qw));
    queue_writer_sender(qw, qf->sender);
    for (size_t i = 0; i < qf->attr_count; i++)
        if (is_trusted_attr(qf->attr_names[i]))
            queue_writer_attr(qw, qf->attr_names[i], qf->attr_values[i]);
    char uid[32];
    snprintf(uid, sizeof(uid), "%lu", (unsigned long)st.st_uid);
    queue_writer_attr(qw, "uid", uid);
    queue_writer_attr(qw, "protocol", "local");
    for (size_t i = 0; i < qf->rcpt_count; i++)
        if (!qf->rcpts[i].done)
            queue_writer_recipient(qw, qf->rcpts[i].address);

    int failed = queue_writer_recipient_count(qw) == 0;
    int err = 0;
    const char *why = failed ? "no recipients" : NULL;
    off_t pos = qf->message_offset, end = qf->message_offset + qf->message_len;
    char chunk[65536];
    while (!failed && pos < end) {
        size_t want = (size_t)(end - pos) > sizeof(chunk) ? sizeof(chunk) : (size_t)(end - pos);
        ssize_t n = pread(fd, chunk, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            failed = 1;
            why = "file shorter than its length record";
            break;
        }
        if (queue_writer_message(qw, chunk, (size_t)n) < 0) {
            err = errno;
            failed = 1;
            why = err == EFBIG ? "message too large" : strerror(err);
            break;
        }
        pos += n;
    }
    if (failed) {
        queue_writer_abort(&qw);
        if (err != 0 && err != EFBIG) {
            msg_warn("cannot pick up %s: %s", path, why);
        } else {
            move_to_corrupt(name, why);
        }
    } else if (queue_writer_commit(&qw, "incoming", 1, &werr) < 0) {
        msg_warn("cannot pick up %s: %s", path, werr ? werr : strerror(errno));
        failed = 1;
    } else {
        if (unlink(path) < 0 && errno != ENOENT)
            msg_warn("cannot remove %s: %s", path, strerror(errno));
        msg_info("%s: uid=%lu from=<%s>", new_id, (unsigned long)st.st_uid, qf->sender);
        qmgr_active_take(new_id);
    }
    free(new_id);
    queue_file_free(&qf);
    close(fd);
    free(path);
    return failed && err != 0 && err != EFBIG ? 1 : 0;
}

/* ---- start-up and timers ---- */

static void recover_active(void)
{
    char *path = xasprintf("%s/active", qmgr_queue_dir);
    DIR *dir = opendir(path);
    if (dir == NULL) {
        msg_warn("cannot open %s: %s", path, strerror(errno));
        free(path);
        return;
    }
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(dir)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        if (queue_file_move(qmgr_queue_dir, de->d_name, "active", "incoming") < 0) {
            if (errno != ENOENT)
                msg_warn("%s: cannot move from active to incoming: %s", de->d_name,
                         strerror(errno));
        } else {
            n++;
        }
    }
    closedir(dir);
    free(path);
    if (n > 0)
        msg_info("moved %zu messages from active back to incoming", n);
}

static void periodic_cb(struct event_loop *loop, void *ctx)
{
    (void)ctx;
    periodic_timer = event_timer_add(loop, QMGR_SCAN_INTERVAL_MS, periodic_cb, NULL);
    qmgr_scan_incoming();
}

static long long deferred_interval_ms(void)
{
    long long s = config_time("queue_run_delay");
    if (s < 1)
        s = 1;
    return s * 1000;
}

static void deferred_cb(struct event_loop *loop, void *ctx)
{
    (void)ctx;
    deferred_timer = event_timer_add(loop, deferred_interval_ms(), deferred_cb, NULL);
    qmgr_scan_deferred(0);
}

void qmgr_scan_init(void)
{
    recover_active();
    qmgr_scan_incoming();
    qmgr_scan_deferred(0);
    periodic_timer = event_timer_add(qmgr_loop, QMGR_SCAN_INTERVAL_MS, periodic_cb, NULL);
    deferred_timer = event_timer_add(qmgr_loop, deferred_interval_ms(), deferred_cb, NULL);
}

/* ---- control socket ---- */

struct qmgr_client {
    int fd;
    struct buf in, out;
};

static size_t client_count;

static void client_free_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_client *c = ctx;
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

static void client_close(struct qmgr_client *c)
{
    event_fd_del(qmgr_loop, c->fd);
    close(c->fd);
    c->fd = -1;
    client_count--;
    server_session_count((int)client_count);
    event_defer(qmgr_loop, client_free_cb, c);
}

static void handle_request(struct qmgr_client *c, const struct attr_msg *req)
{
    const char *request = attr_msg_get(req, "request");
    const char *queue_id = attr_msg_get(req, "queue_id");
    const char *error = NULL;
    if (request == NULL) {
        error = "missing request";
    } else if (strcmp(request, "new") == 0) {
        if (queue_id == NULL || !queue_id_valid(queue_id))
            error = "bad queue_id";
        else
            qmgr_active_take(queue_id);   /* no room or gone: scans handle it */
    } else if (strcmp(request, "flush") == 0) {
        msg_info("flush requested: retrying all deferred mail");
        qmgr_dest_flush();   /* lifts destination suspensions too */
        qmgr_scan_deferred(1);
        qmgr_scan_incoming();
    } else if (strcmp(request, "flush_id") == 0) {
        if (queue_id == NULL || qmgr_flush_id(queue_id) < 0)
            error = "bad queue_id";
    } else if (strcmp(request, "scan") == 0) {
        qmgr_scan_incoming();
    } else {
        error = "unknown request";
    }
    struct attr_msg reply;
    attr_msg_init(&reply);
    attr_msg_add(&reply, "id", attr_msg_get(req, "id"));
    if (error == NULL) {
        attr_msg_add(&reply, "status", "ok");
    } else {
        attr_msg_add(&reply, "status", "error");
        attr_msg_add(&reply, "reason", error);
    }
    attr_msg_encode(&reply, &c->out);
    attr_msg_clear(&reply);
}

static void client_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct qmgr_client *c = ctx;
    if (events & (EVENT_READ | EVENT_ERROR)) {
        ssize_t n = buf_read_fd(&c->in, fd, 65536);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            client_close(c);
            return;
        }
        for (;;) {
            struct attr_msg req;
            attr_msg_init(&req);
            const char *error = NULL;
            enum attr_status st = attr_msg_decode(&c->in, &req, &error);
            if (st == ATTR_NEED_MORE) {
                attr_msg_clear(&req);
                break;
            }
            if (st == ATTR_BAD || attr_msg_get(&req, "id") == NULL) {
                msg_warn("malformed control request: %s; dropping the client",
                         st == ATTR_BAD ? error : "missing id");
                attr_msg_clear(&req);
                client_close(c);
                return;
            }
            handle_request(c, &req);
            attr_msg_clear(&req);
        }
    }
    if (c->out.len > 0) {
        if (buf_flush_fd(&c->out, fd) < 0) {
            client_close(c);
            return;
        }
        if (c->out.len > ATTR_MAX_MSG) {
            msg_warn("control client does not read its replies; dropping it");
            client_close(c);
            return;
        }
    }
    event_fd_set(loop, fd, EVENT_READ | (c->out.len > 0 ? EVENT_WRITE : 0));
}

void qmgr_accept(struct event_loop *loop, int fd)
{
    if (client_count >= QMGR_CLIENT_MAX) {
        msg_warn("too many control connections; refusing one");
        close(fd);
        return;
    }
    struct qmgr_client *c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    buf_init(&c->in, 0);
    buf_init(&c->out, 0);
    if (event_fd_add(loop, fd, EVENT_READ, client_cb, c) < 0) {
        msg_warn("event_fd_add: %s", strerror(errno));
        close(fd);
        free(c);
        return;
    }
    client_count++;
    server_session_count((int)client_count);
}

void qmgr_clients_stop(void)
{
    event_timer_cancel(qmgr_loop, &periodic_timer);
    event_timer_cancel(qmgr_loop, &deferred_timer);
}
