/*
 * NAME
 *	event - the epoll event loop every network daemon runs
 * SYNOPSIS
 *	#include "event.h"
 * DESCRIPTION
 *	File descriptor callbacks, one-shot millisecond timers and
 *	before-sleep hooks (where queued output is flushed and group
 *	commits happen). Callbacks may add or remove any fd or timer,
 *	including their own; a session is never freed inside its own
 *	callback: use event_defer() to run a function after the current
 *	round of callbacks.
 */
#ifndef POSTERN_EVENT_H
#define POSTERN_EVENT_H

#define EVENT_READ  1
#define EVENT_WRITE 2
#define EVENT_ERROR 4   /* reported together with READ/WRITE bits */

struct event_loop;
struct event_timer;

typedef void event_fd_cb(struct event_loop *loop, int fd, int events, void *ctx);
typedef void event_cb(struct event_loop *loop, void *ctx);

struct event_loop *event_loop_create(void);
/* Frees the loop; fds are not closed. Sets *loop_p to NULL. */
void event_loop_destroy(struct event_loop **loop_p);

/* Watches fd for mask (EVENT_READ|EVENT_WRITE, may be 0). Returns 0 or -1. */
int event_fd_add(struct event_loop *loop, int fd, int mask, event_fd_cb *cb, void *ctx);
/* Changes the mask of a watched fd. */
void event_fd_set(struct event_loop *loop, int fd, int mask);
/* Stops watching fd (call before close). */
void event_fd_del(struct event_loop *loop, int fd);

/* Runs cb once after msec milliseconds. The handle stays valid until the
   timer fires or is cancelled. */
struct event_timer *event_timer_add(struct event_loop *loop, long long msec, event_cb *cb,
                                    void *ctx);
/* Cancels *timer_p if not NULL and sets it to NULL. Safe inside callbacks. */
void event_timer_cancel(struct event_loop *loop, struct event_timer **timer_p);

/* Registers a hook run each time before the loop sleeps. */
void event_before_sleep(struct event_loop *loop, event_cb *cb, void *ctx);
/* Runs cb(ctx) once after the current round of callbacks. */
void event_defer(struct event_loop *loop, event_cb *cb, void *ctx);

/* Runs until event_loop_stop(). */
void event_loop_run(struct event_loop *loop);
void event_loop_stop(struct event_loop *loop);
/* Monotonic milliseconds, cached per loop round. */
long long event_now_ms(struct event_loop *loop);

#endif
