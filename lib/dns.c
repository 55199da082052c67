/*
 * NAME
 *	dns - asynchronous MX and address lookups (c-ares) in the event loop
 * DESCRIPTION
 *	See dns.h. One c-ares channel per resolver. MX and TXT lookups are
 *	one c-ares query each; an address lookup is an A and an AAAA query. c-ares tells us which
 *	sockets to watch through its socket-state callback (we mirror them
 *	into lib/event) and when its next retry or timeout is due through
 *	ares_timeout() (one event timer, re-armed after every call into
 *	c-ares).
 *
 *	c-ares offers no way to abandon a single query, so a cancelled
 *	lookup stays allocated (marked cancelled, callback detached) until
 *	c-ares reports its end; dns_resolver_destroy() ends them all with
 *	ares_destroy().
 *
 *	A lookup's callback never runs from inside dns_lookup_*(): answers
 *	known at once (IP literals, malformed names, c-ares failing inside
 *	ares_query) are delivered from a 0 ms event timer, which unlike
 *	event_defer() can be cancelled when the lookup or the resolver goes
 *	away first.
 *
 *	With servers given, c-ares is initialised with a placeholder server
 *	(so it never opens /etc/resolv.conf), no search domains, lookups
 *	"b" (never /etc/hosts) and then given the real server list.
 * DIAGNOSTICS
 *	Lookup failures are results (status + text), never log lines; the
 *	c-ares detail (ares_strerror) is logged with msg_debug. A bad
 *	answer from a server is a temporary failure. Out of memory inside
 *	c-ares is fatal.
 * LIMITS
 *	DNS_MAX_RECORDS records per answer; 16 servers; names of at most
 *	253 octets (labels of at most 63) made of letters, digits, '-',
 *	'_' and non-ASCII octets; a CNAME chain of at most 16 links.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "xalloc.h"

#define DNS_MAX_SERVERS 16
#define DNS_MAX_NAME 253
#define DNS_MAX_CNAME_LINKS 16

#define T_A_ 1
#define T_CNAME_ 5
#define T_MX_ 15
#define T_TXT_ 16
#define T_AAAA_ 28
#define C_IN_ 1

enum query_kind { QUERY_MX, QUERY_ADDR, QUERY_TXT };

/* One c-ares query: the MX query, or the A or AAAA half of an address
   lookup. c-ares's callback argument points here. */
struct dns_sub {
    struct dns_query *query;
    int type;                  /* T_MX_, T_A_, T_AAAA_ */
    int asked;                 /* this family was queried */
    enum dns_status status;
    size_t count;
    union {
        struct in_addr a[DNS_MAX_RECORDS];
        struct in6_addr aaaa[DNS_MAX_RECORDS];
    } u;
};

struct dns_query {
    struct dns_resolver *resolver;
    struct dns_query *prev;
    struct dns_query *next;
    enum query_kind kind;
    char *name;                /* validated, no trailing dot; "" if malformed */
    char *shown;               /* name as shown in error texts */
    dns_mx_cb *mx_cb;
    dns_addr_cb *addr_cb;
    dns_txt_cb *txt_cb;
    void *ctx;
    int cancelled;             /* the caller is gone: free, never call back */
    int starting;              /* inside dns_lookup_*(): never call back now */
    int delivering;            /* the callback is running */
    int pending;               /* c-ares queries not ended yet */
    struct event_timer *deliver_timer;
    /* Final result, filled before delivery. */
    enum dns_status status;
    const char *type_text;     /* "MX", "A", "AAAA" for the error text */
    const char *reason;        /* Postfix-style reason after "type=X: " */
    struct dns_mx mx[DNS_MAX_RECORDS];
    size_t mx_count;
    char *txt[DNS_MAX_RECORDS];
    size_t txt_count;
    struct dns_sub sub[2];     /* MX: sub[0]; address: sub[0] A, sub[1] AAAA */
    int early;                 /* answered without DNS (status set) */
    int literal_family;        /* address literal: AF_INET/AF_INET6, else 0 */
    struct sockaddr_storage literal;
};

struct dns_resolver {
    struct event_loop *loop;
    ares_channel channel;
    struct event_timer *timer;
    int families;              /* DNS_INET4 | DNS_INET6 */
    int prefer_ipv6;
    int busy;                  /* depth of calls into ares_process_fd */
    int sending;               /* inside ares_query() */
    int destroy_pending;       /* destroy asked from a callback inside c-ares */
    struct dns_query *queries; /* every live query, cancelled ones included */
    int *fds;                  /* sockets c-ares asked us to watch */
    size_t fd_count;
    size_t fd_alloc;
};

