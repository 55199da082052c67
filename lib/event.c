/*
 * NAME
 *	event - the epoll event loop every network daemon runs
 * DESCRIPTION
 *	See event.h. File descriptors are kept in an array indexed by fd;
 *	each registration gets a generation number that travels in the
 *	epoll data, so an event for an fd removed (and perhaps reused by a
 *	new connection) earlier in the same round is recognised as stale
 *	and dropped. Timers live in a binary min-heap with back-indexes,
 *	so cancelling is O(log n) and cancelled timers do not pile up (a
 *	busy smtpd resets its idle timer on every command).
 * LIMITS
 *	One loop per process; 256 events per epoll_wait round.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "xalloc.h"

struct event_fd_entry {
    event_fd_cb *cb;
    void *ctx;
    int mask;
    uint32_t generation;
};

struct event_timer {
    long long when_ms;
    unsigned long long seq;   /* FIFO order among equal deadlines */
    size_t heap_index;
    event_cb *cb;
    void *ctx;
};

struct event_hook {
    event_cb *cb;
    void *ctx;
};

struct event_loop {
    int epoll_fd;
    int stop;
    long long now_ms;
    uint32_t next_generation;
    struct event_fd_entry *fds;
    size_t fd_alloc;
    struct event_timer **heap;
    size_t heap_len;
    size_t heap_alloc;
    unsigned long long timer_seq;
    struct event_hook *before_sleep;
    size_t before_sleep_len;
    struct event_hook *deferred;
    size_t deferred_len;
    size_t deferred_alloc;
};

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct event_loop *event_loop_create(void)
{
    struct event_loop *loop = xcalloc(1, sizeof(*loop));
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epoll_fd < 0)
        msg_fatal("epoll_create1: %m");
    loop->now_ms = monotonic_ms();
    loop->next_generation = 1;
    return loop;
}

void event_loop_destroy(struct event_loop **loop_p)
{
    struct event_loop *loop = *loop_p;
    if (loop == NULL)
        return;
    close(loop->epoll_fd);
    for (size_t i = 0; i < loop->heap_len; i++)
        free(loop->heap[i]);
    free(loop->heap);
    free(loop->fds);
    free(loop->before_sleep);
    free(loop->deferred);
    free(loop);
    *loop_p = NULL;
}

static uint32_t epoll_bits(int mask)
{
    uint32_t bits = 0;
    if (mask & EVENT_READ)
        bits |= EPOLLIN | EPOLLRDHUP;
    if (mask & EVENT_WRITE)
        bits |= EPOLLOUT;
    return bits;
}

int event_fd_add(struct event_loop *loop, int fd, int mask, event_fd_cb *cb, void *ctx)
{
    if (fd < 0)
        msg_panic("event_fd_add: bad fd %d", fd);
    if ((size_t)fd >= loop->fd_alloc) {
        size_t n = loop->fd_alloc ? loop->fd_alloc : 64;
        while (n <= (size_t)fd)
            n *= 2;
        loop->fds = xreallocarray(loop->fds, n, sizeof(*loop->fds));
        memset(loop->fds + loop->fd_alloc, 0, (n - loop->fd_alloc) * sizeof(*loop->fds));
        loop->fd_alloc = n;
    }
    struct event_fd_entry *e = &loop->fds[fd];
    if (e->cb != NULL)
        msg_panic("event_fd_add: fd %d already registered", fd);
    e->cb = cb;
    e->ctx = ctx;
    e->mask = mask;
    e->generation = loop->next_generation++;
    struct epoll_event ev = {.events = epoll_bits(mask),
                             .data.u64 = (uint64_t)(unsigned)fd | ((uint64_t)e->generation << 32)};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        e->cb = NULL;
        return -1;
    }
    return 0;
}

void event_fd_set(struct event_loop *loop, int fd, int mask)
{
    if (fd < 0 || (size_t)fd >= loop->fd_alloc || loop->fds[fd].cb == NULL)
        msg_panic("event_fd_set: fd %d not registered", fd);
    struct event_fd_entry *e = &loop->fds[fd];
    if (e->mask == mask)
        return;
    e->mask = mask;
    struct epoll_event ev = {.events = epoll_bits(mask),
                             .data.u64 = (uint64_t)(unsigned)fd | ((uint64_t)e->generation << 32)};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0)
        msg_panic("epoll_ctl MOD fd %d: %m", fd);
}

void event_fd_del(struct event_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->fd_alloc || loop->fds[fd].cb == NULL)
        return;
    loop->fds[fd].cb = NULL;
    loop->fds[fd].ctx = NULL;
    loop->fds[fd].generation = 0;
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- timer heap ---- */

static int timer_before(const struct event_timer *a, const struct event_timer *b)
{
    return a->when_ms < b->when_ms || (a->when_ms == b->when_ms && a->seq < b->seq);
}

