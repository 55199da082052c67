/*
 * NAME
 *	mailbox_index - the per-mailbox LMDB index shared by pop3d and imapd
 * DESCRIPTION
 *	See mailbox_index.h and docs/mailbox-index.md. Layout of
 *	DIR/postern-index.lmdb (MDB_NOSUBDIR; DIR/postern-index.lmdb-lock is
 *	LMDB's own lock file), four named databases:
 *	  "meta"   version, uidvalidity, uidnext, modseq, firstrecent (decimal text)
 *	  "msgs"   UID (4 bytes big-endian, so keys sort by UID) -> record
 *	  "bases"  unique part of the Maildir name -> UID (big-endian)
 *	  "cache"  UID + kind (6 bytes big-endian) -> imapd's cached text
 *	           (added to an existing index in place when first opened)
 *	A record is binary, little-endian, format byte first, and is
 *	checked field by field when read: a bad one means the index is
 *	corrupt, it is moved aside to postern-index.lmdb.corrupt and rebuilt
 *	from the Maildir with a new UIDVALIDITY.
 *
 *	A new UIDVALIDITY is larger than any the user's Maildir handed out
 *	before (mailbox_index_imap.c: the folder's lock file and the root's
 *	postern-uidvalidity remember them), so an index that is deleted or
 *	rebuilt, or a folder deleted and created again, within the same
 *	second still gets a larger one.
 *
 *	Environments are shared per process (keyed by device and inode):
 *	LMDB forbids opening one file twice in a process, and pop3d serves
 *	many sessions in one process. An environment inherited over fork()
 *	is not used: the handle reopens it in the child.
 *
 *	The sync is in mailbox_index_sync.c. It re-checks the meta data in
 *	its write transaction and starts over if another process changed
 *	the index meanwhile. After a sync
 *	or flush the process's pages of the read-only map are released
 *	(madvise; the page cache keeps them), so a daemon holding many
 *	mailboxes open does not keep every map it read resident.
 *
 *	mailbox_index_drop_messages() frees the array for a caller that took
 *	its own snapshot (pop3d): single messages are then read from LMDB
 *	on demand into a per-handle scratch entry (strings in fixed buffers,
 *	no malloc per lookup); changes wait in a sorted pending list and
 *	expunged UIDs in the sorted gone list until the flush. Asking for
 *	the whole array again rebuilds it from LMDB with those laid over.
 * DIAGNOSTICS
 *	Rebuilds are logged with msg_warn; a missing index in a Maildir
 *	that never had one is created with msg_info. Files that cannot be
 *	read are skipped with msg_warn (and retried at the next sync).
 * LIMITS
 *	The map starts at 16 MiB and doubles on MDB_MAP_FULL up to 4 GiB.
 *	File names longer than 255 bytes are ignored. When UIDs run out
 *	(2^32 - 1), the index is rebuilt with a new UIDVALIDITY.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mailbox_index.h"
#include "maildir.h"
#include "xalloc.h"

#include "mailbox_index_private.h"

static struct index_env *env_list;

/*
 * Maildir names.
 */

int mailbox_index_normalize_flags(const char *flags, char out[MAILBOX_FLAGS_SIZE])
{
    unsigned char seen[128] = { 0 };
    for (const char *p = flags; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
            errno = EINVAL;
            return -1;
        }
        seen[c] = 1;
    }
    size_t n = 0;
    for (unsigned c = 'A'; c <= 'z'; c++)
        if (seen[c])
            out[n++] = (char)c;
    out[n] = '\0';
    return 0;
}

int mailbox_index_parse_name(const char *name, size_t len, struct maildir_name *r)
{
    memset(r, 0, sizeof(*r));
    if (len == 0 || len > NAME_LIMIT || name[0] == '.')
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return -1;
    }
    size_t base_len = len;
    for (size_t i = 0; i + 3 <= len; i++) {
        if (name[i] == ':' && name[i + 1] == '2' && name[i + 2] == ',') {
            base_len = i;
            r->has_info = 1;
            break;
        }
    }
    if (base_len == 0)
        return -1;
    r->base_len = base_len;
    if (r->has_info) {
        unsigned char seen[128] = { 0 };
        for (size_t i = base_len + 3; i < len; i++) {
            unsigned char c = (unsigned char)name[i];
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
                seen[c] = 1;
        }
        size_t n = 0;
        for (unsigned c = 'A'; c <= 'z'; c++)
            if (seen[c])
                r->flags[n++] = (char)c;
        r->flags[n] = '\0';
    }
    /* Up to 19 digits cannot overflow 64 bits. */
    for (size_t i = 0; i < base_len && i < 19 && name[i] >= '0' && name[i] <= '9'; i++)
        r->time = r->time * 10 + (uint64_t)(name[i] - '0');
    /* ",X=<digits>" fields; the first of each kind counts. */
    for (size_t i = 0; i + 3 < base_len; i++) {
        if (name[i] != ',' || name[i + 2] != '=')
            continue;
        char kind = name[i + 1];
        int *has = kind == 'S' ? &r->has_size : kind == 'W' ? &r->has_crlf_size
                                            : kind == 'P' ? &r->has_pop3_size : NULL;
        if (has == NULL || *has)
            continue;
        uint64_t v = 0;
        size_t j = i + 3, digits = 0;
        while (j < base_len && name[j] >= '0' && name[j] <= '9' && digits < 19) {
            v = v * 10 + (uint64_t)(name[j] - '0');
            j++;
            digits++;
        }
        if (digits > 0 && (j == base_len || name[j] == ',')) {
            *has = 1;
            *(kind == 'S' ? &r->size : kind == 'W' ? &r->crlf_size : &r->pop3_size) = v;
        }
    }
    return 0;
}

/*
 * Counting a message's bytes.
 */

int mailbox_index_count_fd(int fd, struct mailbox_msg_counts *r)
{
    unsigned char chunk[65536];
    struct maildir_counts c;
    maildir_counts_init(&c);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        maildir_counts_add(&c, chunk, (size_t)n);
    }
    r->size = c.size;
    r->crlf_size = maildir_counts_crlf_size(&c);
    r->dot_lines = c.dot_lines;
    r->final_newline = c.last == '\n';
    return 0;
}