static const char reason_notfound[] = "Host not found";
static const char reason_tempfail[] = "Host not found, try again";
static const char reason_nodata[] = "Host found but no data record of requested type";
static const char reason_malformed[] = "Malformed domain name";
static const char reason_family[] = "Address family disabled by inet_protocols";

static void resolver_finalize(struct dns_resolver *r);

/* ---------------------------------------------------------------- names */

/* Copies name without its trailing dot into out (DNS_MAX_NAME + 1
   octets) and checks its shape. Returns 0 or -1. */
static int name_normalize(const char *name, char *out)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_MAX_NAME)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_' || c >= 0x80) {
            if (++label > 63)
                return -1;
        } else {
            return -1;
        }
    }
    if (label == 0)
        return -1;
    memcpy(out, name, len);
    out[len] = '\0';
    return 0;
}

/* A printable, bounded copy of a name for error texts: the name may be
   any caller input, and the text ends up in logs and DSNs. */
static char *name_for_text(const char *name)
{
    size_t len = strnlen(name, DNS_MAX_NAME + 1);
    char *out = xstrndup(name, len);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            *p = '?';
    return out;
}

/* Recognises "192.0.2.1", "[192.0.2.1]", "[IPv6:2001:db8::1]" (and, being
   lenient, "2001:db8::1" and "[2001:db8::1]"). Returns 1 and fills *ss,
   0 when host is not a literal, -1 for a malformed bracketed one. */
static int parse_literal(const char *host, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *text = host;
    size_t len = strlen(host);
    int bracketed = 0;

    memset(ss, 0, sizeof(*ss));
    if (len > 0 && host[0] == '[') {
        if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(buf))
            return -1;
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        text = buf;
        bracketed = 1;
        if (strncasecmp(text, "IPv6:", 5) == 0) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            if (inet_pton(AF_INET6, text + 5, &sin6->sin6_addr) != 1)
                return -1;
            sin6->sin6_family = AF_INET6;
            return 1;
        }
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (strchr(text, ':') != NULL && inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return 1;
    }
    memset(ss, 0, sizeof(*ss));
    return bracketed ? -1 : 0;
}

/* ---------------------------------------------------------------- answers */

/* Reads a 16-bit value; the caller checked the bounds. */
static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Walks the answer's CNAME chain from the question name. Returns 1 when
   it does not end (a loop or too long), 0 when it ends (at a name that
   has no record of the type), -1 for an answer we cannot read. Called
   only when c-ares found no record of the type, to tell a broken alias
   (temporary, says dns.h) from plain NODATA. */
static int cname_chain_loops(const unsigned char *abuf, int alen)
{
    if (abuf == NULL || alen < 12)
        return -1;
    unsigned qdcount = get16(abuf + 4);
    unsigned ancount = get16(abuf + 6);
    if (qdcount != 1)
        return -1;
    char *qname = NULL;
    long enclen;
    const unsigned char *p = abuf + 12;
    if (ares_expand_name(p, abuf, alen, &qname, &enclen) != ARES_SUCCESS)
        return -1;
    p += enclen + 4;
    if (p > abuf + alen) {
        ares_free_string(qname);
        return -1;
    }
    /* Collect (owner, target) pairs of the CNAME records. */
    struct { char *owner; char *target; } links[DNS_MAX_RECORDS];
    size_t nlinks = 0;
    int result = 0;
    for (unsigned i = 0; i < ancount && result == 0; i++) {
        char *owner = NULL;
        if (ares_expand_name(p, abuf, alen, &owner, &enclen) != ARES_SUCCESS) {
            result = -1;
            break;
        }
        p += enclen;
        if (p + 10 > abuf + alen) {
            ares_free_string(owner);
            result = -1;
            break;
        }
        unsigned type = get16(p);
        unsigned rdlen = get16(p + 8);
        p += 10;
        if (p + rdlen > abuf + alen) {
            ares_free_string(owner);
            result = -1;
            break;
        }
        char *target = NULL;
        if (type == T_CNAME_ && nlinks < DNS_MAX_RECORDS
            && ares_expand_name(p, abuf, alen, &target, &enclen) == ARES_SUCCESS) {
            links[nlinks].owner = owner;
            links[nlinks].target = target;
            nlinks++;
        } else {
            ares_free_string(owner);
        }
        p += rdlen;
    }
    if (result == 0) {
        const char *cur = qname;
        for (int steps = 0;; steps++) {
            size_t j;
            for (j = 0; j < nlinks; j++)
                if (strcasecmp(links[j].owner, cur) == 0)
                    break;
            if (j == nlinks)
                break;
            if (steps >= DNS_MAX_CNAME_LINKS || steps >= (int)nlinks) {
                result = 1;
                break;
            }
            cur = links[j].target;
        }
    }
    for (size_t j = 0; j < nlinks; j++) {
        ares_free_string(links[j].owner);
        ares_free_string(links[j].target);
    }
    ares_free_string(qname);
    return result;
}

