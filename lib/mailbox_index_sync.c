/*
 * NAME
 *	mailbox_index_sync - bring a mailbox index up to date with its Maildir
 * DESCRIPTION
 *	See mailbox_index.h, docs/mailbox-index.md and the overview in
 *	mailbox_index.c. new/ and cur/ are listed, the records loaded from
 *	one read transaction, both sorted by unique part and merged; files
 *	new to the index get their sizes from their names (S=, W=, P=) or
 *	one read, then one write transaction applies the changes.
 *
 *	A handle set to move new mail (mailbox_index_set_move_new) renames
 *	every file listed in new/ to cur/NAME:2,FLAGS on a helper thread
 *	(mailbox_index_move.c) from the moment the listing hands it files;
 *	this thread meanwhile lists cur/, merges, reads the sizes (finding
 *	each file wherever it is then) and writes the records with their
 *	cur/ paths; files that did not move get theirs back after.
 *
 *	Before listing, the sync notes the time and the mtimes of new/ and
 *	cur/ for mailbox_index_stale() (mailbox_index_imap.c). A handle
 *	whose index file was replaced (rebuilt by another handle or process)
 *	attaches to the new file first: its UIDs then start over.
 * DIAGNOSTICS
 *	Files that cannot be read are skipped with msg_warn (and retried at
 *	the next sync); a corrupt index is rebuilt (mailbox_index.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mailbox_index_private.h"
#include "maildir.h"
#include "xalloc.h"

/*
 * Sync.
 */

static uint32_t uid_from_key(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}


/* A listed file: small, as a sync of 100,000 files holds 100,000. */
struct dent {
    char *name;        /* owned by the mover's job when job != 0 */
    uint64_t time;     /* from the name (mailbox_index_parse_name) */
    uint32_t base_len; /* of the unique part */
    uint32_t job;      /* 1 + its index in the mover's jobs, 0: none */
    uint8_t cur;
};

struct loaded {
    struct mailbox_msg m;
    struct msg_extra x;
    uint64_t time; /* sort key of new messages */
    uint8_t cur;   /* new messages: in cur/ */
    uint32_t job;  /* the chosen file's move, as in struct dent */
    enum { KEEP, UPDATE, DELETE } state;
};

struct sync_state {
    struct dent *dents;
    size_t ndents, adents;
    DIR *dirs[2]; /* new/, cur/ */
    struct loaded *recs;
    size_t nrecs, arecs;
    size_t written; /* records put or deleted by the last sync_apply */
    struct loaded *adds;
    size_t nadds, aadds;
    struct meta m0; /* meta data the merge was based on */
    struct meta m1; /* after the write */
    struct ix_mover *mv; /* moving new/ to cur/, or NULL */
    int changed;
    /* For mailbox_index_stale(), taken before the listing. */
    struct timespec start;
    struct timespec mtime[2];
    uint8_t exists[2];
};


static int dent_cmp(const void *va, const void *vb)
{
    const struct dent *a = va, *b = vb;
    int c = base_cmp(a->name, a->base_len, b->name, b->base_len);
    if (c != 0)
        return c;
    return (int)b->cur - (int)a->cur; /* cur/ first: a rename new -> cur was caught mid-way */
}

/* The flag letters of a listed name, sorted: a name whose letters are
   sorted already (the usual case) needs no second parse. */
static void dent_flags(const struct dent *d, char out[MAILBOX_FLAGS_SIZE])
{
    out[0] = '\0';
    if (d->name[d->base_len] == '\0')
        return; /* no ":2," */
    if (mailbox_index_normalize_flags(d->name + d->base_len + 3, out) == 0)
        return;
    struct maildir_name p;
    if (mailbox_index_parse_name(d->name, strlen(d->name), &p) == 0)
        memcpy(out, p.flags, MAILBOX_FLAGS_SIZE);
}

static const struct loaded *sort_recs; /* qsort has no context argument */

static int rec_order_cmp(const void *va, const void *vb)
{
    const struct loaded *a = &sort_recs[*(const size_t *)va], *b = &sort_recs[*(const size_t *)vb];
    return strcmp(a->m.base, b->m.base);
}

static int add_cmp(const void *va, const void *vb)
{
    const struct loaded *a = va, *b = vb;
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    return strcmp(a->m.base, b->m.base);
}

