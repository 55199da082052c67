/*
 * NAME
 *	master_cf - master.cf service table (Postfix syntax)
 * SYNOPSIS
 *	#include "master_cf.h"
 * DESCRIPTION
 *	One service per logical line:
 *	  service type private unpriv chroot wakeup maxproc command [args...]
 *	type is inet, unix, fifo or pass. "-" in a flag or number column
 *	takes the default: private y (always n for inet), unpriv y,
 *	chroot n (Postfix says y; Postern does not chroot by default),
 *	wakeup 0, maxproc $default_process_limit. A wakeup time may end in
 *	'?' (wake only a service that was used). '#' starts a comment line;
 *	a line starting with whitespace continues the service, typically
 *	with "-o name=value" overrides.
 *
 *	master_cf_load() reads the file; any malformed line fails the whole
 *	load with an error naming file and line, so master never runs half
 *	a configuration.
 */
#ifndef POSTERN_MASTER_CF_H
#define POSTERN_MASTER_CF_H

#include <stddef.h>

struct master_service {
    char *name;     /* "127.0.0.1:2525", "qmgr", ... */
    char *type;     /* inet | unix | fifo | pass */
    int private_;   /* 1 = private/ socket (never for inet) */
    int unpriv;     /* 1 = drop to mail_owner when master is root */
    int chroot;     /* 1 = chroot to $queue_directory */
    int wakeup;     /* seconds; 0 = none */
    int wakeup_if_used; /* wakeup had the '?' suffix */
    int maxproc;    /* 0 = no limit */
    char *command;  /* program name in $daemon_directory */
    char **args;    /* NULL-terminated: the words after command, e.g.
                       "-o", "syslog_name=x" as two words */
    size_t arg_count;
    char *file;     /* master.cf path and line of the service, for messages */
    int line;
};

/* Parses path. Returns 0 with a malloc'd array in *services_r (file order,
   free with master_cf_free) and its length in *count_r; or -1 with a
   malloc'd message "path, line N: ..." (or "open path: ...") in *error_r,
   which the caller frees. maxproc "-" reads default_process_limit, so load
   main.cf first. */
int master_cf_load(const char *path, struct master_service **services_r, size_t *count_r,
                   char **error_r);
/* Same over text already in memory; file_label names it in errors. */
int master_cf_parse(const char *text, size_t len, const char *file_label,
                    struct master_service **services_r, size_t *count_r, char **error_r);
/* Frees the array and its strings; sets *services_p to NULL. */
void master_cf_free(struct master_service **services_p, size_t count);

/* Splits an inet service name: "127.0.0.1:2525", "[::1]:2525",
   "host:smtp", "2525", "smtp", "*:2525". *host_r is a malloc'd host
   without brackets, or NULL when the name gives none (listen on
   $inet_interfaces); *port_r is the malloc'd port or service name.
   Returns 0, or -1 for a malformed name (nothing allocated). */
int master_cf_inet_address(const char *service_name, char **host_r, char **port_r);

/* The service as one normalized master.cf line (postconf -M); malloc'd. */
char *master_cf_format(const struct master_service *service);

#endif