/*
 * Records.
 */

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void ix_uid_key(uint32_t uid, unsigned char out[4])
{
    out[0] = (unsigned char)(uid >> 24);
    out[1] = (unsigned char)(uid >> 16);
    out[2] = (unsigned char)(uid >> 8);
    out[3] = (unsigned char)uid;
}

size_t ix_record_encode(const struct mailbox_msg *m, const struct msg_extra *x,
                        unsigned char out[RECORD_MAX])
{
    size_t bl = strlen(m->base), pl = strlen(m->path), fl = strlen(m->flags);
    if (RECORD_HEAD + bl + pl + fl > RECORD_MAX || bl > 0xffff || pl > 0xffff)
        msg_panic("mailbox_index: record too long for %s", m->path);
    out[0] = RECORD_FORMAT;
    out[1] = x->final_newline ? 1 : 0;
    put_u64(out + 2, m->size);
    put_u64(out + 10, m->crlf_size);
    put_u64(out + 18, (uint64_t)m->internal_date);
    put_u64(out + 26, m->modseq);
    put_u64(out + 34, x->dot_lines);
    out[42] = (unsigned char)bl;
    out[43] = (unsigned char)(bl >> 8);
    out[44] = (unsigned char)pl;
    out[45] = (unsigned char)(pl >> 8);
    out[46] = (unsigned char)fl;
    unsigned char *p = out + RECORD_HEAD;
    memcpy(p, m->base, bl);
    memcpy(p + bl, m->path, pl);
    memcpy(p + bl + pl, m->flags, fl);
    return RECORD_HEAD + bl + pl + fl;
}

/* Checks a record and fills m and x except base and path, which are
   returned as pointers into d. Returns 0, or -1 if it is not one we
   wrote (m is untouched then). */
static int record_parse(const unsigned char *d, size_t len, uint32_t uid, struct mailbox_msg *m,
                        struct msg_extra *x, const char **base_r, size_t *bl_r,
                        const char **path_r, size_t *pl_r)
{
    if (len < RECORD_HEAD || d[0] != RECORD_FORMAT || d[1] > 1)
        return -1;
    size_t bl = (size_t)d[42] | (size_t)d[43] << 8;
    size_t pl = (size_t)d[44] | (size_t)d[45] << 8;
    size_t fl = d[46];
    /* Records written before keywords were kept have at most 15 letters;
       the format is the same, so they read as they are. */
    if (RECORD_HEAD + bl + pl + fl != len || bl == 0 || pl < 5 || fl >= MAILBOX_FLAGS_SIZE)
        return -1;
    const char *base = (const char *)d + RECORD_HEAD, *path = base + bl, *flags = path + pl;
    if (memchr(base, '\0', bl) || memchr(path, '\0', pl) || memchr(flags, '\0', fl) ||
        (memcmp(path, "new/", 4) != 0 && memcmp(path, "cur/", 4) != 0) ||
        memchr(path + 4, '/', pl - 4) || memchr(base, '/', bl))
        return -1;
    uint64_t size = get_u64(d + 2), crlf = get_u64(d + 10);
    if (crlf < size)
        return -1;
    memset(m, 0, sizeof(*m));
    m->uid = uid;
    *base_r = base;
    *bl_r = bl;
    *path_r = path;
    *pl_r = pl;
    memcpy(m->flags, flags, fl);
    m->flags[fl] = '\0';
    m->size = size;
    m->crlf_size = crlf;
    m->internal_date = (int64_t)get_u64(d + 18);
    m->modseq = get_u64(d + 26);
    x->dot_lines = get_u64(d + 34);
    x->final_newline = d[1];
    x->dirty = 0;
    return 0;
}

/* Copies a record out of LMDB's memory. Returns 0, or -1 if it is not
   one we wrote (m is untouched then). */
int ix_record_decode(const unsigned char *d, size_t len, uint32_t uid, struct mailbox_msg *m,
                     struct msg_extra *x)
{
    const char *base, *path;
    size_t bl, pl;
    if (record_parse(d, len, uid, m, x, &base, &bl, &path, &pl) < 0)
        return -1;
    m->base = xstrndup(base, bl);
    m->path = xstrndup(path, pl);
    return 0;
}

void ix_msg_free(struct mailbox_msg *m)
{
    xfree(&m->base);
    xfree(&m->path);
}

/*
 * Environments.
 */

int ix_rc_is_corrupt(int rc)
{
    return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
           rc == MDB_PAGE_NOTFOUND || rc == MDB_INCOMPATIBLE || rc == MDB_BAD_VALSIZE ||
           rc == IX_CORRUPT;
}

const char *ix_rc_text(int rc)
{
    if (rc == IX_CORRUPT)
        return "bad index data";
    if (rc == IX_RETRY)
        return "index changed by another process";
    if (rc == IX_EXISTS)
        return "already indexed";
    if (rc == IX_REBUILT)
        return "index rebuilt since the last sync";
    if (rc == IX_UIDS_OUT)
        return "UIDs used up";
    return mdb_strerror(rc);
}

