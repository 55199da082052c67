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

/* Small: a sync of 100,000 new files holds 100,000 of them. The name in
   cur/ is the unique part of from, ":2," and the flags. */
struct move_job {
    char *from;        /* name in new/ */
    char *flags;       /* sorted flag letters, NULL: none */
    uint32_t base_len; /* of the unique part */
    int err;           /* 0: moved, else errno; valid below done */
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

static void cur_name(const struct move_job *j, char out[NAME_LIMIT + 1])
{
    snprintf(out, NAME_LIMIT + 1, "%.*s:2,%s", (int)j->base_len, j->from,
             j->flags != NULL ? j->flags : "");
}

static void move_one(const struct ix_mover *mv, struct move_job *j)
{
    char to[NAME_LIMIT + 1];
    cur_name(j, to);
    int r = renameat2(mv->new_fd, j->from, mv->cur_fd, to, RENAME_NOREPLACE);
    if (r < 0 && errno == EINVAL) /* a file system without it */
        r = renameat(mv->new_fd, j->from, mv->cur_fd, to);
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
    j->flags = norm[0] != '\0' ? xstrdup(norm) : NULL;
    j->base_len = (uint32_t)base_len;
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

int ix_mover_where(const struct ix_mover *mv, uint32_t job, int *moved_r,
                   char name[NAME_LIMIT + 1])
{
    *moved_r = job_moved(mv, job - 1);
    return ix_mover_elsewhere(mv, job, !*moved_r, name);
}

int ix_mover_elsewhere(const struct ix_mover *mv, uint32_t job, int moved,
                       char name[NAME_LIMIT + 1])
{
    const struct move_job *j = job_at(mv, job - 1);
    if (!moved) {
        cur_name(j, name);
        return mv->cur_fd;
    }
    snprintf(name, NAME_LIMIT + 1, "%s", j->from);
    return mv->new_fd;
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

int ix_mover_err(const struct ix_mover *mv, uint32_t job)
{
    return job_at(mv, job - 1)->err;
}

char *ix_mover_path(const struct ix_mover *mv, uint32_t job, int moved)
{
    const struct move_job *j = job_at(mv, job - 1);
    if (!moved)
        return xasprintf("new/%s", j->from);
    char name[NAME_LIMIT + 1];
    cur_name(j, name);
    return xasprintf("cur/%s", name);
}

const char *ix_mover_flags(const struct ix_mover *mv, uint32_t job)
{
    const struct move_job *j = job_at(mv, job - 1);
    return j->flags != NULL ? j->flags : "";
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
        free(j->flags);
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
