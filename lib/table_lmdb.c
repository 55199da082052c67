/*
 * NAME
 *	table_lmdb - lmdb:/path tables and their builder (postmap, postalias)
 * DESCRIPTION
 *	lmdb:/path reads the LMDB file /path.lmdb (one file, MDB_NOSUBDIR),
 *	built from the text file /path by table_lmdb_build():
 *	  postmap format   "key value"   (value: the rest of the line)
 *	  postalias format "key: value"  (key may be quoted "...", with \"
 *	                                  and \\ escapes inside the quotes)
 *	'#' comment lines and blank lines are skipped; a line starting with
 *	whitespace continues the previous entry (joined with one space).
 *	Keys are folded to lowercase at build and at lookup. When a key
 *	appears twice the FIRST entry is kept and the later one is reported
 *	as "file:line: duplicate entry".
 *
 *	A .lmdb file is never written in place: the builder writes
 *	path.lmdb.tmp, syncs it, renames it over path.lmdb and syncs the
 *	directory. Readers therefore see an immutable file and open it with
 *	MDB_NOLOCK: no reader can see a page recycled by a writer because
 *	there is no writer, and a shared lock file would be worse than none,
 *	since LMDB keeps the last transaction id of the file in it and that
 *	lock file would outlive the inode it describes after every rename.
 *	It also means a reader needs nothing but read permission on the
 *	.lmdb file (no lock file to create), so unprivileged daemons can
 *	read tables that root built.
 *
 *	The environment is opened at the first lookup (so a table opened
 *	before fork works in the child), reopened in a child after fork,
 *	and reopened when path.lmdb was replaced: at most once per second a
 *	lookup compares the file's device, inode, size and mtime with the
 *	open one. Read transactions last one lookup; values are copied out
 *	before they end.
 *
 *	A pinned table (table_jail_seal, before a chroot) is opened at once
 *	and never reopened: its path means nothing inside the chroot. When
 *	the open file has been replaced (its link count dropped to zero),
 *	one warning says so; lookups go on answering from the old file
 *	until the process is restarted (table_jail_changed tells the
 *	server skeleton, which restarts event servers).
 * DIAGNOSTICS
 *	Bad source lines are warnings naming file:line and are skipped. A
 *	missing or unreadable .lmdb is a TABLE_ERROR at lookup.
 * LIMITS
 *	Source files up to 1 GiB; keys up to LMDB's maximum (511 bytes);
 *	the map starts at 10 MiB and doubles on MDB_MAP_FULL up to 1 GiB.
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
#include "safe_file.h"
#include "table_impl.h"
#include "xalloc.h"

#define LMDB_MAP_START ((size_t)10 * 1024 * 1024)
#define LMDB_MAP_MAX ((size_t)1024 * 1024 * 1024)
#define LMDB_SOURCE_MAX ((size_t)1024 * 1024 * 1024)
#define LMDB_CHECK_MS 1000

/*
 * Reader.
 */

struct lmdb_table {
    struct table t;
    char *dbpath;           /* "<name>.lmdb" */
    MDB_env *env;           /* NULL until the first lookup */
    pid_t pid;              /* process that opened env */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    long long checked_ms;   /* monotonic time of the last identity check */
    int pinned;             /* opened before a chroot: never reopened by path */
    int replaced_logged;    /* pinned, and the file was replaced: said once */
};

static long long lmdb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int lmdb_same_file(const struct lmdb_table *lt, const struct stat *st)
{
    return st->st_dev == lt->dev && st->st_ino == lt->ino && st->st_size == lt->size
           && st->st_mtim.tv_sec == lt->mtime.tv_sec && st->st_mtim.tv_nsec == lt->mtime.tv_nsec;
}

static void lmdb_reader_close(struct lmdb_table *lt)
{
    if (lt->env != NULL)
        mdb_env_close(lt->env);
    lt->env = NULL;
}

static int lmdb_reader_open(struct lmdb_table *lt, const char **error_r)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc != 0) {
        *error_r = table_error("%s: mdb_env_create: %s", lt->t.spec, mdb_strerror(rc));
        return -1;
    }
    rc = mdb_env_open(env, lt->dbpath, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0);
    if (rc != 0) {
        mdb_env_close(env);
        *error_r = table_error("%s: cannot open %s: %s", lt->t.spec, lt->dbpath,
                               mdb_strerror(rc));
        return -1;
    }
    /* Remember the identity of what was actually opened, not of what a
       stat() before the open saw: a rename may happen in between. */
    int fd;
    struct stat st;
    if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0) {
        mdb_env_close(env);
        *error_r = table_error("%s: cannot stat %s: %s", lt->t.spec, lt->dbpath,
                               strerror(errno));
        return -1;
    }
    lt->env = env;
    lt->pid = getpid();
    lt->dev = st.st_dev;
    lt->ino = st.st_ino;
    lt->size = st.st_size;
    lt->mtime = st.st_mtim;
    lt->checked_ms = lmdb_now_ms();
    return 0;
}

