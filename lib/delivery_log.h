/*
 * NAME
 *	delivery_log - the per-recipient delivery line operators grep for
 * SYNOPSIS
 *	#include "delivery_log.h"
 * DESCRIPTION
 *	One function writes the line every transport logs for a recipient,
 *	in Postfix's shape, so pflogsumm and operators' scripts read it:
 *	"ID: to=<rcpt>, orig_to=<orig>, relay=local, delay=0.12,
 *	delays=a/b/c/d, dsn=2.0.0, status=sent (delivered to maildir)".
 *	delays are: before qmgr, in qmgr, connection set-up, transmission.
 */
#ifndef POSTERN_DELIVERY_LOG_H
#define POSTERN_DELIVERY_LOG_H

#include <stddef.h>

struct delivery_log {
    const char *queue_id;
    const char *to;
    const char *orig_to;     /* logged only when set and different from to */
    const char *relay;       /* "local", "none", "host[addr]:port" */
    double delay;            /* total seconds since arrival */
    double delays[4];
    const char *dsn;
    const char *status;      /* sent, deferred, bounced, expired */
    const char *reason;
};

void delivery_log(const struct delivery_log *entry);
/* Postfix-style seconds: "0.12", "1.2", "12" (trailing zeros dropped). */
void delivery_log_format_delay(char *out, size_t size, double seconds);

#endif