static void env_release(struct mailbox_index *ix)
{
    struct index_env *e = ix->e;
    if (e == NULL)
        return;
    ix->e = NULL;
    if (--e->refs > 0)
        return;
    for (struct index_env **pp = &env_list; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    /* Also right in a child after fork: LMDB clears only reader slots of
       getpid(), and the child holds no fcntl locks of the parent. */
    mdb_env_close(e->env);
    free(e);
}

void ix_env_recycle(struct mailbox_index *ix)
{
    if (ix->e == NULL || ix->e->refs > 1)
        return;
    env_release(ix);
    if (ix_index_ready(ix, NULL) < 0)
        msg_warn("mailbox index %s: cannot reopen after a large write", ix->db_path);
}

/* Starts a transaction, adopting a map another process has grown. */
int ix_txn_begin(struct index_env *e, unsigned flags, MDB_txn **txn_r)
{
    int rc = mdb_txn_begin(e->env, NULL, flags, txn_r);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(e->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(e->env, NULL, flags, txn_r);
        MDB_envinfo info;
        if (rc == 0 && mdb_env_info(e->env, &info) == 0)
            e->mapsize = info.me_mapsize;
    }
    return rc;
}

static int grow_map(struct index_env *e)
{
    if ((uint64_t)e->mapsize >= MAP_CAP || e->mapsize > SIZE_MAX / 2)
        return MDB_MAP_FULL;
    uint64_t want = (uint64_t)e->mapsize * 2;
    if (want > MAP_CAP)
        want = MAP_CAP;
    int rc = mdb_env_set_mapsize(e->env, (size_t)want);
    if (rc == 0) {
        e->mapsize = (size_t)want;
        msg_info("mailbox index: map grown to %llu bytes", (unsigned long long)want);
    }
    return rc;
}

/* Runs apply in a write transaction; on MDB_MAP_FULL the map is doubled
   and apply runs again from scratch, so it must not keep state from a
   failed run. */
int ix_txn_write(struct index_env *e, int (*apply)(MDB_txn *, struct index_env *, void *),
                 void *ctx)
{
    for (;;) {
        MDB_txn *txn;
        int rc = ix_txn_begin(e, 0, &txn);
        if (rc != 0)
            return rc;
        rc = apply(txn, e, ctx);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc != MDB_MAP_FULL)
            return rc;
        if ((rc = grow_map(e)) != 0)
            return rc;
    }
}

static int meta_get(MDB_txn *txn, struct index_env *e, const char *key, uint64_t max,
                    uint64_t *v_r)
{
    MDB_val k = { strlen(key), (void *)key }, v;
    int rc = mdb_get(txn, e->meta, &k, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size == 0 || v.mv_size > 20)
        return IX_CORRUPT;
    uint64_t n = 0;
    const char *p = v.mv_data;
    for (size_t i = 0; i < v.mv_size; i++) {
        if (p[i] < '0' || p[i] > '9')
            return IX_CORRUPT;
        if (n > (UINT64_MAX - 9) / 10)
            return IX_CORRUPT;
        n = n * 10 + (uint64_t)(p[i] - '0');
    }
    if (n > max)
        return IX_CORRUPT;
    *v_r = n;
    return 0;
}

/* Returns 0, MDB_NOTFOUND when there is no meta data at all,
   IX_CORRUPT, or an LMDB error. */
int ix_meta_load(MDB_txn *txn, struct index_env *e, struct meta *m)
{
    uint64_t version, uv, next, modseq;
    int rc = meta_get(txn, e, "version", UINT32_MAX, &version);
    if (rc != 0)
        return rc;
    if (version != INDEX_VERSION)
        return IX_CORRUPT;
    if ((rc = meta_get(txn, e, "uidvalidity", UINT32_MAX, &uv)) != 0 ||
        (rc = meta_get(txn, e, "uidnext", UINT32_MAX, &next)) != 0 ||
        (rc = meta_get(txn, e, "modseq", UINT64_MAX, &modseq)) != 0)
        return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
    if (uv == 0 || next == 0)
        return IX_CORRUPT;
    /* An index written before "firstrecent" existed: none of its
       messages is recent (until then \Recent meant "in new/", and the
       sessions that saw them moved them out); the first write keeps that
       value. A value outside 1..uidnext is clamped: \Recent is not worth
       a rebuild and a new UIDVALIDITY. */
    uint64_t first;
    rc = meta_get(txn, e, "firstrecent", UINT32_MAX, &first);
    if (rc == MDB_NOTFOUND)
        first = next;
    else if (rc != 0)
        return rc;
    m->uidvalidity = (uint32_t)uv;
    m->uidnext = (uint32_t)next;
    m->modseq = modseq;
    m->first_recent = first == 0 ? 1 : first > next ? (uint32_t)next : (uint32_t)first;
    return 0;
}

static int meta_put1(MDB_txn *txn, struct index_env *e, const char *key, uint64_t n)
{
    char text[24];
    int len = snprintf(text, sizeof(text), "%llu", (unsigned long long)n);
    MDB_val k = { strlen(key), (void *)key }, v = { (size_t)len, text };
    return mdb_put(txn, e->meta, &k, &v, 0);
}

int ix_meta_put(MDB_txn *txn, struct index_env *e, const struct meta *m)
{
    int rc;
    if ((rc = meta_put1(txn, e, "version", INDEX_VERSION)) != 0 ||
        (rc = meta_put1(txn, e, "uidvalidity", m->uidvalidity)) != 0 ||
        (rc = meta_put1(txn, e, "uidnext", m->uidnext)) != 0 ||
        (rc = meta_put1(txn, e, "modseq", m->modseq)) != 0 ||
        (rc = meta_put1(txn, e, "firstrecent", m->first_recent)) != 0)
        return rc;
    return 0;
}

struct attach_ctx {
    struct mailbox_index *ix;
    int existed;
    int created;
    int cache_added;
    uint32_t previous;
    struct meta m;
};

static int attach_apply(MDB_txn *txn, struct index_env *e, void *vctx)
{
    struct attach_ctx *c = vctx;
    int rc;
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &e->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "msgs", MDB_CREATE, &e->msgs)) != 0 ||
        (rc = mdb_dbi_open(txn, "bases", MDB_CREATE, &e->bases)) != 0)
        return rc;
    /* An index written before the cache existed gets it here: same
       version, same UIDs, nothing to rebuild. */
    c->cache_added = 0;
    rc = mdb_dbi_open(txn, "cache", 0, &e->cache);
    if (rc == MDB_NOTFOUND) {
        c->cache_added = 1;
        rc = mdb_dbi_open(txn, "cache", MDB_CREATE, &e->cache);
    }
    if (rc != 0)
        return rc;
    rc = ix_meta_load(txn, e, &c->m);
    c->created = 0;
    if (rc == MDB_NOTFOUND && !c->existed) {
        c->m.uidvalidity = ix_uidvalidity_new(c->ix, &c->previous);
        c->m.uidnext = 1;
        c->m.modseq = 1;
        /* Every message a new index learns is recent for the first
           session that claims it, like mail that has just arrived. */
        c->m.first_recent = 1;
        c->created = 1;
        return ix_meta_put(txn, e, &c->m);
    }
    return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
}

/* Attaches ix to the environment of its index file, opening it if this
   process has not. Returns 0, IX_CORRUPT (ix detached), or another error. */