/* A pinned table: the environment opened before the chroot, or nothing. */
static int lmdb_pinned_ready(struct lmdb_table *lt, const char **error_r)
{
    if (lt->env == NULL) {
        *error_r = table_error("%s: %s could not be opened before the chroot", lt->t.spec,
                               lt->dbpath);
        return -1;
    }
    long long now = lmdb_now_ms();
    if (!lt->replaced_logged && now - lt->checked_ms >= LMDB_CHECK_MS) {
        int fd;
        struct stat st;
        lt->checked_ms = now;
        if (mdb_env_get_fd(lt->env, &fd) == 0 && fstat(fd, &st) == 0 && st.st_nlink == 0) {
            msg_warn("%s: %s was rebuilt; this chrooted process can only read the old "
                     "file until it restarts", lt->t.spec, lt->dbpath);
            lt->replaced_logged = 1;
            table_jail_note_changed();
        }
    }
    return 0;
}

/* Makes lt->env usable: opens it lazily, after fork, or after a rebuild. */
static int lmdb_reader_ready(struct lmdb_table *lt, const char **error_r)
{
    if (lt->pinned)
        return lmdb_pinned_ready(lt, error_r);
    if (lt->env != NULL && lt->pid != getpid())
        lmdb_reader_close(lt);
    if (lt->env != NULL) {
        long long now = lmdb_now_ms();
        if (now - lt->checked_ms >= LMDB_CHECK_MS) {
            struct stat st;
            lt->checked_ms = now;
            if (stat(lt->dbpath, &st) != 0) {
                int saved = errno;
                lmdb_reader_close(lt);
                *error_r = table_error("%s: cannot stat %s: %s", lt->t.spec, lt->dbpath,
                                       strerror(saved));
                return -1;
            }
            if (!lmdb_same_file(lt, &st)) {
                msg_debug("%s: %s changed; reopening", lt->t.spec, lt->dbpath);
                lmdb_reader_close(lt);
            }
        }
    }
    if (lt->env == NULL)
        return lmdb_reader_open(lt, error_r);
    return 0;
}

static enum table_result lmdb_lookup(struct table *table, const char *key, char **value_r,
                                     const char **error_r)
{
    struct lmdb_table *lt = (struct lmdb_table *)table;
    if (lmdb_reader_ready(lt, error_r) != 0)
        return TABLE_ERROR;

    size_t klen = strlen(key);
    if (klen == 0 || klen > (size_t)mdb_env_get_maxkeysize(lt->env))
        return TABLE_NOTFOUND;   /* such a key cannot have been stored */
    char *folded = xstrdup(key);
    table_fold(folded);

    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = { .mv_size = klen, .mv_data = folded };
    MDB_val v;
    enum table_result res;
    int rc = mdb_txn_begin(lt->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        if (rc == 0)
            rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0) {
            char *value = xmalloc(v.mv_size + 1);
            memcpy(value, v.mv_data, v.mv_size);
            value[v.mv_size] = '\0';
            *value_r = value;
        }
        mdb_txn_abort(txn);
    }
    free(folded);
    if (rc == 0)
        res = TABLE_FOUND;
    else if (rc == MDB_NOTFOUND)
        res = TABLE_NOTFOUND;
    else {
        *error_r = table_error("%s: lookup: %s", lt->t.spec, mdb_strerror(rc));
        res = TABLE_ERROR;
    }
    return res;
}