static void sync_state_free(struct sync_state *s)
{
    /* First: the thread may still be renaming. */
    ix_mover_free(&s->mv);
    for (size_t i = 0; i < s->ndents; i++)
        if (s->dents[i].job == 0)
            free(s->dents[i].name);
    free(s->dents);
    for (int i = 0; i < 2; i++)
        if (s->dirs[i] != NULL)
            closedir(s->dirs[i]);
    for (size_t i = 0; i < s->nrecs; i++)
        ix_msg_free(&s->recs[i].m);
    free(s->recs);
    for (size_t i = 0; i < s->nadds; i++)
        ix_msg_free(&s->adds[i].m);
    free(s->adds);
    memset(s, 0, sizeof(*s));
}

static int list_dir(struct mailbox_index *ix, struct sync_state *s, int cur, char **error_r)
{
    char *path = xasprintf("%s/%s", ix->maildir, cur ? "cur" : "new");
    DIR *d = opendir(path);
    if (d == NULL) {
        int saved = errno;
        if (saved == ENOENT) {
            free(path);
            return 0;
        }
        *error_r = xasprintf("mailbox index: opendir %s: %s", path, strerror(saved));
        free(path);
        errno = saved;
        return -1;
    }
    s->dirs[cur] = d;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if ((de = readdir(d)) == NULL)
            break;
        struct maildir_name p;
        if (mailbox_index_parse_name(de->d_name, strlen(de->d_name), &p) < 0)
            continue;
        if (de->d_type != DT_REG) {
            struct stat st;
            if (de->d_type != DT_UNKNOWN ||
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                !S_ISREG(st.st_mode))
                continue;
        }
        if (s->ndents == s->adents) {
            s->adents = s->adents ? s->adents * 2 : 256;
            s->dents = xreallocarray(s->dents, s->adents, sizeof(*s->dents));
        }
        struct dent *t = &s->dents[s->ndents++];
        t->name = xstrdup(de->d_name);
        t->time = p.time;
        t->base_len = (uint32_t)p.base_len;
        t->cur = (uint8_t)cur;
        t->job = cur || s->mv == NULL ? 0 : ix_mover_add(s->mv, t->name, p.base_len, p.flags);
    }
    if (errno != 0) {
        int saved = errno;
        *error_r = xasprintf("mailbox index: readdir %s: %s", path, strerror(saved));
        free(path);
        errno = saved;
        return -1;
    }
    free(path);
    return 0;
}

/* Loads the meta data into *m_r: IX_RETRY when another writer changed
   the index since expect was read. */
static int meta_as_expected(MDB_txn *txn, struct index_env *e, const struct meta *expect,
                            struct meta *m_r)
{
    int rc = ix_meta_load(txn, e, m_r);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
    return ix_meta_same(m_r, expect) ? 0 : IX_RETRY;
}

/* Gives l the next modseq and writes its record. */
static int put_record(MDB_txn *txn, struct index_env *e, struct loaded *l, struct meta *m,
                      unsigned flags)
{
    unsigned char key[4], rec[RECORD_MAX];
    l->m.modseq = ++m->modseq;
    ix_uid_key(l->m.uid, key);
    MDB_val k = { 4, key }, v = { ix_record_encode(&l->m, &l->x, rec), rec };
    return mdb_put(txn, e->msgs, &k, &v, flags);
}

/*
 * Moving new/ to cur/ (mailbox_index_move.c).
 */

/* The directory and name of a file being added: a file the mover takes
   from new/ to cur/ is looked for where it is then, and after ENOENT in
   the other place (*moved_r: what was tried first). */
static int add_place(const struct sync_state *s, const struct loaded *a, int *moved_r,
                     char name[NAME_LIMIT + 1])
{
    *moved_r = 0;
    if (a->job != 0)
        return ix_mover_where(s->mv, a->job, moved_r, name);
    snprintf(name, NAME_LIMIT + 1, "%s", a->m.path + 4);
    DIR *d = s->dirs[a->cur];
    return d != NULL ? dirfd(d) : -1;
}

static int add_fstatat(const struct sync_state *s, const struct loaded *a, struct stat *st)
{
    char name[NAME_LIMIT + 1];
    int moved;
    int dfd = add_place(s, a, &moved, name);
    if (dfd < 0) {
        errno = ENOENT;
        return -1;
    }
    if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno != ENOENT || a->job == 0)
        return -1;
    dfd = ix_mover_elsewhere(s->mv, a->job, moved, name);
    return fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW);
}

static int add_openat(const struct sync_state *s, const struct loaded *a)
{
    const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    char name[NAME_LIMIT + 1];
    int moved;
    int dfd = add_place(s, a, &moved, name);
    if (dfd < 0) {
        errno = ENOENT;
        return -1;
    }
    int fd = openat(dfd, name, flags);
    if (fd >= 0 || errno != ENOENT || a->job == 0)
        return fd;
    dfd = ix_mover_elsewhere(s->mv, a->job, moved, name);
    return openat(dfd, name, flags);
}

