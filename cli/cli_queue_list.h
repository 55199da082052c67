/*
 * NAME
 *	cli_queue_list - the queue listing of postqueue -p / -j and mailq
 * SYNOPSIS
 *	#include "cli_queue_list.h"
 * DESCRIPTION
 *	Reads the queue directories directly (incoming, active, deferred,
 *	hold, maildrop), so the listing works while qmgr is down.
 */
#ifndef POSTERN_CLI_QUEUE_LIST_H
#define POSTERN_CLI_QUEUE_LIST_H

#include <stdio.h>

/* Prints the queue to out in Postfix's mailq format (json = 0) or as
   one JSON object per message and line (json = 1). Returns the exit
   status (0, or 1 on a write error; an unreadable queue directory is
   fatal: cli_fatal). */
int cli_queue_list(const char *queue_dir, FILE *out, int json);

/* Appends s to out as a JSON string (quoted, escaped; invalid UTF-8
   becomes U+FFFD). Exposed for tests. */
void cli_json_string(FILE *out, const char *s);

#endif