/* Status for a c-ares end status other than success. */
static enum dns_status status_of_ares(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
        return DNS_NOTFOUND;
    case ARES_ENODATA:
        return DNS_NODATA;
    case ARES_ENOMEM:
        msg_fatal("dns: c-ares: out of memory");
    default:
        /* SERVFAIL, REFUSED, FORMERR, NOTIMP, timeout, connection
           refused, bad response, cancelled... */
        return DNS_TEMPFAIL;
    }
}

/* The answer had no record of the type: NODATA, unless an alias in it
   leads nowhere. */
static enum dns_status status_of_empty_answer(const unsigned char *abuf, int alen)
{
    return cname_chain_loops(abuf, alen) == 0 ? DNS_NODATA : DNS_TEMPFAIL;
}

/* An MX host from the wire: lower-cased; "" (the root) becomes ".".
   Returns NULL for a name we would not connect to anyway. */
static char *mx_host_copy(const char *host)
{
    if (host[0] == '\0' || strcmp(host, ".") == 0)
        return xstrdup(".");
    char norm[DNS_MAX_NAME + 1];
    if (name_normalize(host, norm) < 0)
        return NULL;
    for (char *p = norm; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return xstrdup(norm);
}

struct mx_sort {
    unsigned preference;
    unsigned tiebreak;
    char *host;
};

static int mx_sort_cmp(const void *a, const void *b)
{
    const struct mx_sort *x = a, *y = b;
    if (x->preference != y->preference)
        return x->preference < y->preference ? -1 : 1;
    return x->tiebreak < y->tiebreak ? -1 : x->tiebreak > y->tiebreak;
}

static void mx_answer(struct dns_query *q, const unsigned char *abuf, int alen)
{
    struct ares_mx_reply *head = NULL;
    int status = ares_parse_mx_reply(abuf, alen, &head);
    /* 1.18.1 says ARES_SUCCESS with no list for an answer holding only
       other types (a CNAME whose target has no MX). */
    if (status == ARES_ENODATA || (status == ARES_SUCCESS && head == NULL)) {
        q->status = status_of_empty_answer(abuf, alen);
        return;
    }
    if (status != ARES_SUCCESS) {
        msg_debug("dns: %s MX: %s", q->shown, ares_strerror(status));
        q->status = status_of_ares(status == ARES_ENOMEM ? status : ARES_EBADRESP);
        return;
    }
    /* Sort everything, keep the best DNS_MAX_RECORDS. */
    size_t total = 0, alloc = 0, bad = 0, roots = 0;
    struct mx_sort *all = NULL;
    for (struct ares_mx_reply *m = head; m != NULL; m = m->next) {
        char *host = mx_host_copy(m->host);
        if (host == NULL) {
            bad++;
            continue;
        }
        if (strcmp(host, ".") == 0)
            roots++;
        if (total == alloc) {
            alloc = alloc ? alloc * 2 : 8;
            all = xreallocarray(all, alloc, sizeof(*all));
        }
        all[total].preference = m->priority;
        all[total].tiebreak = arc4random();
        all[total].host = host;
        total++;
    }
    ares_free_data(head);
    if (bad > 0)
        msg_warn("dns: %s: ignoring %zu malformed MX host name%s", q->shown, bad,
                 bad == 1 ? "" : "s");
    /* RFC 7505: "." is a null MX only as the sole record; among others
       it names no host we could use. */
    if (roots > 0 && total > 1) {
        size_t kept = 0;
        for (size_t i = 0; i < total; i++) {
            if (strcmp(all[i].host, ".") == 0)
                free(all[i].host);
            else
                all[kept++] = all[i];
        }
        total = kept;
    }
    if (total == 0) {
        free(all);
        q->status = DNS_TEMPFAIL;   /* records, but none usable: a bad answer */
        return;
    }
    qsort(all, total, sizeof(*all), mx_sort_cmp);
    for (size_t i = 0; i < total; i++) {
        if (q->mx_count < DNS_MAX_RECORDS) {
            q->mx[q->mx_count].preference = all[i].preference;
            q->mx[q->mx_count].host = all[i].host;
            q->mx_count++;
        } else {
            free(all[i].host);
        }
    }
    free(all);
    q->status = DNS_OK;
}

static void addr_answer(struct dns_sub *sub, const unsigned char *abuf, int alen)
{
    int n = DNS_MAX_RECORDS;
    int status;
    if (sub->type == T_A_) {
        struct ares_addrttl ttls[DNS_MAX_RECORDS];
        status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
        for (int i = 0; status == ARES_SUCCESS && i < n; i++)
            sub->u.a[i] = ttls[i].ipaddr;
    } else {
        struct ares_addr6ttl ttls[DNS_MAX_RECORDS];
        status = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n);
        for (int i = 0; status == ARES_SUCCESS && i < n; i++)
            memcpy(&sub->u.aaaa[i], &ttls[i].ip6addr, sizeof(sub->u.aaaa[i]));
    }
    if (status == ARES_SUCCESS && n > 0) {
        sub->count = (size_t)n;
        sub->status = DNS_OK;
    } else if (status == ARES_SUCCESS || status == ARES_ENODATA) {
        sub->status = status_of_empty_answer(abuf, alen);
    } else {
        msg_debug("dns: %s %s: %s", sub->query->shown, sub->type == T_A_ ? "A" : "AAAA",
                  ares_strerror(status));
        sub->status = status_of_ares(status == ARES_ENOMEM ? status : ARES_EBADRESP);
    }
}

