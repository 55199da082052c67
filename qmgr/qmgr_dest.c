/*
 * NAME
 *	qmgr_dest - outbound scheduling: destinations, slow start, suspension
 * DESCRIPTION
 *	Recipients routed to an outbound transport (lib/transport.h,
 *	TRANSPORT_SMTP) are grouped per destination = (transport, next
 *	hop). A destination holds a FIFO of entries; an entry is one
 *	delivery request: one message and up to the transport's recipient
 *	limit of its recipients for that destination. While a message is
 *	routed its recipients fill one open entry per destination.
 *
 *	Fairness: destinations that may dispatch (queued entries, a free
 *	slot in their window, not suspended) sit on the transport's ready
 *	list; each turn of the pump takes the head, sends ONE request and
 *	puts the destination back at the tail. So a destination with
 *	10,000 queued messages gets one request per turn like a
 *	destination with one.
 *
 *	Concurrency: at most qmgr_transport_delivery_limit requests in
 *	progress per transport, and per destination at most its window.
 *	Slow start: the window starts at initial_destination_concurrency
 *	and grows by one with each reply that says the destination is fine
 *	(dest_status=ok), up to <transport>_destination_concurrency_limit.
 *	A reply with dest_status=dead shrinks it by one; a dead reply at
 *	window 1 counts a failed cohort, and
 *	destination_concurrency_failed_cohort_limit of them in a row
 *	suspend the destination for minimal_backoff_time: its queued
 *	recipients, and new ones while it lasts, are deferred with
 *	"delivery temporarily suspended: <reason of the failure>" (logged
 *	here with relay=none). A suspension ends with its timer or with
 *	postqueue -f (qmgr_dest_flush); the destination then starts over
 *	at the initial window.
 *
 *	Agent trouble (qmgr_transport.c reports it): a lost connection
 *	puts the request's recipients back at the head of the queue (a
 *	recipient lost QMGR_MAX_LOSSES times is deferred) and pauses the
 *	transport's dispatch 1 s, doubling to 30 s. An agent that cannot
 *	even be connected to QMGR_TP_DEAD_FAILS times in a row makes the
 *	transport unavailable: queued recipients are deferred ("mail
 *	transport unavailable", as Postfix says), so the active queue does
 *	not fill up with mail nobody can deliver; after the pause the next
 *	request probes the agent again.
 * DIAGNOSTICS
 *	A malformed reply (wrong recipient count, bad status) is a bug in
 *	the agent: logged, and the connection is dropped by the caller.
 * LIMITS
 *	A request carries at most QMGR_TP_RCPT_MAX recipients and
 *	QMGR_TP_REQUEST_BYTES of addresses, whatever the recipient limit
 *	says, to stay inside one attr frame. Destinations are created on
 *	demand and freed when they have nothing queued, nothing in
 *	progress and no suspension (the window starts over next time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "qmgr.h"
#include "transport.h"
#include "xalloc.h"

struct qmgr_dest {
    struct qmgr_transport *tp;
    char *nexthop;
    unsigned hash;
    struct qmgr_dest *hnext;
    struct qmgr_entry *head, *tail;       /* queued requests */
    struct qmgr_entry *fill;              /* open entry of the message being routed */
    int active;                           /* requests in progress */
    int window;
    int fail_cohorts;
    int suspended;
    char dsn[12];
    char *reason;                         /* "delivery temporarily suspended: ..." */
    struct event_timer *suspend_timer;
    struct event_timer *defer_timer;      /* suspension: deferring the queue in steps */
    int in_ready;
    struct qmgr_dest *ready_prev, *ready_next;
};

static struct qmgr_transport *transports;
static struct qmgr_dest **buckets;
static size_t bucket_count, dest_count;

/* ---- transports ---- */

static int param_exists(const char *name)
{
    return config_param_def(name) != NULL || config_raw(name) != NULL;
}

/* <transport>_<suffix> when declared or set, else fallback. */
static long long tp_param(const char *tp, const char *suffix, const char *fallback)
{
    char name[128];
    snprintf(name, sizeof(name), "%s_%s", tp, suffix);
    return config_int(param_exists(name) ? name : fallback);
}

