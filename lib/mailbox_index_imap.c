/*
 * NAME
 *	mailbox_index_imap - what imapd needs beyond pop3d: registering a
 *	file it placed, the staleness check, and the per-message cache
 * DESCRIPTION
 *	See the "For imapd" block of mailbox_index.h and
 *	docs/mailbox-index.md.
 *
 *	\Recent follows Dovecot's scheme: the meta data keeps the first
 *	UID that no session has claimed yet ("firstrecent");
 *	mailbox_index_claim_recent() moves it to UIDNEXT in a write
 *	transaction of its own and tells the claiming session where it
 *	was, so every message is \Recent for exactly one read-write
 *	session, whichever directory its file is in.
 *
 *	UIDVALIDITY: a new index takes the time, but never a value at or
 *	below the last one handed out to the same folder (its lock file)
 *	or to any folder of the user (the root Maildir's
 *	postern-uidvalidity, read and written under flock), so a folder
 *	deleted and created again within a second still gets a new one
 *	(RFC 3501 2.3.1.1).
 *
 *	mailbox_index_add() gives one file the next UID in its own write
 *	transaction (APPEND, COPY and MOVE answer with the UID at once,
 *	UIDPLUS) and appends it to the handle's array: UIDs only grow, so
 *	the array stays sorted even when other handles added messages the
 *	array does not hold yet.
 *
 *	mailbox_index_stale() answers "must I sync?" before every IMAP
 *	command without listing the directories: a change to new/ or cur/
 *	(delivery, rename by a flag change, unlink by an expunge, whoever
 *	made it) moves the directory's mtime; a write to the index by
 *	another handle or process moves its meta data (every message change
 *	takes a modseq); a rebuild replaces the index file. The meta data a
 *	handle "has seen" is what its last sync installed, moved along by
 *	its own writes only when nobody else wrote in between.
 *
 *	The cache ("cache" database, key UID + kind) keeps derived text
 *	(ENVELOPE, BODYSTRUCTURE) beside the record; every path that deletes
 *	a record deletes its cache values in the same transaction. Values
 *	are collected per handle and written with the next flush (sync,
 *	close, mailbox_index_flush, or when 4,096 values or 1 MiB wait), so a
 *	FETCH over many messages costs a few commits, not one per message.
 * LIMITS
 *	Cache values up to MAILBOX_INDEX_CACHE_MAX bytes, kinds 0..65535;
 *	at most CACHE_PENDING_MAX values / CACHE_PENDING_BYTES bytes wait
 *	for a flush. A directory mtime within MTIME_TRUST_NSEC (100 ms) before
 *	a sync's start is not trusted: stale() returns 1 until a later sync.
 *	UIDVALIDITY values count up from the time; should one reach
 *	2^32 - 1 (in 2106, or after four billion creations in a second)
 *	the time is taken again.
 * DIAGNOSTICS
 *	A root UIDVALIDITY file that cannot be opened or written is logged
 *	with msg_warn; the folder's own lock file still keeps its values
 *	growing. LMDB failures are logged with msg_warn and returned as errno (EIO
 *	for bad index data; the next sync rebuilds the index).
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mailbox_index.h"
#include "xalloc.h"

#include "mailbox_index_private.h"

static uint32_t uid_from_key(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int rc_errno(int rc)
{
    if (rc == IX_EXISTS)
        return EEXIST;
    if (rc == IX_REBUILT)
        return ESTALE;
    if (rc == IX_UIDS_OUT)
        return EOVERFLOW;
    return rc > 0 ? rc : EIO;
}

/*
 * Registering a file.
 */

struct add_ctx {
    struct mailbox_index *ix;
    struct mailbox_msg *m;
    const struct msg_extra *x;
    uint32_t existing;
    struct meta before, after;
};

