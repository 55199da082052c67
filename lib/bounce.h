/*
 * NAME
 *	bounce - delivery status notifications (RFC 3464)
 * SYNOPSIS
 *	#include "bounce.h"
 * DESCRIPTION
 *	Composes a multipart/report; report-type=delivery-status message
 *	(RFC 6522) with three parts: a human-readable explanation, a
 *	message/delivery-status part (one per-recipient block each), and
 *	what the sender sent: the whole original message as message/rfc822
 *	when it is at most $bounce_size_limit bytes (and the sender did not
 *	ask for headers only with DSN RET=HDRS), else its headers as
 *	text/rfc822-headers; delay warnings carry the headers only, as
 *	Postfix's do. bounce_queue() writes
 *	it as a new queue file with the null sender and commits it to
 *	incoming/ with fsync, so the caller may then mark the failed
 *	recipients done (DESIGN.md invariant 1).
 *
 *	Notices carry the queue attribute "bounce": "1" for a notice to the
 *	sender, "2" for a notice to the postmaster about an undeliverable
 *	notice (double bounce). qmgr discards a double bounce that fails.
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "queue_file.h"

/* Limits on what is copied from the original message. */
#define BOUNCE_MAX_HEADERS  (64 * 1024)
#define BOUNCE_MAX_REASON   900

struct bounce_rcpt {
    const char *address;        /* final recipient */
    const char *orig_address;   /* original recipient, NULL if same/unknown */
    const char *dsn;            /* "5.1.1" */
    const char *reason;         /* diagnostic text */
    time_t last_attempt;        /* 0: now */
};

/* What bounce_compose() needs besides the recipients. */
struct bounce_info {
    const char *myhostname;
    const char *new_id;          /* queue ID of the notice (Message-ID, boundary) */
    const char *orig_id;         /* queue ID of the original message */
    const char *orig_sender;     /* "" for the null sender */
    long long arrival_sec;       /* of the original */
    const char *recipient;       /* who gets the notice */
    const char *headers;         /* the original header block (may be cut), or */
    size_t headers_len;
    int whole_message;           /* 1: headers holds the whole original message */
    int delay_warning;           /* 1: "delayed" notice, Action: delayed */
    time_t now;
};

/* Appends the notice (LF line endings) to out. */
void bounce_compose(struct buf *out, const struct bounce_info *info,
                    const struct bounce_rcpt *rcpts, size_t n);

/* Reads the original message's header block (up to the first empty line,
   at most BOUNCE_MAX_HEADERS bytes) from orig->path into out.
   Returns 0, or -1 with errno. */
int bounce_read_headers(const struct queue_file *orig, struct buf *out);
/* Reads the whole original message (the caller checked its size).
   Returns 0, or -1 with errno. */
int bounce_read_message(const struct queue_file *orig, struct buf *out);

/* Queues a notice about rcpts[0..n) of orig to recipient_of_notice
   (the sender, or the postmaster for a double bounce: then pass a
   recipient without '@' or any address; a bare name gets "@$myorigin").
   Durable when it returns 0: *new_id_r (malloc'd) is the notice's ID
   and "ORIGID: sender non-delivery notification: NEWID" is logged.
   Returns -1 with *error_r (static text) on failure. */
int bounce_queue(const char *queue_dir, const struct queue_file *orig,
                 const char *recipient_of_notice, const struct bounce_rcpt *rcpts, size_t n,
                 int delay_warning, char **new_id_r, const char **error_r);

#endif
