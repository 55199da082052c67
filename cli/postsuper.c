/*
 * NAME
 *	postsuper - queue maintenance: delete, hold, release, requeue
 * SYNOPSIS
 *	postsuper [-c config_dir] [-d ID|ALL|-] [-h ID|ALL|-] [-H ID|ALL|-]
 *		  [-r ID|ALL|-] [queue ...]
 * DESCRIPTION
 *	-d deletes messages (and their defer logs), -h moves them to hold/,
 *	-H moves them from hold/ back to deferred/ (due now), -r moves them
 *	to incoming/ for a fresh pass through qmgr (defer log removed) and
 *	then asks qmgr to scan. "ALL" means every message in the queues
 *	the operation applies to; "-" reads IDs from stdin, one per line.
 *	Trailing queue names (hold incoming active deferred maildrop
 *	corrupt) restrict which queues are searched. See docs/postsuper.md.
 *
 *	qmgr moves files while we work. Every change is one rename(2) or
 *	unlink(2) of a file we expect in one directory; ENOENT means it
 *	moved, so the other queues are tried, in qmgr's own order, for up
 *	to three passes. A file qmgr has in active/ may be deleted, held or
 *	requeued under it: qmgr must treat its active file vanishing as
 *	"taken away by the operator".
 * DIAGNOSTICS
 *	Deletions are reported on stderr ("postsuper: ID: removed") and in
 *	the mail log ("ID: removed"); every operation ends with a summary
 *	such as "postsuper: Deleted: 3 messages". Exit 0 unless a queue
 *	could not be changed (1) or on a usage error (64).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_common.h"
#include "config.h"
#include "log.h"
#include "qmgr_client.h"
#include "queue_file.h"
#include "xalloc.h"

#define POSTSUPER_USAGE \
    "[-c config_dir] [-d ID|ALL|-] [-h ID|ALL|-] [-H ID|ALL|-] [-r ID|ALL|-] [queue ...]"
#define MAX_REQUESTS 1024
#define MAX_QUEUES 6
#define PASSES 3

struct request {
    int op;            /* 'd', 'h', 'H', 'r' */
    const char *arg;   /* ID, "ALL" or "-" */
};

struct op_state {
    const char *queue_dir;
    const char *queues[MAX_QUEUES];
    size_t nqueues;
    unsigned long done[128];
    int failed;
};

static const char *const all_queues[] = {
    "hold", "incoming", "active", "deferred", "maildrop", "corrupt",
};

/* Default queues per operation, in the order qmgr moves files
   (incoming -> active -> deferred), so a pass rarely misses one. */
static const char *const *op_default_queues(int op, size_t *n_r)
{
    static const char *const del[] = {"hold", "incoming", "active", "deferred"};
    static const char *const hold[] = {"incoming", "active", "deferred"};
    static const char *const release[] = {"hold"};
    switch (op) {
    case 'd':
    case 'r':
        *n_r = 4;
        return del;
    case 'h':
        *n_r = 3;
        return hold;
    default:
        *n_r = 1;
        return release;
    }
}

static int queue_name_known(const char *name)
{
    for (size_t i = 0; i < sizeof(all_queues) / sizeof(all_queues[0]); i++)
        if (strcmp(all_queues[i], name) == 0)
            return 1;
    return 0;
}