static long lmdb_foreach(struct table *table, table_foreach_fn *cb, void *ctx,
                         const char **error_r)
{
    struct lmdb_table *lt = (struct lmdb_table *)table;
    if (lmdb_reader_ready(lt, error_r) != 0)
        return -1;

    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    struct buf key, value;
    long count = 0;
    int rc = mdb_txn_begin(lt->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        *error_r = table_error("%s: %s", lt->t.spec, mdb_strerror(rc));
        return -1;
    }
    buf_init(&key, 0);
    buf_init(&value, 0);
    rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (rc == 0)
        rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc == 0) {
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            buf_reset(&key);
            buf_reset(&value);
            buf_append(&key, k.mv_data, k.mv_size);
            buf_append(&value, v.mv_data, v.mv_size);
            cb(key.data, value.data, ctx);
            count++;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    buf_free(&key);
    buf_free(&value);
    if (rc != MDB_NOTFOUND) {
        *error_r = table_error("%s: %s", lt->t.spec, mdb_strerror(rc));
        return -1;
    }
    return count;
}

static void lmdb_free(struct table *table)
{
    struct lmdb_table *lt = (struct lmdb_table *)table;
    lmdb_reader_close(lt);
    free(lt->dbpath);
    free(lt);
}

static void lmdb_pin(struct table *table)
{
    struct lmdb_table *lt = (struct lmdb_table *)table;
    const char *error;
    if (lt->env == NULL && lmdb_reader_open(lt, &error) < 0)
        msg_debug("%s", error);   /* reported at lookup, by the daemon that uses it */
    lt->pinned = 1;
}

static const struct table_ops lmdb_ops = {
    .type = "lmdb",
    .lookup = lmdb_lookup,
    .foreach = lmdb_foreach,
    .free = lmdb_free,
    .pin = lmdb_pin,
};

struct table *table_lmdb_open(const char *name, const char **error_r)
{
    if (*name == '\0') {
        *error_r = table_error("lmdb: missing file name");
        return NULL;
    }
    struct lmdb_table *lt = xcalloc(1, sizeof(*lt));
    lt->t.ops = &lmdb_ops;
    lt->dbpath = xasprintf("%s.lmdb", name);
    return &lt->t;
}

/*
 * Source parsing.
 */

struct lmdb_entry {
    char *key;
    char *value;
    size_t klen;
    size_t lineno;
};

static int lmdb_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Parses a quoted alias key at p ('"'); returns a pointer after the
   closing quote with the unescaped key in *key_r, or NULL. */
static const char *lmdb_parse_quoted(const char *p, char **key_r)
{
    struct buf key;
    buf_init(&key, 0);
    for (p++; *p != '"'; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        if (*p == '\0') {
            buf_free(&key);
            return NULL;
        }
        buf_append_char(&key, *p);
    }
    *key_r = buf_steal(&key);
    buf_free(&key);
    return p + 1;
}

/* Splits a logical line (trimmed) into a new key and value. Returns NULL,
   or why the line is bad (nothing allocated then). */
static const char *lmdb_parse_entry(const char *line, int alias_format, char **key_r,
                                    char **value_r)
{
    const char *p, *v;
    char *key;

    if (!alias_format) {
        for (p = line; *p != '\0' && !lmdb_blank(*p); p++)
            ;
        for (v = p; lmdb_blank(*v); v++)
            ;
        if (*v == '\0')
            return "expected format: key whitespace value";
        key = xstrndup(line, (size_t)(p - line));
    } else {
        if (*line == '"') {
            p = lmdb_parse_quoted(line, &key);
            if (p == NULL)
                return "missing closing '\"' in the key";
            while (lmdb_blank(*p))
                p++;
            if (*p != ':') {
                free(key);
                return "expected format: \"key\": value";
            }
        } else {
            p = strchr(line, ':');
            if (p == NULL)
                return "expected format: key: value";
            const char *e = p;
            while (e > line && lmdb_blank(e[-1]))
                e--;
            key = xstrndup(line, (size_t)(e - line));
        }
        for (v = p + 1; lmdb_blank(*v); v++)
            ;
        if (*v == '\0') {
            free(key);
            return "expected format: key: value (the value is empty)";
        }
    }
    if (*key == '\0') {
        free(key);
        return "empty key";
    }
    table_fold(key);
    *key_r = key;
    *value_r = xstrdup(v);   /* the line is trimmed already */
    return NULL;
}

/* The order of LMDB's default key comparison (bytes, then length), so
   entries can be written with MDB_APPEND; ties keep file order. */
static int lmdb_entry_cmp(const void *a, const void *b)
{
    const struct lmdb_entry *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return x->lineno < y->lineno ? -1 : x->lineno > y->lineno;
}

static void lmdb_entries_free(struct lmdb_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ents[i].key);
        free(ents[i].value);
    }
    free(ents);
}

/*
 * Durable file helpers.
 */

