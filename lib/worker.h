/*
 * NAME
 *	worker - run CPU-heavy work off the event loop
 * SYNOPSIS
 *	#include "worker.h"
 * DESCRIPTION
 *	An event-driven daemon serves many sessions with one thread, so a
 *	password hash (yescrypt: tens of milliseconds, by design) computed
 *	in the loop stalls every other session. worker_submit() runs
 *	fn(arg) on one of a few threads instead and then done(arg,
 *	cancelled) in the loop's thread, from the loop, never from inside
 *	worker_submit().
 *
 *	fn may only touch arg: no event loop, no logging, no configuration,
 *	no other module's static state. Everything else belongs in done.
 *
 *	worker_cancel() does not stop a running fn; it makes done see
 *	cancelled = 1, so the owner of arg (whose session may be gone) only
 *	cleans up. done runs exactly once per job either way.
 *
 *	The pool belongs to the first loop given and starts on first use
 *	(after fork: a daemon that forks must not have submitted before).
 *	It moves to another loop only while no job is outstanding and the
 *	old loop is destroyed (tests run one loop after another).
 * LIMITS
 *	WORKER_THREADS threads, capped by the number of CPUs; jobs queue
 *	without a limit of their own: callers bound them (sessions per
 *	process). One thread: the main job is a yescrypt check, which needs
 *	16 MiB of scratch per check running at once; one thread per process
 *	takes the hashing off the loop at the memory cost of the old
 *	in-loop check, and master runs more processes for more cores.
 */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include "event.h"

#define WORKER_THREADS 1

struct worker_job;
typedef void worker_fn(void *arg);
typedef void worker_done(void *arg, int cancelled);

/* fn may be NULL: done then simply runs from the loop soon. */
struct worker_job *worker_submit(struct event_loop *loop, worker_fn *fn, worker_done *done,
                                 void *arg);
/* *job_p becomes NULL; done still runs later, with cancelled = 1. */
void worker_cancel(struct worker_job **job_p);

#endif
