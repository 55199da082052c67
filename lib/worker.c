/*
 * NAME
 *	worker - run CPU-heavy work off the event loop
 * DESCRIPTION
 *	See worker.h. Threads take jobs from one queue under a mutex; a
 *	finished job goes to the done list and the thread writes to an
 *	eventfd the loop watches; the loop's callback takes the whole done
 *	list and runs each job's done in completion order.
 * DIAGNOSTICS
 *	Failing to create the eventfd or every thread is fatal (the daemon
 *	restarts); if only some threads start, the rest do the work.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"
#include "xalloc.h"

struct worker_job {
    worker_fn *fn;
    worker_done *done;
    void *arg;
    int cancelled;   /* loop thread only */
    struct worker_job *next;
};

struct job_list {
    struct worker_job *head, *tail;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static struct job_list todo, finished;   /* under pool_lock */
static int pool_fd = -1;
static int pool_threads;
static struct event_loop *pool_loop;
static size_t pool_outstanding;   /* loop thread: jobs whose done has not run */

static void list_push(struct job_list *l, struct worker_job *j)
{
    j->next = NULL;
    if (l->tail != NULL)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static void signal_loop(void)
{
    uint64_t one = 1;
    /* The counter cannot overflow in practice; EAGAIN would mean it is
       already non-zero, which wakes the loop just the same. */
    while (write(pool_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

static void *worker_main(void *unused)
{
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&pool_lock);
        while (todo.head == NULL)
            pthread_cond_wait(&pool_wake, &pool_lock);
        struct worker_job *j = todo.head;
        todo.head = j->next;
        if (todo.head == NULL)
            todo.tail = NULL;
        pthread_mutex_unlock(&pool_lock);

        j->fn(j->arg);

        pthread_mutex_lock(&pool_lock);
        list_push(&finished, j);
        pthread_mutex_unlock(&pool_lock);
        signal_loop();
    }
    return NULL;
}

static void drain_cb(struct event_loop *loop, int fd, int events, void *ctx)
{
    (void)loop;
    (void)events;
    (void)ctx;
    uint64_t count;
    while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&pool_lock);
    struct worker_job *j = finished.head;
    finished.head = finished.tail = NULL;
    pthread_mutex_unlock(&pool_lock);
    while (j != NULL) {
        struct worker_job *next = j->next;
        pool_outstanding--;
        j->done(j->arg, j->cancelled);
        free(j);
        j = next;
    }
}

static void pool_start(struct event_loop *loop)
{
    pool_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool_fd < 0)
        msg_fatal("worker: eventfd: %m");
    if (event_fd_add(loop, pool_fd, EVENT_READ, drain_cb, NULL) < 0)
        msg_fatal("worker: event_fd_add: %m");
    pool_loop = loop;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus < 1 ? 1 : cpus > WORKER_THREADS ? WORKER_THREADS : (int)cpus;
    /* Signals stay with the loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < want; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&t, &attr, worker_main, NULL);
        pthread_attr_destroy(&attr);
        if (err != 0) {
            msg_warn("worker: cannot start a thread: %s", strerror(err));
            break;
        }
        pool_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool_threads == 0)
        msg_fatal("worker: no thread could be started");
}

struct worker_job *worker_submit(struct event_loop *loop, worker_fn *fn, worker_done *done,
                                 void *arg)
{
    if (pool_fd < 0) {
        pool_start(loop);
    } else if (loop != pool_loop) {
        /* Only an idle pool moves (a test's next loop; the old one is gone). */
        if (pool_outstanding > 0)
            msg_panic("worker_submit: the pool is busy with another event loop");
        if (event_fd_add(loop, pool_fd, EVENT_READ, drain_cb, NULL) < 0)
            msg_fatal("worker: event_fd_add: %m");
        pool_loop = loop;
    }
    pool_outstanding++;
    struct worker_job *j = xcalloc(1, sizeof(*j));
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&pool_lock);
    list_push(fn != NULL ? &todo : &finished, j);
    if (fn != NULL)
        pthread_cond_signal(&pool_wake);
    pthread_mutex_unlock(&pool_lock);
    if (fn == NULL)
        signal_loop();
    return j;
}

void worker_cancel(struct worker_job **job_p)
{
    if (*job_p != NULL)
        (*job_p)->cancelled = 1;
    *job_p = NULL;
}