static void txt_answer(struct dns_query *q, const unsigned char *abuf, int alen)
{
    struct ares_txt_ext *head = NULL;
    int status = ares_parse_txt_reply_ext(abuf, alen, &head);
    if (status == ARES_ENODATA || (status == ARES_SUCCESS && head == NULL)) {
        q->status = status_of_empty_answer(abuf, alen);
        return;
    }
    if (status != ARES_SUCCESS) {
        msg_debug("dns: %s TXT: %s", q->shown, ares_strerror(status));
        q->status = status_of_ares(status == ARES_ENOMEM ? status : ARES_EBADRESP);
        return;
    }
    /* A record is one or more character-strings: glue them, as
       blocklist reasons split over several strings are meant whole. */
    char *cur = NULL;
    size_t cur_len = 0;
    for (struct ares_txt_ext *t = head; t != NULL; t = t->next) {
        if (t->record_start || cur == NULL) {
            if (q->txt_count == DNS_MAX_RECORDS)
                break;
            cur = q->txt[q->txt_count++] = xcalloc(1, DNS_MAX_TXT + 1);
            cur_len = 0;
        }
        for (size_t i = 0; i < t->length && cur_len < DNS_MAX_TXT; i++)
            cur[cur_len++] = t->txt[i] == '\0' ? '?' : (char)t->txt[i];
    }
    ares_free_data(head);
    q->status = q->txt_count > 0 ? DNS_OK : DNS_NODATA;
}

/* ---------------------------------------------------------------- queries */

static void query_unlink(struct dns_query *q)
{
    struct dns_resolver *r = q->resolver;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else if (r->queries == q)
        r->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

/* Frees q's memory only; q is off the resolver's list. */
static void query_release(struct dns_query *q)
{
    for (size_t i = 0; i < q->mx_count; i++)
        free(q->mx[i].host);
    for (size_t i = 0; i < q->txt_count; i++)
        free(q->txt[i]);
    free(q->name);
    free(q->shown);
    free(q);
}

static void query_free(struct dns_query *q)
{
    event_timer_cancel(q->resolver->loop, &q->deliver_timer);
    query_unlink(q);
    query_release(q);
}

/* The address lookup's overall status from its halves. */
static void addr_combine(struct dns_query *q)
{
    struct dns_sub *a = &q->sub[0], *aaaa = &q->sub[1];
    struct dns_sub *order[2] = {a, aaaa};
    if (q->resolver->prefer_ipv6) {
        order[0] = aaaa;
        order[1] = a;
    }
    static const enum dns_status rank[] = {DNS_OK, DNS_TEMPFAIL, DNS_NOTFOUND, DNS_NODATA};
    for (size_t k = 0; k < sizeof(rank) / sizeof(rank[0]); k++) {
        for (int i = 0; i < 2; i++) {
            if (order[i]->asked && order[i]->status == rank[k]) {
                q->status = rank[k];
                q->type_text = order[i]->type == T_A_ ? "A" : "AAAA";
                return;
            }
        }
    }
    msg_panic("dns: address lookup of %s asked nothing", q->shown);
}

/* Fills addrs (DNS_MAX_RECORDS) in the order the caller wants: the
   preferred family first, each family in the server's order. When both
   families are plentiful each gets half the room. Returns the count. */
static size_t addr_collect(const struct dns_query *q, struct sockaddr_storage *addrs)
{
    if (q->literal_family != 0) {
        addrs[0] = q->literal;
        return 1;
    }
    int v6_first = q->resolver->prefer_ipv6;
    const struct dns_sub *subs[2] = {&q->sub[v6_first ? 1 : 0], &q->sub[v6_first ? 0 : 1]};
    size_t take[2];
    take[1] = subs[1]->count < DNS_MAX_RECORDS / 2 ? subs[1]->count : DNS_MAX_RECORDS / 2;
    take[0] = subs[0]->count < DNS_MAX_RECORDS - take[1] ? subs[0]->count
                                                         : DNS_MAX_RECORDS - take[1];
    take[1] = subs[1]->count < DNS_MAX_RECORDS - take[0] ? subs[1]->count
                                                         : DNS_MAX_RECORDS - take[0];
    size_t n = 0;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < take[s]; i++) {
            struct sockaddr_storage *ss = &addrs[n++];
            memset(ss, 0, sizeof(*ss));
            if (subs[s]->type == T_A_) {
                struct sockaddr_in *sin = (struct sockaddr_in *)ss;
                sin->sin_family = AF_INET;
                sin->sin_addr = subs[s]->u.a[i];
            } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_addr = subs[s]->u.aaaa[i];
            }
        }
    }
    return n;
}

