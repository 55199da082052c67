/*
 * NAME
 *	log - Postfix-shaped log lines
 * SYNOPSIS
 *	#include "log.h"
 * DESCRIPTION
 *	Every line has the shape operators' tools expect:
 *	"Nov 27 03:34:30 host postern/smtpd[123]: text". To syslog (mail
 *	facility) by default, to a file when log_set_file() names one
 *	(main.cf maillog_file; appended with one write() per line, so many
 *	processes can share it), or to stderr with "/dev/stderr".
 *
 *	msg_info: an event. msg_warn: something is wrong but work goes on.
 *	msg_fatal: the environment failed; logs and exit(1) (master
 *	restarts the daemon). msg_panic: a bug; logs and abort().
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>

/* program is the daemon name ("smtpd"); the tag is "postern/smtpd". */
void log_init(const char *program);
/* syslog_name (default "postern"). */
void log_set_syslog_name(const char *name);
/* path "" = syslog, "/dev/stderr" = stderr, else a file opened O_APPEND.
   Returns 0, or -1 if the file cannot be opened (logging goes to stderr). */
int log_set_file(const char *path);
/* Also copy every line to stderr (foreground master). */
void log_set_stderr_copy(int on);
const char *log_program(void);
/* Command-line programs: lines go to stderr as "program: text" (no
   timestamp); log_set_file() afterwards still adds the log file. */
void log_set_cli_mode(int on);

void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Verbose messages, shown only when log_verbose is set (-v). */
extern int log_verbose;
void msg_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
