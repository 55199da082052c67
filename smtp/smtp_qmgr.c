/*
 * NAME
 *	smtp_qmgr - the qmgr side of the smtp agent: requests and replies
 * DESCRIPTION
 *	qmgr connects to $queue_directory/private/smtp, once per delivery
 *	it runs in parallel, and sends one request at a time on a
 *	connection (lib/attr.h framing; fields in docs/smtp.md). The agent
 *	answers each request once every recipient's fate is known, then
 *	reads the next one. A request that arrives while one is running is
 *	left in the input buffer until the reply is sent.
 *
 *	When qmgr closes its connection in the middle of a delivery, the
 *	delivery is abandoned: its DNS lookup is cancelled and its SMTP
 *	session closed without the final ".", so the remote server drops
 *	the transaction (qmgr sends the request again; at worst a
 *	duplicate, never a loss).
 *
 *	The before-sleep hook flushes replies and message bodies; a
 *	connection is freed through event_defer(), never inside its own
 *	callback.
 * DIAGNOSTICS
 *	A malformed frame or request is a bug in qmgr: "malformed request
 *	from qmgr: ...; dropping the connection" (warning).
 * LIMITS
 *	1000 qmgr connections per process (fewer when the open file limit
 *	does not allow that, see main.c); a request is at most
 *	ATTR_MAX_MSG octets and SMTP_RCPT_MAX recipients.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "queue_file.h"
#include "server.h"
#include "smtp.h"
#include "xalloc.h"

#define SMTP_RCPT_MAX (ATTR_MAX_PAIRS / 2 - 16)

struct smtp_client {
    struct event_loop *loop;
    struct conn *conn;
    struct smtp_delivery *delivery;
    int freed;
    int closing;          /* close once the last reply is written */
    int kick_pending;     /* a deferred client_kick refers to us */
    struct smtp_client *prev, *next;
};

static struct smtp_client *client_list;
static int client_count;

void smtp_update_session_count(void)
{
    server_session_count(client_count + smtp_session_count());
}

/* ---- life cycle ---- */

static void client_free(struct event_loop *loop, void *ctx)
{
    struct smtp_client *c = ctx;
    if (c->kick_pending) {
        event_defer(loop, client_free, c);   /* after the kick that names us */
        return;
    }
    if (c->delivery != NULL)
        smtp_delivery_abandon(c->delivery);
    conn_destroy(&c->conn);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        client_list = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
    client_count--;
    smtp_update_session_count();
}

static void client_schedule_free(struct smtp_client *c)
{
    if (c->freed)
        return;
    c->freed = 1;
    if (c->delivery != NULL) {
        struct smtp_delivery *d = c->delivery;
        c->delivery = NULL;
        smtp_delivery_abandon(d);
    }
    if (!c->conn->closed)
        conn_pause_input(c->conn, 1);
    event_defer(c->loop, client_free, c);
}

/* ---- requests ---- */

static char *dup_value(const struct attr_msg *m, const char *name)
{
    const char *v = attr_msg_get(m, name);
    return xstrdup(v != NULL ? v : "");
}

/* Builds a delivery from a request. NULL with *error_r for a malformed
   one (error_r names what is wrong). */