static struct qmgr_transport *transport_get(const char *name)
{
    for (struct qmgr_transport *tp = transports; tp != NULL; tp = tp->next)
        if (strcmp(tp->name, name) == 0)
            return tp;
    struct qmgr_transport *tp = xcalloc(1, sizeof(*tp));
    tp->name = xstrdup(name);
    long long delivery = config_int("qmgr_transport_delivery_limit");
    if (delivery < 1)
        delivery = 1;
    if (delivery > QMGR_TP_DELIVERY_MAX)
        delivery = QMGR_TP_DELIVERY_MAX;
    tp->delivery_limit = (int)delivery;
    long long dest = tp_param(name, "destination_concurrency_limit",
                              "default_destination_concurrency_limit");
    /* 0 (Postfix: no limit) leaves only the transport's limit. */
    tp->dest_limit = dest < 1 || dest > delivery ? (int)delivery : (int)dest;
    long long rcpt = tp_param(name, "destination_recipient_limit",
                              "default_destination_recipient_limit");
    tp->rcpt_limit = rcpt < 1 || rcpt > QMGR_TP_RCPT_MAX ? QMGR_TP_RCPT_MAX : (int)rcpt;
    long long initial = config_int("initial_destination_concurrency");
    tp->initial = initial < 1 ? 1 : initial > tp->dest_limit ? tp->dest_limit : (int)initial;
    long long cohorts = config_int("destination_concurrency_failed_cohort_limit");
    tp->cohort_limit = cohorts < 1 ? 1 : cohorts > 1000 ? 1000 : (int)cohorts;
    tp->retry_ms = QMGR_RETRY_MIN_MS;
    tp->next = transports;
    transports = tp;
    return tp;
}

/* Dispatch pauses because of the transport's agent, not a destination. */
static int tp_paused(const struct qmgr_transport *tp)
{
    return event_now_ms(qmgr_loop) < tp->down_until_ms;
}

static int tp_unavailable(const struct qmgr_transport *tp)
{
    return tp->connect_fails >= QMGR_TP_DEAD_FAILS && tp_paused(tp);
}

/* ---- destinations ---- */

