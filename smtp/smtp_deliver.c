/*
 * NAME
 *	smtp_deliver - one delivery request: where to, which host next, results
 * DESCRIPTION
 *	A request names a next hop: "domain" (MX lookup), "[host]" (no MX
 *	lookup; host may be an IP literal), either with ":port". An idle
 *	cached session for the same next hop is used first. Otherwise:
 *
 *	MX lookup (lib/dns.h; preference order, equal ones shuffled).
 *	NXDOMAIN bounces (5.1.2); SERVFAIL or a timeout defers (4.4.3) and
 *	marks the destination dead; no MX records (NODATA) falls back to
 *	the domain's own addresses; a null MX (RFC 7505) bounces (5.1.10).
 *	When $myhostname is one of the MX hosts, only records with a
 *	better preference than ours are used; none left bounces
 *	(5.4.6, "mail for X loops back to myself"). MX hosts that are IP
 *	literals are skipped (RFC 5321 5.1 wants names).
 *
 *	Hosts are resolved one at a time, when the previous one has run
 *	out of addresses; each address gets one session, until
 *	smtp_mx_address_limit addresses or smtp_mx_session_limit greeted
 *	sessions were used. A host's failure (connect, greeting, EHLO,
 *	STARTTLS with level encrypt, 4xx to MAIL FROM, timeouts, malformed
 *	replies) moves on to the next address; the last failure's text
 *	is what the recipients get when every host failed ("last failure
 *	wins"): bounced when that was a 5xx greeting/EHLO/HELO, else
 *	deferred with dest_status=dead.
 *
 *	Before MAIL FROM, the server's EHLO decides: a SIZE limit below the
 *	message size bounces (5.3.4); SMTPUTF8 needed but not offered
 *	bounces (5.6.7); an 8-bit message (flag 8bitmime, or found by a
 *	scan of the queue file, done only for servers without 8BITMIME)
 *	to a server without 8BITMIME bounces (5.6.3): Postern does not
 *	convert to 7 bits.
 *
 *	Every recipient's result is logged (lib/delivery_log.h) and sent
 *	back to qmgr in one reply; then the session goes to the cache or
 *	gets QUIT.
 * DIAGNOSTICS
 *	"ID: to=<rcpt>, relay=host[addr]:port, delay=D, delays=a/b/c/d,
 *	dsn=X.Y.Z, status=sent|deferred|bounced (reason)" per recipient;
 *	"ID: <reason>" (info) for each host that failed on the way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "delivery_log.h"
#include "log.h"
#include "smtp.h"
#include "transport.h"
#include "xalloc.h"

static void delivery_finish(struct smtp_delivery *d);
static void advance(struct smtp_delivery *d);

double smtp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- results ---- */

static void rcpt_set(struct smtp_rcpt *r, enum smtp_status status, const char *dsn,
                     const char *reason)
{
    if (r->done)
        return;
    r->done = 1;
    r->status = status;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    r->reason = xstrdup(reason);
}

void smtp_rcpt_result(struct smtp_delivery *d, size_t i, enum smtp_status status,
                      const char *dsn, const char *fmt, ...)
{
    if (i >= d->rcpt_count)
        msg_panic("smtp_rcpt_result: recipient %zu of %zu", i, d->rcpt_count);
    struct buf text;
    buf_init(&text, 0);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&text, fmt, ap);
    va_end(ap);
    rcpt_set(&d->rcpts[i], status, dsn, text.data);
    buf_free(&text);
}

void smtp_rcpt_result_all(struct smtp_delivery *d, enum smtp_status status, const char *dsn,
                          const char *reason)
{
    for (size_t i = 0; i < d->rcpt_count; i++)
        rcpt_set(&d->rcpts[i], status, dsn, reason);
}

static int all_done(const struct smtp_delivery *d)
{
    for (size_t i = 0; i < d->rcpt_count; i++)
        if (!d->rcpts[i].done)
            return 0;
    return 1;
}

/* Everyone not done yet gets the result, and the delivery ends. */
static void finish_all(struct smtp_delivery *d, enum smtp_status status, const char *dsn,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void finish_all(struct smtp_delivery *d, enum smtp_status status, const char *dsn,
                       const char *fmt, ...)
{
    struct buf text;
    buf_init(&text, 0);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&text, fmt, ap);
    va_end(ap);
    smtp_rcpt_result_all(d, status, dsn, text.data);
    buf_free(&text);
    delivery_finish(d);
}

