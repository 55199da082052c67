/*
 * NAME
 *	qmgr_active - messages in the active queue
 * DESCRIPTION
 *	A message enters with qmgr_active_take(): incoming/ID is renamed to
 *	active/ID and parsed; every recipient not yet done is routed
 *	(lib/transport.h, in qmgr_route(), the one place that chooses):
 *	local -> QR_PENDING on the round robin over messages that
 *	qmgr_deliver.c pipelines to local; smtp -> QR_QUEUED on its
 *	destination's queue (qmgr_dest.c); error:, discard: and retry: (and
 *	configuration errors) are decided here at once and logged here with
 *	relay=none, as are recipients of a suspended destination.
 *
 *	Results: "sent" marks the recipient done on disk at once. "bounced"
 *	is only remembered: when the message's round ends, one notice is
 *	queued (durably, lib/bounce) and only then are the bounced
 *	recipients marked done, so a crash can repeat a bounce but never
 *	lose one. "deferred" appends to defer/ID and keeps the recipient.
 *
 *	End of a round: no deferred recipient left -> active/ID and defer/ID
 *	are removed ("ID: removed"). Otherwise, past the queue lifetime the
 *	deferred recipients are bounced (status 4.4.7, "message delivery
 *	time exceeded"); else the file goes to deferred/ with mtime = next
 *	try, the back-off doubling with the message's age between
 *	minimal_backoff_time and maximal_backoff_time.
 *
 *	Null-sender messages (notices) that fail are reported once to
 *	2bounce_notice_recipient; a failing double bounce is discarded.
 *
 *	Delay warnings: when delay_warning_time is set, a deferred message
 *	older than that with a non-null sender gets one "delayed mail"
 *	notice (RFC 3464, Action: delayed) for its deferred recipients.
 *	"Once" is remembered by a marker line in defer/ID (recipient
 *	QMGR_WARNED_MARK, which no address can equal and readers that look
 *	up recipients never see), carried over from round to round; a
 *	crash may at worst repeat a warning.
 * DIAGNOSTICS
 *	Files moved away under our feet (postsuper) are logged at info level
 *	and forgotten. Corrupt files go to corrupt/ with a warning.
 * LIMITS
 *	qmgr_message_active_limit messages in memory; the rest waits in
 *	incoming/ until a later scan.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "config.h"
#include "delivery_log.h"
#include "log.h"
#include "qmgr.h"
#include "transport.h"
#include "xalloc.h"

/* Defer log recipient field that records a sent delay warning. */
#define QMGR_WARNED_MARK "(delay warning sent)"

static struct qmgr_msg *active_head, *active_tail;
static size_t active_count;
static size_t active_peak;   /* since the heap was last trimmed */
static struct qmgr_msg *ready_head, *ready_tail;
static int incoming_backlog;

static size_t active_limit(void)
{
    long long limit = config_int("qmgr_message_active_limit");
    return limit > 0 ? (size_t)limit : 1;
}

int qmgr_active_room(void)
{
    return active_count < active_limit();
}

int qmgr_active_has_work(void)
{
    return ready_head != NULL;
}

static void ready_add(struct qmgr_msg *m)
{
    if (m->in_ready)
        return;
    m->in_ready = 1;
    m->ready_next = NULL;
    m->ready_prev = ready_tail;
    if (ready_tail != NULL)
        ready_tail->ready_next = m;
    else
        ready_head = m;
    ready_tail = m;
}

static void ready_remove(struct qmgr_msg *m)
{
    if (!m->in_ready)
        return;
    if (m->ready_prev != NULL)
        m->ready_prev->ready_next = m->ready_next;
    else
        ready_head = m->ready_next;
    if (m->ready_next != NULL)
        m->ready_next->ready_prev = m->ready_prev;
    else
        ready_tail = m->ready_prev;
    m->ready_prev = m->ready_next = NULL;
    m->in_ready = 0;
}