static unsigned dest_hash(const char *tp, const char *nexthop)
{
    unsigned h = 2166136261u;
    for (const char *p = tp; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *p = nexthop; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static void buckets_grow(void)
{
    size_t n = bucket_count ? bucket_count * 2 : 64;
    struct qmgr_dest **nb = xcalloc(n, sizeof(*nb));
    for (size_t b = 0; b < bucket_count; b++) {
        struct qmgr_dest *d = buckets[b];
        while (d != NULL) {
            struct qmgr_dest *next = d->hnext;
            d->hnext = nb[d->hash & (n - 1)];
            nb[d->hash & (n - 1)] = d;
            d = next;
        }
    }
    free(buckets);
    buckets = nb;
    bucket_count = n;
}

static struct qmgr_dest *dest_get(struct qmgr_transport *tp, const char *nexthop)
{
    unsigned h = dest_hash(tp->name, nexthop);
    if (bucket_count > 0)
        for (struct qmgr_dest *d = buckets[h & (bucket_count - 1)]; d != NULL; d = d->hnext)
            if (d->hash == h && d->tp == tp && strcmp(d->nexthop, nexthop) == 0)
                return d;
    if (dest_count >= bucket_count)
        buckets_grow();
    struct qmgr_dest *d = xcalloc(1, sizeof(*d));
    d->tp = tp;
    d->nexthop = xstrdup(nexthop);
    d->hash = h;
    d->window = tp->initial;
    d->hnext = buckets[h & (bucket_count - 1)];
    buckets[h & (bucket_count - 1)] = d;
    dest_count++;
    return d;
}

static void ready_remove(struct qmgr_dest *d)
{
    if (!d->in_ready)
        return;
    struct qmgr_transport *tp = d->tp;
    if (d->ready_prev != NULL)
        d->ready_prev->ready_next = d->ready_next;
    else
        tp->ready_head = d->ready_next;
    if (d->ready_next != NULL)
        d->ready_next->ready_prev = d->ready_prev;
    else
        tp->ready_tail = d->ready_prev;
    d->ready_prev = d->ready_next = NULL;
    d->in_ready = 0;
}

/* Puts d on (the tail of) its transport's ready list exactly when it may
   dispatch. */
static void ready_update(struct qmgr_dest *d)
{
    int want = d->head != NULL && d->active < d->window && !d->suspended;
    if (!want) {
        ready_remove(d);
        return;
    }
    if (d->in_ready)
        return;
    struct qmgr_transport *tp = d->tp;
    d->in_ready = 1;
    d->ready_next = NULL;
    d->ready_prev = tp->ready_tail;
    if (tp->ready_tail != NULL)
        tp->ready_tail->ready_next = d;
    else
        tp->ready_head = d;
    tp->ready_tail = d;
}

/* Frees d when nothing refers to it any more. */
static void dest_maybe_free(struct qmgr_dest *d)
{
    if (d->head != NULL || d->active > 0 || d->suspended || d->defer_timer != NULL)
        return;
    ready_remove(d);
    struct qmgr_dest **pp = &buckets[d->hash & (bucket_count - 1)];
    while (*pp != d)
        pp = &(*pp)->hnext;
    *pp = d->hnext;
    dest_count--;
    free(d->nexthop);
    free(d->reason);
    free(d);
}

static void entry_unlink(struct qmgr_entry *e)
{
    struct qmgr_dest *d = e->dest;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        d->tail = e->prev;
    e->prev = e->next = NULL;
    if (d->fill == e)
        d->fill = NULL;
}

static void entry_push_head(struct qmgr_dest *d, struct qmgr_entry *e)
{
    e->prev = NULL;
    e->next = d->head;
    if (d->head != NULL)
        d->head->prev = e;
    else
        d->tail = e;
    d->head = e;
}

static void entry_push_tail(struct qmgr_dest *d, struct qmgr_entry *e)
{
    e->next = NULL;
    e->prev = d->tail;
    if (d->tail != NULL)
        d->tail->next = e;
    else
        d->head = e;
    d->tail = e;
}

static struct qmgr_entry *entry_new(struct qmgr_msg *m, struct qmgr_dest *d)
{
    struct qmgr_entry *e = xcalloc(1, sizeof(*e));
    e->msg = m;
    e->dest = d;
    return e;
}

static void entry_add(struct qmgr_entry *e, size_t i, size_t bytes)
{
    if (e->count == e->alloc) {
        e->alloc = e->alloc ? e->alloc * 2 : 4;
        e->rcpts = xreallocarray(e->rcpts, e->alloc, sizeof(*e->rcpts));
    }
    e->rcpts[e->count++] = i;
    e->bytes += bytes;
}

static void entry_free(struct qmgr_entry **e_p)
{
    free((*e_p)->rcpts);
    free(*e_p);
    *e_p = NULL;
}

/* Defers every recipient of e (queued, out of its queue) and frees e.
   May free e's message. */
static void entry_defer(struct qmgr_entry *e, const char *dsn, const char *reason)
{
    struct qmgr_msg *m = e->msg;
    size_t n = e->count;
    size_t *rcpts = e->rcpts;
    e->rcpts = NULL;
    entry_free(&e);
    /* The message lives until its last queued recipient is deferred. */
    for (size_t k = 0; k < n; k++)
        qmgr_active_defer_queued(m, rcpts[k], dsn, reason);
    free(rcpts);
}

/* Defers everything queued on d. */
static void dest_defer_queue(struct qmgr_dest *d, const char *dsn, const char *reason)
{
    ready_remove(d);
    while (d->head != NULL) {
        struct qmgr_entry *e = d->head;
        entry_unlink(e);
        entry_defer(e, dsn, reason);
    }
}

/* ---- suspension ---- */

/* A suspended destination's queue is deferred QMGR_DEFER_CHUNK entries
   per loop round: thousands of deferrals at once would hold up every
   other destination and the control socket. */
static void defer_step_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_dest *d = ctx;
    d->defer_timer = NULL;
    if (!d->suspended) {
        /* The suspension ended meanwhile: the rest is dispatched. */
        ready_update(d);
        dest_maybe_free(d);
        return;
    }
    ready_remove(d);
    for (int n = 0; n < QMGR_DEFER_CHUNK && d->head != NULL; n++) {
        struct qmgr_entry *e = d->head;
        entry_unlink(e);
        entry_defer(e, d->dsn, d->reason);
    }
    if (d->head != NULL)
        d->defer_timer = event_timer_add(qmgr_loop, 0, defer_step_cb, d);
    else
        dest_maybe_free(d);
}

static void suspend_end_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_dest *d = ctx;
    d->suspend_timer = NULL;
    d->suspended = 0;
    d->window = d->tp->initial;
    d->fail_cohorts = 0;
    xfree(&d->reason);
    ready_update(d);
    dest_maybe_free(d);
}