static void query_deliver(struct dns_query *q)
{
    char *error = NULL;

    if (q->kind == QUERY_ADDR && !q->early)
        addr_combine(q);
    if (q->status != DNS_OK) {
        const char *reason = q->reason;
        if (reason == NULL)
            reason = q->status == DNS_NOTFOUND ? reason_notfound
                     : q->status == DNS_NODATA ? reason_nodata
                                               : reason_tempfail;
        error = xasprintf("Host or domain name not found. Name service error for name=%s "
                          "type=%s: %s",
                          q->shown, q->type_text, reason);
    }
    /* Off the list first: the callback may destroy the resolver, which
       must not free this query under our feet. */
    query_unlink(q);
    q->delivering = 1;
    if (q->kind == QUERY_MX) {
        struct dns_mx_result res = {.status = q->status,
                                    .error = error,
                                    .count = q->status == DNS_OK ? q->mx_count : 0,
                                    .mx = q->status == DNS_OK ? q->mx : NULL};
        q->mx_cb(&res, q->ctx);
    } else if (q->kind == QUERY_TXT) {
        struct dns_txt_result res = {.status = q->status,
                                     .error = error,
                                     .count = q->status == DNS_OK ? q->txt_count : 0,
                                     .texts = q->status == DNS_OK ? q->txt : NULL};
        q->txt_cb(&res, q->ctx);
    } else {
        struct sockaddr_storage addrs[DNS_MAX_RECORDS];
        size_t n = q->status == DNS_OK ? addr_collect(q, addrs) : 0;
        struct dns_addr_result res = {.status = q->status,
                                      .error = error,
                                      .count = n,
                                      .addrs = n > 0 ? addrs : NULL};
        q->addr_cb(&res, q->ctx);
    }
    free(error);
    query_release(q);   /* the callback may have destroyed the resolver */
}

static void deliver_timer_cb(struct event_loop *loop, void *ctx)
{
    struct dns_query *q = ctx;
    q->deliver_timer = NULL;
    query_deliver(q);
}

/* All parts of q have ended. */
static void query_finish(struct dns_query *q)
{
    if (q->cancelled)
        query_free(q);
    else if (q->starting || q->resolver->sending)
        q->deliver_timer = event_timer_add(q->resolver->loop, 0, deliver_timer_cb, q);
    else
        query_deliver(q);
}

static void ares_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_sub *sub = arg;
    struct dns_query *q = sub->query;

    if (!q->cancelled) {
        if (status != ARES_SUCCESS) {
            if (status != ARES_ENOTFOUND && status != ARES_ENODATA)
                msg_debug("dns: %s: %s", q->shown, ares_strerror(status));
            sub->status = status_of_ares(status);
            if (q->kind != QUERY_ADDR)
                q->status = sub->status;
        } else if (q->kind == QUERY_MX) {
            mx_answer(q, abuf, alen);
        } else if (q->kind == QUERY_TXT) {
            txt_answer(q, abuf, alen);
        } else {
            addr_answer(sub, abuf, alen);
        }
    }
    if (--q->pending == 0)
        query_finish(q);
}

/* ---------------------------------------------------------------- loop glue */

static void resolver_schedule(struct dns_resolver *r);

static void resolver_process(struct dns_resolver *r, ares_socket_t rfd, ares_socket_t wfd)
{
    r->busy++;
    ares_process_fd(r->channel, rfd, wfd);
    r->busy--;
    if (r->busy == 0 && r->destroy_pending)
        resolver_finalize(r);
    else if (!r->destroy_pending)
        resolver_schedule(r);
}

