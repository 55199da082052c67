/*
 * NAME
 *	cli_common - what every queue command does the same way
 * DESCRIPTION
 *	See cli_common.h. Commands talk to an operator at a terminal, so
 *	their messages go to stderr in Postfix's "postsuper: ..." shape;
 *	the mail log gets a copy only of what the daemons would also log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "config.h"
#include "log.h"

static char cli_prog[32] = "postern";
static int cli_logging;

void cli_init(const char *program)
{
    const char *slash = strrchr(program, '/');
    snprintf(cli_prog, sizeof(cli_prog), "%s", slash ? slash + 1 : program);
    log_init(cli_prog);
}

const char *cli_program(void)
{
    return cli_prog;
}

const char *cli_config_dir(const char *opt_c)
{
    if (opt_c != NULL && *opt_c != '\0')
        return opt_c;
    const char *env = getenv("POSTERN_CONFIG_DIR");
    if (env != NULL && *env != '\0')
        return env;
    return "/etc/postern";
}

void cli_load_config(const char *config_dir, int use_log)
{
    const char *error;
    if (config_load(config_dir, &error) < 0)
        cli_fatal("%s/main.cf: %s", config_dir, error);
    if (use_log) {
        log_set_syslog_name(config_str("syslog_name"));
        log_set_file(config_str("maillog_file"));
        cli_logging = strcmp(config_str("maillog_file"), "/dev/stderr") != 0;
    }
}

const char *cli_queue_dir(void)
{
    return config_str("queue_directory");
}

static void cli_vsay(const char *prefix, const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s: %s", cli_prog, prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vsay("fatal: ", fmt, ap);
    va_end(ap);
    if (cli_logging) {
        char text[1024];
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        msg_fatal("%s", text);
    }
    exit(1);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vsay("warning: ", fmt, ap);
    va_end(ap);
}

void cli_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vsay("", fmt, ap);
    va_end(ap);
}

void cli_usage(const char *synopsis)
{
    fflush(stdout);
    fprintf(stderr, "usage: %s %s\n", cli_prog, synopsis);
    exit(CLI_EXIT_USAGE);
}
