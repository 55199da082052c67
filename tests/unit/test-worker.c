/* Unit tests for lib/worker.c: jobs run off the loop's thread, their
   done callbacks run in it (never inside worker_submit), cancelled jobs
   still get done with cancelled = 1. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "event.h"
#include "worker.h"

struct job_state {
    pthread_t ran_on;
    int ran;
    int done_calls;
    int cancelled;
    pthread_t done_on;
    int *remaining;
    struct event_loop *loop;
};

static void job_fn(void *arg)
{
    struct job_state *j = arg;
    usleep(2000);
    j->ran_on = pthread_self();
    j->ran = 1;
}

static void job_done(void *arg, int cancelled)
{
    struct job_state *j = arg;
    j->done_calls++;
    j->cancelled = cancelled;
    j->done_on = pthread_self();
    if (--*j->remaining == 0)
        event_loop_stop(j->loop);
}

static void guard_expired(struct event_loop *loop, void *ctx)
{
    (void)ctx;
    event_loop_stop(loop);
}

static void test_jobs_run_on_threads_and_finish_in_the_loop(void **state)
{
    (void)state;
    struct event_loop *loop = event_loop_create();
    enum { N = 20 };
    struct job_state jobs[N];
    memset(jobs, 0, sizeof(jobs));
    int remaining = N;
    struct worker_job *handles[N];
    for (int i = 0; i < N; i++) {
        jobs[i].remaining = &remaining;
        jobs[i].loop = loop;
        /* Every fourth job has no work: done alone runs, from the loop. */
        handles[i] = worker_submit(loop, i % 4 == 3 ? NULL : job_fn, job_done, &jobs[i]);
        assert_non_null(handles[i]);
        assert_int_equal(jobs[i].done_calls, 0);
    }
    worker_cancel(&handles[5]);
    assert_null(handles[5]);
    struct event_timer *guard = event_timer_add(loop, 10000, guard_expired, NULL);
    event_loop_run(loop);
    event_timer_cancel(loop, &guard);
    assert_int_equal(remaining, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_true(pthread_equal(jobs[i].done_on, pthread_self()));
        assert_int_equal(jobs[i].cancelled, i == 5);
        if (i % 4 == 3) {
            assert_int_equal(jobs[i].ran, 0);
        } else {
            /* A cancelled job's work still ran; only its owner forgot it. */
            assert_int_equal(jobs[i].ran, 1);
            assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
        }
    }
    event_loop_destroy(&loop);
}

/* An idle pool moves on to the next loop (one test after another). */
static void test_idle_pool_serves_a_new_loop(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        struct event_loop *loop = event_loop_create();
        struct job_state j;
        memset(&j, 0, sizeof(j));
        int remaining = 1;
        j.remaining = &remaining;
        j.loop = loop;
        assert_non_null(worker_submit(loop, job_fn, job_done, &j));
        struct event_timer *guard = event_timer_add(loop, 10000, guard_expired, NULL);
        event_loop_run(loop);
        event_timer_cancel(loop, &guard);
        assert_int_equal(j.done_calls, 1);
        assert_int_equal(j.ran, 1);
        event_loop_destroy(&loop);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_on_threads_and_finish_in_the_loop),
        cmocka_unit_test(test_idle_pool_serves_a_new_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