static void timer_cb(struct event_loop *loop, void *ctx)
{
    struct dns_resolver *r = ctx;
    r->timer = NULL;
    resolver_process(r, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void resolver_schedule(struct dns_resolver *r)
{
    struct timeval tv;
    event_timer_cancel(r->loop, &r->timer);
    if (ares_timeout(r->channel, NULL, &tv) == NULL)
        return;   /* nothing outstanding */
    /* Round up, plus one: our clock is cached per loop round and in
       milliseconds; firing a hair early would only re-arm. */
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000 + 1;
    r->timer = event_timer_add(r->loop, ms, timer_cb, r);
}

static void fd_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct dns_resolver *r = ctx;
    ares_socket_t rfd = (events & (EVENT_READ | EVENT_ERROR)) ? fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (events & EVENT_WRITE) ? fd : ARES_SOCKET_BAD;
    resolver_process(r, rfd, wfd);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    int mask = (readable ? EVENT_READ : 0) | (writable ? EVENT_WRITE : 0);
    size_t i;
    for (i = 0; i < r->fd_count; i++)
        if (r->fds[i] == fd)
            break;
    if (mask == 0) {
        if (i < r->fd_count) {
            event_fd_del(r->loop, fd);
            r->fds[i] = r->fds[--r->fd_count];
        }
        return;
    }
    if (i < r->fd_count) {
        event_fd_set(r->loop, fd, mask);
        return;
    }
    if (event_fd_add(r->loop, fd, mask, fd_cb, r) < 0)
        msg_fatal("dns: cannot watch c-ares socket %d: %m", fd);
    if (r->fd_count == r->fd_alloc) {
        r->fd_alloc = r->fd_alloc ? r->fd_alloc * 2 : 8;
        r->fds = xreallocarray(r->fds, r->fd_alloc, sizeof(*r->fds));
    }
    r->fds[r->fd_count++] = fd;
}

/* ---------------------------------------------------------------- setup */

int dns_inet_protocols(const char *value)
{
    char **list = config_split_list(value, NULL);
    int families = 0;
    for (char **p = list; *p != NULL && families >= 0; p++) {
        if (strcasecmp(*p, "all") == 0)
            families |= DNS_INET4 | DNS_INET6;
        else if (strcasecmp(*p, "ipv4") == 0)
            families |= DNS_INET4;
        else if (strcasecmp(*p, "ipv6") == 0)
            families |= DNS_INET6;
        else
            families = -1;
    }
    strv_free(&list);
    return families == 0 ? -1 : families;
}

/* Parses $dns_servers into nodes[] (linked). Returns the count, or -1. */
static int parse_servers(const char *servers, struct ares_addr_port_node *nodes)
{
    char **list = config_split_list(servers, NULL);
    int n = 0;
    for (char **p = list; *p != NULL; p++) {
        if (n == DNS_MAX_SERVERS) {
            n = -1;
            break;
        }
        char host[INET6_ADDRSTRLEN + 1];
        const char *item = *p;
        const char *port = NULL;
        size_t hlen;
        if (item[0] == '[') {
            const char *close = strchr(item, ']');
            if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
                n = -1;
                break;
            }
            hlen = (size_t)(close - item - 1);
            item++;
            port = close[1] == ':' ? close + 2 : NULL;
        } else {
            const char *colon = strchr(item, ':');
            if (colon != NULL && strchr(colon + 1, ':') == NULL) {
                hlen = (size_t)(colon - item);
                port = colon + 1;
            } else {
                hlen = strlen(item);   /* IPv4, or bare IPv6 without a port */
            }
        }
        if (hlen == 0 || hlen >= sizeof(host)) {
            n = -1;
            break;
        }
        memcpy(host, item, hlen);
        host[hlen] = '\0';
        struct ares_addr_port_node *node = &nodes[n];
        memset(node, 0, sizeof(*node));
        if (inet_pton(AF_INET, host, &node->addr.addr4) == 1) {
            node->family = AF_INET;
        } else if (inet_pton(AF_INET6, host, &node->addr.addr6) == 1) {
            node->family = AF_INET6;
        } else {
            n = -1;
            break;
        }
        int portnum = 53;
        if (port != NULL) {
            char *end;
            errno = 0;
            long v = strtol(port, &end, 10);
            if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || v < 1 || v > 65535) {
                n = -1;
                break;
            }
            portnum = (int)v;
        }
        node->udp_port = portnum;
        node->tcp_port = portnum;
        if (n > 0)
            nodes[n - 1].next = node;
        n++;
    }
    strv_free(&list);
    return n;
}