static struct smtp_delivery *request_parse(struct smtp_client *c, const struct attr_msg *m,
                                           char **error_r)
{
    static const char *const required[] = {"id", "queue_id", "path", "offset", "length",
                                           "sender", "nexthop", "rcpt_count"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (attr_msg_get(m, required[i]) == NULL) {
            *error_r = xasprintf("no %s", required[i]);
            return NULL;
        }
    }
    long long offset = attr_msg_get_num(m, "offset");
    long long length = attr_msg_get_num(m, "length");
    long long count = attr_msg_get_num(m, "rcpt_count");
    if (offset < 0 || length < 0) {
        *error_r = xasprintf("bad offset/length");
        return NULL;
    }
    if (count < 1 || count > SMTP_RCPT_MAX) {
        *error_r = xasprintf("bad rcpt_count");
        return NULL;
    }
    if (*attr_msg_get(m, "nexthop") == '\0' || *attr_msg_get(m, "path") == '\0') {
        *error_r = xasprintf("empty nexthop or path");
        return NULL;
    }
    for (long long i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof(name), "rcpt_%lld", i);
        const char *v = attr_msg_get(m, name);
        if (v == NULL || *v == '\0') {
            *error_r = xasprintf("no %s", name);
            return NULL;
        }
    }

    struct smtp_delivery *d = xcalloc(1, sizeof(*d));
    d->loop = c->loop;
    d->client = c;
    d->msg_fd = -1;
    d->body_8bit = -1;
    d->id = dup_value(m, "id");
    d->queue_id = dup_value(m, "queue_id");
    d->path = dup_value(m, "path");
    d->sender = dup_value(m, "sender");
    d->nexthop = dup_value(m, "nexthop");
    d->offset = (off_t)offset;
    d->length = (off_t)length;
    d->received = smtp_now();
    const char *arrival = attr_msg_get(m, "arrival");
    d->arrival = arrival != NULL ? strtod(arrival, NULL) : 0;
    if (d->arrival <= 0 || d->arrival > d->received)
        d->arrival = d->received;
    const char *flags = attr_msg_get(m, "flags");
    if (flags != NULL) {
        char **words = config_split_list(flags, NULL);
        for (char **w = words; *w != NULL; w++) {
            if (strcmp(*w, "smtputf8") == 0)
                d->need_smtputf8 = 1;
            else if (strcmp(*w, "8bitmime") == 0)
                d->declared_8bit = 1;
        }
        strv_free(&words);
    }
    d->rcpt_count = (size_t)count;
    d->rcpts = xcalloc(d->rcpt_count, sizeof(*d->rcpts));
    for (size_t i = 0; i < d->rcpt_count; i++) {
        char name[32];
        snprintf(name, sizeof(name), "rcpt_%zu", i);
        d->rcpts[i].address = dup_value(m, name);
        snprintf(name, sizeof(name), "orig_rcpt_%zu", i);
        const char *orig = attr_msg_get(m, name);
        d->rcpts[i].orig = xstrdup(orig != NULL && *orig != '\0' ? orig
                                                                 : d->rcpts[i].address);
    }
    return d;
}

static void client_process(struct smtp_client *c)
{
    if (c->freed || c->closing || c->delivery != NULL || c->conn->closed)
        return;
    struct attr_msg m;
    attr_msg_init(&m);
    const char *error = NULL;
    enum attr_status st = attr_msg_decode(&c->conn->in, &m, &error);
    if (st == ATTR_NEED_MORE) {
        attr_msg_clear(&m);
        conn_update(c->conn);
        return;
    }
    if (st == ATTR_BAD) {
        msg_warn("malformed request from qmgr: %s; dropping the connection", error);
        attr_msg_clear(&m);
        client_schedule_free(c);
        return;
    }
    char *why = NULL;
    struct smtp_delivery *d = request_parse(c, &m, &why);
    attr_msg_clear(&m);
    if (d == NULL) {
        msg_warn("malformed request from qmgr: %s; dropping the connection", why);
        free(why);
        client_schedule_free(c);
        return;
    }
    if (!queue_id_valid(d->queue_id) ||
        strncmp(d->path, smtp_var.active_prefix, strlen(smtp_var.active_prefix)) != 0 ||
        strstr(d->path, "/../") != NULL) {
        msg_warn("%s: request names a file outside the active queue: %s", d->queue_id,
                 d->path);
        smtp_rcpt_result_all(d, SMTP_STATUS_DEFERRED, "4.3.5",
                             "bad queue file path in delivery request");
        c->delivery = d;
        smtp_delivery_transaction_done(d);
        return;
    }
    c->delivery = d;
    smtp_delivery_start(d);
    if (!c->freed && !c->conn->closed)
        conn_update(c->conn);
}

static void client_kick(struct event_loop *loop, void *ctx)
{
    (void)loop;
    struct smtp_client *c = ctx;
    c->kick_pending = 0;
    client_process(c);
}