static void heap_set(struct event_loop *loop, size_t i, struct event_timer *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(struct event_loop *loop, size_t i)
{
    struct event_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(struct event_loop *loop, size_t i)
{
    struct event_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len && timer_before(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop->heap[child], t))
            break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

static void heap_remove(struct event_loop *loop, struct event_timer *t)
{
    size_t i = t->heap_index;
    struct event_timer *last = loop->heap[--loop->heap_len];
    if (i < loop->heap_len) {
        heap_set(loop, i, last);
        heap_down(loop, i);
        heap_up(loop, last->heap_index);
    }
}

struct event_timer *event_timer_add(struct event_loop *loop, long long msec, event_cb *cb,
                                    void *ctx)
{
    struct event_timer *t = xmalloc(sizeof(*t));
    t->when_ms = loop->now_ms + (msec > 0 ? msec : 0);
    t->seq = loop->timer_seq++;
    t->cb = cb;
    t->ctx = ctx;
    if (loop->heap_len == loop->heap_alloc) {
        loop->heap_alloc = loop->heap_alloc ? loop->heap_alloc * 2 : 64;
        loop->heap = xreallocarray(loop->heap, loop->heap_alloc, sizeof(*loop->heap));
    }
    loop->heap[loop->heap_len] = t;
    t->heap_index = loop->heap_len++;
    heap_up(loop, t->heap_index);
    return t;
}

void event_timer_cancel(struct event_loop *loop, struct event_timer **timer_p)
{
    struct event_timer *t = *timer_p;
    if (t == NULL)
        return;
    heap_remove(loop, t);
    free(t);
    *timer_p = NULL;
}

/* ---- hooks ---- */

void event_before_sleep(struct event_loop *loop, event_cb *cb, void *ctx)
{
    loop->before_sleep = xreallocarray(loop->before_sleep, loop->before_sleep_len + 1,
                                       sizeof(*loop->before_sleep));
    loop->before_sleep[loop->before_sleep_len++] = (struct event_hook){cb, ctx};
}

void event_defer(struct event_loop *loop, event_cb *cb, void *ctx)
{
    if (loop->deferred_len == loop->deferred_alloc) {
        loop->deferred_alloc = loop->deferred_alloc ? loop->deferred_alloc * 2 : 16;
        loop->deferred = xreallocarray(loop->deferred, loop->deferred_alloc,
                                       sizeof(*loop->deferred));
    }
    loop->deferred[loop->deferred_len++] = (struct event_hook){cb, ctx};
}

static void run_deferred(struct event_loop *loop)
{
    /* Callbacks may defer more work; that runs in the next pass. */
    while (loop->deferred_len > 0) {
        size_t n = loop->deferred_len;
        struct event_hook *batch = xmalloc(n * sizeof(*batch));
        memcpy(batch, loop->deferred, n * sizeof(*batch));
        loop->deferred_len = 0;
        for (size_t i = 0; i < n; i++)
            batch[i].cb(loop, batch[i].ctx);
        free(batch);
    }
}

/* Runs the timers that were due when the pass began. A timer a callback
   adds for "now" (0 ms) waits for the next round, after the before-sleep
   hooks and I/O, so work that re-arms itself in steps cannot hold the
   loop. */
static void run_timers(struct event_loop *loop)
{
    unsigned long long first_new = loop->timer_seq;
    while (loop->heap_len > 0 && loop->heap[0]->when_ms <= loop->now_ms &&
           loop->heap[0]->seq < first_new) {
        struct event_timer *t = loop->heap[0];
        heap_remove(loop, t);
        event_cb *cb = t->cb;
        void *ctx = t->ctx;
        free(t);
        cb(loop, ctx);
    }
}

void event_loop_stop(struct event_loop *loop)
{
    loop->stop = 1;
}

long long event_now_ms(struct event_loop *loop)
{
    return loop->now_ms;
}

void event_loop_run(struct event_loop *loop)
{
    struct epoll_event events[256];
    loop->stop = 0;
    while (!loop->stop) {
        run_deferred(loop);
        for (size_t i = 0; i < loop->before_sleep_len && !loop->stop; i++)
            loop->before_sleep[i].cb(loop, loop->before_sleep[i].ctx);
        if (loop->stop)
            break;
        int timeout = -1;
        if (loop->deferred_len > 0) {
            timeout = 0;
        } else if (loop->heap_len > 0) {
            long long wait = loop->heap[0]->when_ms - monotonic_ms();
            timeout = wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
        }
        int n = epoll_wait(loop->epoll_fd, events, 256, timeout);
        if (n < 0) {
            if (errno != EINTR)
                msg_fatal("epoll_wait: %m");
            n = 0;
        }
        loop->now_ms = monotonic_ms();
        for (int i = 0; i < n; i++) {
            int fd = (int)(events[i].data.u64 & 0xffffffffu);
            uint32_t generation = (uint32_t)(events[i].data.u64 >> 32);
            if ((size_t)fd >= loop->fd_alloc)
                continue;
            struct event_fd_entry *e = &loop->fds[fd];
            if (e->cb == NULL || e->generation != generation)
                continue;   /* removed (or replaced) earlier in this round */
            int what = 0;
            uint32_t got = events[i].events;
            if (got & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
                what |= EVENT_READ;
            if (got & EPOLLOUT)
                what |= EVENT_WRITE;
            if (got & (EPOLLERR | EPOLLHUP))
                what |= EVENT_ERROR | (e->mask & (EVENT_READ | EVENT_WRITE));
            e->cb(loop, fd, what, e->ctx);
        }
        run_timers(loop);
    }
}