static void dest_suspend(struct qmgr_dest *d, const char *dsn, const char *why)
{
    long long secs = config_time("minimal_backoff_time");
    if (secs < 1)
        secs = 1;
    d->suspended = 1;
    /* The recipients are deferred, so the code must say "temporary". */
    if (dsn != NULL && (dsn[0] == '4' || dsn[0] == '5') && dsn[1] == '.')
        snprintf(d->dsn, sizeof(d->dsn), "4%s", dsn + 1);
    else
        snprintf(d->dsn, sizeof(d->dsn), "4.0.0");
    free(d->reason);
    d->reason = xasprintf("delivery temporarily suspended: %s",
                          why != NULL && *why != '\0' ? why : "destination not reachable");
    msg_info("%s: delivery to %s suspended for %llds: %s", d->tp->name, d->nexthop, secs,
             why != NULL && *why != '\0' ? why : "destination not reachable");
    event_timer_cancel(qmgr_loop, &d->suspend_timer);
    d->suspend_timer = event_timer_add(qmgr_loop, secs * 1000, suspend_end_cb, d);
    ready_remove(d);
    if (d->defer_timer == NULL)
        d->defer_timer = event_timer_add(qmgr_loop, 0, defer_step_cb, d);
}

/* ---- the interface ---- */

static void pump_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
    qmgr_transport_pump();
    qmgr_dest_pump();
}

void qmgr_dest_init(void)
{
    event_before_sleep(qmgr_loop, pump_cb, NULL);
}

int qmgr_dest_enqueue(struct qmgr_msg *m, size_t i, const struct transport_route *route,
                      const char **dsn_r, const char **reason_r)
{
    struct qmgr_transport *tp = transport_get(route->transport);
    if (tp_unavailable(tp)) {
        *dsn_r = "4.3.0";
        *reason_r = "mail transport unavailable";
        return -1;
    }
    struct qmgr_dest *d = dest_get(tp, route->nexthop);
    if (d->suspended) {
        *dsn_r = d->dsn;
        *reason_r = d->reason;
        return -1;
    }
    const char *addr = qmgr_active_address(m, i);
    size_t bytes = strlen(addr) + strlen(m->qf->rcpts[i].address) + 48;
    struct qmgr_entry *e = d->fill;
    if (e == NULL || e->msg != m || e->count >= (size_t)tp->rcpt_limit ||
        e->bytes + bytes > QMGR_TP_REQUEST_BYTES) {
        e = entry_new(m, d);
        entry_push_tail(d, e);
        d->fill = e;
    }
    entry_add(e, i, bytes);
    m->rs[i].dest = d;
    ready_update(d);
    return 0;
}

void qmgr_dest_pump(void)
{
    for (struct qmgr_transport *tp = transports; tp != NULL; tp = tp->next) {
        while (!tp_paused(tp) && tp->busy < tp->delivery_limit && tp->ready_head != NULL) {
            /* Connect first: a failure may defer (and free) what is queued. */
            struct qmgr_tconn *c = qmgr_transport_conn(tp);
            if (c == NULL)
                break;   /* paused now */
            struct qmgr_dest *d = tp->ready_head;
            if (d == NULL) {
                qmgr_transport_release(c);
                break;
            }
            ready_remove(d);
            struct qmgr_entry *e = d->head;
            entry_unlink(e);
            for (size_t k = 0; k < e->count; k++)
                qmgr_active_mark_inflight(e->msg, e->rcpts[k]);
            d->active++;
            tp->busy++;
            qmgr_transport_send(c, e, d->nexthop);
            ready_update(d);   /* to the tail: one request per destination per turn */
        }
    }
}

/* Slow start and failure accounting for one finished request. */
static void dest_feedback(struct qmgr_dest *d, int dead, const char *dsn, const char *why)
{
    if (!dead) {
        d->fail_cohorts = 0;
        if (d->window < d->tp->dest_limit)
            d->window++;
        return;
    }
    if (d->suspended)
        return;
    if (d->window > 1) {
        d->window--;
        return;
    }
    if (++d->fail_cohorts >= d->tp->cohort_limit)
        dest_suspend(d, dsn, why);
}

