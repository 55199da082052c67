/*
 * NAME
 *	postcat - show the contents of queue files
 * SYNOPSIS
 *	postcat [-c config_dir] [-q] [-e] [-h] [-b] file|queue_id ...
 * DESCRIPTION
 *	Prints the envelope ("*** ENVELOPE RECORDS name ***": arrival time,
 *	sender, attributes, recipients with done ones marked) and the
 *	message ("*** MESSAGE CONTENTS name ***"), then "*** MESSAGE FILE
 *	END name ***". -e shows only the envelope, -h only the message
 *	header, -b only the body (-h -b: the whole message); options
 *	combine. With -q the arguments are queue IDs, looked up in
 *	incoming, active, deferred, hold, maildrop and corrupt.
 * DIAGNOSTICS
 *	A file that is not a valid queue file is reported and skipped;
 *	the exit status is then 1. Usage errors exit 64.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "config.h"
#include "log.h"
#include "queue_file.h"
#include "xalloc.h"

#define POSTCAT_USAGE "[-c config_dir] [-q] [-e] [-h] [-b] file|queue_id ..."

enum { SHOW_ENV = 1, SHOW_HEADER = 2, SHOW_BODY = 4 };

static void print_envelope(const struct queue_file *qf, const char *name)
{
    char when[64];
    time_t t = (time_t)qf->arrival_sec;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL ||
        strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm) == 0)
        when[0] = '\0';
    printf("*** ENVELOPE RECORDS %s ***\n", name);
    printf("message_size: %lld\n", (long long)qf->message_len);
    printf("message_arrival_time: %s\n", when);
    printf("create_time: %lld.%06ld\n", qf->arrival_sec, qf->arrival_usec);
    printf("sender: %s\n", qf->sender);
    for (size_t i = 0; i < qf->attr_count; i++)
        printf("named_attribute: %s=%s\n", qf->attr_names[i], qf->attr_values[i]);
    for (size_t i = 0; i < qf->rcpt_count; i++)
        printf("%s: %s\n", qf->rcpts[i].done ? "done_recipient" : "recipient",
               qf->rcpts[i].address);
}

/* Streams the message, keeping the header and/or the body. The header
   ends at the first empty line (which belongs to neither part). */
static int print_message(int fd, const struct queue_file *qf, int show, const char *name)
{
    char buf[65536];
    off_t pos = qf->message_offset;
    off_t left = qf->message_len;
    int in_header = 1;
    int at_line_start = 1;
    char last = '\n';   /* last byte printed */
    if ((show & (SHOW_HEADER | SHOW_BODY)) == (SHOW_HEADER | SHOW_BODY))
        printf("*** MESSAGE CONTENTS %s ***\n", name);
    else if (show & SHOW_HEADER)
        printf("*** MESSAGE HEADER %s ***\n", name);
    else
        printf("*** MESSAGE BODY %s ***\n", name);
    while (left > 0) {
        size_t want = left < (off_t)sizeof(buf) ? (size_t)left : sizeof(buf);
        ssize_t n = pread(fd, buf, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cli_warn("%s: read: %s", name, n < 0 ? strerror(errno) : "file truncated");
            return -1;
        }
        size_t start = 0;
        for (size_t i = 0; i < (size_t)n && in_header; i++) {
            if (buf[i] == '\n' && at_line_start) {
                /* The empty line: flush the header part, skip it. */
                if ((show & SHOW_HEADER) && i > start) {
                    fwrite(buf + start, 1, i - start, stdout);
                    last = buf[i - 1];
                }
                if ((show & SHOW_HEADER) && (show & SHOW_BODY)) {
                    fputc('\n', stdout);
                    last = '\n';
                }
                in_header = 0;
                start = i + 1;
                break;
            }
            at_line_start = buf[i] == '\n';
        }
        if ((size_t)n > start && ((in_header && (show & SHOW_HEADER)) ||
                                  (!in_header && (show & SHOW_BODY)))) {
            fwrite(buf + start, 1, (size_t)n - start, stdout);
            last = buf[n - 1];
        }
        pos += n;
        left -= n;
        if (!in_header && !(show & SHOW_BODY))
            break;
    }
    /* Keep the end marker line on its own line. */
    if (last != '\n')
        fputc('\n', stdout);
    return 0;
}

static int cat_one(const char *path, const char *name, int show)
{
    struct queue_file *qf = NULL;
    char *error = NULL;
    if (queue_file_read(path, &qf, &error) < 0) {
        cli_warn("%s: %s", path, error);
        free(error);
        return -1;
    }
    int status = 0;
    if (show & SHOW_ENV)
        print_envelope(qf, name);
    if (show & (SHOW_HEADER | SHOW_BODY)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cli_warn("open %s: %s", path, strerror(errno));
            status = -1;
        } else {
            status = print_message(fd, qf, show, name);
            close(fd);
        }
    }
    printf("*** MESSAGE FILE END %s ***\n", name);
    queue_file_free(&qf);
    return status;
}

int main(int argc, char **argv)
{
    const char *opt_c = NULL;
    int by_id = 0;
    int show = 0;
    int ch;

    cli_init("postcat");
    while ((ch = getopt(argc, argv, "bc:ehqv")) != -1) {
        switch (ch) {
        case 'b': show |= SHOW_BODY; break;
        case 'c': opt_c = optarg; break;
        case 'e': show |= SHOW_ENV; break;
        case 'h': show |= SHOW_HEADER; break;
        case 'q': by_id = 1; break;
        case 'v': log_verbose = 1; break;
        default: cli_usage(POSTCAT_USAGE);
        }
    }
    if (optind == argc)
        cli_usage(POSTCAT_USAGE);
    if (show == 0)
        show = SHOW_ENV | SHOW_HEADER | SHOW_BODY;

    const char *queue_dir = NULL;
    if (by_id) {
        cli_load_config(cli_config_dir(opt_c), 0);
        queue_dir = cli_queue_dir();
    }
    int status = 0;
    for (int i = optind; i < argc; i++) {
        if (!by_id) {
            if (cat_one(argv[i], argv[i], show) < 0)
                status = 1;
            continue;
        }
        if (!queue_id_valid(argv[i])) {
            cli_warn("invalid queue ID: %s", argv[i]);
            status = 1;
            continue;
        }
        /* The file may move between lookup and open: look again. */
        int r = -1;
        for (int attempt = 0; attempt < 3 && r < 0; attempt++) {
            const char *queue = queue_file_locate(queue_dir, argv[i]);
            if (queue == NULL)
                break;
            char *path = queue_file_path(queue_dir, queue, argv[i]);
            if (access(path, F_OK) == 0)
                r = cat_one(path, path, show) < 0 ? -2 : 0;
            free(path);
            if (r == -2)
                break;
        }
        if (r == -1)
            cli_warn("%s: no such message in the queue", argv[i]);
        if (r != 0)
            status = 1;
    }
    if (by_id)
        config_free_all();
    if (fflush(stdout) != 0 || ferror(stdout))
        cli_fatal("write error: %s", strerror(errno));
    return status;
}
