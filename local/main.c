/*
 * NAME
 *	local - local delivery agent
 * SYNOPSIS
 *	local -c config_dir [-n service] [-t unix] [-o name=value]... [-s address]
 * DESCRIPTION
 *	A single server (lib/server.h): each process serves one qmgr
 *	connection at a time with blocking I/O; master runs several. See
 *	local_deliver.c for the protocol and local_alias.c for expansion,
 *	docs/local.md for the operator's view.
 */
#include <signal.h>

#include "local.h"
#include "server.h"

static void local_init(struct event_loop *loop)
{
    (void)loop;
    /* A command that does not read its input must not kill us. */
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    static const struct server_hooks hooks = {
        .on_init = local_init,
        .serve = local_serve,
    };
    server_main(argc, argv, "local", SERVER_SINGLE, &hooks);
}
