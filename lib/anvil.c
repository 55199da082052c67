/*
 * NAME
 *	anvil - per-client connection and rate limits inside smtpd
 * DESCRIPTION
 *	See anvil.h. The table is a chained hash (FNV-1a of the address
 *	text, doubled when it holds more entries than buckets) plus one
 *	doubly linked list of the entries whose client has no open
 *	connection, oldest first: eviction and expiry take from its head,
 *	so both are O(1) per entry, and connected clients (never evicted)
 *	are not in it.
 *
 *	Each rate is two counters over fixed windows of one time unit
 *	(window number = now / unit); see anvil.h for the estimate.
 * DIAGNOSTICS
 *	"anvil: table full (N clients connected); new client ADDR not
 *	counted" at most once per time unit.
 * LIMITS
 *	See anvil.h: max_clients entries of about 150 bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil.h"
#include "config.h"
#include "log.h"
#include "resolve.h"
#include "xalloc.h"

struct anvil_counter {
    long long window;         /* window number of cur */
    unsigned cur;             /* events in that window */
    unsigned prev;            /* events in the window before it */
};

struct anvil_entry {
    struct anvil_entry *hnext;
    struct anvil_entry *idle_prev, *idle_next;   /* only while count == 0 */
    uint32_t hash;
    unsigned count;
    long long last_ms;        /* last time the entry was used */
    struct anvil_counter rates[ANVIL_RATE_COUNT];
    char addr[ANVIL_ADDR_MAX + 1];
};

struct anvil {
    struct anvil_limits lim;
    struct resolve_cidr_list *exceptions;
    struct anvil_entry **buckets;
    size_t nbuckets;          /* power of two */
    size_t nentries;
    struct anvil_entry *idle_head, *idle_tail;
    long long full_warned_ms;
    int full_warned;
};

void anvil_limits_default(struct anvil_limits *limits_r)
{
    memset(limits_r, 0, sizeof(*limits_r));
    limits_r->connection_count = 50;
    limits_r->time_unit_ms = 60 * 1000;
    limits_r->max_clients = ANVIL_MAX_CLIENTS_DEFAULT;
}

void anvil_limits_config(struct anvil_limits *limits_r)
{
    anvil_limits_default(limits_r);
    limits_r->connection_count = config_int("smtpd_client_connection_count_limit");
    limits_r->rate[ANVIL_RATE_CONN] = config_int("smtpd_client_connection_rate_limit");
    limits_r->rate[ANVIL_RATE_MAIL] = config_int("smtpd_client_message_rate_limit");
    limits_r->rate[ANVIL_RATE_RCPT] = config_int("smtpd_client_recipient_rate_limit");
    limits_r->rate[ANVIL_RATE_AUTH] = config_int("smtpd_client_auth_rate_limit");
    long long unit = config_time("anvil_rate_time_unit");
    if (unit > 0)
        limits_r->time_unit_ms = unit * 1000;
    else
        msg_warn("anvil_rate_time_unit must be positive; using 60s");
}

struct anvil *anvil_create(const struct anvil_limits *limits, const char *exceptions)
{
    struct anvil *a = xcalloc(1, sizeof(*a));
    a->lim = *limits;
    if (a->lim.time_unit_ms <= 0)
        a->lim.time_unit_ms = 60 * 1000;
    if (a->lim.max_clients == 0)
        a->lim.max_clients = 1;
    a->exceptions = resolve_cidr_list_create(exceptions, "smtpd_client_event_limit_exceptions");
    a->nbuckets = 256;
    a->buckets = xcalloc(a->nbuckets, sizeof(*a->buckets));
    return a;
}

struct anvil *anvil_create_config(void)
{
    struct anvil_limits limits;
    anvil_limits_config(&limits);
    char *exceptions = xstrdup(config_str("smtpd_client_event_limit_exceptions"));
    struct anvil *a = anvil_create(&limits, exceptions);
    free(exceptions);
    return a;
}

void anvil_destroy(struct anvil **anvil_p)
{
    struct anvil *a = *anvil_p;
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nbuckets; i++) {
        struct anvil_entry *e = a->buckets[i];
        while (e != NULL) {
            struct anvil_entry *next = e->hnext;
            free(e);
            e = next;
        }
    }
    free(a->buckets);
    resolve_cidr_list_free(&a->exceptions);
    free(a);
    *anvil_p = NULL;
}

/* ---- table ---- */

static uint32_t addr_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static void idle_unlink(struct anvil *a, struct anvil_entry *e)
{
    if (e->idle_prev != NULL)
        e->idle_prev->idle_next = e->idle_next;
    else if (a->idle_head == e)
        a->idle_head = e->idle_next;
    else
        return;   /* not in the list */
    if (e->idle_next != NULL)
        e->idle_next->idle_prev = e->idle_prev;
    else
        a->idle_tail = e->idle_prev;
    e->idle_prev = e->idle_next = NULL;
}