/* One operation on one file in one queue: 1 done, 0 not there, -1 error. */
static int act(struct op_state *st, int op, const char *queue, const char *id)
{
    const char *qd = st->queue_dir;
    switch (op) {
    case 'd': {
        char *path = queue_file_path(qd, queue, id);
        int r = unlink(path);
        int err = errno;
        free(path);
        if (r < 0) {
            if (err == ENOENT)
                return 0;
            cli_warn("remove %s/%s: %s", queue, id, strerror(err));
            return -1;
        }
        if (queue_defer_remove(qd, id) < 0)
            cli_warn("remove defer/%s: %s", id, strerror(errno));
        cli_say("%s: removed", id);
        msg_info("%s: removed", id);
        return 1;
    }
    case 'h':
        if (strcmp(queue, "hold") == 0)
            return 0;
        if (queue_file_move(qd, id, queue, "hold") < 0) {
            if (errno == ENOENT)
                return 0;
            cli_warn("move %s/%s to hold: %s", queue, id, strerror(errno));
            return -1;
        }
        msg_info("%s: placed on hold", id);
        return 1;
    case 'H': {
        /* Due now: qmgr retries deferred files whose mtime has passed.
           Touch first so the file never sits in deferred/ with a stale
           time. */
        char *path = queue_file_path(qd, "hold", id);
        int r = utimensat(AT_FDCWD, path, NULL, 0);
        int err = errno;
        free(path);
        if (r < 0 && err == ENOENT)
            return 0;
        if (queue_file_move(qd, id, "hold", "deferred") < 0) {
            if (errno == ENOENT)
                return 0;
            cli_warn("move hold/%s to deferred: %s", id, strerror(errno));
            return -1;
        }
        msg_info("%s: released from hold", id);
        return 1;
    }
    case 'r':
        if (strcmp(queue, "incoming") == 0) {
            /* Already where qmgr will look; only the defer log goes. */
            char *path = queue_file_path(qd, queue, id);
            int r = access(path, F_OK);
            free(path);
            if (r < 0)
                return 0;
        } else if (queue_file_move(qd, id, queue, "incoming") < 0) {
            if (errno == ENOENT)
                return 0;
            cli_warn("move %s/%s to incoming: %s", queue, id, strerror(errno));
            return -1;
        }
        if (queue_defer_remove(qd, id) < 0)
            cli_warn("remove defer/%s: %s", id, strerror(errno));
        msg_info("%s: requeued", id);
        return 1;
    }
    msg_panic("postsuper: bad operation %c", op);
}

static void op_queues(struct op_state *st, int op, char **restrict_q, int nrestrict)
{
    size_t n;
    const char *const *def = op_default_queues(op, &n);
    st->nqueues = 0;
    if (op == 'H') {
        st->queues[st->nqueues++] = "hold";
        return;
    }
    if (nrestrict == 0) {
        for (size_t i = 0; i < n; i++)
            st->queues[st->nqueues++] = def[i];
        return;
    }
    /* Named queues, still in the canonical order. */
    for (size_t i = 0; i < sizeof(all_queues) / sizeof(all_queues[0]); i++)
        for (int k = 0; k < nrestrict; k++)
            if (strcmp(restrict_q[k], all_queues[i]) == 0) {
                st->queues[st->nqueues++] = all_queues[i];
                break;
            }
}

static void one_id(struct op_state *st, int op, const char *id)
{
    if (!queue_id_valid(id)) {
        cli_warn("invalid mail queue id: %s", id);
        return;
    }
    for (int pass = 0; pass < PASSES; pass++) {
        for (size_t q = 0; q < st->nqueues; q++) {
            int r = act(st, op, st->queues[q], id);
            if (r > 0)
                st->done[op]++;
            if (r < 0)
                st->failed = 1;
            if (r != 0)
                return;
        }
    }
}

