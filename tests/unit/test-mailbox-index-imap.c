/* Unit tests for what lib/mailbox_index_imap.c adds for imapd's
   \Recent and UIDVALIDITY: the first recent UID (fresh, upgraded,
   claimed, kept by every write), claims by several handles, and
   UIDVALIDITY values that grow across folders deleted and created
   again within one second (the root Maildir's postern-uidvalidity).
   The older imapd-block cases (add, stale, cache) are in
   test-mailbox-index.c. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "mailbox_index.h"
#include "xalloc.h"
#include "maildir_test.h"

static int setup(void **state)
{
    return fixture_setup(state, "test-mailbox-index-imap", 1);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static void deliver(const char *dir, const char *name)
{
    char *rel = xasprintf("new/%s", name);
    static const char text[] = "Subject: x\n\nbody\n";
    write_file(dir, rel, text, sizeof(text) - 1);
    free(rel);
}

static uint32_t claim_ok(struct mailbox_index *ix)
{
    uint32_t first = 99;
    assert_int_equal(mailbox_index_claim_recent(ix, &first), 0);
    return first;
}

static uint32_t read_number(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    unsigned long v = 0;
    assert_int_equal(fscanf(fp, "%lu", &v), 1);
    fclose(fp);
    return (uint32_t)v;
}

static void remove_index_files(const char *dir)
{
    static const char *const names[] = { "postern-index.lmdb", "postern-index.lmdb-lock",
                                         "postern-index.lock" };
    for (int i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        assert_true(unlink(p) == 0 || errno == ENOENT);
        free(p);
    }
}

/* A new index: every message is recent once; a claim hands out
   [old, UIDNEXT) and later writes keep the value. */
static void test_fresh_index_messages_are_recent_until_claimed(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host");
    deliver(f->dir, "1700000002.B.host");
    deliver(f->dir, "1700000003.C.host");
    struct mailbox_index *ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 1);
    assert_int_equal(mailbox_index_uidnext(ix), 4);
    assert_int_equal(claim_ok(ix), 1);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 4);
    /* Nothing new: the same answer, nothing changes. */
    uint64_t modseq = mailbox_index_highest_modseq(ix);
    assert_int_equal(claim_ok(ix), 4);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 4);
    /* A claim is no change to the messages. */
    assert_int_equal(mailbox_index_highest_modseq(ix), modseq);

    /* Sync, set_flags, expunge and add keep it. */
    deliver(f->dir, "1700000004.D.host");
    sync_ok(ix);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 4);
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S"), 0);
    assert_int_equal(mailbox_index_expunge(ix, 2), 0);
    assert_int_equal(mailbox_index_flush(ix), 0);
    static const char text[] = "Subject: y\n\nbody\n";
    write_file(f->dir, "cur/1700000005.E.host:2,S", text, sizeof(text) - 1);
    uint32_t uid = 0;
    assert_int_equal(mailbox_index_add(ix, "cur/1700000005.E.host:2,S", 0, &uid), 0);
    assert_int_equal(uid, 5);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 4);
    mailbox_index_close(&ix);

    /* Kept across reopening; the next claim gets what arrived since. */
    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 4);
    assert_int_equal(claim_ok(ix), 4);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 6);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 6);
    mailbox_index_close(&ix);
}

/* Two handles (two sessions): what one claims the other does not get;
   the other's view of the value is brought up to date by its sync. */
static void test_claims_of_two_handles_do_not_overlap(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host");
    struct mailbox_index *a = open_synced(f->dir);
    struct mailbox_index *b = open_synced(f->dir);
    assert_int_equal(claim_ok(a), 1);
    assert_int_equal(claim_ok(b), 2); /* already claimed: [2, 2) */
    assert_int_equal(mailbox_index_first_recent_uid(b), 2);
    deliver(f->dir, "1700000002.B.host");
    sync_ok(b);
    assert_int_equal(claim_ok(b), 2);
    assert_int_equal(mailbox_index_first_recent_uid(b), 3);
    /* a has not synced: its view is old until it does. */
    assert_int_equal(mailbox_index_first_recent_uid(a), 2);
    sync_ok(a);
    assert_int_equal(mailbox_index_first_recent_uid(a), 3);
    assert_int_equal(claim_ok(a), 3);
    mailbox_index_close(&a);
    mailbox_index_close(&b);
}

/* An index written before "firstrecent" existed: nothing in it is
   recent, what arrives afterwards is; the first write keeps the value. */