static void msg_free(struct qmgr_msg *m)
{
    ready_remove(m);
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        active_head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    else
        active_tail = m->prev;
    active_count--;
    for (size_t i = 0; i < m->qf->rcpt_count; i++) {
        free(m->rs[i].reason);
        free(m->rs[i].route_addr);
    }
    free(m->rs);
    queue_file_free(&m->qf);
    free(m);
    /* A drained backlog (up to qmgr_message_active_limit messages) leaves
       its peak in the heap; give it back once the active queue is empty.
       Not after every single message of a quiet server: trimming walks
       the heap. */
    if (active_count == 0 && active_peak >= QMGR_TRIM_AFTER) {
        malloc_trim(0);
        active_peak = 0;
    }
    /* New mail first: its walk is scheduled before the deferred one. */
    if (incoming_backlog) {
        incoming_backlog = 0;
        qmgr_scan_incoming();
    }
    qmgr_scan_room();
}


static double msg_age(const struct qmgr_msg *m)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)(tv.tv_sec - m->qf->arrival_sec) +
           (double)(tv.tv_usec - m->qf->arrival_usec) / 1e6;
}

static void set_reason(struct qmgr_rcpt *r, const char *dsn, const char *reason)
{
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn ? dsn : "");
    free(r->reason);
    r->reason = xstrdup(reason ? reason : "");
}

/* The delivery line for what qmgr decides itself (the transports log
   their own results). */
static void log_decision(struct qmgr_msg *m, size_t i, const char *relay, const char *dsn,
                         const char *status, const char *reason)
{
    double age = msg_age(m);
    struct delivery_log entry = {
        .queue_id = m->id, .to = m->qf->rcpts[i].address, .relay = relay,
        .delay = age, .delays = {age, 0, 0, 0},
        .dsn = dsn, .status = status, .reason = reason,
    };
    delivery_log(&entry);
}

/* Defers recipient i for a reason qmgr found itself. */
static void defer_now(struct qmgr_msg *m, size_t i, const char *relay, const char *dsn,
                      const char *reason)
{
    log_decision(m, i, relay, dsn, "deferred", reason);
    m->rs[i].state = QR_DEFERRED;
    set_reason(&m->rs[i], dsn, reason);
    if (queue_defer_append(qmgr_queue_dir, m->id, m->qf->rcpts[i].address, dsn, reason) < 0)
        msg_warn("%s: cannot append to the defer log: %s", m->id, strerror(errno));
}

/* error: -> bounced at the end of the round (with the notice). */
static void bounce_now(struct qmgr_msg *m, size_t i, const char *dsn, const char *reason)
{
    log_decision(m, i, "none", dsn, "bounced", reason);
    m->rs[i].state = QR_BOUNCED;
    set_reason(&m->rs[i], dsn, reason);
}

/* discard: -> done, logged as sent. */
static void discard_now(struct qmgr_msg *m, size_t i, const char *dsn, const char *reason)
{
    log_decision(m, i, "none", dsn, "sent", reason);
    m->rs[i].state = QR_DONE;
    if (queue_file_mark_done(m->qf, i) < 0 && errno != ENOENT)
        msg_warn("%s: cannot mark recipient done: %s", m->id, strerror(errno));
}

const char *qmgr_active_address(const struct qmgr_msg *m, size_t i)
{
    return m->rs[i].route_addr ? m->rs[i].route_addr : m->qf->rcpts[i].address;
}