struct dns_resolver *dns_resolver_create(struct event_loop *loop, const char *servers,
                                         int timeout_ms, int tries, const char **error_r)
{
    struct ares_addr_port_node nodes[DNS_MAX_SERVERS];
    int nservers = 0;
    int families;

    if (timeout_ms <= 0 || tries <= 0) {
        *error_r = "DNS timeout and tries must be positive";
        return NULL;
    }
    if ((families = dns_inet_protocols(config_str("inet_protocols"))) < 0) {
        *error_r = "bad inet_protocols value (use all, ipv4, ipv6)";
        return NULL;
    }
    if (servers == NULL)
        servers = "";
    if ((nservers = parse_servers(servers, nodes)) < 0) {
        *error_r = "malformed dns_servers value (addr, addr:port, [v6addr]:port; at most 16)";
        return NULL;
    }
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        *error_r = "cannot initialise c-ares";
        return NULL;
    }

    struct dns_resolver *r = xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->families = families;

    struct ares_options opt;
    memset(&opt, 0, sizeof(opt));
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    /* Names are absolute: never try search domains or HOSTALIASES. */
    opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    opt.timeout = timeout_ms;
    opt.tries = tries;
    opt.sock_state_cb = sock_state_cb;
    opt.sock_state_cb_data = r;
    struct in_addr placeholder;
    char lookups[] = "b";
    if (nservers > 0) {
        /* Every resolv.conf setting given here, so c-ares has no reason
           to read the file; the placeholder is replaced below. */
        placeholder.s_addr = htonl(INADDR_LOOPBACK);
        opt.servers = &placeholder;
        opt.nservers = 1;
        opt.ndomains = 0;
        opt.domains = NULL;
        opt.ndots = 1;
        opt.lookups = lookups;
        opt.nsort = 0;
        opt.sortlist = NULL;
        mask |= ARES_OPT_SERVERS | ARES_OPT_DOMAINS | ARES_OPT_NDOTS | ARES_OPT_LOOKUPS
                | ARES_OPT_SORTLIST;
    }
    int status = ares_init_options(&r->channel, &opt, mask);
    if (status == ARES_SUCCESS && nservers > 0)
        status = ares_set_servers_ports(r->channel, nodes);
    if (status != ARES_SUCCESS) {
        if (status == ARES_ENOMEM)
            msg_fatal("dns: c-ares: out of memory");
        msg_warn("dns: c-ares setup: %s", ares_strerror(status));
        if (r->channel != NULL)
            ares_destroy(r->channel);
        ares_library_cleanup();
        free(r->fds);
        free(r);
        *error_r = "cannot initialise c-ares";
        return NULL;
    }
    return r;
}

void dns_resolver_set_families(struct dns_resolver *resolver, int families, int prefer_ipv6)
{
    if (families <= 0 || (families & ~(DNS_INET4 | DNS_INET6)) != 0)
        msg_panic("dns_resolver_set_families: bad families %d", families);
    resolver->families = families;
    resolver->prefer_ipv6 = prefer_ipv6 != 0;
}

static void resolver_finalize(struct dns_resolver *r)
{
    event_timer_cancel(r->loop, &r->timer);
    for (struct dns_query *q = r->queries; q != NULL; q = q->next) {
        q->cancelled = 1;
        event_timer_cancel(r->loop, &q->deliver_timer);
    }
    /* Ends every c-ares query (our callback frees the cancelled ones)
       and closes its sockets through sock_state_cb. */
    ares_destroy(r->channel);
    while (r->queries != NULL)
        query_free(r->queries);
    for (size_t i = 0; i < r->fd_count; i++)
        event_fd_del(r->loop, r->fds[i]);
    free(r->fds);
    ares_library_cleanup();
    free(r);
}

void dns_resolver_destroy(struct dns_resolver **resolver_p)
{
    struct dns_resolver *r = *resolver_p;
    if (r == NULL)
        return;
    *resolver_p = NULL;
    if (r->destroy_pending)
        msg_panic("dns_resolver_destroy: resolver destroyed twice");
    if (r->busy > 0) {
        /* Called from a lookup callback inside ares_process_fd(): no
           callback runs any more, and the channel goes when c-ares has
           returned to us. */
        r->destroy_pending = 1;
        for (struct dns_query *q = r->queries; q != NULL; q = q->next) {
            q->cancelled = 1;
            event_timer_cancel(r->loop, &q->deliver_timer);
        }
        event_timer_cancel(r->loop, &r->timer);
        return;
    }
    resolver_finalize(r);
}

/* ---------------------------------------------------------------- lookups */

static struct dns_query *query_create(struct dns_resolver *r, enum query_kind kind,
                                      const char *name)
{
    if (r->destroy_pending)
        msg_panic("dns: lookup on a destroyed resolver");
    struct dns_query *q = xcalloc(1, sizeof(*q));
    q->resolver = r;
    q->kind = kind;
    q->shown = name_for_text(name);
    q->next = r->queries;
    if (r->queries != NULL)
        r->queries->prev = q;
    r->queries = q;
    q->starting = 1;
    return q;
}

/* Answer now, deliver from the loop. */
static void query_answer_later(struct dns_query *q, enum dns_status status, const char *reason)
{
    q->early = 1;
    q->status = status;
    q->reason = reason;
    q->deliver_timer = event_timer_add(q->resolver->loop, 0, deliver_timer_cb, q);
}