static void test_index_without_first_recent_treats_old_messages_as_seen(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host");
    deliver(f->dir, "1700000002.B.host");
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    mailbox_index_close(&ix);

    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn = raw_index_txn(f->dir, "meta", &env, &dbi);
    MDB_val k = { strlen("firstrecent"), "firstrecent" };
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_uidvalidity(ix), uv);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 3);
    deliver(f->dir, "1700000003.C.host");
    sync_ok(ix);
    assert_int_equal(mailbox_index_uidnext(ix), 4);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 3);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_first_recent_uid(ix), 3);
    assert_int_equal(claim_ok(ix), 3);
    mailbox_index_close(&ix);
}

/* A handle whose index another handle rebuilt cannot claim. */
static void test_claim_after_a_rebuild_elsewhere_is_estale(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host");
    struct mailbox_index *a = open_synced(f->dir);
    char *path = xasprintf("%s/postern-index.lmdb", f->dir);
    char *aside = xasprintf("%s/old-index", f->dir);
    assert_int_equal(rename(path, aside), 0);
    /* As a rebuild does: the new file gets its own LMDB lock file. */
    char *lock = xasprintf("%s-lock", path);
    assert_int_equal(unlink(lock), 0);
    free(lock);
    struct mailbox_index *b = open_synced(f->dir);
    assert_true(mailbox_index_uidvalidity(b) > mailbox_index_uidvalidity(a));
    assert_int_equal(mailbox_index_first_recent_uid(b), 1);
    uint32_t first = 7;
    assert_int_equal(mailbox_index_claim_recent(a, &first), -1);
    assert_int_equal(errno, ESTALE);
    assert_int_equal(first, 0);
    /* After its sync a is on the new file. */
    sync_ok(a);
    assert_int_equal(claim_ok(a), 1);
    free(path);
    free(aside);
    mailbox_index_close(&a);
    mailbox_index_close(&b);
}

static char *make_folder(const char *root, const char *name)
{
    char *dir = xasprintf("%s/%s", root, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    make_maildir(dir);
    write_file(dir, "maildirfolder", "", 0);
    return dir;
}

/* RFC 3501 2.3.1.1: a folder deleted and created again, within the same
   second, gets a larger UIDVALIDITY; so does any other new folder. */
static void test_uidvalidity_grows_across_folders_recreated_in_one_second(void **state)
{
    struct fixture *f = *state;
    char *rootfile = xasprintf("%s/postern-uidvalidity", f->dir);
    char *folder = make_folder(f->dir, ".Box");
    uint32_t last = 0;
    for (int i = 0; i < 3; i++) {
        struct mailbox_index *ix = open_synced(folder);
        uint32_t uv = mailbox_index_uidvalidity(ix);
        mailbox_index_close(&ix);
        assert_true(uv > last);
        last = uv;
        /* Kept in the root Maildir, not in the folder. */
        assert_int_equal(read_number(rootfile), uv);
        /* What DELETE removes (lib/maildir_folders.c). */
        remove_index_files(folder);
    }
    /* INBOX (the root itself) and another folder take the next values. */
    struct mailbox_index *inbox = open_synced(f->dir);
    assert_true(mailbox_index_uidvalidity(inbox) > last);
    last = mailbox_index_uidvalidity(inbox);
    mailbox_index_close(&inbox);
    char *other = make_folder(f->dir, ".Other");
    struct mailbox_index *ix = open_synced(other);
    assert_true(mailbox_index_uidvalidity(ix) > last);
    mailbox_index_close(&ix);

    /* A value far ahead of the clock is followed, not reused. */
    uint32_t ahead = (uint32_t)time(NULL) + 100000;
    char *text = xasprintf("%u\n", ahead);
    write_file(f->dir, "postern-uidvalidity", text, strlen(text));
    free(text);
    remove_index_files(folder);
    ix = open_synced(folder);
    assert_int_equal(mailbox_index_uidvalidity(ix), ahead + 1);
    mailbox_index_close(&ix);
    assert_int_equal(read_number(rootfile), ahead + 1);

    /* Without the root file the folder's own lock file still counts up. */
    assert_int_equal(unlink(rootfile), 0);
    char *lmdb = xasprintf("%s/postern-index.lmdb", folder);
    assert_int_equal(unlink(lmdb), 0);
    free(lmdb);
    char *log = xasprintf("%s/log", f->dir);
    log_set_file(log);
    ix = open_synced(folder);
    log_set_file("/dev/stderr");
    assert_int_equal(mailbox_index_uidvalidity(ix), ahead + 2);
    mailbox_index_close(&ix);
    free(log);
    free(other);
    free(folder);
    free(rootfile);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_index_messages_are_recent_until_claimed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_of_two_handles_do_not_overlap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_index_without_first_recent_treats_old_messages_as_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_after_a_rebuild_elsewhere_is_estale, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_uidvalidity_grows_across_folders_recreated_in_one_second, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