/* The most recent host failure ("last failure wins"). */
static void note_failure(struct smtp_delivery *d, int permanent, const char *dsn,
                         const char *relay, const char *reason)
{
    free(d->fail_reason);
    d->fail_reason = xstrdup(reason);
    snprintf(d->fail_dsn, sizeof(d->fail_dsn), "%s", dsn);
    d->fail_permanent = permanent;
    free(d->fail_relay);
    d->fail_relay = relay != NULL ? xstrdup(relay) : NULL;
}

/* The lib/dns.h text, in Postfix's wording when the library gave a
   short one. Malloc'd. */
static char *dns_reason(const char *name, const char *type, const char *error,
                        const char *fallback)
{
    static const char prefix[] = "Host or domain name not found";
    if (error != NULL && strncmp(error, prefix, sizeof(prefix) - 1) == 0)
        return xstrdup(error);
    return xasprintf("%s. Name service error for name=%s type=%s: %s", prefix, name, type,
                     error != NULL && *error != '\0' ? error : fallback);
}

/* ---- life cycle ---- */

void smtp_delivery_free(struct smtp_delivery **d_p)
{
    struct smtp_delivery *d = *d_p;
    if (d == NULL)
        return;
    dns_cancel(&d->query);
    if (d->msg_fd >= 0)
        close(d->msg_fd);
    for (size_t i = 0; i < d->rcpt_count; i++) {
        free(d->rcpts[i].address);
        free(d->rcpts[i].orig);
        free(d->rcpts[i].reason);
    }
    free(d->rcpts);
    for (size_t i = 0; i < d->mx_count; i++)
        free(d->mx[i].host);
    free(d->mx);
    for (size_t i = 0; i < d->target_count; i++)
        free(d->targets[i].host);
    free(d->targets);
    free(d->id);
    free(d->queue_id);
    free(d->path);
    free(d->sender);
    free(d->nexthop);
    free(d->cache_key);
    free(d->domain);
    free(d->fail_reason);
    free(d->fail_relay);
    free(d->relay);
    free(d);
    *d_p = NULL;
}

static void delivery_free_cb(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct smtp_delivery *d = ctx;
    smtp_delivery_free(&d);
}

static const char *status_name(enum smtp_status status)
{
    return status == SMTP_STATUS_SENT ? "sent"
           : status == SMTP_STATUS_BOUNCED ? "bounced" : "deferred";
}

static void delivery_finish(struct smtp_delivery *d)
{
    if (d->finished)
        return;
    d->finished = 1;
    dns_cancel(&d->query);
    double now = smtp_now();
    double setup = d->setup_done > 0 ? d->setup_done : now;
    const char *relay = d->relay != NULL ? d->relay : "none";
    for (size_t i = 0; i < d->rcpt_count; i++) {
        const struct smtp_rcpt *r = &d->rcpts[i];
        struct delivery_log entry = {
            .queue_id = d->queue_id, .to = r->address, .orig_to = r->orig, .relay = relay,
            .delay = now - d->arrival,
            .delays = {d->received - d->arrival, 0, setup - d->received, now - setup},
            .dsn = r->dsn, .status = status_name(r->status), .reason = r->reason,
        };
        delivery_log(&entry);
    }
    if (d->session != NULL)
        smtp_session_release(d->session);
    smtp_qmgr_reply(d);
    event_defer(d->loop, delivery_free_cb, d);
}

void smtp_delivery_abandon(struct smtp_delivery *d)
{
    if (d->finished)
        return;
    d->finished = 1;
    d->client = NULL;
    dns_cancel(&d->query);
    if (d->session != NULL) {
        struct smtp_session *s = d->session;
        d->session = NULL;
        smtp_session_abort(s);
    }
    msg_info("%s: lost connection with qmgr; delivery abandoned", d->queue_id);
    event_defer(d->loop, delivery_free_cb, d);
}

/* ---- routing ---- */

static void set_hosts(struct smtp_delivery *d, const struct dns_mx *mx, size_t count)
{
    for (size_t i = 0; i < d->mx_count; i++)
        free(d->mx[i].host);
    free(d->mx);
    d->mx = xcalloc(count > 0 ? count : 1, sizeof(*d->mx));
    for (size_t i = 0; i < count; i++) {
        d->mx[i].preference = mx[i].preference;
        d->mx[i].host = xstrdup(mx[i].host);
    }
    d->mx_count = count;
    d->mx_next = 0;
}

