/* Helpers the Maildir and mailbox index unit tests share: a temporary
   directory per test (a Maildir with tmp/, new/ and cur/, or empty),
   files written into it, and index handles that must open and sync.
   Header-only (static inline): each test program is its own binary. */
#ifndef POSTERN_TESTS_MAILDIR_TEST_H
#define POSTERN_TESTS_MAILDIR_TEST_H

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "mailbox_index.h"
#include "xalloc.h"

struct fixture {
    char dir[64];
};

static inline void make_maildir(const char *dir)
{
    static const char *const subs[] = { "tmp", "new", "cur" };
    for (int i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, subs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
        free(p);
    }
}

/* A fresh /tmp/NAME.XXXXXX for *state; maildir: with tmp/, new/, cur/. */
static inline int fixture_setup(void **state, const char *name, int maildir)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/%s.XXXXXX", name);
    assert_non_null(mkdtemp(f->dir));
    if (maildir)
        make_maildir(f->dir);
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static inline void write_file(const char *dir, const char *rel, const char *data, size_t len)
{
    char *p = xasprintf("%s/%s", dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    free(p);
}

static inline int exists(const char *dir, const char *rel)
{
    char *p = xasprintf("%s/%s", dir, rel);
    struct stat st;
    int r = lstat(p, &st) == 0;
    free(p);
    return r;
}

static inline struct mailbox_index *open_synced(const char *dir)
{
    char *error = NULL;
    struct mailbox_index *ix = mailbox_index_open(dir, &error);
    if (ix == NULL)
        fail_msg("open: %s", error);
    if (mailbox_index_sync(ix, &error) < 0)
        fail_msg("sync: %s", error);
    return ix;
}

static inline void sync_ok(struct mailbox_index *ix)
{
    char *error = NULL;
    if (mailbox_index_sync(ix, &error) < 0)
        fail_msg("sync: %s", error);
}

/* A write transaction on DIR's index, opened behind the index's back
   (tests that damage or downgrade it), on the database named db. The
   caller commits and closes *env_r. */
static inline MDB_txn *raw_index_txn(const char *dir, const char *db, MDB_env **env_r,
                                     MDB_dbi *dbi_r)
{
    MDB_txn *txn;
    char *path = xasprintf("%s/postern-index.lmdb", dir);
    assert_int_equal(mdb_env_create(env_r), 0);
    assert_int_equal(mdb_env_set_maxdbs(*env_r, 8), 0);
    assert_int_equal(mdb_env_open(*env_r, path, MDB_NOSUBDIR, 0600), 0);
    free(path);
    assert_int_equal(mdb_txn_begin(*env_r, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, dbi_r), 0);
    return txn;
}

#endif