/* Routing: the one place that chooses a transport. */
static void qmgr_route(struct qmgr_msg *m, size_t i)
{
    const char *addr = m->qf->rcpts[i].address;
    if (strchr(addr, '@') == NULL)
        m->rs[i].route_addr = xasprintf("%s@%s", addr, config_str("myorigin"));
    struct transport_route route;
    transport_route(qmgr_active_address(m, i), &route);
    switch (route.kind) {
    case TRANSPORT_LOCAL:
        m->rs[i].state = QR_PENDING;
        m->undispatched++;
        break;
    case TRANSPORT_SMTP: {
        const char *dsn = NULL, *reason = NULL;
        if (qmgr_dest_enqueue(m, i, &route, &dsn, &reason) == 0) {
            m->rs[i].state = QR_QUEUED;
            m->queued++;
        } else {
            defer_now(m, i, "none", dsn, reason);
        }
        break;
    }
    case TRANSPORT_ERROR:
        bounce_now(m, i, route.dsn, route.reason);
        break;
    case TRANSPORT_DISCARD:
        discard_now(m, i, route.dsn, route.reason);
        break;
    case TRANSPORT_DEFER:
    default:
        defer_now(m, i, "none", route.dsn[0] ? route.dsn : "4.0.0",
                  route.reason ? route.reason : "");
        break;
    }
    transport_route_free(&route);
}

static void msg_finish(struct qmgr_msg *m);

static void msg_check(struct qmgr_msg *m)
{
    if (m->undispatched == 0 && m->inflight == 0 && m->queued == 0)
        msg_finish(m);
}

void qmgr_active_mark_inflight(struct qmgr_msg *m, size_t i)
{
    if (m->rs[i].state != QR_QUEUED)
        msg_panic("%s: dispatch of recipient %zu in state %d", m->id, i, m->rs[i].state);
    m->rs[i].state = QR_INFLIGHT;
    m->queued--;
    m->inflight++;
}

void qmgr_active_mark_queued(struct qmgr_msg *m, size_t i)
{
    if (m->rs[i].state != QR_INFLIGHT)
        msg_panic("%s: requeue of recipient %zu in state %d", m->id, i, m->rs[i].state);
    m->rs[i].state = QR_QUEUED;
    m->inflight--;
    m->queued++;
}

void qmgr_active_defer_queued(struct qmgr_msg *m, size_t i, const char *dsn, const char *reason)
{
    if (m->rs[i].state != QR_QUEUED)
        msg_panic("%s: deferral of recipient %zu in state %d", m->id, i, m->rs[i].state);
    m->queued--;
    defer_now(m, i, "none", dsn, reason);
    msg_check(m);
}

/* 1 if defer/ID records a delay warning sent in an earlier round. */
static int defer_log_warned(const char *id)
{
    struct queue_defer *entries = NULL;
    size_t n = 0;
    if (queue_defer_read(qmgr_queue_dir, id, &entries, &n) < 0)
        return 0;
    int warned = queue_defer_find(entries, n, QMGR_WARNED_MARK) != NULL;
    queue_defer_free(&entries, n);
    return warned;
}

static void defer_log_mark_warned(const char *id)
{
    if (queue_defer_append(qmgr_queue_dir, id, QMGR_WARNED_MARK, "4.0.0",
                           "a delay warning was sent") < 0)
        msg_warn("%s: cannot append to the defer log: %s", id, strerror(errno));
}

int qmgr_active_take(const char *id)
{
    return qmgr_active_take_from("incoming", id);
}