static int env_attach(struct mailbox_index *ix, int *created_r, uint32_t *previous_r)
{
    *created_r = 0;
    struct stat st;
    int existed = stat(ix->db_path, &st) == 0 && st.st_size > 0;
    pid_t pid = getpid();
    if (existed) {
        for (struct index_env *e = env_list; e; e = e->next) {
            if (e->dev == st.st_dev && e->ino == st.st_ino && e->pid == pid) {
                MDB_txn *txn;
                int rc = ix_txn_begin(e, MDB_RDONLY, &txn);
                if (rc != 0)
                    return rc;
                rc = ix_meta_load(txn, e, &ix->meta);
                mdb_txn_abort(txn);
                if (rc != 0)
                    return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
                e->refs++;
                ix->e = e;
                return 0;
            }
        }
    }
    struct index_env *e = xcalloc(1, sizeof(*e));
    e->pid = pid;
    e->refs = 1;
    e->mapsize = MAP_START;
    int rc = mdb_env_create(&e->env);
    if (rc != 0) {
        free(e);
        return rc;
    }
    ix->e = e;
    e->next = env_list;
    env_list = e;
    if ((rc = mdb_env_set_maxdbs(e->env, MAX_DBS)) != 0 ||
        (rc = mdb_env_set_mapsize(e->env, e->mapsize)) != 0 ||
        (rc = mdb_env_open(e->env, ix->db_path, MDB_NOSUBDIR, 0600)) != 0) {
        env_release(ix);
        return rc;
    }
    int fd;
    MDB_envinfo info;
    if (mdb_env_get_fd(e->env, &fd) != 0 || fstat(fd, &st) != 0) {
        rc = errno ? errno : EIO;
        env_release(ix);
        return rc;
    }
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    if (mdb_env_info(e->env, &info) == 0)
        e->mapsize = info.me_mapsize;
    struct attach_ctx c = { .ix = ix, .existed = existed };
    rc = ix_txn_write(e, attach_apply, &c);
    if (rc != 0) {
        env_release(ix);
        return rc;
    }
    ix->meta = c.m;
    *created_r = c.created;
    *previous_r = c.previous;
    if (c.created)
        ix_uidvalidity_note(ix, c.m.uidvalidity);
    else if (c.cache_added)
        msg_info("mailbox index %s: cache database added", ix->db_path);
    return 0;
}

/* Moves a corrupt index aside; the next attach creates a new one. When
   the file is no longer the one the handle had open, another handle or
   process has rebuilt it already and it is left alone. LMDB's lock file
   goes too: handles still on the old file keep theirs (it describes the
   old file's transactions), the new file gets a fresh one. */
void ix_quarantine(struct mailbox_index *ix)
{
    int replaced = ix->e != NULL && ix_env_replaced(ix);
    env_release(ix);
    if (replaced)
        return;
    char *aside = xasprintf("%s.corrupt", ix->db_path);
    if (rename(ix->db_path, aside) < 0 && errno != ENOENT) {
        msg_warn("mailbox index: rename %s to %s: %m; removing it", ix->db_path, aside);
        if (unlink(ix->db_path) < 0 && errno != ENOENT)
            msg_warn("mailbox index: unlink %s: %m", ix->db_path);
    }
    free(aside);
    char *lock = xasprintf("%s-lock", ix->db_path);
    if (unlink(lock) < 0 && errno != ENOENT)
        msg_warn("mailbox index: unlink %s: %m", lock);
    free(lock);
}

int ix_env_replaced(const struct mailbox_index *ix)
{
    struct stat st;
    if (ix->e == NULL || stat(ix->db_path, &st) < 0)
        return 1;
    return st.st_dev != ix->e->dev || st.st_ino != ix->e->ino;
}

int ix_index_reattach(struct mailbox_index *ix, char **error_r)
{
    env_release(ix);
    return ix_index_attach(ix, NULL, error_r);
}

/* Attaches, rebuilding a corrupt index once. why: the reason an index
   is being rebuilt (NULL if none yet). Returns 0 or -1 with *error_r. */
int ix_index_attach(struct mailbox_index *ix, const char *why, char **error_r)
{
    char *reason = why ? xstrdup(why) : NULL;
    for (int round = 0; round < 2; round++) {
        int created;
        uint32_t previous;
        int rc = env_attach(ix, &created, &previous);
        if (rc == 0) {
            if (reason != NULL)
                msg_warn("mailbox index %s rebuilt (%s): uidvalidity %u", ix->db_path, reason,
                         ix->meta.uidvalidity);
            else if (created && previous != 0)
                msg_warn("mailbox index %s was missing, rebuilt: uidvalidity %u (was %u)",
                         ix->db_path, ix->meta.uidvalidity, previous);
            else if (created)
                msg_info("mailbox index %s created: uidvalidity %u", ix->db_path,
                         ix->meta.uidvalidity);
            free(reason);
            return 0;
        }
        if (!ix_rc_is_corrupt(rc) || round == 1) {
            if (error_r != NULL)
                *error_r = xasprintf("mailbox index %s: %s", ix->db_path, ix_rc_text(rc));
            free(reason);
            errno = rc > 0 ? rc : EIO;
            return -1;
        }
        free(reason);
        reason = xstrdup(ix_rc_text(rc));
        ix_quarantine(ix);
    }
    msg_panic("mailbox index: attach loop fell through");
}

/* An environment inherited over fork() must not be used: reopen. */
int ix_index_ready(struct mailbox_index *ix, char **error_r)
{
    if (ix->e != NULL && ix->e->pid == getpid())
        return 0;
    env_release(ix);
    return ix_index_attach(ix, NULL, error_r);
}

/*
 * Open, close, lock.
 */