static void query_send(struct dns_query *q, struct dns_sub *sub, int type)
{
    sub->query = q;
    sub->type = type;
    sub->asked = 1;
    sub->status = DNS_TEMPFAIL;
    q->pending++;
    /* c-ares may end queries inside ares_query() (this one, or others
       when a server fails): their callbacks wait for a timer, so no
       callback ever runs inside dns_lookup_*(). */
    q->resolver->sending = 1;
    ares_query(q->resolver->channel, q->name, C_IN_, type, ares_cb, sub);
    q->resolver->sending = 0;
}

struct dns_query *dns_lookup_mx(struct dns_resolver *resolver, const char *domain, dns_mx_cb *cb,
                                void *ctx)
{
    struct dns_query *q = query_create(resolver, QUERY_MX, domain);
    char norm[DNS_MAX_NAME + 1];
    q->mx_cb = cb;
    q->ctx = ctx;
    q->type_text = "MX";
    if (name_normalize(domain, norm) < 0) {
        query_answer_later(q, DNS_NOTFOUND, reason_malformed);
        q->starting = 0;
        return q;
    }
    q->name = xstrdup(norm);
    query_send(q, &q->sub[0], T_MX_);
    q->starting = 0;
    resolver_schedule(resolver);
    return q;
}

struct dns_query *dns_lookup_txt(struct dns_resolver *resolver, const char *name, dns_txt_cb *cb,
                                 void *ctx)
{
    struct dns_query *q = query_create(resolver, QUERY_TXT, name);
    char norm[DNS_MAX_NAME + 1];
    q->txt_cb = cb;
    q->ctx = ctx;
    q->type_text = "TXT";
    if (name_normalize(name, norm) < 0) {
        query_answer_later(q, DNS_NOTFOUND, reason_malformed);
        q->starting = 0;
        return q;
    }
    q->name = xstrdup(norm);
    query_send(q, &q->sub[0], T_TXT_);
    q->starting = 0;
    resolver_schedule(resolver);
    return q;
}

struct dns_query *dns_lookup_addr(struct dns_resolver *resolver, const char *host,
                                  dns_addr_cb *cb, void *ctx)
{
    struct dns_query *q = query_create(resolver, QUERY_ADDR, host);
    char norm[DNS_MAX_NAME + 1];
    q->addr_cb = cb;
    q->ctx = ctx;
    q->type_text = resolver->families & DNS_INET4 ? "A" : "AAAA";

    int lit = parse_literal(host, &q->literal);
    if (lit != 0) {
        q->starting = 0;
        if (lit < 0) {
            query_answer_later(q, DNS_NOTFOUND, "Malformed address literal");
        } else {
            int family = q->literal.ss_family;
            int want = family == AF_INET ? DNS_INET4 : DNS_INET6;
            q->literal_family = family;
            q->type_text = family == AF_INET ? "A" : "AAAA";
            if (resolver->families & want)
                query_answer_later(q, DNS_OK, NULL);
            else
                query_answer_later(q, DNS_NODATA, reason_family);
        }
        return q;
    }
    if (name_normalize(host, norm) < 0) {
        query_answer_later(q, DNS_NOTFOUND, reason_malformed);
        q->starting = 0;
        return q;
    }
    q->name = xstrdup(norm);
    /* Hold one reference across both sends so an early end of the first
       (inside ares_query) cannot finish the lookup before the second
       is asked. */
    q->pending++;
    if (resolver->families & DNS_INET4)
        query_send(q, &q->sub[0], T_A_);
    if (resolver->families & DNS_INET6)
        query_send(q, &q->sub[1], T_AAAA_);
    if (--q->pending == 0)
        query_finish(q);   /* still starting: delivered from a timer */
    q->starting = 0;
    resolver_schedule(resolver);
    return q;
}

void dns_cancel(struct dns_query **query_p)
{
    struct dns_query *q = *query_p;
    if (q == NULL)
        return;
    *query_p = NULL;
    if (q->delivering || q->cancelled)
        return;
    q->cancelled = 1;
    if (q->pending == 0)
        query_free(q);   /* waiting for its delivery timer only */
}

void dns_addr_text(const struct sockaddr_storage *addr, char *out, size_t out_len)
{
    char buf[INET6_ADDRSTRLEN];
    const char *text = NULL;
    if (out_len == 0)
        return;
    if (addr->ss_family == AF_INET)
        text = inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, buf,
                         sizeof(buf));
    else if (addr->ss_family == AF_INET6)
        text = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, buf,
                         sizeof(buf));
    snprintf(out, out_len, "%s", text != NULL ? text : "?");
}