int qmgr_active_take_from(const char *queue, const char *id)
{
    if (!queue_id_valid(id))
        return -1;
    if (!qmgr_active_room()) {
        if (strcmp(queue, "incoming") == 0)
            incoming_backlog = 1;
        return 0;
    }
    if (queue_file_move(qmgr_queue_dir, id, queue, "active") < 0) {
        if (errno == EEXIST)
            msg_warn("%s: already in the active queue; leaving it in %s", id, queue);
        else if (errno != ENOENT)
            msg_warn("%s: cannot move to the active queue: %s", id, strerror(errno));
        return -1;
    }
    char *path = queue_file_path(qmgr_queue_dir, "active", id);
    struct queue_file *qf = NULL;
    char *error = NULL;
    if (queue_file_read(path, &qf, &error) < 0) {
        int saved = errno;
        if (saved == ENOENT) {
            msg_info("%s: queue file went away", id);
        } else if (saved == EBADMSG) {
            if (queue_file_move(qmgr_queue_dir, id, "active", "corrupt") < 0)
                msg_warn("%s: %s; cannot move to the corrupt queue: %s", id, error,
                         strerror(errno));
            else
                msg_warn("%s: %s; moved to corrupt queue", id, error);
        } else {
            msg_warn("%s: cannot read queue file: %s", id, error ? error : strerror(saved));
            /* An I/O problem may pass: try again with a later scan. */
            if (queue_file_move(qmgr_queue_dir, id, "active", queue) < 0 && errno != ENOENT)
                msg_warn("%s: cannot move back to %s: %s", id, queue, strerror(errno));
        }
        free(error);
        free(path);
        return -1;
    }
    free(path);
    int warned = config_time("delay_warning_time") > 0 && qf->sender[0] != '\0' &&
                 defer_log_warned(id);
    queue_defer_remove(qmgr_queue_dir, id);
    if (warned)
        defer_log_mark_warned(id);

    struct qmgr_msg *m = xcalloc(1, sizeof(*m));
    m->warned = warned;
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->qf = qf;
    m->rs = xcalloc(qf->rcpt_count ? qf->rcpt_count : 1, sizeof(*m->rs));
    m->prev = active_tail;
    if (active_tail != NULL)
        active_tail->next = m;
    else
        active_head = m;
    active_tail = m;
    active_count++;
    if (active_count > active_peak)
        active_peak = active_count;

    msg_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", id, qf->sender,
             (long long)qf->message_len, qf->rcpt_count);
    for (size_t i = 0; i < qf->rcpt_count; i++) {
        if (qf->rcpts[i].done)
            m->rs[i].state = QR_DONE;
        else
            qmgr_route(m, i);
    }
    if (m->undispatched > 0)
        ready_add(m);
    msg_check(m);
    return 1;
}

struct qmgr_msg *qmgr_active_next(size_t *rcpt_r)
{
    struct qmgr_msg *m = ready_head;
    if (m == NULL)
        return NULL;
    size_t i = m->cursor;
    while (i < m->qf->rcpt_count && m->rs[i].state != QR_PENDING)
        i++;
    if (i >= m->qf->rcpt_count)
        msg_panic("%s: ready message without a pending recipient", m->id);
    m->rs[i].state = QR_INFLIGHT;
    m->undispatched--;
    m->inflight++;
    m->cursor = i + 1;
    ready_remove(m);
    if (m->undispatched > 0)
        ready_add(m);   /* to the tail: one recipient per message per turn */
    *rcpt_r = i;
    return m;
}

void qmgr_active_result(struct qmgr_msg *m, size_t i, enum qmgr_result result, const char *dsn,
                        const char *reason)
{
    if (m->rs[i].state != QR_INFLIGHT)
        msg_panic("%s: result for recipient %zu in state %d", m->id, i, m->rs[i].state);
    m->inflight--;
    switch (result) {
    case QMGR_SENT:
        m->rs[i].state = QR_DONE;
        if (queue_file_mark_done(m->qf, i) < 0 && errno != ENOENT)
            msg_warn("%s: cannot mark recipient done: %s", m->id, strerror(errno));
        break;
    case QMGR_BOUNCED:
        m->rs[i].state = QR_BOUNCED;
        set_reason(&m->rs[i], dsn, reason);
        break;
    case QMGR_DEFERRED:
    default:
        m->rs[i].state = QR_DEFERRED;
        set_reason(&m->rs[i], dsn, reason);
        if (queue_defer_append(qmgr_queue_dir, m->id, m->qf->rcpts[i].address, dsn, reason) < 0)
            msg_warn("%s: cannot append to the defer log: %s", m->id, strerror(errno));
        break;
    }
    msg_check(m);
}