static void set_moved_path(struct loaded *l, const struct ix_mover *mv, int to_cur)
{
    free(l->m.path);
    l->m.path = ix_mover_path(mv, l->job, to_cur);
    snprintf(l->m.flags, sizeof(l->m.flags), "%s", ix_mover_flags(mv, l->job));
    l->cur = (uint8_t)to_cur;
}

/* Before the renames are done: records say cur/ for every file being
   moved, so the index is written once. A crash before the renames end
   leaves records naming files still in new/: the next sync mends them. */
static void expect_moves(struct sync_state *s)
{
    for (size_t i = 0; i < s->nadds; i++)
        if (s->adds[i].job != 0)
            set_moved_path(&s->adds[i], s->mv, 1);
    for (size_t i = 0; i < s->nrecs; i++) {
        struct loaded *r = &s->recs[i];
        if (r->state != DELETE && r->job != 0) {
            set_moved_path(r, s->mv, 1);
            r->state = UPDATE;
            s->changed = 1;
        }
    }
}

static int move_failed(const struct sync_state *s, const struct loaded *l)
{
    return l->job != 0 && l->state != DELETE && ix_mover_err(s->mv, l->job) != 0;
}

/* Writes the records of files that did not move (their new/ paths). */
static int unmoved_apply(MDB_txn *txn, struct index_env *e, void *vctx)
{
    struct sync_state *s = vctx;
    struct meta m;
    int rc = meta_as_expected(txn, e, &s->m1, &m);
    if (rc != 0)
        return rc;
    for (int pass = 0; pass < 2; pass++) {
        struct loaded *list = pass ? s->adds : s->recs;
        size_t n = pass ? s->nadds : s->nrecs;
        for (size_t i = 0; i < n; i++)
            if (move_failed(s, &list[i]) && (rc = put_record(txn, e, &list[i], &m, 0)) != 0)
                return rc;
    }
    if ((rc = ix_meta_put(txn, e, &m)) != 0)
        return rc;
    s->m1 = m;
    return 0;
}

/* After the renames: a file that did not move keeps its new/ path (one
   gone from new/, ENOENT, was moved or removed by someone else and the
   next sync finds it where it is). Returns 0 or an LMDB/IX_ code. */
static int settle_moves(struct mailbox_index *ix, struct sync_state *s)
{
    ix_mover_wait(s->mv);
    size_t failed = 0, unmoved = 0;
    int first = 0;
    size_t count = ix_mover_count(s->mv);
    for (size_t k = 1; k <= count; k++) {
        int err = ix_mover_err(s->mv, (uint32_t)k);
        if (err != 0 && err != ENOENT && failed++ == 0)
            first = err;
    }
    if (failed > 0)
        msg_warn("mailbox index: %s: cannot move %zu of %zu new messages to cur/: %s",
                 ix->maildir, failed, count, strerror(first));
    for (int pass = 0; pass < 2; pass++) {
        struct loaded *list = pass ? s->adds : s->recs;
        size_t n = pass ? s->nadds : s->nrecs;
        for (size_t i = 0; i < n; i++)
            if (move_failed(s, &list[i])) {
                set_moved_path(&list[i], s->mv, 0);
                unmoved++;
            }
    }
    return unmoved > 0 ? ix_txn_write(ix->e, unmoved_apply, s) : 0;
}