static int add_apply(MDB_txn *txn, struct index_env *e, void *vctx)
{
    struct add_ctx *c = vctx;
    struct meta m;
    int rc = ix_meta_load(txn, e, &m);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
    if (m.uidvalidity != c->ix->meta.uidvalidity)
        return IX_REBUILT;
    MDB_val bk = { strlen(c->m->base), c->m->base }, bv;
    rc = mdb_get(txn, e->bases, &bk, &bv);
    if (rc == 0) {
        if (bv.mv_size != 4)
            return IX_CORRUPT;
        c->existing = uid_from_key(bv.mv_data);
        return IX_EXISTS;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    /* As in the sync: the last UID is never handed out, running out
       means a rebuild with a new UIDVALIDITY (done by the next sync). */
    if ((uint64_t)m.uidnext + 1 >= UINT32_MAX)
        return IX_UIDS_OUT;
    c->before = m;
    c->m->uid = m.uidnext++;
    c->m->modseq = ++m.modseq;
    unsigned char key[4], rec[RECORD_MAX];
    ix_uid_key(c->m->uid, key);
    MDB_val k = { 4, key }, v = { ix_record_encode(c->m, c->x, rec), rec };
    if ((rc = mdb_put(txn, e->msgs, &k, &v, MDB_NOOVERWRITE)) != 0)
        return rc == MDB_KEYEXIST ? IX_CORRUPT : rc;
    bv.mv_size = 4;
    bv.mv_data = key;
    if ((rc = mdb_put(txn, e->bases, &bk, &bv, 0)) != 0)
        return rc;
    if ((rc = ix_meta_put(txn, e, &m)) != 0)
        return rc;
    c->after = m;
    return 0;
}

/* Fills the sizes of m and x from the file: from the name when lib/maildir.c
   wrote every size into it and S= matches, else by reading it once. */
static int measure(int fd, const struct stat *st, const struct maildir_name *p,
                   struct mailbox_msg *m, struct msg_extra *x)
{
    if (p->has_size && p->has_crlf_size && p->has_pop3_size && p->size <= p->crlf_size &&
        p->crlf_size <= p->pop3_size && p->size == (uint64_t)st->st_size) {
        m->size = p->size;
        m->crlf_size = p->crlf_size;
        x->dot_lines = p->pop3_size - p->crlf_size; /* only the sum counts */
        x->final_newline = 1;
        return 0;
    }
    struct mailbox_msg_counts n;
    if (mailbox_index_count_fd(fd, &n) < 0)
        return -1;
    m->size = n.size;
    m->crlf_size = n.crlf_size;
    x->dot_lines = n.dot_lines;
    x->final_newline = (uint8_t)n.final_newline;
    return 0;
}

int mailbox_index_add(struct mailbox_index *ix, const char *relpath, int64_t internal_date,
                      uint32_t *uid_r)
{
    *uid_r = 0;
    struct maildir_name p;
    if ((strncmp(relpath, "new/", 4) != 0 && strncmp(relpath, "cur/", 4) != 0) ||
        mailbox_index_parse_name(relpath + 4, strlen(relpath + 4), &p) < 0) {
        errno = EINVAL;
        return -1;
    }
    char *full = xasprintf("%s/%s", ix->maildir, relpath);
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    free(full);
    if (fd < 0)
        return -1; /* ELOOP for a symlink: not ours to index */
    struct stat st;
    struct mailbox_msg m;
    struct msg_extra x;
    memset(&m, 0, sizeof(m));
    memset(&x, 0, sizeof(x));
    if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && (errno = EINVAL)) ||
        measure(fd, &st, &p, &m, &x) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    m.internal_date = internal_date != 0 ? internal_date : (int64_t)st.st_mtime;
    snprintf(m.flags, sizeof(m.flags), "%s", p.flags);

    /* Earlier changes first: an expunged message's unique part must not
       be deleted after this record was written. */
    if (ix_unwritten(ix))
        (void)mailbox_index_flush(ix);
    if (ix_index_ready(ix, NULL) < 0)
        return -1;
    if (ix_env_replaced(ix)) {
        errno = ESTALE; /* a sync attaches to the new file */
        return -1;
    }
    m.base = xstrndup(relpath + 4, p.base_len);
    m.path = xstrdup(relpath);
    struct add_ctx c = { .ix = ix, .m = &m, .x = &x };
    int rc = ix_txn_write(ix->e, add_apply, &c);
    if (rc != 0) {
        ix_msg_free(&m);
        if (rc == IX_EXISTS)
            *uid_r = c.existing;
        else if (rc != IX_REBUILT)
            msg_warn("mailbox index %s: add %s: %s", ix->db_path, relpath, ix_rc_text(rc));
        errno = rc_errno(rc);
        return -1;
    }
    *uid_r = m.uid;
    ix->meta.uidnext = c.after.uidnext;
    ix->meta.modseq = c.after.modseq;
    ix->meta.first_recent = c.after.first_recent;
    if (ix_meta_same(&c.before, &ix->seen))
        ix->seen = c.after;
    if (!ix->dropped && (ix->count == 0 || ix->msgs[ix->count - 1].uid < m.uid)) {
        ix->msgs = xreallocarray(ix->msgs, ix->count + 1, sizeof(*ix->msgs));
        ix->extra = xreallocarray(ix->extra, ix->count + 1, sizeof(*ix->extra));
        ix->msgs[ix->count] = m;
        ix->extra[ix->count++] = x;
    } else {
        ix_msg_free(&m);
    }
    return 0;
}