static char *lmdb_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* Opens the directory of path and takes an exclusive flock on it:
   builds and edits of tables in one directory are serialized, without
   creating lock files next to the tables. Returns the fd or -1. */
static int lmdb_lock_dir(const char *path, const char **error_r)
{
    char *dir = lmdb_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = table_error("open directory %s: %s", dir, strerror(errno));
        free(dir);
        return -1;
    }
    int rc;
    do {
        rc = flock(fd, LOCK_EX);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        *error_r = table_error("lock directory %s: %s", dir, strerror(errno));
        close(fd);
        free(dir);
        return -1;
    }
    free(dir);
    return fd;
}

/* Gives fd the permissions of the source (readable by the same
   people) and, when running as root, its owner and group. */
static void lmdb_copy_owner(int fd, const struct stat *src)
{
    if (fchmod(fd, (src->st_mode & 07777) | S_IRUSR) != 0)
        msg_warn("fchmod: %s", strerror(errno));
    if (geteuid() == 0 && fchown(fd, src->st_uid, src->st_gid) != 0)
        msg_warn("fchown: %s", strerror(errno));
}

/* Writes the entries (sorted, unique) into a fresh LMDB file at tmp. */
static int lmdb_write_db(const char *tmp, const struct lmdb_entry *ents, size_t n,
                         const struct stat *src, const char **error_r)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    size_t mapsize = LMDB_MAP_START;
    int rc;

    if (unlink(tmp) != 0 && errno != ENOENT) {
        *error_r = table_error("unlink %s: %s", tmp, strerror(errno));
        return -1;
    }
    if ((rc = mdb_env_create(&env)) != 0) {
        *error_r = table_error("mdb_env_create: %s", mdb_strerror(rc));
        return -1;
    }
    if ((rc = mdb_env_set_mapsize(env, mapsize)) != 0
        || (rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK, 0600)) != 0) {
        *error_r = table_error("create %s: %s", tmp, mdb_strerror(rc));
        mdb_env_close(env);
        unlink(tmp);
        return -1;
    }
    for (;;) {
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc != 0)
            break;
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            MDB_val k = { .mv_size = ents[i].klen, .mv_data = ents[i].key };
            MDB_val v = { .mv_size = strlen(ents[i].value), .mv_data = ents[i].value };
            rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
        }
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
        if (rc != MDB_MAP_FULL)
            break;
        if (mapsize >= LMDB_MAP_MAX)
            break;
        mapsize *= 2;
        if ((rc = mdb_env_set_mapsize(env, mapsize)) != 0)
            break;
    }
    int fd = -1;
    if (rc == 0)
        rc = mdb_env_sync(env, 1);
    if (rc == 0 && mdb_env_get_fd(env, &fd) == 0) {
        lmdb_copy_owner(fd, src);
        if (fsync(fd) != 0)
            rc = errno;
    }
    mdb_env_close(env);
    if (rc != 0) {
        *error_r = table_error("write %s: %s%s", tmp, mdb_strerror(rc),
                               rc == MDB_MAP_FULL ? " (more than 1 GiB)" : "");
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int lmdb_rename_sync(const char *from, const char *to, int dirfd, const char **error_r)
{
    if (rename(from, to) != 0) {
        *error_r = table_error("rename %s to %s: %s", from, to, strerror(errno));
        unlink(from);
        return -1;
    }
    if (fsync(dirfd) != 0) {
        *error_r = table_error("fsync directory of %s: %s", to, strerror(errno));
        return -1;
    }
    return 0;
}

/* The build itself; the caller holds the directory lock (dirfd). */
static long lmdb_build_locked(const char *path, int alias_format, int dirfd,
                              const char **error_r)
{
    struct buf src;
    struct stat st;
    buf_init(&src, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        *error_r = table_error("open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (safe_read_file(path, &src, LMDB_SOURCE_MAX) != 0) {
        *error_r = table_error("read %s: %s", path, strerror(errno));
        buf_free(&src);
        return -1;
    }

    struct lmdb_entry *ents = NULL;
    size_t n = 0, alloc = 0;
    struct table_text text;
    const char *line;
    size_t lineno;
    table_text_init(&text, path, src.data, src.len);
    while (table_text_next(&text, &line, &lineno)) {
        char *key, *value;
        const char *why = lmdb_parse_entry(line, alias_format, &key, &value);
        if (why != NULL) {
            msg_warn("%s:%zu: %s; line ignored", path, lineno, why);
            continue;
        }
        size_t klen = strlen(key);
        /* 511 is LMDB's compiled-in maximum (mdb_env_get_maxkeysize). */
        if (klen > 511) {
            msg_warn("%s:%zu: key longer than 511 bytes; line ignored", path, lineno);
            free(key);
            free(value);
            continue;
        }
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            ents = xreallocarray(ents, alloc, sizeof(*ents));
        }
        ents[n++] = (struct lmdb_entry){ key, value, klen, lineno };
    }
    table_text_free(&text);
    buf_free(&src);

    if (n > 0)
        qsort(ents, n, sizeof(*ents), lmdb_entry_cmp);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && ents[out - 1].klen == ents[i].klen
            && memcmp(ents[out - 1].key, ents[i].key, ents[i].klen) == 0) {
            msg_warn("%s:%zu: duplicate entry \"%s\"; keeping the one at line %zu", path,
                     ents[i].lineno, ents[i].key, ents[out - 1].lineno);
            free(ents[i].key);
            free(ents[i].value);
            continue;
        }
        ents[out++] = ents[i];
    }

    char *tmp = xasprintf("%s.lmdb.tmp", path);
    char *db = xasprintf("%s.lmdb", path);
    long res = (long)out;
    if (lmdb_write_db(tmp, ents, out, &st, error_r) != 0
        || lmdb_rename_sync(tmp, db, dirfd, error_r) != 0)
        res = -1;
    free(tmp);
    free(db);
    lmdb_entries_free(ents, out);
    return res;
}