static enum qmgr_result parse_status(const char *s, int *ok_r)
{
    *ok_r = 1;
    if (s != NULL && strcmp(s, "sent") == 0)
        return QMGR_SENT;
    if (s != NULL && strcmp(s, "bounced") == 0)
        return QMGR_BOUNCED;
    if (s != NULL && strcmp(s, "deferred") == 0)
        return QMGR_DEFERRED;
    *ok_r = 0;
    return QMGR_DEFERRED;
}

/* A DSN code whose class agrees with the result ("550 4.1.1" would make
   a bounce that says "delayed"). */
static void fix_dsn(char *out, size_t size, const char *dsn, enum qmgr_result result)
{
    char class = result == QMGR_SENT ? '2' : result == QMGR_BOUNCED ? '5' : '4';
    if (dsn == NULL || strlen(dsn) < 5 || strlen(dsn) >= size || dsn[1] != '.' ||
        strspn(dsn + 2, "0123456789.") != strlen(dsn + 2)) {
        snprintf(out, size, "%c.0.0", class);
        return;
    }
    snprintf(out, size, "%s", dsn);
    out[0] = class;
}

int qmgr_dest_reply(struct qmgr_entry *e, const struct attr_msg *reply)
{
    struct qmgr_dest *d = e->dest;
    long long n = attr_msg_get_num(reply, "rcpt_count");
    if (n < 0 || (size_t)n != e->count) {
        msg_warn("%s agent answered %lld recipients for a request with %zu", d->tp->name, n,
                 e->count);
        return -1;
    }
    char name[32];
    for (size_t k = 0; k < e->count; k++) {
        int ok;
        snprintf(name, sizeof(name), "status_%zu", k);
        parse_status(attr_msg_get(reply, name), &ok);
        if (!ok) {
            msg_warn("%s agent sent a bad or missing %s", d->tp->name, name);
            return -1;
        }
    }
    const char *dest_status = attr_msg_get(reply, "dest_status");
    int dead = dest_status != NULL && strcmp(dest_status, "dead") == 0;

    struct qmgr_transport *tp = d->tp;
    struct qmgr_msg *m = e->msg;
    size_t count = e->count;
    size_t *rcpts = e->rcpts;
    e->rcpts = NULL;
    entry_free(&e);
    d->active--;
    tp->busy--;
    qmgr_dest_transport_event(tp, QMGR_TP_OK);

    snprintf(name, sizeof(name), "dsn_0");
    const char *dsn0 = attr_msg_get(reply, name);
    snprintf(name, sizeof(name), "reason_0");
    const char *why0 = attr_msg_get(reply, name);
    /* Suspending defers other messages' queued recipients; this
       request's recipients are still in flight, so m stays. */
    dest_feedback(d, dead, dsn0, why0);

    for (size_t k = 0; k < count; k++) {
        int ok;
        snprintf(name, sizeof(name), "status_%zu", k);
        enum qmgr_result result = parse_status(attr_msg_get(reply, name), &ok);
        snprintf(name, sizeof(name), "dsn_%zu", k);
        char dsn[12];
        fix_dsn(dsn, sizeof(dsn), attr_msg_get(reply, name), result);
        snprintf(name, sizeof(name), "reason_%zu", k);
        const char *reason = attr_msg_get(reply, name);
        /* The last result may finish (free) m. */
        qmgr_active_result(m, rcpts[k], result, dsn, reason ? reason : "");
    }
    free(rcpts);
    ready_update(d);
    dest_maybe_free(d);
    return 0;
}

void qmgr_dest_lost(struct qmgr_entry *e, int count_loss)
{
    struct qmgr_dest *d = e->dest;
    struct qmgr_transport *tp = d->tp;
    struct qmgr_msg *m = e->msg;
    d->active--;
    tp->busy--;
    struct qmgr_entry *again = entry_new(m, d);
    size_t ngiveup = 0;
    size_t *giveup = xcalloc(e->count ? e->count : 1, sizeof(*giveup));
    for (size_t k = 0; k < e->count; k++) {
        size_t i = e->rcpts[k];
        if (count_loss && ++m->rs[i].losses >= QMGR_MAX_LOSSES) {
            giveup[ngiveup++] = i;
            continue;
        }
        qmgr_active_mark_queued(m, i);
        const char *addr = qmgr_active_address(m, i);
        entry_add(again, i, strlen(addr) + strlen(m->qf->rcpts[i].address) + 48);
    }
    entry_free(&e);
    if (again->count > 0) {
        if (d->suspended) {
            entry_defer(again, d->dsn, d->reason);
        } else {
            /* First in line again: it has waited longest. */
            entry_push_head(d, again);
        }
    } else {
        entry_free(&again);
    }
    char *reason = xasprintf("lost connection with the %s delivery agent", tp->name);
    /* After the last one m may be gone. */
    for (size_t k = 0; k < ngiveup; k++)
        qmgr_active_defer_inflight(m, giveup[k], "4.3.0", reason);
    free(reason);
    free(giveup);
    ready_update(d);
    dest_maybe_free(d);
}