static void idle_append(struct anvil *a, struct anvil_entry *e)
{
    e->idle_next = NULL;
    e->idle_prev = a->idle_tail;
    if (a->idle_tail != NULL)
        a->idle_tail->idle_next = e;
    else
        a->idle_head = e;
    a->idle_tail = e;
}

static struct anvil_entry *find(const struct anvil *a, const char *addr, uint32_t h)
{
    for (struct anvil_entry *e = a->buckets[h & (a->nbuckets - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && strcmp(e->addr, addr) == 0)
            return e;
    return NULL;
}

static void remove_entry(struct anvil *a, struct anvil_entry *e)
{
    idle_unlink(a, e);
    struct anvil_entry **pp = &a->buckets[e->hash & (a->nbuckets - 1)];
    while (*pp != e) {
        if (*pp == NULL)
            msg_panic("anvil: entry %s not in its bucket", e->addr);
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    a->nentries--;
    free(e);
}

static void grow(struct anvil *a)
{
    size_t n = a->nbuckets * 2;
    struct anvil_entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < a->nbuckets; i++) {
        struct anvil_entry *e = a->buckets[i];
        while (e != NULL) {
            struct anvil_entry *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(a->buckets);
    a->buckets = b;
    a->nbuckets = n;
}

/* Drops idle entries whose windows are all over (two units old). */
static void expire(struct anvil *a, long long now_ms)
{
    while (a->idle_head != NULL && a->idle_head->last_ms + 2 * a->lim.time_unit_ms <= now_ms)
        remove_entry(a, a->idle_head);
}

/* The entry of addr, created when missing; NULL when addr is exempt,
   too long, or the table is full of connected clients. */
static struct anvil_entry *lookup(struct anvil *a, const char *addr, long long now_ms,
                                  int create)
{
    if (strlen(addr) > ANVIL_ADDR_MAX || resolve_cidr_list_match(a->exceptions, addr))
        return NULL;
    uint32_t h = addr_hash(addr);
    struct anvil_entry *e = find(a, addr, h);
    if (e != NULL || !create)
        return e;
    expire(a, now_ms);
    if (a->nentries >= a->lim.max_clients) {
        if (a->idle_head == NULL) {
            if (!a->full_warned || now_ms - a->full_warned_ms >= a->lim.time_unit_ms) {
                msg_warn("anvil: table full (%zu clients connected); new client %s not counted",
                         a->nentries, addr);
                a->full_warned = 1;
                a->full_warned_ms = now_ms;
            }
            return NULL;
        }
        remove_entry(a, a->idle_head);
    }
    if (a->nentries >= a->nbuckets)
        grow(a);
    e = xcalloc(1, sizeof(*e));
    e->hash = h;
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->last_ms = now_ms;
    e->hnext = a->buckets[h & (a->nbuckets - 1)];
    a->buckets[h & (a->nbuckets - 1)] = e;
    a->nentries++;
    idle_append(a, e);
    return e;
}

/* Marks a use: an idle entry moves to the young end of the list. */
static void touch(struct anvil *a, struct anvil_entry *e, long long now_ms)
{
    e->last_ms = now_ms;
    if (e->count == 0) {
        idle_unlink(a, e);
        idle_append(a, e);
    }
}

/* ---- rates ---- */

static void counter_advance(struct anvil_counter *c, long long unit, long long now_ms)
{
    long long w = now_ms >= 0 ? now_ms / unit : 0;
    if (w == c->window)
        return;
    c->prev = (w == c->window + 1) ? c->cur : 0;
    c->cur = 0;
    c->window = w;
}

static long long counter_rate(const struct anvil_counter *c, long long unit, long long now_ms)
{
    long long into = now_ms - c->window * unit;    /* 0 .. unit-1 */
    if (into < 0)
        into = 0;
    if (into > unit)
        into = unit;
    return (long long)c->cur + (long long)c->prev * (unit - into) / unit;
}

static long long count_event(struct anvil *a, struct anvil_entry *e, enum anvil_rate r,
                             long long now_ms)
{
    struct anvil_counter *c = &e->rates[r];
    counter_advance(c, a->lim.time_unit_ms, now_ms);
    if (c->cur < UINT32_MAX)
        c->cur++;
    return counter_rate(c, a->lim.time_unit_ms, now_ms);
}

/* ---- API ---- */

enum anvil_status anvil_connect(struct anvil *a, const char *addr, long long now_ms,
                                long long *value_r)
{
    if (value_r != NULL)
        *value_r = 0;
    struct anvil_entry *e = lookup(a, addr, now_ms, 1);
    if (e == NULL)
        return ANVIL_OK;
    if (e->count == 0)
        idle_unlink(a, e);
    e->last_ms = now_ms;
    if (e->count < UINT32_MAX)
        e->count++;
    long long rate = count_event(a, e, ANVIL_RATE_CONN, now_ms);
    if (a->lim.connection_count > 0 && (long long)e->count > a->lim.connection_count) {
        if (value_r != NULL)
            *value_r = e->count;
        return ANVIL_CONN_COUNT_EXCEEDED;
    }
    if (a->lim.rate[ANVIL_RATE_CONN] > 0 && rate > a->lim.rate[ANVIL_RATE_CONN]) {
        if (value_r != NULL)
            *value_r = rate;
        return ANVIL_CONN_RATE_EXCEEDED;
    }
    return ANVIL_OK;
}

void anvil_disconnect(struct anvil *a, const char *addr, long long now_ms)
{
    struct anvil_entry *e = lookup(a, addr, now_ms, 0);
    if (e == NULL || e->count == 0)
        return;
    e->last_ms = now_ms;
    if (--e->count == 0)
        idle_append(a, e);
}

enum anvil_status anvil_event(struct anvil *a, const char *addr, enum anvil_rate rate,
                              long long now_ms, long long *value_r)
{
    static const enum anvil_status exceeded[ANVIL_RATE_COUNT] = {
        ANVIL_CONN_RATE_EXCEEDED, ANVIL_MAIL_RATE_EXCEEDED, ANVIL_RCPT_RATE_EXCEEDED,
        ANVIL_AUTH_RATE_EXCEEDED,
    };
    if (value_r != NULL)
        *value_r = 0;
    if ((unsigned)rate >= ANVIL_RATE_COUNT || rate == ANVIL_RATE_CONN)
        msg_panic("anvil_event: bad rate %d", (int)rate);
    struct anvil_entry *e = lookup(a, addr, now_ms, 1);
    if (e == NULL)
        return ANVIL_OK;
    touch(a, e, now_ms);
    long long value = count_event(a, e, rate, now_ms);
    if (a->lim.rate[rate] > 0 && value > a->lim.rate[rate]) {
        if (value_r != NULL)
            *value_r = value;
        return exceeded[rate];
    }
    return ANVIL_OK;
}

long long anvil_rate_peek(struct anvil *a, const char *addr, enum anvil_rate rate,
                          long long now_ms)
{
    if ((unsigned)rate >= ANVIL_RATE_COUNT)
        msg_panic("anvil_rate_peek: bad rate %d", (int)rate);
    struct anvil_entry *e = lookup(a, addr, now_ms, 0);
    if (e == NULL)
        return 0;
    struct anvil_counter c = e->rates[rate];
    counter_advance(&c, a->lim.time_unit_ms, now_ms);
    return counter_rate(&c, a->lim.time_unit_ms, now_ms);
}

long long anvil_count_peek(struct anvil *a, const char *addr)
{
    struct anvil_entry *e = lookup(a, addr, 0, 0);
    return e != NULL ? e->count : 0;
}

int anvil_exempt(const struct anvil *a, const char *addr)
{
    return resolve_cidr_list_match(a->exceptions, addr);
}

size_t anvil_clients(const struct anvil *a)
{
    return a->nentries;
}

/* ---- replies and log lines ---- */

void anvil_reply(struct buf *out, enum anvil_status status, const char *myhostname,
                 const char *addr)
{
    switch (status) {
    case ANVIL_CONN_COUNT_EXCEEDED:
    case ANVIL_CONN_RATE_EXCEEDED:
        buf_printf(out, "421 4.7.0 %s Error: too many connections from %s", myhostname, addr);
        break;
    case ANVIL_MAIL_RATE_EXCEEDED:
        buf_printf(out, "450 4.7.1 Error: too much mail from %s", addr);
        break;
    case ANVIL_RCPT_RATE_EXCEEDED:
        buf_printf(out, "450 4.7.1 Error: too many recipients from %s", addr);
        break;
    case ANVIL_AUTH_RATE_EXCEEDED:
        buf_printf(out, "450 4.7.1 Error: too many AUTH commands from %s", addr);
        break;
    case ANVIL_OK:
        msg_panic("anvil_reply: no limit was exceeded");
    }
}

void anvil_warning(struct buf *out, enum anvil_status status, long long value,
                   const char *client, const char *service)
{
    const char *what = NULL;
    switch (status) {
    case ANVIL_CONN_COUNT_EXCEEDED: what = "Connection concurrency limit"; break;
    case ANVIL_CONN_RATE_EXCEEDED: what = "Connection rate limit"; break;
    case ANVIL_MAIL_RATE_EXCEEDED: what = "Message delivery request rate limit"; break;
    case ANVIL_RCPT_RATE_EXCEEDED: what = "Recipient address rate limit"; break;
    case ANVIL_AUTH_RATE_EXCEEDED: what = "AUTH command rate limit"; break;
    case ANVIL_OK:
        msg_panic("anvil_warning: no limit was exceeded");
    }
    buf_printf(out, "%s exceeded: %lld from %s for service %s", what, value, client, service);
}
