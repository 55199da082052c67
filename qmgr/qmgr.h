/*
 * NAME
 *	qmgr - queue manager, private interfaces
 * DESCRIPTION
 *	qmgr_scan.c: queue directory scans (incoming, maildrop pickup,
 *	deferred retries, start-up recovery of active/) and the control
 *	socket (new, flush, flush_id, scan).
 *	qmgr_active.c: messages in active/: per-recipient state, routing
 *	(lib/transport.h), the results qmgr decides itself (error:,
 *	discard:, retry:), results, bounce/defer/remove decisions, delay
 *	warnings, retry times.
 *	qmgr_deliver.c: connections to local, pipelined requests; the
 *	drain of outstanding replies (local and smtp) on SIGTERM.
 *	qmgr_dest.c: outbound scheduling: transports, per-destination
 *	queues of delivery requests, slow start, suspension of dead
 *	destinations, round robin over destinations.
 *	qmgr_transport.c: connections to a transport's agent
 *	($queue_directory/private/<transport>), one request at a time per
 *	connection, idle connections kept for reuse.
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stddef.h>

#include "event.h"
#include "queue_file.h"

#define QMGR_SCAN_INTERVAL_MS  10000   /* incoming/ + maildrop/ safety-net scan */
#define QMGR_SCAN_CHUNK        200     /* directory entries per loop round */
#define QMGR_DEFER_CHUNK       500     /* suspended destination: deferrals per round */
#define QMGR_TRIM_AFTER        1000    /* active peak worth a malloc_trim once empty */
#define QMGR_PIPELINE_MAX      64      /* outstanding requests per local connection */
#define QMGR_MAX_CONNECTIONS   64      /* cap on qmgr_local_connections */
#define QMGR_MAX_LOSSES        5       /* lost connections before a recipient is deferred */
#define QMGR_CLIENT_MAX        1000    /* control connections */
#define QMGR_IDLE_CLOSE_MS     30000   /* idle local connections are closed */
#define QMGR_SPREAD_AT         8       /* outstanding before another connection opens */
#define QMGR_STALL_MS          150000  /* no answer: give up on a connection */
#define QMGR_RETRY_MIN_MS      1000    /* local unreachable: first retry */
#define QMGR_RETRY_MAX_MS      30000
#define QMGR_STOP_DRAIN_MS     3000    /* on SIGTERM: wait this long for agents' replies */

/* Outbound (smtp) transports. */
#define QMGR_TP_IDLE_CLOSE_MS  30000   /* idle agent connections are closed */
#define QMGR_TP_STALL_MS       3600000 /* no reply to a request for this long: drop it */
#define QMGR_TP_DEAD_FAILS     5       /* connect failures in a row: "mail transport unavailable" */
#define QMGR_TP_RCPT_MAX       1000    /* cap on <transport>_destination_recipient_limit */
#define QMGR_TP_REQUEST_BYTES  (256 * 1024)   /* addresses in one request (attr frame limit) */
#define QMGR_TP_DELIVERY_MAX   10000   /* cap on qmgr_transport_delivery_limit */

enum qmgr_rstate {
    QR_DONE,       /* done on disk (before this round or sent now) */
    QR_PENDING,    /* waiting for dispatch to local */
    QR_INFLIGHT,   /* request outstanding */
    QR_BOUNCED,    /* failed: notice needed before it is marked done */
    QR_DEFERRED,   /* retry in a later round */
    QR_QUEUED,     /* in a destination queue (outbound), waiting for dispatch */
};

struct qmgr_dest;
struct qmgr_entry;

struct qmgr_rcpt {
    unsigned char state;
    unsigned char losses;
    char dsn[12];
    char *reason;
    char *route_addr;   /* address sent to the transport, NULL = as in the file */
    struct qmgr_dest *dest;   /* outbound destination (valid while QR_QUEUED or
                                 QR_INFLIGHT); NULL = local transport */
};

struct qmgr_msg {
    char id[QUEUE_ID_LEN + 1];
    struct queue_file *qf;
    struct qmgr_rcpt *rs;
    size_t cursor;            /* first recipient that may be QR_PENDING */
    size_t undispatched;      /* QR_PENDING count */
    size_t inflight;          /* QR_INFLIGHT count (local and outbound) */
    size_t queued;            /* QR_QUEUED count */
    int in_ready;
    int warned;               /* a delay warning was sent (defer log marker) */
    struct qmgr_msg *prev, *next;              /* active list */
    struct qmgr_msg *ready_prev, *ready_next;  /* round robin over messages */
};

