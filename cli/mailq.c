/*
 * NAME
 *	mailq - list the mail queue (sendmail compatibility)
 * SYNOPSIS
 *	mailq [-c config_dir] [-v]
 * DESCRIPTION
 *	Same as "postqueue -p": Postfix's mailq format. Other
 *	sendmail-style options are refused. See docs/postqueue.md.
 * DIAGNOSTICS
 *	Exit 0 on success, 1 when the queue cannot be read, 64 on a usage
 *	error.
 */
#include <stdio.h>
#include <unistd.h>

#include "cli_common.h"
#include "cli_queue_list.h"
#include "config.h"
#include "log.h"

int main(int argc, char **argv)
{
    const char *opt_c = NULL;
    int ch;

    cli_init("mailq");
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c': opt_c = optarg; break;
        case 'v': log_verbose = 1; break;
        default: cli_usage("[-c config_dir]");
        }
    }
    if (optind != argc)
        cli_usage("[-c config_dir]");
    cli_load_config(cli_config_dir(opt_c), 0);
    int status = cli_queue_list(cli_queue_dir(), stdout, 0);
    config_free_all();
    return status;
}