void qmgr_active_defer_inflight(struct qmgr_msg *m, size_t i, const char *dsn,
                                const char *reason)
{
    /* No agent will log this one: qmgr decided it. */
    log_decision(m, i, "none", dsn, "deferred", reason);
    qmgr_active_result(m, i, QMGR_DEFERRED, dsn, reason);
}

void qmgr_active_requeue(struct qmgr_msg *m, size_t i, int count_loss)
{
    if (m->rs[i].state != QR_INFLIGHT || m->rs[i].dest != NULL)
        msg_panic("%s: requeue of recipient %zu in state %d", m->id, i, m->rs[i].state);
    if (count_loss && ++m->rs[i].losses >= QMGR_MAX_LOSSES) {
        qmgr_active_defer_inflight(m, i, "4.3.0", "lost connection with the local delivery agent");
        return;
    }
    m->inflight--;
    m->rs[i].state = QR_PENDING;
    m->undispatched++;
    if (i < m->cursor)
        m->cursor = i;
    ready_add(m);
}

/* The DSN lines for the recipients in state (at most max). */
static size_t report_rcpts(const struct qmgr_msg *m, enum qmgr_rstate state,
                           struct bounce_rcpt *br, size_t max)
{
    const struct queue_file *qf = m->qf;
    size_t n = 0;
    for (size_t i = 0; i < qf->rcpt_count && n < max; i++) {
        if (m->rs[i].state != state)
            continue;
        br[n].address = qmgr_active_address(m, i);
        br[n].orig_address = m->rs[i].route_addr ? qf->rcpts[i].address : NULL;
        br[n].dsn = m->rs[i].dsn;
        br[n].reason = m->rs[i].reason;
        br[n].last_attempt = time(NULL);
        n++;
    }
    return n;
}

/* Queues the notice for the bounced recipients. Returns 0 when they may
   be marked done, -1 when they must stay (retry later). *new_id_r gets the
   notice's ID (or NULL). */
static int send_notice(struct qmgr_msg *m, size_t nbounce, char **new_id_r)
{
    *new_id_r = NULL;
    const struct queue_file *qf = m->qf;
    const char *to = qf->sender;
    if (*to == '\0') {
        const char *kind = queue_file_attr(qf, "bounce");
        if (kind != NULL && strcmp(kind, "2") == 0) {
            msg_info("%s: undeliverable postmaster notification discarded", m->id);
            return 0;
        }
        to = config_str("2bounce_notice_recipient");
    }
    struct bounce_rcpt *br = xcalloc(nbounce, sizeof(*br));
    size_t n = report_rcpts(m, QR_BOUNCED, br, nbounce);
    const char *error = NULL;
    int r = bounce_queue(qmgr_queue_dir, qf, to, br, n, 0, new_id_r, &error);
    free(br);
    if (r < 0)
        msg_warn("%s: cannot queue the non-delivery notification: %s; will retry", m->id,
                 error ? error : "error");
    return r;
}

/* Sends the one delay warning for the deferred recipients. Returns the
   notice's ID (malloc'd) or NULL. */
static char *send_delay_warning(struct qmgr_msg *m, size_t ndefer)
{
    const struct queue_file *qf = m->qf;
    struct bounce_rcpt *br = xcalloc(ndefer, sizeof(*br));
    size_t n = report_rcpts(m, QR_DEFERRED, br, ndefer);
    char *new_id = NULL;
    const char *error = NULL;
    if (bounce_queue(qmgr_queue_dir, qf, qf->sender, br, n, 1, &new_id, &error) < 0) {
        msg_warn("%s: cannot queue the delay notification: %s; will retry", m->id,
                 error ? error : "error");
        new_id = NULL;
    } else {
        m->warned = 1;
        defer_log_mark_warned(m->id);
    }
    free(br);
    return new_id;
}

