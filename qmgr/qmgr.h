/*
 * NAME
 *	qmgr - queue manager, private interfaces
 * DESCRIPTION
 *	qmgr_scan.c: queue directory scans (incoming, maildrop pickup,
 *	deferred retries, start-up recovery of active/) and the control
 *	socket (new, flush, flush_id, scan).
 *	qmgr_active.c: messages in active/: per-recipient state, routing,
 *	results, bounce/defer/remove decisions, retry times.
 *	qmgr_deliver.c: connections to local, pipelined requests.
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stddef.h>

#include "event.h"
#include "queue_file.h"

#define QMGR_SCAN_INTERVAL_MS  10000   /* incoming/ + maildrop/ safety-net scan */
#define QMGR_SCAN_CHUNK        200     /* directory entries per loop round */
#define QMGR_PIPELINE_MAX      64      /* outstanding requests per local connection */
#define QMGR_MAX_CONNECTIONS   64      /* cap on qmgr_local_connections */
#define QMGR_MAX_LOSSES        5       /* lost connections before a recipient is deferred */
#define QMGR_CLIENT_MAX        1000    /* control connections */
#define QMGR_IDLE_CLOSE_MS     30000   /* idle local connections are closed */
#define QMGR_SPREAD_AT         8       /* outstanding before another connection opens */
#define QMGR_STALL_MS          150000  /* no answer: give up on a connection */
#define QMGR_RETRY_MIN_MS      1000    /* local unreachable: first retry */
#define QMGR_RETRY_MAX_MS      30000
#define QMGR_STOP_DRAIN_MS     3000    /* on SIGTERM: wait this long for local's replies */

enum qmgr_rstate {
    QR_DONE,       /* done on disk (before this round or sent now) */
    QR_PENDING,    /* waiting for dispatch */
    QR_INFLIGHT,   /* request outstanding */
    QR_BOUNCED,    /* failed: notice needed before it is marked done */
    QR_DEFERRED,   /* retry in a later round */
};

struct qmgr_rcpt {
    unsigned char state;
    unsigned char losses;
    char dsn[12];
    char *reason;
    char *route_addr;   /* address sent to the transport, NULL = as in the file */
};

struct qmgr_msg {
    char id[QUEUE_ID_LEN + 1];
    struct queue_file *qf;
    struct qmgr_rcpt *rs;
    size_t cursor;            /* first recipient that may be QR_PENDING */
    size_t undispatched;      /* QR_PENDING count */
    size_t inflight;          /* QR_INFLIGHT count */
    int in_ready;
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
/* Moves deferred files whose time has come (all of them with force). */
void qmgr_scan_deferred(int force);
/* Moves deferred/id to incoming/ now and takes it. Returns 0 or -1. */
int qmgr_flush_id(const char *id);
void qmgr_accept(struct event_loop *loop, int fd);
void qmgr_clients_stop(void);

/* qmgr_active.c */
/* Takes incoming/id into active/. Returns 1 taken, 0 no room (left in
   incoming/, picked up by a later scan), -1 gone or unusable. */
int qmgr_active_take(const char *id);
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
/* The request for recipient i was lost with its connection: dispatch it
   again (or defer it after QMGR_MAX_LOSSES when count_loss). May free m. */
void qmgr_active_requeue(struct qmgr_msg *m, size_t i, int count_loss);
/* 1 if some recipient waits for dispatch. */
int qmgr_active_has_work(void);

/* qmgr_deliver.c */
void qmgr_deliver_init(void);
/* Dispatches waiting recipients (run before the loop sleeps). */
void qmgr_deliver_pump(struct event_loop *loop, void *ctx);
void qmgr_deliver_stop(void);

#endif