static void client_event(struct conn *conn, enum conn_event event, void *ctx)
{
    struct smtp_client *c = ctx;
    if (c->freed)
        return;
    switch (event) {
    case CONN_EVENT_INPUT:
        client_process(c);
        break;
    case CONN_EVENT_CLOSED:
        client_schedule_free(c);
        break;
    case CONN_EVENT_TLS_READY:
        break;
    }
}

/* ---- replies ---- */

void smtp_qmgr_reply(struct smtp_delivery *d)
{
    struct smtp_client *c = d->client;
    d->client = NULL;
    if (c == NULL)
        return;
    c->delivery = NULL;
    if (c->freed || c->conn->closed)
        return;
    struct attr_msg reply;
    attr_msg_init(&reply);
    attr_msg_add(&reply, "id", d->id);
    attr_msg_addf(&reply, "rcpt_count", "%zu", d->rcpt_count);
    for (size_t i = 0; i < d->rcpt_count; i++) {
        const struct smtp_rcpt *r = &d->rcpts[i];
        char name[32];
        snprintf(name, sizeof(name), "status_%zu", i);
        attr_msg_add(&reply, name, r->status == SMTP_STATUS_SENT ? "sent"
                                   : r->status == SMTP_STATUS_BOUNCED ? "bounced"
                                                                      : "deferred");
        snprintf(name, sizeof(name), "dsn_%zu", i);
        attr_msg_add(&reply, name, r->dsn);
        snprintf(name, sizeof(name), "reason_%zu", i);
        attr_msg_add(&reply, name, r->reason != NULL ? r->reason : "");
    }
    attr_msg_add(&reply, "relay", d->relay != NULL ? d->relay : "none");
    attr_msg_add(&reply, "dest_status", d->dest_dead ? "dead" : "ok");
    attr_msg_encode(&reply, &c->conn->out);
    attr_msg_clear(&reply);
    conn_flush(c->conn);
    if (smtp_var.draining) {
        c->closing = 1;
        return;
    }
    /* The next request may already be waiting in the buffer. */
    if (c->conn->in.len > 0 && !c->kick_pending) {
        c->kick_pending = 1;
        event_defer(c->loop, client_kick, c);
    }
}

/* ---- hooks ---- */

static void before_sleep(struct event_loop *loop, void *ctx)
{
    (void)loop;
    (void)ctx;
    smtp_session_before_sleep();
    for (struct smtp_client *c = client_list; c != NULL; c = c->next) {
        if (c->freed || c->conn->closed)
            continue;
        if (c->conn->out.len > 0)
            conn_flush(c->conn);
        if (c->closing && c->conn->out.len == 0 && !c->freed)
            client_schedule_free(c);
    }
}

void smtp_qmgr_init(struct event_loop *loop)
{
    event_before_sleep(loop, before_sleep, NULL);
}

void smtp_qmgr_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                      socklen_t peer_len)
{
    if (smtp_var.draining) {
        close(fd);
        return;
    }
    if (client_count >= smtp_var.client_limit) {
        msg_warn("too many qmgr connections (%d); refusing one", client_count);
        close(fd);
        return;
    }
    struct smtp_client *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->conn = conn_create(loop, fd, peer, peer_len, ATTR_MAX_MSG + 4, SMTP_OUT_LIMIT,
                          client_event, c);
    c->next = client_list;
    if (client_list != NULL)
        client_list->prev = c;
    client_list = c;
    client_count++;
    smtp_update_session_count();
}

void smtp_qmgr_stop(void)
{
    smtp_var.draining = 1;
    smtp_session_stop_all();
    for (struct smtp_client *c = client_list; c != NULL; c = c->next) {
        if (c->freed || c->conn->closed)
            continue;
        conn_flush(c->conn);
        if (c->delivery == NULL)
            c->closing = 1;
    }
    for (struct smtp_client *c = client_list; c != NULL; c = c->next)
        if (c->closing && !c->freed && (c->conn->closed || c->conn->out.len == 0))
            client_schedule_free(c);
}
