/*
 * NAME
 *	log - Postfix-shaped log lines
 * DESCRIPTION
 *	See log.h. A line is formatted into a stack buffer and written with
 *	a single write(2) so concurrent writers never interleave mid-line.
 * LIMITS
 *	Lines longer than 2000 bytes are truncated; control characters in
 *	the text are replaced by '?', so a peer cannot forge log lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int log_verbose;

static char log_tag[64] = "postern";
static char log_syslog_name[32] = "postern";
static char log_prog[32] = "postern";
static int log_fd = -1;          /* -1: syslog */
static int log_to_syslog = 1;
static int log_stderr_copy;
static int log_cli_mode;

static void log_update_tag(void)
{
    snprintf(log_tag, sizeof(log_tag), "%s/%s", log_syslog_name, log_prog);
    if (log_to_syslog) {
        closelog();
        openlog(log_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
}

void log_init(const char *program)
{
    const char *slash = strrchr(program, '/');
    snprintf(log_prog, sizeof(log_prog), "%s", slash ? slash + 1 : program);
    log_update_tag();
}

const char *log_program(void)
{
    return log_prog;
}

void log_set_syslog_name(const char *name)
{
    snprintf(log_syslog_name, sizeof(log_syslog_name), "%s", name);
    log_update_tag();
}

void log_set_cli_mode(int on)
{
    log_cli_mode = on;
}

void log_set_stderr_copy(int on)
{
    log_stderr_copy = on;
}

int log_set_file(const char *path)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = -1;
    if (path == NULL || *path == '\0') {
        log_to_syslog = 1;
        log_update_tag();
        return 0;
    }
    log_to_syslog = 0;
    if (strcmp(path, "/dev/stderr") == 0) {
        log_fd = 2;
        return 0;
    }
    log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd < 0) {
        int saved = errno;
        log_fd = 2;
        fprintf(stderr, "warning: open %s: %s; logging to stderr\n", path, strerror(saved));
        return -1;
    }
    return 0;
}

static void log_emit(int priority, const char *prefix, const char *fmt, va_list ap)
{
    char text[2048];
    int saved_errno = errno;
    size_t off = (size_t)snprintf(text, sizeof(text), "%s", prefix);
    vsnprintf(text + off, sizeof(text) - off, fmt, ap);
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';

    if (log_cli_mode) {
        char line[2100];
        int n = snprintf(line, sizeof(line), "%s: %s\n", log_prog, text);
        if (n > 0 && write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
        }
        if (log_fd < 0 || log_fd == 2)
            { errno = saved_errno; return; }
    }
    if (log_to_syslog && log_fd < 0)
        syslog(priority, "%s", text);
    if (log_fd >= 0 || log_stderr_copy) {
        char line[2300];
        char stamp[32];
        char host[64];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        if (gethostname(host, sizeof(host)) != 0)
            strcpy(host, "localhost");
        host[sizeof(host) - 1] = '\0';
        char *dot = strchr(host, '.');
        if (dot)
            *dot = '\0';
        int n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s\n", stamp, host, log_tag,
                         (long)getpid(), text);
        if (n < 0)
            n = 0;
        if ((size_t)n >= sizeof(line))
            n = sizeof(line) - 1, line[n - 1] = '\n';
        if (log_fd >= 0 && write(log_fd, line, (size_t)n) < 0) {
            /* Nowhere better to report it. */
        }
        if (log_stderr_copy && log_fd != 2 && write(2, line, (size_t)n) < 0) {
        }
    }
    errno = saved_errno;
}

void msg_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_INFO, "", fmt, ap);
    va_end(ap);
}

void msg_debug(const char *fmt, ...)
{
    if (!log_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_DEBUG, "", fmt, ap);
    va_end(ap);
}

void msg_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

void msg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_ERR, "error: ", fmt, ap);
    va_end(ap);
}

void msg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_CRIT, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_CRIT, "panic: ", fmt, ap);
    va_end(ap);
    abort();
}