static void set_single_host(struct smtp_delivery *d, const char *host)
{
    struct dns_mx one = {.preference = 0, .host = (char *)host};
    set_hosts(d, &one, 1);
}

static int is_ip_literal(const char *host)
{
    unsigned char ip[16];
    return inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
}

static int is_myself(const char *host)
{
    const char *me = smtp_var.myhostname;
    size_t len = strlen(me);
    if (len > 0 && me[len - 1] == '.')
        len--;
    return strlen(host) == len && strncasecmp(host, me, len) == 0;
}

static void mx_done(const struct dns_mx_result *result, void *ctx)
{
    struct smtp_delivery *d = ctx;
    d->query = NULL;
    switch (result->status) {
    case DNS_NOTFOUND: {
        char *reason = dns_reason(d->domain, "MX", result->error, "Host not found");
        finish_all(d, SMTP_STATUS_BOUNCED, "5.1.2", "%s", reason);
        free(reason);
        return;
    }
    case DNS_TEMPFAIL: {
        char *reason = dns_reason(d->domain, "MX", result->error, "Host not found, try again");
        d->dest_dead = 1;
        finish_all(d, SMTP_STATUS_DEFERRED, "4.4.3", "%s", reason);
        free(reason);
        return;
    }
    case DNS_NODATA:
        /* RFC 5321 5.1: no MX, the domain is its own mail host. */
        d->implicit_mx = 1;
        set_single_host(d, d->domain);
        advance(d);
        return;
    case DNS_OK:
        break;
    }
    if (result->count == 1 && strcmp(result->mx[0].host, ".") == 0) {
        finish_all(d, SMTP_STATUS_BOUNCED, "5.1.10", "Domain %s does not accept mail (nullMX)",
                   d->domain);
        return;
    }
    unsigned self_pref = UINT_MAX;
    for (size_t i = 0; i < result->count; i++)
        if (is_myself(result->mx[i].host) && result->mx[i].preference < self_pref)
            self_pref = result->mx[i].preference;
    struct dns_mx *keep = xcalloc(result->count, sizeof(*keep));
    size_t kept = 0, better = 0;
    for (size_t i = 0; i < result->count; i++) {
        const struct dns_mx *mx = &result->mx[i];
        /* Only hosts we would hand the mail to: never ourselves or
           anyone we are a better choice than. */
        if (mx->preference >= self_pref)
            continue;
        better++;
        if (strcmp(mx->host, ".") == 0 || mx->host[0] == '\0')
            continue;
        if (is_ip_literal(mx->host)) {
            msg_info("%s: MX host %s of %s is an IP address, not a name; skipped",
                     d->queue_id, mx->host, d->domain);
            char *reason = xasprintf("MX host %s of %s is an IP address, not a host name",
                                     mx->host, d->domain);
            note_failure(d, 0, "4.4.4", NULL, reason);
            free(reason);
            continue;
        }
        keep[kept++] = *mx;
    }
    if (self_pref != UINT_MAX && better == 0) {
        free(keep);
        finish_all(d, SMTP_STATUS_BOUNCED, "5.4.6", "mail for %s loops back to myself",
                   d->domain);
        return;
    }
    set_hosts(d, keep, kept);
    free(keep);
    advance(d);
}

static void addr_done(const struct dns_addr_result *result, void *ctx)
{
    struct smtp_delivery *d = ctx;
    d->query = NULL;
    const char *host = d->mx[d->mx_next - 1].host;
    for (size_t i = 0; i < d->target_count; i++)
        free(d->targets[i].host);
    free(d->targets);
    d->targets = NULL;
    d->target_count = d->target_next = 0;
    int single = !d->use_mx || d->implicit_mx;
    if (result->status == DNS_OK) {
        d->targets = xcalloc(result->count, sizeof(*d->targets));
        for (size_t i = 0; i < result->count; i++) {
            struct smtp_target *t = &d->targets[d->target_count];
            const struct sockaddr_storage *sa = &result->addrs[i];
            if (sa->ss_family != AF_INET && sa->ss_family != AF_INET6)
                continue;
            t->host = xstrdup(host);
            t->addr = *sa;
            t->port = d->port;
            if (sa->ss_family == AF_INET)
                ((struct sockaddr_in *)&t->addr)->sin_port = htons((uint16_t)d->port);
            else
                ((struct sockaddr_in6 *)&t->addr)->sin6_port = htons((uint16_t)d->port);
            dns_addr_text(sa, t->addr_text, sizeof(t->addr_text));
            d->target_count++;
        }
    } else if (result->status == DNS_TEMPFAIL) {
        char *reason = dns_reason(host, "A", result->error, "Host not found, try again");
        note_failure(d, 0, "4.4.3", NULL, reason);
        if (!single)
            msg_info("%s: %s", d->queue_id, reason);
        free(reason);
    } else {
        char *reason = dns_reason(host, "A", result->error,
                                  result->status == DNS_NOTFOUND
                                      ? "Host not found"
                                      : "Host found but no data record of requested type");
        /* The next hop itself has no address: nothing will change that
           soon. An MX host without one is the domain's problem and may
           be fixed: defer. */
        if (single) {
            note_failure(d, 1, "5.4.4", NULL, reason);
        } else {
            msg_info("%s: MX host %s of %s has no address; skipped", d->queue_id, host,
                     d->domain);
            note_failure(d, 0, "4.4.4", NULL, reason);
        }
        free(reason);
    }
    advance(d);
}