/* Copies every record out of one read transaction. */
static int load_index(struct mailbox_index *ix, struct sync_state *s)
{
    struct index_env *e = ix->e;
    MDB_txn *txn;
    int rc = ix_txn_begin(e, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    rc = ix_meta_load(txn, e, &s->m0);
    if (rc == MDB_NOTFOUND)
        rc = IX_CORRUPT;
    MDB_cursor *cur = NULL;
    if (rc == 0)
        rc = mdb_cursor_open(txn, e->msgs, &cur);
    if (rc == 0) {
        MDB_val k, v;
        uint32_t last = 0;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint32_t uid = k.mv_size == 4 ? uid_from_key(k.mv_data) : 0;
            if (uid == 0 || uid <= last || uid >= s->m0.uidnext) {
                rc = IX_CORRUPT;
                break;
            }
            last = uid;
            if (s->nrecs == s->arecs) {
                s->arecs = s->arecs ? s->arecs * 2 : 256;
                s->recs = xreallocarray(s->recs, s->arecs, sizeof(*s->recs));
            }
            struct loaded *l = &s->recs[s->nrecs];
            memset(l, 0, sizeof(*l));
            if (ix_record_decode(v.mv_data, v.mv_size, uid, &l->m, &l->x) < 0) {
                rc = IX_CORRUPT;
                break;
            }
            s->nrecs++;
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return rc;
}

static char *dent_path(const struct dent *d)
{
    return xasprintf("%s/%s", d->cur ? "cur" : "new", d->name);
}

static int dent_is(const struct dent *d, const char *path)
{
    return strncmp(path, d->cur ? "cur/" : "new/", 4) == 0 && strcmp(path + 4, d->name) == 0;
}

static void merge(struct sync_state *s)
{
    size_t *order = xreallocarray(NULL, s->nrecs ? s->nrecs : 1, sizeof(*order));
    for (size_t i = 0; i < s->nrecs; i++)
        order[i] = i;
    sort_recs = s->recs;
    if (s->nrecs > 1)
        qsort(order, s->nrecs, sizeof(*order), rec_order_cmp);
    sort_recs = NULL;
    if (s->ndents > 1)
        qsort(s->dents, s->ndents, sizeof(*s->dents), dent_cmp);

    size_t i = 0, j = 0;
    while (i < s->ndents || j < s->nrecs) {
        struct loaded *r = j < s->nrecs ? &s->recs[order[j]] : NULL;
        int c;
        if (i >= s->ndents)
            c = 1;
        else if (r == NULL)
            c = -1;
        else
            c = base_cmp(s->dents[i].name, s->dents[i].base_len, r->m.base, strlen(r->m.base));
        if (c > 0) {
            r->state = DELETE;
            s->changed = 1;
            j++;
            continue;
        }
        /* The same unique part twice (a copy, or a rename seen half-way):
           keep the file the index knows, else the first (cur/ sorts first). */
        size_t k = i + 1;
        while (k < s->ndents &&
               base_cmp(s->dents[i].name, s->dents[i].base_len, s->dents[k].name,
                        s->dents[k].base_len) == 0)
            k++;
        const struct dent *chosen = &s->dents[i];
        if (c == 0) {
            for (size_t t = i; t < k; t++)
                if (dent_is(&s->dents[t], r->m.path))
                    chosen = &s->dents[t];
            r->job = chosen->job;
            char flags[MAILBOX_FLAGS_SIZE];
            dent_flags(chosen, flags);
            if (!dent_is(chosen, r->m.path)) {
                free(r->m.path);
                r->m.path = dent_path(chosen);
                memcpy(r->m.flags, flags, sizeof(r->m.flags));
                r->state = UPDATE;
                s->changed = 1;
            } else if (strcmp(r->m.flags, flags) != 0) {
                /* The same file, other letters: a record written when
                   flags were cut at 15 letters gets them all now. */
                memcpy(r->m.flags, flags, sizeof(r->m.flags));
                r->state = UPDATE;
                s->changed = 1;
            }
            j++;
        } else {
            if (s->nadds == s->aadds) {
                s->aadds = s->aadds ? s->aadds * 2 : 64;
                s->adds = xreallocarray(s->adds, s->aadds, sizeof(*s->adds));
            }
            struct loaded *a = &s->adds[s->nadds++];
            memset(a, 0, sizeof(*a));
            a->m.base = xstrndup(chosen->name, chosen->base_len);
            a->m.path = dent_path(chosen);
            dent_flags(chosen, a->m.flags);
            a->time = chosen->time;
            a->cur = chosen->cur;
            a->job = chosen->job;
            s->changed = 1;
        }
        i = k;
    }
    free(order);
}

/* A name written by lib/maildir.c carries every size the index needs
   (S=, W=, P=): a stat for the date and to check S= is enough. Sizes
   that contradict each other or the file mean another tool wrote or
   changed it: the file is read instead. */
static int sizes_from_name(const struct sync_state *s, struct loaded *a)
{
    const char *name = a->m.path + 4;
    struct maildir_name p;
    struct stat st;
    if (mailbox_index_parse_name(name, strlen(name), &p) < 0 || !p.has_size ||
        !p.has_crlf_size || !p.has_pop3_size || p.crlf_size < p.size ||
        p.pop3_size < p.crlf_size)
        return 0;
    if (add_fstatat(s, a, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != p.size)
        return 0;
    a->m.size = p.size;
    a->m.crlf_size = p.crlf_size;
    a->m.internal_date = (int64_t)st.st_mtime;
    /* Only their sum matters (mailbox_index_pop3_size). */
    a->x.dot_lines = p.pop3_size - p.crlf_size;
    a->x.final_newline = 1;
    return 1;
}

/* Learns each new file's sizes, from its name or by reading it once.
   Files that vanished or cannot be read are left out (the next sync
   tries again). */
static void count_adds(struct mailbox_index *ix, struct sync_state *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->nadds; i++) {
        struct loaded *a = &s->adds[i];
        if (sizes_from_name(s, a)) {
            s->adds[kept++] = *a;
            continue;
        }
        int fd = add_openat(s, a);
        struct stat st;
        struct mailbox_msg_counts n;
        int ok = fd >= 0 && fstat(fd, &st) == 0 &&
                 (S_ISREG(st.st_mode) || (errno = ENOENT, 0)) &&
                 mailbox_index_count_fd(fd, &n) == 0;
        if (!ok && errno != ENOENT && errno != ELOOP)
            msg_warn("mailbox index: cannot read %s/%s: %m", ix->maildir, a->m.path);
        if (fd >= 0)
            close(fd);
        if (!ok) {
            ix_msg_free(&a->m);
            continue;
        }
        a->m.size = n.size;
        a->m.crlf_size = n.crlf_size;
        a->m.internal_date = (int64_t)st.st_mtime;
        a->x.dot_lines = n.dot_lines;
        a->x.final_newline = (uint8_t)n.final_newline;
        s->adds[kept++] = *a;
    }
    s->nadds = kept;
    if (s->nadds > 1)
        qsort(s->adds, s->nadds, sizeof(*s->adds), add_cmp);
}

static int sync_apply(MDB_txn *txn, struct index_env *e, void *vctx)
{
    struct sync_state *s = vctx;
    struct meta m;
    int rc = meta_as_expected(txn, e, &s->m0, &m);
    if (rc != 0)
        return rc;
    unsigned char key[4];
    s->written = s->nadds;
    for (size_t i = 0; i < s->nrecs; i++) {
        struct loaded *r = &s->recs[i];
        s->written += r->state != KEEP;
        ix_uid_key(r->m.uid, key);
        MDB_val k = { 4, key };
        if (r->state == DELETE) {
            if ((rc = mdb_del(txn, e->msgs, &k, NULL)) != 0)
                return rc;
            MDB_val bk = { strlen(r->m.base), r->m.base };
            if ((rc = mdb_del(txn, e->bases, &bk, NULL)) != 0 && rc != MDB_NOTFOUND)
                return rc;
            if ((rc = ix_cache_drop(txn, e, r->m.uid)) != 0)
                return rc;
            m.modseq++;
        } else if (r->state == UPDATE && (rc = put_record(txn, e, r, &m, 0)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < s->nadds; i++) {
        struct loaded *a = &s->adds[i];
        a->m.uid = m.uidnext++;
        if ((rc = put_record(txn, e, a, &m, MDB_APPEND)) != 0)
            return rc == MDB_KEYEXIST ? IX_CORRUPT : rc;
        ix_uid_key(a->m.uid, key);
        MDB_val bk = { strlen(a->m.base), a->m.base }, bv = { 4, key };
        if ((rc = mdb_put(txn, e->bases, &bk, &bv, 0)) != 0)
            return rc;
    }
    if ((rc = ix_meta_put(txn, e, &m)) != 0)
        return rc;
    s->m1 = m;
    return 0;
}

/* Moves the new messages into the array after its first used entries
   (the arrays have room) and takes the sync's meta data. */
static void take_adds(struct mailbox_index *ix, struct sync_state *s, size_t used)
{
    for (size_t i = 0; i < s->nadds; i++) {
        ix->msgs[used] = s->adds[i].m;
        ix->extra[used++] = s->adds[i].x;
        memset(&s->adds[i].m, 0, sizeof(s->adds[i].m));
    }
    ix->count = used;
    ix->meta = s->m1;
    ix->seen = s->m1;
}

/* Moves the merged records into the index's array, in UID order. */
static void install(struct mailbox_index *ix, struct sync_state *s)
{
    ix_msgs_free(ix);
    size_t n = s->nrecs + s->nadds;
    ix->msgs = xreallocarray(NULL, n ? n : 1, sizeof(*ix->msgs));
    ix->extra = xreallocarray(NULL, n ? n : 1, sizeof(*ix->extra));
    size_t c = 0;
    for (size_t i = 0; i < s->nrecs; i++) {
        if (s->recs[i].state == DELETE)
            continue;
        ix->msgs[c] = s->recs[i].m;
        ix->extra[c++] = s->recs[i].x;
        memset(&s->recs[i].m, 0, sizeof(s->recs[i].m));
    }
    take_adds(ix, s, c);
}

/* Notes the time and the directories' mtimes (new/, then cur/ when
   ndirs is 2) before they are listed: a change after this point moves an
   mtime away from what is noted. */
static void note_dirs(struct mailbox_index *ix, struct sync_state *s, int ndirs)
{
    clock_gettime(CLOCK_REALTIME, &s->start);
    for (int i = 0; i < ndirs; i++) {
        char *path = xasprintf("%s/%s", ix->maildir, i ? "cur" : "new");
        struct stat st;
        s->exists[i] = stat(path, &st) == 0;
        s->mtime[i] = s->exists[i] ? st.st_mtim : (struct timespec){ 0, 0 };
        free(path);
    }
}

/* A directory changed in the same clock tick as the listing (or just
   before it) may change again without its mtime moving: such an mtime
   proves nothing until a later sync sees it well in the past. */
static void keep_dirs(struct mailbox_index *ix, const struct sync_state *s)
{
    for (int i = 0; i < 2; i++) {
        ix->dir_exists[i] = s->exists[i];
        ix->dir_mtime[i] = s->mtime[i];
        long long mtime_ns = (long long)s->mtime[i].tv_sec * 1000000000LL + s->mtime[i].tv_nsec;
        long long start_ns = (long long)s->start.tv_sec * 1000000000LL + s->start.tv_nsec;
        ix->dir_trusted[i] = !s->exists[i] || mtime_ns < start_ns - MTIME_TRUST_NSEC;
    }
    ix->synced = 1;
}

/* 1 when the handle's array is what the index holds: a sync installed it
   (the handle's own writes kept it up), nothing is unwritten, and nobody
   else wrote the index since. */
static int array_current(struct mailbox_index *ix)
{
    return ix->synced && !ix->dropped && ix->e != NULL && ix->e->pid == getpid() &&
           !ix_unwritten(ix) && !ix_env_replaced(ix) && ix_meta_unchanged(ix);
}

/* 1 when, besides, cur/ is as the handle's last full sync saw it (the
   mtime it noted, well in the past): only new/ can hold what the array
   does not show. */
static int cur_unchanged(const struct mailbox_index *ix)
{
    if (!ix->dir_exists[1] || !ix->dir_trusted[1])
        return 0;
    char *path = xasprintf("%s/cur", ix->maildir);
    struct stat st;
    int same = stat(path, &st) == 0 && st.st_mtim.tv_sec == ix->dir_mtime[1].tv_sec &&
               st.st_mtim.tv_nsec == ix->dir_mtime[1].tv_nsec;
    free(path);
    return same;
}

/* The records of a full sync without reading LMDB: the array, taken over
   (it is what the index holds, array_current). The handle has no array
   until the sync installs one. */
static void take_array(struct mailbox_index *ix, struct sync_state *s)
{
    s->m0 = ix->seen;
    s->arecs = ix->count ? ix->count : 1;
    s->recs = xreallocarray(NULL, s->arecs, sizeof(*s->recs));
    for (size_t i = 0; i < ix->count; i++) {
        struct loaded *l = &s->recs[i];
        memset(l, 0, sizeof(*l));
        l->m = ix->msgs[i];
        l->x = ix->extra[i];
    }
    s->nrecs = ix->count;
    xfree(&ix->msgs);
    xfree(&ix->extra);
    ix->count = 0;
}

/* For a sync of new/ alone: the records are copies of the array's
   messages in new/, and a file whose unique part the index has in cur/
   is left out (a copy counts once, as in the full sync). IX_RETRY (do
   a full sync) when the index names a message the array lacks. */
static int known_new(struct mailbox_index *ix, struct sync_state *s)
{
    for (size_t i = 0; i < ix->count; i++) {
        const struct mailbox_msg *m = &ix->msgs[i];
        if (strncmp(m->path, "new/", 4) != 0)
            continue;
        if (s->nrecs == s->arecs) {
            s->arecs = s->arecs ? s->arecs * 2 : 64;
            s->recs = xreallocarray(s->recs, s->arecs, sizeof(*s->recs));
        }
        struct loaded *l = &s->recs[s->nrecs++];
        memset(l, 0, sizeof(*l));
        l->m = *m;
        l->m.base = xstrdup(m->base);
        l->m.path = xstrdup(m->path);
        l->x = ix->extra[i];
        l->x.dirty = 0;
    }
    if (s->ndents == 0)
        return 0;
    MDB_txn *txn;
    int rc = ix_txn_begin(ix->e, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    size_t kept = 0, i = 0;
    for (; i < s->ndents; i++) {
        struct dent *d = &s->dents[i];
        MDB_val k = { d->base_len, d->name }, v;
        rc = mdb_get(txn, ix->e->bases, &k, &v);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
        } else if (rc == 0) {
            ssize_t pos = v.mv_size == 4 ? ix_find_pos(ix, uid_from_key(v.mv_data)) : -1;
            if (pos < 0) {
                rc = IX_RETRY;
                break;
            }
            if (strncmp(ix->msgs[pos].path, "new/", 4) != 0) {
                if (d->job == 0)
                    free(d->name);
                continue;
            }
        } else {
            break;
        }
        s->dents[kept++] = *d;
    }
    /* On an error the rest stays listed, to be freed with the state. */
    for (; i < s->ndents; i++)
        s->dents[kept++] = s->dents[i];
    s->ndents = kept;
    mdb_txn_abort(txn);
    return rc;
}
/* The array after a sync of new/ alone: records changed or dropped in
   place, new messages appended (their UIDs are above all others). */
static void patch_array(struct mailbox_index *ix, struct sync_state *s)
{
    size_t j = 0, out = 0;
    for (size_t i = 0; i < ix->count; i++) {
        while (j < s->nrecs && s->recs[j].m.uid < ix->msgs[i].uid)
            j++;
        struct loaded *r = j < s->nrecs && s->recs[j].m.uid == ix->msgs[i].uid ? &s->recs[j] : NULL;
        if (r != NULL && r->state != KEEP) {
            ix_msg_free(&ix->msgs[i]);
            if (r->state == DELETE)
                continue;
            ix->msgs[i] = r->m;
            ix->extra[i] = r->x;
            memset(&r->m, 0, sizeof(r->m));
        }
        ix->msgs[out] = ix->msgs[i];
        ix->extra[out++] = ix->extra[i];
    }
    size_t n = out + s->nadds;
    ix->msgs = xreallocarray(ix->msgs, n ? n : 1, sizeof(*ix->msgs));
    ix->extra = xreallocarray(ix->extra, n ? n : 1, sizeof(*ix->extra));
    take_adds(ix, s, out);
}

/* What both syncs do after the listing: merge, sizes, moves, the write,
   the array. */
static int sync_finish(struct mailbox_index *ix, struct sync_state *s, int new_only,
                       size_t *written_r)
{
    merge(s);
    /* The directory listing is no longer needed (merge copied what it
       keeps): free it before reading new files and installing, so the
       peak does not hold both. */
    for (size_t i = 0; i < s->ndents; i++)
        if (s->dents[i].job == 0)
            free(s->dents[i].name);
    xfree(&s->dents);
    s->ndents = s->adents = 0;
    count_adds(ix, s);
    if (s->mv != NULL)
        expect_moves(s);
    if (s->nadds > 0 && (uint64_t)s->m0.uidnext + s->nadds >= UINT32_MAX)
        return IX_CORRUPT; /* UIDs used up: a new UIDVALIDITY starts over */
    s->m1 = s->m0;
    int rc;
    if (s->changed && (rc = ix_txn_write(ix->e, sync_apply, s)) != 0)
        return rc;
    if (s->mv != NULL && (rc = settle_moves(ix, s)) != 0)
        return rc;
    *written_r = s->changed ? s->written : 0;
    if (new_only)
        patch_array(ix, s);
    else
        install(ix, s);
    keep_dirs(ix, s);
    return 0;
}

static int sync_once(struct mailbox_index *ix, int take, size_t *written_r, char **error_r)
{
    struct sync_state s;
    memset(&s, 0, sizeof(s));
    note_dirs(ix, &s, 2);
    /* new/ before cur/: a message moving new -> cur meanwhile is then
       seen at least once. */
    if (ix->move_new)
        s.mv = ix_mover_open(ix->maildir);
    if (list_dir(ix, &s, 0, error_r) < 0) {
        int saved = errno;
        sync_state_free(&s);
        errno = saved;
        return -1;
    }
    if (s.mv != NULL)
        ix_mover_listed(s.mv);
    if (list_dir(ix, &s, 1, error_r) < 0) {
        int saved = errno;
        sync_state_free(&s);
        errno = saved;
        return -1;
    }
    int rc = 0;
    if (take)
        take_array(ix, &s);
    else
        rc = load_index(ix, &s);
    if (rc == 0)
        rc = sync_finish(ix, &s, 0, written_r);
    sync_state_free(&s);
    return rc;
}

/* A sync when array_current() and cur_unchanged(): lists new/ alone and patches the
   array; a delivery to a folder of 100,000 messages then costs what the
   delivery added, not a listing of cur/ and a read of every record. */
static int sync_new_only(struct mailbox_index *ix, size_t *written_r, char **error_r)
{
    struct sync_state s;
    memset(&s, 0, sizeof(s));
    note_dirs(ix, &s, 1);
    /* cur/ keeps the mtime the last full sync noted: a change there from
       before this point still shows at the next staleness check. */
    s.exists[1] = ix->dir_exists[1];
    s.mtime[1] = ix->dir_mtime[1];
    if (ix->move_new)
        s.mv = ix_mover_open(ix->maildir);
    if (list_dir(ix, &s, 0, error_r) < 0) {
        int saved = errno;
        sync_state_free(&s);
        errno = saved;
        return -1;
    }
    if (s.mv != NULL)
        ix_mover_listed(s.mv);
    s.m0 = ix->seen;
    int rc = known_new(ix, &s);
    if (rc == 0)
        rc = sync_finish(ix, &s, 1, written_r);
    sync_state_free(&s);
    return rc;
}

static int sync_attempts(struct mailbox_index *ix, int take, int new_only, char **error_r);

void mailbox_index_set_move_new(struct mailbox_index *ix, int on)
{
    ix->move_new = on != 0;
}

int mailbox_index_sync(struct mailbox_index *ix, char **error_r)
{
    /* Both only for the first attempt: a retry reads everything. */
    int take = array_current(ix);
    int new_only = take && cur_unchanged(ix);
    ix->synced = 0;
    if (ix_index_ready(ix, error_r) < 0)
        return -1;
    if (ix_unwritten(ix) && mailbox_index_flush(ix) < 0) {
        int saved = errno;
        if (error_r != NULL)
            *error_r = xasprintf("mailbox index %s: cannot write pending changes: %s",
                                 ix->db_path, strerror(saved));
        errno = saved;
        return -1;
    }
    /* The flush left nothing pending: install() builds a new array. */
    ix->dropped = 0;
    if (ix_env_replaced(ix)) {
        /* Rebuilt by another handle or process: the array's UIDs belong
           to the old file. */
        ix_msgs_free(ix);
        if (ix_index_reattach(ix, error_r) < 0)
            return -1;
    }
    int r = sync_attempts(ix, take, new_only, error_r);
    if (r < 0 && take && !new_only && ix->count == 0) {
        /* The array went with the failed sync that took it over. */
        int saved = errno;
        ix_load_array(ix);
        errno = saved;
    }
    return r;
}

static int sync_attempts(struct mailbox_index *ix, int take, int new_only, char **error_r)
{
    int rebuilt = 0;
    for (int attempt = 0; attempt < SYNC_ATTEMPTS; attempt++) {
        char *error = NULL;
        size_t written = 0;
        int rc = new_only ? sync_new_only(ix, &written, &error)
                          : sync_once(ix, take, &written, &error);
        new_only = take = 0;
        if (rc == 0) {
            if (written > RECYCLE_AFTER)
                ix_env_recycle(ix);
            if (ix->e != NULL)
                ix_map_release(ix->e);
            return 0;
        }
        if (rc == -1) {
            if (error_r != NULL)
                *error_r = error;
            else
                free(error);
            return -1;
        }
        if (rc == IX_RETRY)
            continue;
        if (ix_rc_is_corrupt(rc) && !rebuilt) {
            rebuilt = 1;
            ix_quarantine(ix);
            ix_msgs_free(ix);
            if (ix_index_attach(ix, ix_rc_text(rc), error_r) < 0)
                return -1;
            continue;
        }
        if (error_r != NULL)
            *error_r = xasprintf("mailbox index %s: %s", ix->db_path, ix_rc_text(rc));
        errno = rc > 0 ? rc : EIO;
        return -1;
    }
    if (error_r != NULL)
        *error_r = xasprintf("mailbox index %s: keeps changing under us", ix->db_path);
    errno = EAGAIN;
    return -1;
}


/* Rebuilds the array of a dropped handle from LMDB (empty if it cannot
   be read, with a warning). */
void ix_load_array(struct mailbox_index *ix)
{
    struct sync_state s;
    memset(&s, 0, sizeof(s));
    int rc = ix_index_ready(ix, NULL) < 0 ? EIO : load_index(ix, &s);
    if (rc != 0) {
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
        sync_state_free(&s);
        memset(&s, 0, sizeof(s));
    }
    s.m1 = rc == 0 ? s.m0 : ix->meta;
    install(ix, &s);
    sync_state_free(&s);
}