uint32_t mailbox_index_uid_of_base(struct mailbox_index *ix, const char *base)
{
    size_t len = strlen(base);
    if (len == 0 || len > NAME_LIMIT || strchr(base, '/') != NULL)
        return 0;
    for (size_t i = 0; i < ix->gone_count; i++)
        if (strcmp(ix->gone[i].base, base) == 0)
            return 0; /* expunged, not yet written */
    if (ix_index_ready(ix, NULL) < 0)
        return 0;
    MDB_txn *txn;
    int rc = ix_txn_begin(ix->e, MDB_RDONLY, &txn);
    if (rc != 0) {
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
        return 0;
    }
    MDB_val k = { len, (void *)base }, v;
    uint32_t uid = 0;
    rc = mdb_get(txn, ix->e->bases, &k, &v);
    if (rc == 0 && v.mv_size == 4)
        uid = uid_from_key(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
    mdb_txn_abort(txn);
    return uid;
}

/*
 * \Recent.
 */

uint32_t mailbox_index_first_recent_uid(const struct mailbox_index *ix)
{
    return ix->meta.first_recent;
}

struct claim_ctx {
    struct mailbox_index *ix;
    struct meta m;
};

static int claim_apply(MDB_txn *txn, struct index_env *e, void *vctx)
{
    struct claim_ctx *c = vctx;
    int rc = ix_meta_load(txn, e, &c->m);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? IX_CORRUPT : rc;
    if (c->m.uidvalidity != c->ix->meta.uidvalidity)
        return IX_REBUILT;
    if (c->m.first_recent >= c->m.uidnext)
        return 0; /* nothing to claim: LMDB commits an untouched transaction for free */
    struct meta m = c->m;
    m.first_recent = m.uidnext;
    return ix_meta_put(txn, e, &m);
}

int mailbox_index_claim_recent(struct mailbox_index *ix, uint32_t *first_r)
{
    *first_r = 0;
    if (ix_index_ready(ix, NULL) < 0)
        return -1;
    if (ix_env_replaced(ix)) {
        errno = ESTALE;
        return -1;
    }
    struct claim_ctx c = { .ix = ix };
    int rc = ix_txn_write(ix->e, claim_apply, &c);
    if (rc != 0) {
        if (rc != IX_REBUILT)
            msg_warn("mailbox index %s: claim recent: %s", ix->db_path, ix_rc_text(rc));
        errno = rc_errno(rc);
        return -1;
    }
    *first_r = c.m.first_recent;
    if (c.m.uidnext > ix->meta.first_recent)
        ix->meta.first_recent = c.m.uidnext;
    return 0;
}

/*
 * UIDVALIDITY.
 */

/* Up to ten leading digits of a file, 0 when there are none or the
   value does not fit. */
static uint32_t number_at_start(int fd)
{
    char text[16];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    uint64_t v = 0;
    for (ssize_t i = 0; i < n && i < 10 && text[i] >= '0' && text[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(text[i] - '0');
    return v > UINT32_MAX ? 0 : (uint32_t)v;
}

static int number_write(int fd, uint32_t v)
{
    char text[16];
    int len = snprintf(text, sizeof(text), "%010u\n", v);
    if (pwrite(fd, text, (size_t)len, 0) != len)
        return -1;
    return ftruncate(fd, len);
}

/* The user's root Maildir: a Maildir++ folder (it holds "maildirfolder")
   lives directly in it; anything else is a root itself. */
static char *root_file(const struct mailbox_index *ix)
{
    char *marker = xasprintf("%s/maildirfolder", ix->maildir);
    struct stat st;
    int folder = lstat(marker, &st) == 0;
    free(marker);
    size_t len = strlen(ix->maildir);
    while (len > 1 && ix->maildir[len - 1] == '/')
        len--;
    if (!folder)
        return xasprintf("%.*s/%s", (int)len, ix->maildir, UIDVALIDITY_NAME);
    while (len > 0 && ix->maildir[len - 1] != '/')
        len--;
    while (len > 1 && ix->maildir[len - 1] == '/')
        len--;
    if (len == 0)
        return xstrdup(UIDVALIDITY_NAME); /* a relative "Folder": the root is "." */
    return xasprintf("%.*s/%s", (int)len, ix->maildir, UIDVALIDITY_NAME);
}

uint32_t ix_uidvalidity_new(const struct mailbox_index *ix, uint32_t *previous_r)
{
    uint32_t last = 0;
    int fd = open(ix->lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        last = number_at_start(fd);
        close(fd);
    }
    *previous_r = last;
    char *root = root_file(ix);
    fd = open(root, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        msg_warn("mailbox index: open %s: %m", root);
    } else {
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                msg_warn("mailbox index: lock %s: %m", root);
                break;
            }
        }
        uint32_t r = number_at_start(fd);
        if (r > last)
            last = r;
    }
    time_t now = time(NULL);
    uint32_t v = now > 0 && (uint64_t)now < UINT32_MAX ? (uint32_t)now : 1;
    if (last != 0 && last < UINT32_MAX && v <= last)
        v = last + 1;
    if (fd >= 0) {
        /* Synced: a value handed out must not come back after a crash. */
        if (number_write(fd, v) < 0 || fsync(fd) < 0)
            msg_warn("mailbox index: write %s: %m", root);
        close(fd); /* drops the flock */
    }
    free(root);
    return v;
}

void ix_uidvalidity_note(const struct mailbox_index *ix, uint32_t uidvalidity)
{
    int fd = open(ix->lock_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        msg_warn("mailbox index: open %s: %m", ix->lock_path);
        return;
    }
    char text[16];
    int len = snprintf(text, sizeof(text), "%010u\n", uidvalidity);
    if (pwrite(fd, text, (size_t)len, 0) != len)
        msg_warn("mailbox index: write %s: %m", ix->lock_path);
    close(fd);
}

/*
 * Staleness.
 */

int mailbox_index_stale(struct mailbox_index *ix)
{
    if (!ix->synced || ix->dropped || ix->e == NULL || ix->e->pid != getpid())
        return 1;
    for (int i = 0; i < 2; i++) {
        if (!ix->dir_trusted[i])
            return 1;
        char *path = xasprintf("%s/%s", ix->maildir, i ? "cur" : "new");
        struct stat st;
        int exists = stat(path, &st) == 0;
        free(path);
        if (exists != ix->dir_exists[i])
            return 1;
        if (exists && (st.st_mtim.tv_sec != ix->dir_mtime[i].tv_sec ||
                       st.st_mtim.tv_nsec != ix->dir_mtime[i].tv_nsec))
            return 1;
    }
    return ix_env_replaced(ix) || !ix_meta_unchanged(ix);
}

int ix_meta_unchanged(const struct mailbox_index *ix)
{
    MDB_txn *txn;
    if (ix_txn_begin(ix->e, MDB_RDONLY, &txn) != 0)
        return 0;
    struct meta m;
    int rc = ix_meta_load(txn, ix->e, &m);
    mdb_txn_abort(txn);
    return rc == 0 && ix_meta_same(&m, &ix->seen);
}

uint64_t mailbox_index_highest_modseq(const struct mailbox_index *ix)
{
    return ix->meta.modseq;
}

/*
 * The cache.
 */

static void cache_key(uint32_t uid, unsigned kind, unsigned char out[CACHE_KEY])
{
    ix_uid_key(uid, out);
    out[4] = (unsigned char)(kind >> 8);
    out[5] = (unsigned char)kind;
}

static size_t cache_pos(const struct mailbox_index *ix, uint32_t uid, unsigned kind,
                        int *found_r)
{
    size_t lo = 0, hi = ix->cache_count;
    uint64_t want = (uint64_t)uid << 16 | kind;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t at = (uint64_t)ix->cache[mid].uid << 16 | ix->cache[mid].kind;
        if (at == want) {
            *found_r = 1;
            return mid;
        }
        if (at < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found_r = 0;
    return lo;
}

void ix_cache_free(struct mailbox_index *ix)
{
    for (size_t i = 0; i < ix->cache_count; i++)
        free(ix->cache[i].data);
    xfree(&ix->cache);
    ix->cache_count = ix->cache_alloc = ix->cache_bytes = 0;
}

int ix_cache_drop(MDB_txn *txn, struct index_env *e, uint32_t uid)
{
    unsigned char start[CACHE_KEY];
    cache_key(uid, 0, start);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, e->cache, &cur);
    if (rc != 0)
        return rc;
    for (;;) {
        MDB_val k = { CACHE_KEY, start }, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < 4 || memcmp(k.mv_data, start, 4) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int ix_cache_write(MDB_txn *txn, struct index_env *e, struct mailbox_index *ix)
{
    for (size_t i = 0; i < ix->cache_count; i++) {
        const struct cache_pending *c = &ix->cache[i];
        unsigned char key[CACHE_KEY];
        cache_key(c->uid, c->kind, key);
        /* Only beside a record: an orphan would never be deleted. */
        MDB_val rk = { 4, key }, rv;
        int rc = mdb_get(txn, e->msgs, &rk, &rv);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        MDB_val k = { CACHE_KEY, key }, v = { c->len, c->data };
        if ((rc = mdb_put(txn, e->cache, &k, &v, 0)) != 0)
            return rc;
    }
    return 0;
}

static char *copy_value(const void *data, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (len > 0)
        memcpy(copy, data, len);
    copy[len] = '\0';
    return copy;
}

int mailbox_index_cache_get(struct mailbox_index *ix, uint32_t uid, unsigned kind,
                            char **data_r, size_t *len_r)
{
    *data_r = NULL;
    *len_r = 0;
    int found;
    if (kind > 0xffff || uid == 0)
        return 0;
    (void)ix_gone_pos(ix, uid, &found);
    if (found)
        return 0;
    size_t at = cache_pos(ix, uid, kind, &found);
    if (found) {
        *data_r = copy_value(ix->cache[at].data, ix->cache[at].len);
        *len_r = ix->cache[at].len;
        return 1;
    }
    if (ix_index_ready(ix, NULL) < 0)
        return 0;
    MDB_txn *txn;
    int rc = ix_txn_begin(ix->e, MDB_RDONLY, &txn);
    if (rc != 0) {
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
        return 0;
    }
    unsigned char key[CACHE_KEY];
    cache_key(uid, kind, key);
    MDB_val k = { CACHE_KEY, key }, v;
    int result = 0;
    rc = mdb_get(txn, ix->e->cache, &k, &v);
    if (rc == 0 && v.mv_size <= MAILBOX_INDEX_CACHE_MAX) {
        *data_r = copy_value(v.mv_data, v.mv_size);
        *len_r = v.mv_size;
        result = 1;
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        msg_warn("mailbox index %s: read: %s", ix->db_path, ix_rc_text(rc));
    }
    mdb_txn_abort(txn);
    /* A FETCH over every message would otherwise keep the whole map
       resident (see ix_map_release). */
    if (++ix->lookups >= RELEASE_EVERY) {
        ix->lookups = 0;
        ix_map_release(ix->e);
    }
    return result;
}

int mailbox_index_cache_put(struct mailbox_index *ix, uint32_t uid, unsigned kind,
                            const char *data, size_t len)
{
    if (kind > 0xffff || uid == 0 || len > MAILBOX_INDEX_CACHE_MAX ||
        (data == NULL && len > 0)) {
        errno = EINVAL;
        return -1;
    }
    /* Not for a message this handle has expunged or never seen (the
       write would skip it anyway). */
    if (mailbox_index_find(ix, uid) == NULL) {
        errno = ENOENT;
        return -1;
    }
    int found;
    size_t at = cache_pos(ix, uid, kind, &found);
    if (found) {
        ix->cache_bytes -= ix->cache[at].len;
        free(ix->cache[at].data);
    } else {
        if (ix->cache_count == ix->cache_alloc) {
            ix->cache_alloc = ix->cache_alloc ? ix->cache_alloc * 2 : 16;
            ix->cache = xreallocarray(ix->cache, ix->cache_alloc, sizeof(*ix->cache));
        }
        memmove(&ix->cache[at + 1], &ix->cache[at],
                (ix->cache_count - at) * sizeof(*ix->cache));
        ix->cache_count++;
        ix->cache[at].uid = uid;
        ix->cache[at].kind = kind;
    }
    ix->cache[at].data = copy_value(data, len);
    ix->cache[at].len = len;
    ix->cache_bytes += len;
    if (ix->cache_count >= CACHE_PENDING_MAX || ix->cache_bytes >= CACHE_PENDING_BYTES)
        return mailbox_index_flush(ix);
    return 0;
}
