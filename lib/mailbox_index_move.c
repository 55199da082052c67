/*
 * NAME
 *	mailbox_index_move - move new/ files to cur/ during a sync
 * DESCRIPTION
 *	A read-write IMAP selection has seen what is in new/: its syncs move
 *	every file listed there to cur/NAME:2,FLAGS (mailbox_index_sync.c).
 *	The renames cost the kernel more than the rest of a sync together,
 *	and renames between two directories take the file system's rename
 *	lock one at a time, so a second renaming thread gains nothing. One
 *	helper thread renames while the syncing thread lists new/ and cur/,
 *	merges, reads sizes and writes the index.
 *
 *	The listing hands the thread blocks of MOVE_BLOCK files; the thread
 *	starts with the first full block, so a sync of fewer files renames
 *	them itself in ix_mover_wait(). The thread touches nothing but the
 *	jobs and reports through each job's err and the done counter; the
 *	syncing thread reads a job's result only once done has passed it.
 *
 *	A file is never renamed over another (RENAME_NOREPLACE): two files
 *	with the same cur/ name both stay, the second in new/.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mailbox_index_private.h"
#include "xalloc.h"

#define MOVE_BLOCK 512

struct move_job {
    char *from;                     /* name in new/ */
    char *to;                       /* name in cur/: unique part ":2," flags */
    char flags[MAILBOX_FLAGS_SIZE]; /* of both names */
    int err;                        /* 0: moved, else errno; valid below done */
};

struct move_block {
    struct move_job jobs[MOVE_BLOCK];
    struct move_block *next;
};

struct ix_mover {
    int new_fd, cur_fd;          /* O_PATH descriptors of new/ and cur/ */
    struct move_block *first;    /* the thread follows the links from here */
    struct move_block **blocks;  /* the syncing thread's index of the blocks */
    size_t nblocks;
    size_t count;                /* jobs made */
    pthread_mutex_t mutex;
    pthread_cond_t more;
    size_t published;            /* under mutex: jobs the thread may take */
    int closed;                  /* under mutex: the listing is over */
    atomic_size_t done;          /* jobs finished, in order */
    atomic_int stop;
    pthread_t thread;
    int running;
};

static struct move_job *job_at(const struct ix_mover *mv, size_t k)
{
    return &mv->blocks[k / MOVE_BLOCK]->jobs[k % MOVE_BLOCK];
}

struct ix_mover *ix_mover_open(const char *maildir)
{
    char *new_path = xasprintf("%s/new", maildir);
    char *cur_path = xasprintf("%s/cur", maildir);
    int new_fd = open(new_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int cur_fd = new_fd < 0 ? -1 : open(cur_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur_fd < 0) {
        /* No new/: nothing to move. No cur/: leave the files where
           they are, as set_flags would fail too. */
        if (errno != ENOENT || new_fd >= 0)
            msg_warn("mailbox index: cannot move new messages: open %s: %m",
                     new_fd < 0 ? new_path : cur_path);
        if (new_fd >= 0)
            close(new_fd);
        free(new_path);
        free(cur_path);
        return NULL;
    }
    free(new_path);
    free(cur_path);
    struct ix_mover *mv = xcalloc(1, sizeof(*mv));
    mv->new_fd = new_fd;
    mv->cur_fd = cur_fd;
    pthread_mutex_init(&mv->mutex, NULL);
    pthread_cond_init(&mv->more, NULL);
    atomic_init(&mv->done, 0);
    atomic_init(&mv->stop, 0);
    return mv;
}

static void move_one(const struct ix_mover *mv, struct move_job *j)
{
    int r = renameat2(mv->new_fd, j->from, mv->cur_fd, j->to, RENAME_NOREPLACE);
    if (r < 0 && errno == EINVAL) /* a file system without it */
        r = renameat(mv->new_fd, j->from, mv->cur_fd, j->to);
    j->err = r == 0 ? 0 : errno;
}

static void *mover_main(void *arg)
{
    struct ix_mover *mv = arg;
    struct move_block *b = NULL;
    size_t i = 0;
    for (;;) {
        pthread_mutex_lock(&mv->mutex);
        while (i == mv->published && !mv->closed && !atomic_load(&mv->stop))
            pthread_cond_wait(&mv->more, &mv->mutex);
        size_t avail = mv->published;
        int last = mv->closed;
        if (b == NULL)
            b = mv->first;
        pthread_mutex_unlock(&mv->mutex);
        for (; i < avail; i++) {
            if (atomic_load_explicit(&mv->stop, memory_order_relaxed))
                return NULL;
            if (i > 0 && i % MOVE_BLOCK == 0)
                b = b->next;
            move_one(mv, &b->jobs[i % MOVE_BLOCK]);
            atomic_store_explicit(&mv->done, i + 1, memory_order_release);
        }
        if (last || atomic_load(&mv->stop))
            return NULL;
    }
}

static void publish(struct ix_mover *mv, int closed)
{
    pthread_mutex_lock(&mv->mutex);
    mv->published = mv->count;
    mv->closed = closed;
    pthread_cond_signal(&mv->more);
    pthread_mutex_unlock(&mv->mutex);
    if (mv->running || mv->count < MOVE_BLOCK)
        return;
    /* Signals stay with the event loop's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    mv->running = pthread_create(&mv->thread, NULL, mover_main, mv) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

uint32_t ix_mover_add(struct ix_mover *mv, char *name, size_t base_len, const char *flags)
{
    char norm[MAILBOX_FLAGS_SIZE];
    if (mailbox_index_normalize_flags(flags, norm) < 0 || base_len + 3 + strlen(norm) > NAME_LIMIT ||
        mv->count >= UINT32_MAX)
        return 0;
    if (mv->count % MOVE_BLOCK == 0) {
        struct move_block *b = xmalloc(sizeof(*b));
        b->next = NULL;
        mv->blocks = xreallocarray(mv->blocks, mv->nblocks + 1, sizeof(*mv->blocks));
        /* Linked before the jobs in it are published. */
        pthread_mutex_lock(&mv->mutex);
        if (mv->nblocks > 0)
            mv->blocks[mv->nblocks - 1]->next = b;
        else
            mv->first = b;
        mv->blocks[mv->nblocks++] = b;
        pthread_mutex_unlock(&mv->mutex);
    }
    struct move_job *j = job_at(mv, mv->count);
    j->from = name;
    j->to = xasprintf("%.*s:2,%s", (int)base_len, name, norm);
    memcpy(j->flags, norm, sizeof(j->flags));
    j->err = -1;
    mv->count++;
    if (mv->count % MOVE_BLOCK == 0)
        publish(mv, 0);
    return (uint32_t)mv->count;
}

