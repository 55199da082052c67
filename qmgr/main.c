/*
 * NAME
 *	qmgr - queue manager
 * SYNOPSIS
 *	qmgr -c config_dir [-n service] [-t unix] [-o name=value]... [-s address]
 * DESCRIPTION
 *	An event server (lib/server.h) with one process (maxproc 1): the
 *	listening socket is the control socket public/qmgr. It moves mail
 *	incoming -> active -> delivered / deferred / bounced. See
 *	qmgr_scan.c, qmgr_active.c, qmgr_deliver.c, qmgr_dest.c,
 *	qmgr_transport.c and docs/qmgr.md.
 */
#include <stdlib.h>

#include "config.h"
#include "qmgr.h"
#include "server.h"
#include "xalloc.h"

struct event_loop *qmgr_loop;
char *qmgr_queue_dir;

static void qmgr_init(struct event_loop *loop)
{
    qmgr_loop = loop;
    qmgr_queue_dir = xstrdup(config_str("queue_directory"));
    qmgr_deliver_init();
    qmgr_dest_init();
    qmgr_scan_init();
}

static void qmgr_on_accept(struct event_loop *loop, int fd, const struct sockaddr *peer,
                           socklen_t peer_len)
{
    (void)peer;
    (void)peer_len;
    qmgr_accept(loop, fd);
}

static void qmgr_on_stop(struct event_loop *loop)
{
    (void)loop;
    qmgr_clients_stop();
    qmgr_deliver_stop();
}

int main(int argc, char **argv)
{
    static const struct server_hooks hooks = {
        .on_init = qmgr_init,
        .on_accept = qmgr_on_accept,
        .on_stop = qmgr_on_stop,
        .chroot_ok = 1,
    };
    server_main(argc, argv, "qmgr", SERVER_EVENT, &hooks);
}