static void retry_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct qmgr_transport *tp = ctx;
    tp->retry_timer = NULL;
    /* The before-sleep pump runs after this and dispatches again. */
}

/* Defers everything queued for tp (its agent cannot be reached). */
static void transport_defer_all(struct qmgr_transport *tp)
{
    /* Deferring may route bounce notices and create destinations of
       other transports: work on a snapshot. */
    size_t n = 0;
    struct qmgr_dest **list = xcalloc(dest_count ? dest_count : 1, sizeof(*list));
    for (size_t b = 0; b < bucket_count; b++)
        for (struct qmgr_dest *d = buckets[b]; d != NULL; d = d->hnext)
            if (d->tp == tp && d->head != NULL)
                list[n++] = d;
    for (size_t k = 0; k < n; k++)
        dest_defer_queue(list[k], "4.3.0", "mail transport unavailable");
    for (size_t k = 0; k < n; k++)
        dest_maybe_free(list[k]);
    free(list);
}

void qmgr_dest_transport_event(struct qmgr_transport *tp, enum qmgr_tp_event event)
{
    if (event == QMGR_TP_CONNECTED) {
        tp->connect_fails = 0;
        return;
    }
    if (event == QMGR_TP_OK) {
        /* Only a reply proves the agent works: an agent that takes
           connections and dies on every request keeps backing off. */
        tp->connect_fails = 0;
        tp->retry_ms = QMGR_RETRY_MIN_MS;
        return;
    }
    if (event == QMGR_TP_CONNECT_FAILED)
        tp->connect_fails++;
    long long now = event_now_ms(qmgr_loop);
    if (tp->down_until_ms < now + tp->retry_ms)
        tp->down_until_ms = now + tp->retry_ms;
    event_timer_cancel(qmgr_loop, &tp->retry_timer);
    tp->retry_timer = event_timer_add(qmgr_loop, tp->down_until_ms - now, retry_cb, tp);
    tp->retry_ms *= 2;
    if (tp->retry_ms > QMGR_RETRY_MAX_MS)
        tp->retry_ms = QMGR_RETRY_MAX_MS;
    if (tp->connect_fails == QMGR_TP_DEAD_FAILS)
        msg_warn("%s: mail transport unavailable (its agent cannot be reached); "
                 "deferring its mail", tp->name);
    if (tp->connect_fails >= QMGR_TP_DEAD_FAILS)
        transport_defer_all(tp);
}

void qmgr_dest_flush(void)
{
    for (struct qmgr_transport *tp = transports; tp != NULL; tp = tp->next) {
        tp->down_until_ms = 0;
        tp->retry_ms = QMGR_RETRY_MIN_MS;
        tp->connect_fails = 0;
        event_timer_cancel(qmgr_loop, &tp->retry_timer);
    }
    size_t n = 0;
    struct qmgr_dest **list = xcalloc(dest_count ? dest_count : 1, sizeof(*list));
    for (size_t b = 0; b < bucket_count; b++)
        for (struct qmgr_dest *d = buckets[b]; d != NULL; d = d->hnext)
            if (d->suspended)
                list[n++] = d;
    for (size_t k = 0; k < n; k++) {
        struct qmgr_dest *d = list[k];
        event_timer_cancel(qmgr_loop, &d->suspend_timer);
        msg_info("%s: delivery to %s resumed (flush)", d->tp->name, d->nexthop);
        suspend_end_cb(qmgr_loop, d);   /* may free d */
    }
    free(list);
}

struct qmgr_transport *qmgr_transports(void)
{
    return transports;
}