long table_lmdb_build(const char *path, int alias_format, const char **error_r)
{
    int dirfd = lmdb_lock_dir(path, error_r);
    if (dirfd < 0)
        return -1;
    long res = lmdb_build_locked(path, alias_format, dirfd, error_r);
    close(dirfd);
    return res;
}

/*
 * Editing the source (table_lmdb_update).
 */

/* The folded key of the entry starting on a physical line, or NULL. */
static char *lmdb_line_key(const char *line, size_t len, int alias_format)
{
    char *copy = xstrndup(line, len);
    char *key = NULL;
    if (alias_format && *copy == '"') {
        if (lmdb_parse_quoted(copy, &key) == NULL)
            key = NULL;
    } else {
        size_t e = 0;
        if (alias_format) {
            char *colon = strchr(copy, ':');
            e = colon ? (size_t)(colon - copy) : len;
            while (e > 0 && lmdb_blank(copy[e - 1]))
                e--;
        } else {
            while (e < len && !lmdb_blank(copy[e]))
                e++;
        }
        key = xstrndup(copy, e);
    }
    free(copy);
    if (key != NULL)
        table_fold(key);
    return key;
}

static int lmdb_guess_alias(const char *path, const char *data, size_t len)
{
    struct table_text text;
    const char *line;
    size_t lineno;
    int alias = -1;
    table_text_init(&text, path, data, len);
    if (table_text_next(&text, &line, &lineno)) {
        size_t tok = strcspn(line, " \t");
        alias = *line == '"' || (tok > 0 && line[tok - 1] == ':')
                || (strchr(line, ':') != NULL && line[tok] == '\0');
    }
    table_text_free(&text);
    if (alias < 0) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        alias = strncmp(base, "aliases", 7) == 0;
    }
    return alias;
}

/* Appends the source line for key/value in the given format. */
static const char *lmdb_format_entry(struct buf *out, int alias_format, const char *key,
                                     const char *value)
{
    if (*key == '\0' || strpbrk(key, "\r\n") != NULL || strlen(key) > 511)
        return "bad key (empty, a line break, or longer than 511 bytes)";
    while (lmdb_blank(*value))
        value++;
    size_t vlen = strlen(value);
    while (vlen > 0 && lmdb_blank(value[vlen - 1]))
        vlen--;
    if (vlen == 0 || memchr(value, '\n', vlen) != NULL || memchr(value, '\r', vlen) != NULL)
        return "bad value (empty or a line break)";
    if (!alias_format) {
        if (strpbrk(key, " \t\f\v") != NULL || *key == '#')
            return "bad key (whitespace, or '#' first)";
        buf_printf(out, "%s %.*s\n", key, (int)vlen, value);
    } else if (strpbrk(key, " \t\f\v:\"\\") != NULL || *key == '#') {
        buf_append_char(out, '"');
        for (const char *p = key; *p; p++) {
            if (*p == '"' || *p == '\\')
                buf_append_char(out, '\\');
            buf_append_char(out, *p);
        }
        buf_printf(out, "\": %.*s\n", (int)vlen, value);
    } else {
        buf_printf(out, "%s: %.*s\n", key, (int)vlen, value);
    }
    return NULL;
}

