/*
 * NAME
 *	local - local delivery agent, private interfaces
 * DESCRIPTION
 *	local_deliver.c: the request loop (batching, one sync per batch,
 *	replies in order), logging, and the delivery primitives (Maildir,
 *	mbox file, command, forward). local_alias.c: alias and virtual
 *	expansion of one recipient into those primitives.
 */
#ifndef POSTERN_LOCAL_H
#define POSTERN_LOCAL_H

#include <sys/types.h>

#include "buf.h"

#define LOCAL_BATCH_MAX     64      /* requests per group commit */
#define LOCAL_MAX_DEPTH     20      /* alias nesting */
#define LOCAL_MAX_TARGETS   1000    /* addresses seen in one expansion */
#define LOCAL_MAX_SYNC_FS   16      /* distinct file systems per batch */
#define LOCAL_HEADER_MAX    (256 * 1024)  /* header bytes scanned for loops */
#define LOCAL_CMD_TIMEOUT   60      /* seconds for a "|command" */

enum local_status { LOCAL_SENT, LOCAL_BOUNCED, LOCAL_DEFERRED };

/* One delivery outcome, logged after the batch is durable. */
struct local_logline {
    char *to;
    enum local_status status;
    char dsn[16];
    char *reason;
    int needs_sync;       /* a Maildir delivery: only durable after the sync */
};

/* The queue file a request points at (shared by consecutive requests). */
struct local_msg {
    char *path;
    int fd;
    struct buf headers;   /* header block, for Delivered-To loop checks */
};

struct local_request {
    char *id;
    char *queue_id;
    char *path;
    char *sender;
    char *recipient;
    char *orig_recipient;
    char *flags;
    off_t offset;
    off_t length;
    double arrival;
    double received;

    enum local_status status;  /* worst outcome over all targets */
    char dsn[16];
    struct buf reason;
    struct local_logline *log;
    size_t log_count;
};

struct local_batch {
    dev_t sync_dev[LOCAL_MAX_SYNC_FS];
    char *sync_path[LOCAL_MAX_SYNC_FS];
    size_t sync_count;
};

/* State of the expansion of one request's recipient. */
struct local_ctx {
    struct local_request *req;
    struct local_msg *msg;
    struct local_batch *batch;
    char **seen;             /* lowercased addresses/targets already expanded */
    size_t seen_count;
    char **forward;          /* foreign addresses to forward to */
    size_t forward_count;
    const char *chain[LOCAL_MAX_DEPTH + 2];   /* addresses being expanded, outermost first */
    int chain_len;
};

/* local_deliver.c */
void local_serve(int fd);
/* Records an outcome for target "to" and merges it into the request. */
void local_result(struct local_ctx *ctx, const char *to, enum local_status status,
                  const char *dsn, int needs_sync, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Delivery primitives; each records its outcome with local_result(). */
void local_deliver_maildir(struct local_ctx *ctx, const char *dir, const char *to);
void local_deliver_file(struct local_ctx *ctx, const char *path, const char *to);
void local_deliver_command(struct local_ctx *ctx, const char *command, const char *to);
/* Writes one queue file for all collected forward addresses. */
void local_deliver_forward(struct local_ctx *ctx, const char *delivered_to);
/* 1 if the message has "Delivered-To: address" already. */
int local_delivered_to_seen(const struct local_msg *msg, const char *address);

/* local_alias.c */
/* Delivers the request's recipient (alias/virtual expansion included). */
void local_expand(struct local_ctx *ctx);
/* Drops cached tables. */
void local_alias_reset(void);

#endif