static void all_ids(struct op_state *st, int op)
{
    /* Snapshot every queue first: a file this loop moves (hold ->
       incoming for -r) must not be met, and counted, a second time. */
    struct {
        const char *queue;
        char *id;
    } *todo = NULL;
    size_t n = 0, alloc = 0;
    for (size_t q = 0; q < st->nqueues; q++) {
        char *path = xasprintf("%s/%s", st->queue_dir, st->queues[q]);
        DIR *d = opendir(path);
        if (d == NULL) {
            if (errno != ENOENT) {
                cli_warn("open %s: %s", path, strerror(errno));
                st->failed = 1;
            }
            free(path);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!queue_id_valid(e->d_name))
                continue;
            if (n == alloc) {
                alloc = alloc ? alloc * 2 : 64;
                todo = xreallocarray(todo, alloc, sizeof(*todo));
            }
            todo[n].queue = st->queues[q];
            todo[n].id = xstrdup(e->d_name);
            n++;
        }
        closedir(d);
        free(path);
    }
    for (size_t i = 0; i < n; i++) {
        int r = act(st, op, todo[i].queue, todo[i].id);
        if (r > 0)
            st->done[op]++;
        if (r < 0)
            st->failed = 1;
        free(todo[i].id);
    }
    free(todo);
}

static void ids_from_stdin(struct op_state *st, int op)
{
    char line[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t len = strlen(line);
        int complete = len > 0 && line[len - 1] == '\n';
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                           line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (!complete && !feof(stdin)) {
            /* Longer than any ID: skip the rest of the line. */
            int c;
            while ((c = getchar()) != EOF && c != '\n')
                ;
            cli_warn("invalid mail queue id: %.40s...", line);
            continue;
        }
        const char *id = line;
        while (*id == ' ' || *id == '\t')
            id++;
        if (*id == '\0')
            continue;
        one_id(st, op, id);
    }
}

static const char *op_summary(int op)
{
    switch (op) {
    case 'd': return "Deleted";
    case 'h': return "Placed on hold";
    case 'H': return "Released from hold";
    default: return "Requeued";
    }
}

int main(int argc, char **argv)
{
    const char *opt_c = NULL;
    struct request reqs[MAX_REQUESTS];
    size_t nreqs = 0;
    int ch;

    cli_init("postsuper");
    while ((ch = getopt(argc, argv, "c:d:h:H:r:v")) != -1) {
        switch (ch) {
        case 'c': opt_c = optarg; break;
        case 'd':
        case 'h':
        case 'H':
        case 'r':
            if (nreqs == MAX_REQUESTS)
                cli_fatal("more than %d operations on one command line", MAX_REQUESTS);
            reqs[nreqs].op = ch;
            reqs[nreqs].arg = optarg;
            nreqs++;
            break;
        case 'v': log_verbose = 1; break;
        default: cli_usage(POSTSUPER_USAGE);
        }
    }
    if (nreqs == 0)
        cli_usage(POSTSUPER_USAGE);
    for (int i = optind; i < argc; i++)
        if (!queue_name_known(argv[i]))
            cli_fatal("invalid directory name: %s", argv[i]);

    cli_load_config(cli_config_dir(opt_c), 1);
    struct op_state st;
    memset(&st, 0, sizeof(st));
    st.queue_dir = cli_queue_dir();

    int requested[128] = {0};
    for (size_t i = 0; i < nreqs; i++) {
        int op = reqs[i].op;
        requested[op] = 1;
        op_queues(&st, op, argv + optind, argc - optind);
        if (strcmp(reqs[i].arg, "ALL") == 0)
            all_ids(&st, op);
        else if (strcmp(reqs[i].arg, "-") == 0)
            ids_from_stdin(&st, op);
        else
            one_id(&st, op, reqs[i].arg);
    }

    static const int order[] = {'d', 'h', 'H', 'r'};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        int op = order[i];
        if (!requested[op])
            continue;
        cli_say("%s: %lu messages", op_summary(op), st.done[op]);
        if (st.done[op] > 0)
            msg_info("%s: %lu messages", op_summary(op), st.done[op]);
    }
    if (st.done['r'] > 0) {
        /* qmgr also scans incoming/ on its own timer; not running is fine. */
        char *reason = NULL;
        if (qmgr_request(st.queue_dir, "scan", NULL, 10000, &reason) < 0)
            msg_debug("qmgr scan request: %s", reason);
        free(reason);
    }
    config_free_all();
    return st.failed ? 1 : 0;
}