enum qmgr_result { QMGR_SENT, QMGR_BOUNCED, QMGR_DEFERRED };

/* qmgr globals (main.c sets them in on_init). */
extern struct event_loop *qmgr_loop;
extern char *qmgr_queue_dir;

/* qmgr_scan.c */
void qmgr_scan_init(void);
/* Rescan incoming/ and maildrop/ soon. */
void qmgr_scan_incoming(void);
/* Takes deferred files whose time has come (all of them with force)
   straight into active/ while there is room; a full active/ pauses the
   walk where it is until qmgr_scan_room(). */
void qmgr_scan_deferred(int force);
/* A message left active/: a paused deferred walk goes on. */
void qmgr_scan_room(void);
/* Moves deferred/id to incoming/ now and takes it. Returns 0 or -1. */
int qmgr_flush_id(const char *id);
void qmgr_accept(struct event_loop *loop, int fd);
void qmgr_clients_stop(void);

/* qmgr_active.c */
/* Takes incoming/id into active/. Returns 1 taken, 0 no room (left in
   incoming/, picked up by a later scan), -1 gone or unusable. */
int qmgr_active_take(const char *id);
/* The same from another queue directory (deferred/). */
int qmgr_active_take_from(const char *queue, const char *id);
/* 1 if another message fits in active/. */
int qmgr_active_room(void);
/* The next recipient to dispatch (round robin over messages), or NULL.
   The recipient becomes QR_INFLIGHT. */
struct qmgr_msg *qmgr_active_next(size_t *rcpt_r);
/* The address to put in a delivery request for recipient i. */
const char *qmgr_active_address(const struct qmgr_msg *m, size_t i);
/* A transport's answer for recipient i. May finish (free) m. */
void qmgr_active_result(struct qmgr_msg *m, size_t i, enum qmgr_result result, const char *dsn,
                        const char *reason);
/* Recipient i (QR_INFLIGHT) is deferred by qmgr itself (its request
   was lost too often): logged with relay=none, then as a result. May
   free m. */
void qmgr_active_defer_inflight(struct qmgr_msg *m, size_t i, const char *dsn,
                                const char *reason);
/* The local request for recipient i was lost with its connection:
   dispatch it again (or defer it after QMGR_MAX_LOSSES when count_loss).
   May free m. (Outbound recipients are requeued by qmgr_dest_lost().) */
void qmgr_active_requeue(struct qmgr_msg *m, size_t i, int count_loss);
/* 1 if some local recipient waits for dispatch. */
int qmgr_active_has_work(void);
/* Outbound recipient i (QR_QUEUED, already out of its destination
   queue) is deferred by qmgr itself (suspended destination, transport
   unavailable): logged with relay=none. May free m. */
void qmgr_active_defer_queued(struct qmgr_msg *m, size_t i, const char *dsn, const char *reason);
/* Outbound recipient i moves QR_QUEUED -> QR_INFLIGHT when its request
   is sent, and QR_INFLIGHT -> QR_QUEUED when the request is lost. Only
   qmgr_dest.c calls these. */
void qmgr_active_mark_inflight(struct qmgr_msg *m, size_t i);
void qmgr_active_mark_queued(struct qmgr_msg *m, size_t i);

/* qmgr_transport.c: a non-blocking connection to
   $queue_directory/private/<service>; *connecting_r 1 while it is still
   being made. -1 (logged) when the agent cannot be reached now. */
int qmgr_connect_private(const char *service, int *connecting_r);

/* qmgr_deliver.c */
void qmgr_deliver_init(void);
/* The "path" of a delivery request: the active queue file as processes
   outside qmgr's chroot (if any) name it. malloc'd. */
char *qmgr_request_path(const struct qmgr_msg *m);
/* Dispatches waiting recipients (run before the loop sleeps). */
void qmgr_deliver_pump(struct event_loop *loop, void *ctx);
/* Collects outstanding replies from local and the outbound transports
   (at most QMGR_STOP_DRAIN_MS), then closes every connection. */
void qmgr_deliver_stop(void);

/* qmgr_dest.c -- outbound scheduling */
struct transport_route;
struct qmgr_tconn;
/* One per transport name seen in routes ("smtp"). Scheduling fields
   belong to qmgr_dest.c, connection fields to qmgr_transport.c. */
