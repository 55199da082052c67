/*
 * NAME
 *	postqueue - list and flush the mail queue
 * SYNOPSIS
 *	postqueue [-c config_dir] -p | -j | -f | -i queue_id | -s site
 * DESCRIPTION
 *	-p lists the queue in Postfix's mailq format, -j as one JSON object
 *	per message (both read the queue directories directly and work
 *	while the mail system is down). -f asks qmgr to retry every
 *	deferred message now, -i ID one message. -s (per-site flush) is not
 *	supported. The configuration directory is -c, else
 *	$POSTERN_CONFIG_DIR, else /etc/postern. See docs/postqueue.md.
 * DIAGNOSTICS
 *	Exit 0 on success, 1 on failure (qmgr not running, unreadable
 *	queue), 64 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "cli_queue_list.h"
#include "config.h"
#include "log.h"
#include "qmgr_client.h"
#include "queue_file.h"

#define POSTQUEUE_USAGE "[-c config_dir] -p | -j | -f | -i queue_id | -s site"
#define QMGR_TIMEOUT_MS 60000

static int flush(const char *queue_dir, const char *request, const char *id)
{
    char *reason = NULL;
    if (qmgr_request(queue_dir, request, id, QMGR_TIMEOUT_MS, &reason) < 0) {
        if (id != NULL)
            cli_fatal("cannot flush message %s: %s", id, reason);
        cli_fatal("cannot flush mail queue: %s", reason);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *opt_c = NULL;
    const char *flush_id = NULL;
    int mode = 0;
    int ch;

    cli_init("postqueue");
    while ((ch = getopt(argc, argv, "c:fi:jps:v")) != -1) {
        switch (ch) {
        case 'c': opt_c = optarg; break;
        case 'f':
        case 'j':
        case 'p':
        case 's':
            if (mode != 0)
                cli_usage(POSTQUEUE_USAGE);
            mode = ch;
            break;
        case 'i':
            if (mode != 0)
                cli_usage(POSTQUEUE_USAGE);
            mode = ch;
            flush_id = optarg;
            break;
        case 'v': log_verbose = 1; break;
        default: cli_usage(POSTQUEUE_USAGE);
        }
    }
    if (mode == 0 || optind != argc)
        cli_usage(POSTQUEUE_USAGE);
    if (mode == 's')
        cli_fatal("-s (per-site flush) is not supported; use -f or -i queue_id");
    if (mode == 'i' && !queue_id_valid(flush_id))
        cli_fatal("invalid queue ID: %s", flush_id);

    const char *config_dir = cli_config_dir(opt_c);
    cli_load_config(config_dir, mode == 'f' || mode == 'i');
    const char *queue_dir = cli_queue_dir();

    int status;
    switch (mode) {
    case 'p': status = cli_queue_list(queue_dir, stdout, 0); break;
    case 'j': status = cli_queue_list(queue_dir, stdout, 1); break;
    case 'f': status = flush(queue_dir, "flush", NULL); break;
    case 'i': status = flush(queue_dir, "flush_id", flush_id); break;
    default: cli_usage(POSTQUEUE_USAGE);
    }
    config_free_all();
    return status;
}
