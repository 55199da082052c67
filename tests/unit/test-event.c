/* Unit tests for lib/event: timers in order, cancel, fd callbacks, defer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "event.h"

static char order[64];
static size_t order_len;

static void record_cb(struct event_loop *loop, void *ctx)
{
    order[order_len++] = *(const char *)ctx;
}

static void stop_cb(struct event_loop *loop, void *ctx)
{
    event_loop_stop(loop);
}

static void timers_fire_in_deadline_order(void **state)
{
    struct event_loop *loop = event_loop_create();
    order_len = 0;
    event_timer_add(loop, 30, record_cb, "c");
    event_timer_add(loop, 10, record_cb, "a");
    event_timer_add(loop, 20, record_cb, "b");
    event_timer_add(loop, 10, record_cb, "A");   /* same deadline: FIFO */
    event_timer_add(loop, 40, stop_cb, NULL);
    event_loop_run(loop);
    order[order_len] = '\0';
    assert_string_equal(order, "aAbc");
    event_loop_destroy(&loop);
    assert_null(loop);
}

static void cancelled_timer_never_fires(void **state)
{
    struct event_loop *loop = event_loop_create();
    order_len = 0;
    struct event_timer *timers[100];
    for (int i = 0; i < 100; i++)
        timers[i] = event_timer_add(loop, 5 + i % 7, record_cb, "x");
    for (int i = 0; i < 100; i += 2)
        event_timer_cancel(loop, &timers[i]);
    assert_null(timers[0]);
    event_timer_add(loop, 30, stop_cb, NULL);
    event_loop_run(loop);
    assert_int_equal(order_len, 50);
    event_loop_destroy(&loop);
}

struct pipe_ctx {
    int reads;
    int fd_to_remove;
};

static void read_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct pipe_ctx *pc = ctx;
    char c;
    assert_true(events & EVENT_READ);
    assert_int_equal(read(fd, &c, 1), 1);
    pc->reads++;
    if (pc->fd_to_remove >= 0) {
        /* Removing another ready fd in the same round must not call it. */
        event_fd_del(loop, pc->fd_to_remove);
        pc->fd_to_remove = -1;
    }
    event_loop_stop(loop);
}

static void removed_fd_gets_no_stale_event(void **state)
{
    struct event_loop *loop = event_loop_create();
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    struct pipe_ctx ca = {0, b[0]}, cb = {0, a[0]};
    event_fd_add(loop, a[0], EVENT_READ, read_cb, &ca);
    event_fd_add(loop, b[0], EVENT_READ, read_cb, &cb);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "y", 1), 1);
    event_loop_run(loop);
    assert_int_equal(ca.reads + cb.reads, 1);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    event_loop_destroy(&loop);
}

static int hook_calls;
static void hook_cb(struct event_loop *loop, void *ctx)
{
    hook_calls++;
}

static void defer_and_before_sleep_run(void **state)
{
    struct event_loop *loop = event_loop_create();
    order_len = 0;
    hook_calls = 0;
    event_before_sleep(loop, hook_cb, NULL);
    event_defer(loop, record_cb, "d");
    event_timer_add(loop, 5, stop_cb, NULL);
    event_loop_run(loop);
    assert_int_equal(order_len, 1);
    assert_true(hook_calls >= 1);
    event_loop_destroy(&loop);
}

/* Work done in steps by re-arming a 0 ms timer must yield between steps:
   the before-sleep hooks (where output is flushed) and I/O get a turn. */
static int steps_left;
static void step_cb(struct event_loop *loop, void *ctx)
{
    if (--steps_left > 0)
        event_timer_add(loop, 0, step_cb, NULL);
    else
        event_loop_stop(loop);
}

static void rearmed_zero_timer_yields_to_the_loop(void **state)
{
    struct event_loop *loop = event_loop_create();
    hook_calls = 0;
    steps_left = 50;
    event_before_sleep(loop, hook_cb, NULL);
    event_timer_add(loop, 0, step_cb, NULL);
    event_loop_run(loop);
    assert_int_equal(steps_left, 0);
    /* One round per step (the first hook call comes before the first step). */
    assert_true(hook_calls >= 50);
    event_loop_destroy(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timers_fire_in_deadline_order),
        cmocka_unit_test(cancelled_timer_never_fires),
        cmocka_unit_test(removed_fd_gets_no_stale_event),
        cmocka_unit_test(defer_and_before_sleep_run),
        cmocka_unit_test(rearmed_zero_timer_yields_to_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
