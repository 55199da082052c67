/*
 * NAME
 *	qmgr_client - one blocking request to the queue manager
 * SYNOPSIS
 *	#include "qmgr_client.h"
 * DESCRIPTION
 *	For commands (postqueue -f/-i, postsuper -r, sendmail): connects to
 *	$queue_directory/public/qmgr, sends {id=1, request, queue_id} (the
 *	attr protocol of attr.h), waits for the reply and closes. Daemons
 *	that talk to qmgr all the time (smtpd) keep their own connection.
 */
#ifndef POSTERN_QMGR_CLIENT_H
#define POSTERN_QMGR_CLIENT_H

/* request: "new", "flush", "flush_id" or "scan"; queue_id may be NULL.
   timeout_ms bounds the whole exchange (< 0: wait forever).
   Returns 0 when qmgr answered status=ok, else -1 with *reason_r
   (malloc'd; reason_r may be NULL): "qmgr is not running" when nothing
   listens on the socket (errno ECONNREFUSED or ENOENT), qmgr's reason
   for status=error (errno EINVAL), or the I/O error. */
int qmgr_request(const char *queue_dir, const char *request, const char *queue_id,
                 int timeout_ms, char **reason_r);

#endif
