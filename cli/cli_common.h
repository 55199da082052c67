/*
 * NAME
 *	cli_common - what every queue command does the same way
 * SYNOPSIS
 *	#include "cli_common.h"
 * DESCRIPTION
 *	Finding the configuration directory (-c, else $POSTERN_CONFIG_DIR,
 *	else /etc/postern), loading main.cf, pointing the log at
 *	maillog_file, and the shape of operator-facing messages: text for
 *	the operator goes to stderr as "program: ..." (as Postfix commands
 *	do); events worth keeping also go to the mail log with msg_info().
 */
#ifndef POSTERN_CLI_COMMON_H
#define POSTERN_CLI_COMMON_H

/* Exit status for a command-line usage error (sysexits EX_USAGE). */
#define CLI_EXIT_USAGE 64

/* Sets the program name for messages and the log tag. */
void cli_init(const char *program);
const char *cli_program(void);
/* opt_c (the -c argument, may be NULL), else $POSTERN_CONFIG_DIR, else
   /etc/postern. */
const char *cli_config_dir(const char *opt_c);
/* Loads config_dir/main.cf or exits via cli_fatal(). With use_log, also
   applies syslog_name and maillog_file so msg_info() reaches the mail
   log. */
void cli_load_config(const char *config_dir, int use_log);
/* $queue_directory of the loaded configuration. */
const char *cli_queue_dir(void);

/* "program: fatal: text" on stderr (and in the mail log when it is in
   use), exit status 1. */
void cli_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* "program: warning: text" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "program: text" on stderr. */
void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "usage: program synopsis" on stderr, exit CLI_EXIT_USAGE. */
void cli_usage(const char *synopsis) __attribute__((noreturn));

#endif