void ix_mover_listed(struct ix_mover *mv)
{
    publish(mv, 1);
}

static int job_moved(const struct ix_mover *mv, size_t k)
{
    return atomic_load_explicit(&mv->done, memory_order_acquire) > k && job_at(mv, k)->err == 0;
}

int ix_mover_where(const struct ix_mover *mv, uint32_t job, int *moved_r, const char **name_r)
{
    const struct move_job *j = job_at(mv, job - 1);
    *moved_r = job_moved(mv, job - 1);
    *name_r = *moved_r ? j->to : j->from;
    return *moved_r ? mv->cur_fd : mv->new_fd;
}

int ix_mover_elsewhere(const struct ix_mover *mv, uint32_t job, int moved, const char **name_r)
{
    const struct move_job *j = job_at(mv, job - 1);
    *name_r = moved ? j->from : j->to;
    return moved ? mv->new_fd : mv->cur_fd;
}

void ix_mover_wait(struct ix_mover *mv)
{
    if (mv->running) {
        pthread_join(mv->thread, NULL);
        mv->running = 0;
    }
    for (size_t i = atomic_load(&mv->done); i < mv->count; i++) {
        move_one(mv, job_at(mv, i));
        atomic_store(&mv->done, i + 1);
    }
}

int ix_mover_result(const struct ix_mover *mv, uint32_t job, const char **from_r,
                    const char **to_r, const char **flags_r)
{
    const struct move_job *j = job_at(mv, job - 1);
    *from_r = j->from;
    *to_r = j->to;
    *flags_r = j->flags;
    return j->err;
}

size_t ix_mover_count(const struct ix_mover *mv)
{
    return mv->count;
}

void ix_mover_free(struct ix_mover **mv_p)
{
    struct ix_mover *mv = *mv_p;
    if (mv == NULL)
        return;
    *mv_p = NULL;
    if (mv->running) {
        pthread_mutex_lock(&mv->mutex);
        atomic_store(&mv->stop, 1);
        pthread_cond_signal(&mv->more);
        pthread_mutex_unlock(&mv->mutex);
        pthread_join(mv->thread, NULL);
    }
    for (size_t i = 0; i < mv->count; i++) {
        struct move_job *j = job_at(mv, i);
        free(j->from);
        free(j->to);
    }
    for (size_t i = 0; i < mv->nblocks; i++)
        free(mv->blocks[i]);
    free(mv->blocks);
    pthread_mutex_destroy(&mv->mutex);
    pthread_cond_destroy(&mv->more);
    close(mv->new_fd);
    close(mv->cur_fd);
    free(mv);
}