static void msg_finish(struct qmgr_msg *m)
{
    struct queue_file *qf = m->qf;
    size_t nbounce = 0, ndefer = 0;
    for (size_t i = 0; i < qf->rcpt_count; i++) {
        if (m->rs[i].state == QR_BOUNCED)
            nbounce++;
        else if (m->rs[i].state == QR_DEFERRED)
            ndefer++;
    }
    time_t now = time(NULL);
    if (ndefer > 0) {
        long long lifetime = config_time(qf->sender[0] ? "maximal_queue_lifetime"
                                                       : "bounce_queue_lifetime");
        if (qf->arrival_sec + lifetime <= (long long)now) {
            msg_info("%s: from=<%s>, status=expired, returned to sender", m->id, qf->sender);
            for (size_t i = 0; i < qf->rcpt_count; i++) {
                if (m->rs[i].state != QR_DEFERRED)
                    continue;
                char *reason = xasprintf("message delivery time exceeded: %s", m->rs[i].reason);
                set_reason(&m->rs[i], "4.4.7", reason);
                free(reason);
                m->rs[i].state = QR_BOUNCED;
                nbounce++;
                ndefer--;
            }
        }
    }

    char *notice_id = NULL;
    if (nbounce > 0) {
        if (send_notice(m, nbounce, &notice_id) == 0) {
            for (size_t i = 0; i < qf->rcpt_count; i++) {
                if (m->rs[i].state != QR_BOUNCED)
                    continue;
                m->rs[i].state = QR_DONE;
                if (queue_file_mark_done(qf, i) < 0 && errno != ENOENT)
                    msg_warn("%s: cannot mark recipient done: %s", m->id, strerror(errno));
            }
        } else {
            /* Keep them; the next round bounces them again. */
            for (size_t i = 0; i < qf->rcpt_count; i++)
                if (m->rs[i].state == QR_BOUNCED)
                    m->rs[i].state = QR_DEFERRED;
            ndefer += nbounce;
        }
    }

    char *warning_id = NULL;
    if (ndefer > 0 && !m->warned && qf->sender[0] != '\0') {
        long long warn_after = config_time("delay_warning_time");
        if (warn_after > 0 && (long long)now - qf->arrival_sec >= warn_after)
            warning_id = send_delay_warning(m, ndefer);
    }

    if (ndefer == 0) {
        char *path = queue_file_path(qmgr_queue_dir, "active", m->id);
        if (unlink(path) < 0) {
            if (errno == ENOENT)
                msg_info("%s: queue file went away", m->id);
            else
                msg_warn("%s: cannot remove %s: %s", m->id, path, strerror(errno));
        }
        free(path);
        queue_defer_remove(qmgr_queue_dir, m->id);
        msg_info("%s: removed", m->id);
    } else {
        long long min = config_time("minimal_backoff_time");
        long long max = config_time("maximal_backoff_time");
        long long age = (long long)now - qf->arrival_sec;
        long long backoff = age;
        if (backoff < min)
            backoff = min;
        if (backoff > max)
            backoff = max;
        if (backoff < 1)
            backoff = 1;
        char *path = queue_file_path(qmgr_queue_dir, "active", m->id);
        struct timeval tv[2] = { { .tv_sec = now }, { .tv_sec = now + (time_t)backoff } };
        if (utimes(path, tv) < 0 && errno != ENOENT)
            msg_warn("%s: cannot set the retry time: %s", m->id, strerror(errno));
        free(path);
        if (queue_file_move(qmgr_queue_dir, m->id, "active", "deferred") < 0) {
            if (errno == ENOENT)
                msg_info("%s: queue file went away", m->id);
            else
                msg_warn("%s: cannot move to the deferred queue: %s", m->id, strerror(errno));
        }
    }
    msg_free(m);
    if (notice_id != NULL) {
        qmgr_active_take(notice_id);
        free(notice_id);
    }
    if (warning_id != NULL) {
        qmgr_active_take(warning_id);
        free(warning_id);
    }
}