static int limits_reached(const struct smtp_delivery *d)
{
    return (smtp_var.mx_address_limit > 0 && d->addrs_tried >= smtp_var.mx_address_limit) ||
           (smtp_var.mx_session_limit > 0 && d->sessions_greeted >= smtp_var.mx_session_limit);
}

static void all_failed(struct smtp_delivery *d)
{
    if (d->fail_reason == NULL) {
        char *reason = xasprintf("no usable %shost for %s", d->use_mx ? "MX " : "", d->domain);
        note_failure(d, 0, "4.4.4", NULL, reason);
        free(reason);
    }
    free(d->relay);
    d->relay = d->fail_relay != NULL ? xstrdup(d->fail_relay) : NULL;
    if (d->fail_permanent) {
        finish_all(d, SMTP_STATUS_BOUNCED, d->fail_dsn, "%s", d->fail_reason);
        return;
    }
    d->dest_dead = 1;
    finish_all(d, SMTP_STATUS_DEFERRED, d->fail_dsn, "%s", d->fail_reason);
}

/* Starts the next connection or lookup, or gives up. */
static void advance(struct smtp_delivery *d)
{
    if (d->finished)
        return;
    if (!limits_reached(d)) {
        if (d->target_next < d->target_count) {
            const struct smtp_target *t = &d->targets[d->target_next++];
            d->addrs_tried++;
            smtp_session_connect(d, t, 0);
            return;
        }
        if (d->mx_next < d->mx_count) {
            const char *host = d->mx[d->mx_next++].host;
            d->query = dns_lookup_addr(smtp_var.resolver, host, addr_done, d);
            return;
        }
    }
    all_failed(d);
}

static void route_start(struct smtp_delivery *d)
{
    if (d->use_mx) {
        d->query = dns_lookup_mx(smtp_var.resolver, d->domain, mx_done, d);
        return;
    }
    set_single_host(d, d->domain);
    advance(d);
}