struct mailbox_index *mailbox_index_open(const char *maildir, char **error_r)
{
    struct stat st;
    if (stat(maildir, &st) < 0 || (!S_ISDIR(st.st_mode) && (errno = ENOTDIR))) {
        if (error_r != NULL)
            *error_r = xasprintf("mailbox index: %s: %s", maildir, strerror(errno));
        return NULL;
    }
    struct mailbox_index *ix = xcalloc(1, sizeof(*ix));
    ix->maildir = xstrdup(maildir);
    ix->db_path = xasprintf("%s/%s", maildir, INDEX_NAME);
    ix->lock_path = xasprintf("%s/%s", maildir, LOCK_NAME);
    ix->lock_fd = -1;
    ix->dir_fd = -1;
    if (ix_index_attach(ix, NULL, error_r) < 0) {
        int saved = errno;
        mailbox_index_close(&ix);
        errno = saved;
        return NULL;
    }
    return ix;
}

static void pending_free(struct mailbox_index *ix);

void ix_msgs_free(struct mailbox_index *ix)
{
    for (size_t i = 0; i < ix->count; i++)
        ix_msg_free(&ix->msgs[i]);
    xfree(&ix->msgs);
    xfree(&ix->extra);
    ix->count = 0;
    ix->dirty_count = 0;
}

void mailbox_index_close(struct mailbox_index **index_p)
{
    struct mailbox_index *ix = *index_p;
    if (ix == NULL)
        return;
    *index_p = NULL;
    if (ix_unwritten(ix) && mailbox_index_flush(ix) < 0)
        msg_warn("mailbox index %s: cannot write pending changes: %m (the next sync "
                 "recovers them)", ix->db_path);
    env_release(ix);
    if (ix->lock_fd >= 0)
        close(ix->lock_fd);
    if (ix->dir_fd >= 0)
        close(ix->dir_fd);
    ix_msgs_free(ix);
    pending_free(ix);
    ix_cache_free(ix);
    for (size_t i = 0; i < ix->gone_count; i++)
        free(ix->gone[i].base);
    free(ix->gone);
    free(ix->maildir);
    free(ix->db_path);
    free(ix->lock_path);
    free(ix);
}