struct qmgr_transport {
    char *name;
    /* limits, read once (a reload restarts qmgr) */
    int dest_limit;       /* <name>_destination_concurrency_limit */
    int rcpt_limit;       /* <name>_destination_recipient_limit */
    int initial;          /* initial_destination_concurrency */
    int cohort_limit;     /* destination_concurrency_failed_cohort_limit */
    int delivery_limit;   /* qmgr_transport_delivery_limit */
    /* scheduling */
    int busy;                                  /* requests outstanding */
    struct qmgr_dest *ready_head, *ready_tail; /* destinations that may dispatch */
    long long down_until_ms;                   /* dispatch paused until */
    long long retry_ms;                        /* next pause length */
    int connect_fails;                         /* in a row */
    struct event_timer *retry_timer;
    /* connections */
    struct qmgr_tconn *conns;                  /* all (doubly linked) */
    struct qmgr_tconn *idle;                   /* idle ones, most recent first */
    size_t conn_count;
    struct qmgr_transport *next;
};
/* One delivery request: one message, up to the recipient limit of its
   recipients for one destination. */
struct qmgr_entry {
    struct qmgr_msg *msg;
    struct qmgr_dest *dest;
    size_t *rcpts;                         /* recipient indices in msg */
    size_t count, alloc;
    size_t bytes;                          /* address bytes (request size bound) */
    struct qmgr_entry *prev, *next;        /* the destination's queue */
};
/* Registers the before-sleep hook running qmgr_transport_pump() and
   qmgr_dest_pump(). */
void qmgr_dest_init(void);
/* The transports seen so far (a list through ->next). */
struct qmgr_transport *qmgr_transports(void);
/* Queues outbound recipient i of m (route->kind TRANSPORT_SMTP) on its
   destination (route->transport, route->nexthop). Returns 0 (the caller
   marks it QR_QUEUED), or -1 when the destination is suspended or the
   transport unavailable: *dsn_r / *reason_r (valid until the next
   qmgr_dest_* call) say why and the caller defers the recipient. */
int qmgr_dest_enqueue(struct qmgr_msg *m, size_t i, const struct transport_route *route,
                      const char **dsn_r, const char **reason_r);
/* Dispatches queued requests (before the loop sleeps). */
void qmgr_dest_pump(void);
/* postqueue -f: lift every suspension and transport pause. */
void qmgr_dest_flush(void);
/* From qmgr_transport.c: the agent answered entry e. reply is the attr
   message (validated here). Returns 0, or -1 if the reply is malformed
   (then nothing was changed and the caller drops the connection, which
   ends in qmgr_dest_lost()). May free messages. */
struct attr_msg;
int qmgr_dest_reply(struct qmgr_entry *e, const struct attr_msg *reply);
/* The request for e was lost (connection refused, closed, stalled).
   count_loss: the agent may have delivered it. Recipients go back to the
   head of the destination's queue (or are deferred after
   QMGR_MAX_LOSSES losses). May free messages. */
void qmgr_dest_lost(struct qmgr_entry *e, int count_loss);
/* From qmgr_transport.c: how talking to tp's agent went. */
enum qmgr_tp_event {
    QMGR_TP_OK,               /* a valid reply: the agent works */
    QMGR_TP_CONNECTED,        /* a connection was set up */
    QMGR_TP_LOST,             /* a connection was lost or misbehaved */
    QMGR_TP_CONNECT_FAILED,   /* the agent could not be reached */
};
void qmgr_dest_transport_event(struct qmgr_transport *tp, enum qmgr_tp_event event);

/* qmgr_transport.c -- connections to private/<transport> */
/* A connection to tp's agent for one request: an idle one, or a new
   one. NULL when the agent cannot be reached (connect failed at once;
   QMGR_TP_CONNECT_FAILED was reported). */
struct qmgr_tconn *qmgr_transport_conn(struct qmgr_transport *tp);
/* Gives back an unused connection from qmgr_transport_conn (idle). */
void qmgr_transport_release(struct qmgr_tconn *c);
/* Sends e's request on c (from qmgr_transport_conn, unused since). */
void qmgr_transport_send(struct qmgr_tconn *c, struct qmgr_entry *e, const char *nexthop);
/* Idle timeouts and stalled requests (before the loop sleeps). */
void qmgr_transport_pump(void);
/* Drain support for qmgr_deliver_stop(): fills up to max pollfds for
   connections with a request outstanding (ctx_r gets a handle for
   each) and returns how many; qmgr_transport_drain_event() handles poll
   results for one of them. */
struct pollfd;
size_t qmgr_transport_drain_fds(struct pollfd *pfd, void **ctx_r, size_t max);
void qmgr_transport_drain_event(void *ctx, int events);
/* Closes every connection (outstanding requests are abandoned: active/
   is recovered at the next start). */
void qmgr_transport_stop(void);

#endif