/* 1 if s has no control characters (they would end an SMTP command). */
static int clean_text(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

void smtp_delivery_start(struct smtp_delivery *d)
{
    /* d->path names the file as seen outside a chroot (checked against
       active_prefix); open it through this process's queue_directory. */
    size_t prefix_len = strlen(smtp_var.active_prefix);
    if (strncmp(d->path, smtp_var.active_prefix, prefix_len) != 0)
        msg_panic("smtp_delivery_start: unchecked queue file path %s", d->path);
    char *path = xasprintf("%s/active/%s", config_str("queue_directory"), d->path + prefix_len);
    d->msg_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int saved_errno = errno;
    free(path);
    errno = saved_errno;
    if (d->msg_fd < 0) {
        finish_all(d, SMTP_STATUS_DEFERRED, "4.3.0", "cannot open queue file: %s",
                   strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(d->msg_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < d->offset + d->length) {
        finish_all(d, SMTP_STATUS_DEFERRED, "4.3.0",
                   "queue file is shorter than the message it should hold");
        return;
    }
    if (!clean_text(d->sender)) {
        finish_all(d, SMTP_STATUS_BOUNCED, "5.1.7", "bad sender address syntax");
        return;
    }
    for (size_t i = 0; i < d->rcpt_count; i++)
        if (!clean_text(d->rcpts[i].address))
            smtp_rcpt_result(d, i, SMTP_STATUS_BOUNCED, "5.1.3", "bad recipient address syntax");
    if (all_done(d)) {
        delivery_finish(d);
        return;
    }
    int mx = 0;
    if (transport_nexthop_parse(d->nexthop, smtp_var.default_port, &d->domain, &mx, &d->port) <
        0) {
        finish_all(d, SMTP_STATUS_DEFERRED, "4.3.5", "bad next hop \"%s\" in delivery request",
                   d->nexthop);
        return;
    }
    d->use_mx = mx;
    d->cache_key = xstrdup(d->nexthop);
    if (smtp_var.cache_ms > 0) {
        struct smtp_session *s = smtp_cache_take(d->cache_key);
        if (s != NULL) {
            smtp_session_attach(s, d);
            smtp_delivery_session_ready(d, s);
            return;
        }
    }
    route_start(d);
}

/* ---- up-calls from sessions ---- */

void smtp_delivery_session_ready(struct smtp_delivery *d, struct smtp_session *s)
{
    if (d->setup_done <= 0)
        d->setup_done = smtp_now();
    free(d->relay);
    d->relay = xstrdup(s->relay);
    const struct smtp_ehlo *ehlo = &s->ehlo;
    if ((ehlo->flags & SMTP_EHLO_SIZE) && ehlo->size_limit > 0 &&
        (unsigned long long)d->length > ehlo->size_limit) {
        char *reason = xasprintf("message size %lld exceeds size limit %llu of server %s",
                                 (long long)d->length, ehlo->size_limit, s->label);
        smtp_rcpt_result_all(d, SMTP_STATUS_BOUNCED, "5.3.4", reason);
        free(reason);
        smtp_delivery_transaction_done(d);
        return;
    }
    if (d->need_smtputf8 && !(ehlo->flags & SMTP_EHLO_SMTPUTF8)) {
        char *reason = xasprintf("SMTPUTF8 is required, but was not offered by host %s",
                                 s->label);
        smtp_rcpt_result_all(d, SMTP_STATUS_BOUNCED, "5.6.7", reason);
        free(reason);
        smtp_delivery_transaction_done(d);
        return;
    }
    if (!(ehlo->flags & SMTP_EHLO_8BITMIME)) {
        /* Only now is the scan worth its cost: most servers say 8BITMIME. */
        if (!d->declared_8bit && d->body_8bit < 0) {
            d->body_8bit = smtp_body_scan_8bit(d->msg_fd, d->offset, d->length);
            if (d->body_8bit < 0) {
                char *reason = xasprintf("error reading queue file: %s", strerror(errno));
                smtp_rcpt_result_all(d, SMTP_STATUS_DEFERRED, "4.3.0", reason);
                free(reason);
                smtp_delivery_transaction_done(d);
                return;
            }
        }
        if (d->declared_8bit || d->body_8bit == 1) {
            char *reason = xasprintf("host %s does not support 8BITMIME, and the message has "
                                     "8-bit content", s->label);
            smtp_rcpt_result_all(d, SMTP_STATUS_BOUNCED, "5.6.3", reason);
            free(reason);
            smtp_delivery_transaction_done(d);
            return;
        }
    }
    smtp_session_transaction(s);
}

void smtp_delivery_host_failed(struct smtp_delivery *d, int permanent, int retry_plain,
                               const char *dsn, const char *relay, const char *reason)
{
    note_failure(d, permanent, dsn, relay, reason);
    if (d->finished)
        return;
    if (retry_plain && d->target_next > 0) {
        msg_info("%s: %s; trying again without TLS", d->queue_id, reason);
        smtp_session_connect(d, &d->targets[d->target_next - 1], 1);
        return;
    }
    msg_info("%s: %s", d->queue_id, reason);
    if (d->mx == NULL) {
        /* A session from the cache failed: the next hop was never
           looked up, so there is no next address yet. */
        route_start(d);
        return;
    }
    advance(d);
}

void smtp_delivery_session_stale(struct smtp_delivery *d)
{
    if (d->finished)
        return;
    d->setup_done = 0;
    route_start(d);
}

void smtp_delivery_transaction_done(struct smtp_delivery *d)
{
    for (size_t i = 0; i < d->rcpt_count; i++) {
        if (!d->rcpts[i].done) {
            msg_warn("%s: no result for <%s> after the transaction", d->queue_id,
                     d->rcpts[i].address);
            smtp_rcpt_result(d, i, SMTP_STATUS_DEFERRED, "4.3.0",
                             "internal error: no result from the SMTP session");
        }
    }
    delivery_finish(d);
}