int mailbox_index_lock(struct mailbox_index *ix, int nonblocking)
{
    if (ix->lock_fd < 0) {
        ix->lock_fd = open(ix->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (ix->lock_fd < 0)
            return -1;
    }
    for (;;) {
        if (flock(ix->lock_fd, LOCK_EX | (nonblocking ? LOCK_NB : 0)) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return 1;
        return -1;
    }
}

void mailbox_index_unlock(struct mailbox_index *ix)
{
    if (ix->lock_fd >= 0 && flock(ix->lock_fd, LOCK_UN) < 0)
        msg_warn("mailbox index: unlock %s: %m", ix->lock_path);
    if (ix->dir_fd >= 0) {
        close(ix->dir_fd);
        ix->dir_fd = -1;
    }
}

/* rename() of two paths relative to the Maildir. */
static int maildir_rename(struct mailbox_index *ix, const char *from, const char *to)
{
    if (ix->dir_fd < 0)
        ix->dir_fd = open(ix->maildir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ix->dir_fd >= 0)
        return renameat(ix->dir_fd, from, ix->dir_fd, to);
    char *full_from = xasprintf("%s/%s", ix->maildir, from);
    char *full_to = xasprintf("%s/%s", ix->maildir, to);
    int r = rename(full_from, full_to);
    int saved = errno;
    free(full_from);
    free(full_to);
    errno = saved;
    return r;
}

uint32_t mailbox_index_uidvalidity(const struct mailbox_index *ix)
{
    return ix->meta.uidvalidity;
}

uint32_t mailbox_index_uidnext(const struct mailbox_index *ix)
{
    return ix->meta.uidnext;
}

static void undrop(struct mailbox_index *ix);

const struct mailbox_msg *mailbox_index_messages(const struct mailbox_index *ix,
                                                 size_t *count_r)
{
    if (ix->dropped)
        undrop((struct mailbox_index *)ix); /* the handle is ours (malloc'd) */
    *count_r = ix->count;
    return ix->msgs;
}

const char *mailbox_index_maildir(const struct mailbox_index *ix)
{
    return ix->maildir;
}

ssize_t ix_find_pos(const struct mailbox_index *ix, uint32_t uid)
{
    size_t lo = 0, hi = ix->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->msgs[mid].uid == uid)
            return (ssize_t)mid;
        if (ix->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static ssize_t gone_pos(const struct mailbox_index *ix, uint32_t uid, int *found_r)
{
    size_t lo = 0, hi = ix->gone_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->gone[mid].uid == uid) {
            *found_r = 1;
            return (ssize_t)mid;
        }
        if (ix->gone[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found_r = 0;
    return (ssize_t)lo;
}

ssize_t ix_gone_pos(const struct mailbox_index *ix, uint32_t uid, int *found_r)
{
    return gone_pos(ix, uid, found_r);
}

/* Keeps gone sorted by UID: a dropped handle asks it on every lookup. */
static void gone_add(struct mailbox_index *ix, uint32_t uid, char *base)
{
    int found;
    size_t at = (size_t)gone_pos(ix, uid, &found);
    if (found) {
        free(base);
        return;
    }
    ix->gone = xreallocarray(ix->gone, ix->gone_count + 1, sizeof(*ix->gone));
    memmove(&ix->gone[at + 1], &ix->gone[at], (ix->gone_count - at) * sizeof(*ix->gone));
    ix->gone[at].uid = uid;
    ix->gone[at].base = base;
    ix->gone_count++;
}

static ssize_t pending_pos(const struct mailbox_index *ix, uint32_t uid, int *found_r)
{
    size_t lo = 0, hi = ix->pending_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->pending[mid].m.uid == uid) {
            *found_r = 1;
            return (ssize_t)mid;
        }
        if (ix->pending[mid].m.uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found_r = 0;
    return (ssize_t)lo;
}

static void pending_free(struct mailbox_index *ix)
{
    for (size_t i = 0; i < ix->pending_count; i++)
        ix_msg_free(&ix->pending[i].m);
    xfree(&ix->pending);
    ix->pending_count = ix->pending_alloc = 0;
}

/* Reads one record of a dropped handle into its scratch entry with a
   short read transaction. */
static struct mailbox_msg *db_lookup(struct mailbox_index *ix, uint32_t uid,
                                     struct msg_extra **x_r)
{
    if (ix_index_ready(ix, NULL) < 0)
        return NULL;
    struct index_env *e = ix->e;
    MDB_txn *txn;
    int rc = ix_txn_begin(e, MDB_RDONLY, &txn);
    if (rc != 0) {
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
        return NULL;
    }
    unsigned char key[4];
    ix_uid_key(uid, key);
    MDB_val k = { 4, key }, v;
    struct mailbox_msg *result = NULL;
    rc = mdb_get(txn, e->msgs, &k, &v);
    if (rc == 0) {
        const char *base, *path;
        size_t bl, pl;
        struct mailbox_msg m;
        struct msg_extra x;
        if (record_parse(v.mv_data, v.mv_size, uid, &m, &x, &base, &bl, &path, &pl) < 0 ||
            bl >= sizeof(ix->scratch_base) || pl >= sizeof(ix->scratch_path)) {
            msg_warn("mailbox index %s: bad record of uid %u", ix->db_path, uid);
        } else {
            memcpy(ix->scratch_base, base, bl);
            ix->scratch_base[bl] = '\0';
            memcpy(ix->scratch_path, path, pl);
            ix->scratch_path[pl] = '\0';
            m.base = ix->scratch_base;
            m.path = ix->scratch_path;
            ix->scratch = m;
            ix->scratch_x = x;
            result = &ix->scratch;
            *x_r = &ix->scratch_x;
        }
    } else if (rc != MDB_NOTFOUND) {
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
    }
    mdb_txn_abort(txn);
    /* A listing of every message would otherwise leave the whole map
       resident in this process again. */
    if (++ix->lookups >= RELEASE_EVERY) {
        ix->lookups = 0;
        ix_map_release(e);
    }
    return result;
}

/* The message with this UID, NULL if none. pos_r: its index in the
   array, -1 for a pending entry, -2 for the scratch entry. */
static struct mailbox_msg *msg_get(struct mailbox_index *ix, uint32_t uid,
                                   struct msg_extra **x_r, ssize_t *pos_r)
{
    if (!ix->dropped) {
        ssize_t pos = ix_find_pos(ix, uid);
        *pos_r = pos;
        if (pos < 0)
            return NULL;
        *x_r = &ix->extra[pos];
        return &ix->msgs[pos];
    }
    int found;
    (void)gone_pos(ix, uid, &found);
    if (found)
        return NULL;
    ssize_t at = pending_pos(ix, uid, &found);
    if (found) {
        *pos_r = -1;
        *x_r = &ix->pending[at].x;
        return &ix->pending[at].m;
    }
    *pos_r = -2;
    return db_lookup(ix, uid, x_r);
}

const struct mailbox_msg *mailbox_index_find(const struct mailbox_index *ix, uint32_t uid)
{
    struct msg_extra *x;
    ssize_t pos;
    /* The handle is ours (malloc'd); a dropped one reads into its scratch. */
    return msg_get((struct mailbox_index *)ix, uid, &x, &pos);
}

uint64_t mailbox_index_pop3_size(const struct mailbox_index *ix, uint32_t uid)
{
    struct msg_extra *x;
    ssize_t pos;
    const struct mailbox_msg *m = msg_get((struct mailbox_index *)ix, uid, &x, &pos);
    if (m == NULL)
        return 0;
    return m->crlf_size + x->dot_lines + (x->final_newline ? 0 : 2);
}

/* Drops this process's page-table references to the index map once a
   sync or flush is done with it: the map is read-only and MAP_SHARED (no
   MDB_WRITEMAP), so the data stays in the page cache and a later read
   faults it back in. Without this every session of a long-lived daemon
   keeps the whole map it touched counted in its resident memory. LMDB
   does not tell where it mapped the file (me_mapaddr is only set with
   MDB_FIXEDMAP), so /proc/self/maps is asked; only read-only shared
   mappings of the index's inode are touched (another file with the same
   inode number on another device would merely be faulted in again). */
void ix_map_release(const struct index_env *e)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi, off, ino;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &min, &ino) != 7)
            continue;
        if ((ino_t)ino != e->ino || strlen(perms) < 4 || perms[1] != '-' || perms[3] != 's')
            continue;
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    fclose(f);
}

/*
 * Changes to single messages.
 */

/* Finds where another tool has put the file of base. Returns a
   malloc'd path relative to the Maildir, or NULL. */
static char *locate_base(struct mailbox_index *ix, const char *base)
{
    size_t blen = strlen(base);
    char *path = xasprintf("%s/new/%s", ix->maildir, base);
    struct stat st;
    int found = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    if (found)
        return xasprintf("new/%s", base);
    path = xasprintf("%s/cur", ix->maildir);
    DIR *d = opendir(path);
    free(path);
    if (d == NULL)
        return NULL;
    char *result = NULL;
    struct dirent *de;
    while (result == NULL && (de = readdir(d)) != NULL) {
        struct maildir_name p;
        if (mailbox_index_parse_name(de->d_name, strlen(de->d_name), &p) == 0 &&
            base_cmp(de->d_name, p.base_len, base, blen) == 0)
            result = xasprintf("cur/%s", de->d_name);
    }
    closedir(d);
    return result;
}

/* Drops the message m (from msg_get, which gave pos) from the view. */
static void forget(struct mailbox_index *ix, struct mailbox_msg *m, ssize_t pos)
{
    if (pos < 0) {
        gone_add(ix, m->uid, xstrdup(m->base));
        int found;
        ssize_t at = pending_pos(ix, m->uid, &found);
        if (found) {
            ix_msg_free(&ix->pending[at].m);
            memmove(&ix->pending[at], &ix->pending[at + 1],
                    (ix->pending_count - (size_t)at - 1) * sizeof(*ix->pending));
            ix->pending_count--;
            ix->dirty_count--;
        }
        return;
    }
    gone_add(ix, m->uid, m->base);
    m->base = NULL;
    if (ix->extra[pos].dirty)
        ix->dirty_count--;
    ix_msg_free(m);
    memmove(&ix->msgs[pos], &ix->msgs[pos + 1], (ix->count - pos - 1) * sizeof(*ix->msgs));
    memmove(&ix->extra[pos], &ix->extra[pos + 1], (ix->count - pos - 1) * sizeof(*ix->extra));
    ix->count--;
}

/* Gives m (from msg_get, which gave pos and x) a new file; path is
   taken over. */
static void set_path(struct mailbox_index *ix, struct mailbox_msg *m, struct msg_extra *x,
                     ssize_t pos, char *path, const char *flags)
{
    if (pos == -2) {
        /* The scratch entry of a dropped handle becomes a pending one. */
        int found;
        size_t at = (size_t)pending_pos(ix, m->uid, &found);
        if (ix->pending_count == ix->pending_alloc) {
            ix->pending_alloc = ix->pending_alloc ? ix->pending_alloc * 2 : 16;
            ix->pending = xreallocarray(ix->pending, ix->pending_alloc, sizeof(*ix->pending));
        }
        memmove(&ix->pending[at + 1], &ix->pending[at],
                (ix->pending_count - at) * sizeof(*ix->pending));
        ix->pending_count++;
        struct pending *p = &ix->pending[at];
        p->m = *m;
        p->m.base = xstrdup(m->base);
        p->m.path = NULL;
        p->x = *x;
        p->x.dirty = 0;
        m = &p->m;
        x = &p->x;
    }
    free(m->path);
    m->path = path;
    snprintf(m->flags, sizeof(m->flags), "%s", flags);
    if (!x->dirty) {
        x->dirty = 1;
        ix->dirty_count++;
    }
    /* Bounds what a dropped handle keeps; the write is one transaction
       per PENDING_LIMIT changes instead of one at the end. */
    if (ix->dropped && ix->pending_count >= PENDING_LIMIT)
        (void)mailbox_index_flush(ix);
}

int mailbox_index_set_flags(struct mailbox_index *ix, uint32_t uid, const char *flags)
{
    char norm[MAILBOX_FLAGS_SIZE];
    if (mailbox_index_normalize_flags(flags, norm) < 0)
        return -1;
    struct msg_extra *x;
    ssize_t pos;
    struct mailbox_msg *m = msg_get(ix, uid, &x, &pos);
    if (m == NULL) {
        errno = ENOENT;
        return -1;
    }
    if (strlen(m->base) + 3 + strlen(norm) > NAME_LIMIT) {
        /* A sync would not take such a name for a message. */
        errno = ENAMETOOLONG;
        return -1;
    }
    char *path = xasprintf("cur/%s:2,%s", m->base, norm);
    if (strcmp(path, m->path) == 0) {
        free(path);
        return 0;
    }
    int r = maildir_rename(ix, m->path, path);
    if (r < 0 && errno == ENOENT) {
        char *moved = locate_base(ix, m->base);
        if (moved != NULL) {
            r = maildir_rename(ix, moved, path);
            free(moved);
        } else {
            errno = ENOENT;
        }
    }
    int saved = errno;
    if (r < 0) {
        free(path);
        if (saved == ENOENT)
            forget(ix, m, pos);
        errno = saved;
        return -1;
    }
    set_path(ix, m, x, pos, path, norm);
    return 0;
}

int mailbox_index_open_msg(struct mailbox_index *ix, uint32_t uid)
{
    struct msg_extra *x;
    ssize_t pos;
    struct mailbox_msg *m = msg_get(ix, uid, &x, &pos);
    if (m == NULL) {
        errno = ENOENT;
        return -1;
    }
    char *full = xasprintf("%s/%s", ix->maildir, m->path);
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(full);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    char *moved = locate_base(ix, m->base);
    if (moved == NULL) {
        errno = ENOENT;
        return -1;
    }
    full = xasprintf("%s/%s", ix->maildir, moved);
    fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(full);
    if (fd < 0) {
        free(moved);
        return -1;
    }
    struct maildir_name p;
    const char *name = moved + 4;
    if (mailbox_index_parse_name(name, strlen(name), &p) < 0)
        p.flags[0] = '\0';
    set_path(ix, m, x, pos, moved, p.flags);
    return fd;
}

int mailbox_index_expunge_uids(struct mailbox_index *ix, const uint32_t *uids, size_t count)
{
    int first_errno = 0;
    for (size_t i = 0; i < count; i++) {
        struct msg_extra *x;
        ssize_t pos;
        struct mailbox_msg *m = msg_get(ix, uids[i], &x, &pos);
        if (m == NULL) {
            if (first_errno == 0)
                first_errno = ENOENT;
            continue;
        }
        char *full = xasprintf("%s/%s", ix->maildir, m->path);
        int r = unlink(full);
        if (r < 0 && errno == ENOENT) {
            char *moved = locate_base(ix, m->base);
            if (moved != NULL) {
                free(full);
                full = xasprintf("%s/%s", ix->maildir, moved);
                free(moved);
                r = unlink(full);
            } else {
                r = 0; /* already gone: what was asked for */
            }
        }
        if (r < 0) {
            if (first_errno == 0)
                first_errno = errno;
            free(full);
            continue;
        }
        free(full);
        forget(ix, m, pos);
    }
    if (mailbox_index_flush(ix) < 0 && first_errno == 0)
        first_errno = errno;
    if (first_errno != 0) {
        errno = first_errno;
        return -1;
    }
    return 0;
}

int mailbox_index_expunge(struct mailbox_index *ix, uint32_t uid)
{
    return mailbox_index_expunge_uids(ix, &uid, 1);
}

struct flush_ctx {
    struct mailbox_index *ix;
    uint64_t start_modseq;
    struct meta before, after;
};

/* A dirty record is written only over one that is still there: another
   handle may have expunged the message since (the file is gone then,
   and writing would bring the record back until the next sync). */
static int record_exists(MDB_txn *txn, struct index_env *e, const unsigned char key[4])
{
    MDB_val k = { 4, (void *)key }, v;
    int rc = mdb_get(txn, e->msgs, &k, &v);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : rc;
}

static int flush_apply(MDB_txn *txn, struct index_env *e, void *vctx)
{
    struct flush_ctx *c = vctx;
    struct mailbox_index *ix = c->ix;
    struct meta m;
    int rc = ix_meta_load(txn, e, &m);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
    if (m.uidvalidity != ix->meta.uidvalidity)
        return IX_RETRY; /* rebuilt by someone else: our UIDs mean nothing there */
    c->start_modseq = m.modseq;
    c->before = m;
    unsigned char key[4], rec[RECORD_MAX];
    for (size_t i = 0; i < ix->gone_count; i++) {
        ix_uid_key(ix->gone[i].uid, key);
        MDB_val k = { 4, key };
        if ((rc = mdb_del(txn, e->msgs, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            return rc;
        MDB_val bk = { strlen(ix->gone[i].base), ix->gone[i].base };
        if ((rc = mdb_del(txn, e->bases, &bk, NULL)) != 0 && rc != MDB_NOTFOUND)
            return rc;
        if ((rc = ix_cache_drop(txn, e, ix->gone[i].uid)) != 0)
            return rc;
        m.modseq++;
    }
    /* Every change takes one modseq even when its record is skipped, so
       mailbox_index_flush() can tell each message its modseq. */
    for (size_t i = 0; i < ix->count; i++) {
        if (!ix->extra[i].dirty)
            continue;
        struct mailbox_msg copy = ix->msgs[i];
        copy.modseq = ++m.modseq;
        ix_uid_key(copy.uid, key);
        if ((rc = record_exists(txn, e, key)) < 0)
            return rc;
        MDB_val k = { 4, key }, v = { ix_record_encode(&copy, &ix->extra[i], rec), rec };
        if (rc == 1 && (rc = mdb_put(txn, e->msgs, &k, &v, 0)) != 0)
            return rc;
    }
    for (size_t i = 0; i < ix->pending_count; i++) {
        struct mailbox_msg copy = ix->pending[i].m;
        copy.modseq = ++m.modseq;
        ix_uid_key(copy.uid, key);
        if ((rc = record_exists(txn, e, key)) < 0)
            return rc;
        MDB_val k = { 4, key }, v = { ix_record_encode(&copy, &ix->pending[i].x, rec), rec };
        if (rc == 1 && (rc = mdb_put(txn, e->msgs, &k, &v, 0)) != 0)
            return rc;
    }
    if ((rc = ix_cache_write(txn, e, ix)) != 0)
        return rc;
    if ((rc = ix_meta_put(txn, e, &m)) != 0)
        return rc;
    c->after = m;
    return 0;
}

int mailbox_index_flush(struct mailbox_index *ix)
{
    if (!ix_unwritten(ix))
        return 0;
    if (ix_index_ready(ix, NULL) < 0) {
        ix_cache_free(ix);
        return -1;
    }
    struct flush_ctx c = { .ix = ix };
    int rc = ix_txn_write(ix->e, flush_apply, &c);
    /* The cache is an optimisation: values that could not be written
       are dropped rather than kept growing. */
    ix_cache_free(ix);
    if (rc == 0 && ix_meta_same(&c.before, &ix->seen))
        ix->seen = c.after; /* nobody else wrote since this handle looked */
    if (rc == 0 || rc == IX_RETRY) {
        /* IX_RETRY: the index was rebuilt elsewhere; the next sync
           renumbers everything anyway. */
        uint64_t modseq = c.start_modseq + ix->gone_count;
        for (size_t i = 0; i < ix->count; i++) {
            if (ix->extra[i].dirty) {
                ix->msgs[i].modseq = ++modseq;
                ix->extra[i].dirty = 0;
            }
        }
        modseq += ix->pending_count;
        pending_free(ix);
        if (rc == 0)
            ix->meta.modseq = modseq;
        rc = 0;
    }
    if (rc != 0) {
        msg_warn("mailbox index %s: write: %s", ix->db_path, ix_rc_text(rc));
        errno = rc > 0 ? rc : EIO;
        return -1;
    }
    for (size_t i = 0; i < ix->gone_count; i++)
        free(ix->gone[i].base);
    ix->gone_count = 0;
    ix->dirty_count = 0;
    ix_map_release(ix->e);
    return 0;
}

/*
 * Dropping the array.
 */

void mailbox_index_drop_messages(struct mailbox_index *ix)
{
    if (ix->dropped)
        return;
    /* Changes not yet written move over to pending (UID order kept). */
    for (size_t i = 0; i < ix->count; i++) {
        if (!ix->extra[i].dirty) {
            ix_msg_free(&ix->msgs[i]);
            continue;
        }
        if (ix->pending_count == ix->pending_alloc) {
            ix->pending_alloc = ix->pending_alloc ? ix->pending_alloc * 2 : 16;
            ix->pending = xreallocarray(ix->pending, ix->pending_alloc, sizeof(*ix->pending));
        }
        ix->pending[ix->pending_count].m = ix->msgs[i];
        ix->pending[ix->pending_count++].x = ix->extra[i];
    }
    xfree(&ix->msgs);
    xfree(&ix->extra);
    ix->count = 0;
    ix->dropped = 1;
    ix->lookups = 0;
    if (ix->e != NULL)
        ix_map_release(ix->e);
}

/* Rebuilds the array of a dropped handle from LMDB, then lays what is
   not yet written (pending, gone) over it. */
static void undrop(struct mailbox_index *ix)
{
    if (ix_unwritten(ix) && mailbox_index_flush(ix) < 0)
        msg_warn("mailbox index %s: cannot write pending changes: %m", ix->db_path);
    ix_load_array(ix);
    ix->dropped = 0;
    size_t c = 0;
    for (size_t i = 0; i < ix->count; i++) {
        int found;
        (void)gone_pos(ix, ix->msgs[i].uid, &found);
        if (found) {
            ix_msg_free(&ix->msgs[i]);
            continue;
        }
        ix->msgs[c] = ix->msgs[i];
        ix->extra[c++] = ix->extra[i];
    }
    ix->count = c;
    ix->dirty_count = 0;
    for (size_t i = 0; i < ix->pending_count; i++) {
        struct pending *p = &ix->pending[i];
        ssize_t pos = ix_find_pos(ix, p->m.uid);
        if (pos < 0)
            continue;
        free(ix->msgs[pos].path);
        ix->msgs[pos].path = p->m.path;
        p->m.path = NULL;
        memcpy(ix->msgs[pos].flags, p->m.flags, sizeof(p->m.flags));
        ix->extra[pos].dirty = 1;
        ix->dirty_count++;
    }
    pending_free(ix);
    if (ix->e != NULL)
        ix_map_release(ix->e);
}