/* Rewrites data into out with key's entries replaced by (or removed for)
   the new line. Returns 1 if key was present, 0 if not, -1 on a bad
   key/value. */
static int lmdb_edit_text(const char *data, size_t len, int alias_format, const char *key,
                          const char *value, struct buf *out, const char **error_r)
{
    struct buf entry;
    char *want = xstrdup(key);
    int found = 0, dropping = 0, written = 0, in_entry = 0;
    buf_init(&entry, 0);
    table_fold(want);
    if (value != NULL) {
        const char *why = lmdb_format_entry(&entry, alias_format, key, value);
        if (why != NULL) {
            *error_r = table_error("%s", why);
            buf_free(&entry);
            free(want);
            return -1;
        }
    }
    for (size_t pos = 0; pos < len;) {
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t plen = nl ? (size_t)(nl - p) : len - pos;
        size_t next = pos + plen + (nl ? 1 : 0);
        size_t b = 0;
        while (b < plen && lmdb_blank(p[b]))
            b++;
        int copy = 1;
        if (b == plen || p[b] == '#') {
            /* blank or comment: always kept */
        } else if (b > 0 && in_entry) {
            copy = !dropping;   /* continuation of the current entry */
        } else if (b == 0) {
            in_entry = 1;
            char *k = lmdb_line_key(p, plen, alias_format);
            dropping = k != NULL && strcmp(k, want) == 0;
            free(k);
            if (dropping) {
                copy = 0;
                found = 1;
                if (value != NULL && !written) {
                    buf_append(out, entry.data, entry.len);
                    written = 1;
                }
            }
        }
        if (copy) {
            buf_append(out, p, next - pos);
            if (nl == NULL)
                buf_append_char(out, '\n');
        }
        pos = next;
    }
    if (value != NULL && !written)
        buf_append(out, entry.data, entry.len);
    buf_free(&entry);
    free(want);
    return found;
}

static int lmdb_write_source(const char *path, const struct buf *data, const struct stat *old,
                             int dirfd, const char **error_r)
{
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0;
    const char *what = "open";
    if (ok && old != NULL)
        lmdb_copy_owner(fd, old);
    for (size_t off = 0; ok && off < data->len;) {
        ssize_t n = write(fd, data->data + off, data->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            what = "write";
            ok = 0;
            break;
        }
        off += (size_t)n;
    }
    if (ok && fsync(fd) != 0)
        what = "fsync", ok = 0;
    if (fd >= 0 && close(fd) != 0 && ok)
        what = "close", ok = 0;
    if (!ok) {
        *error_r = table_error("%s %s: %s", what, tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    int res = lmdb_rename_sync(tmp, path, dirfd, error_r);
    free(tmp);
    return res;
}

int table_lmdb_update_format(const char *path, int alias_format, const char *key,
                             const char *value, const char **error_r)
{
    int dirfd = lmdb_lock_dir(path, error_r);
    if (dirfd < 0)
        return -1;
    struct buf src, out;
    struct stat st;
    int have_old = stat(path, &st) == 0;
    int found = -1;
    buf_init(&src, 0);
    buf_init(&out, 0);
    if (!have_old && errno != ENOENT) {
        *error_r = table_error("stat %s: %s", path, strerror(errno));
    } else if (have_old && safe_read_file(path, &src, LMDB_SOURCE_MAX) != 0) {
        *error_r = table_error("read %s: %s", path, strerror(errno));
    } else {
        if (alias_format < 0)
            alias_format = lmdb_guess_alias(path, src.data ? src.data : "", src.len);
        found = lmdb_edit_text(src.data ? src.data : "", src.len, alias_format, key, value,
                               &out, error_r);
        if (found > 0 || (found == 0 && value != NULL)) {
            if (lmdb_write_source(path, &out, have_old ? &st : NULL, dirfd, error_r) != 0
                || lmdb_build_locked(path, alias_format, dirfd, error_r) < 0)
                found = -1;
        }
    }
    buf_free(&src);
    buf_free(&out);
    close(dirfd);
    return found;
}

int table_lmdb_update(const char *path, const char *key, const char *value,
                      const char **error_r)
{
    return table_lmdb_update_format(path, -1, key, value, error_r);
}
