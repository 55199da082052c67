/* Unit tests for lib/mailbox_index*.c with keyword letters: every letter
   of a name is kept (system flags, then 'a'..'z'), set_flags writes them,
   a dropped handle (pop3d) reads them back from LMDB, a name that would
   grow past 255 bytes is refused, and an index written when flags were
   cut at 15 letters is upgraded by the next sync with the same
   UIDVALIDITY and UIDs. */
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
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "mailbox_index.h"
#include "xalloc.h"
#include "maildir_test.h"

static int setup(void **state)
{
    return fixture_setup(state, "test-mailbox-index-kw", 1);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static void place(const char *dir, const char *rel)
{
    static const char text[] = "Subject: k\n\nbody\n";
    write_file(dir, rel, text, sizeof(text) - 1);
}

static void test_keyword_letters_kept_and_set(void **state)
{
    struct fixture *f = *state;
    place(f->dir, "cur/1700000001.A.host:2,Szab");
    struct mailbox_index *ix = open_synced(f->dir);
    const struct mailbox_msg *m = mailbox_index_find(ix, 1);
    assert_non_null(m);
    assert_string_equal(m->flags, "Sabz");
    /* All 26 keyword letters and the system flags at once. */
    assert_int_equal(mailbox_index_set_flags(ix, 1, "zyxwvutsrqponmlkjihgfedcbaTSRPFD"), 0);
    m = mailbox_index_find(ix, 1);
    assert_string_equal(m->flags, "DFPRSTabcdefghijklmnopqrstuvwxyz");
    assert_true(exists(f->dir, "cur/1700000001.A.host:2,DFPRSTabcdefghijklmnopqrstuvwxyz"));
    assert_int_equal(mailbox_index_set_flags(ix, 1, "Sc"), 0);
    assert_true(exists(f->dir, "cur/1700000001.A.host:2,Sc"));
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S1"), -1);
    assert_int_equal(errno, EINVAL);
    /* Another tool's letters in a new file. */
    place(f->dir, "new/1700000002.B.host:2,RFqb");
    char *error = NULL;
    assert_int_equal(mailbox_index_sync(ix, &error), 0);
    m = mailbox_index_find(ix, 2);
    assert_non_null(m);
    assert_string_equal(m->flags, "FRbq");
    mailbox_index_close(&ix);

    /* Read back from LMDB, as pop3d does after dropping the array. */
    ix = open_synced(f->dir);
    mailbox_index_drop_messages(ix);
    m = mailbox_index_find(ix, 1);
    assert_non_null(m);
    assert_string_equal(m->flags, "Sc");
    assert_int_equal(mailbox_index_set_flags(ix, 2, "FRSbq"), 0);
    assert_int_equal(mailbox_index_flush(ix), 0);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    m = mailbox_index_find(ix, 2);
    assert_string_equal(m->flags, "FRSbq");
    assert_string_equal(m->path, "cur/1700000002.B.host:2,FRSbq");
    mailbox_index_close(&ix);
}

static void test_name_longer_than_255_refused(void **state)
{
    struct fixture *f = *state;
    /* A unique part of 220 bytes: ":2," and 32 letters would pass 255. */
    char base[221];
    memset(base, 'u', sizeof(base) - 1);
    base[sizeof(base) - 1] = '\0';
    char *rel = xasprintf("cur/%s:2,S", base);
    place(f->dir, rel);
    struct mailbox_index *ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_set_flags(ix, 1, "SUVWXYZabcdefghijklmnopqrstuvwxyz"), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_true(exists(f->dir, rel));
    assert_int_equal(mailbox_index_set_flags(ix, 1, "Sab"), 0);
    mailbox_index_close(&ix);
    free(rel);
}

/* Cuts the flags of uid's record to 15 letters, as an index written
   before keywords were kept holds them (same record format otherwise:
   the flags are its last field, their length its byte 46). */
static void cut_record_flags(const char *dir, uint32_t uid)
{
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn = raw_index_txn(dir, "msgs", &env, &dbi);
    unsigned char key[4] = { (unsigned char)(uid >> 24), (unsigned char)(uid >> 16),
                             (unsigned char)(uid >> 8), (unsigned char)uid };
    MDB_val k = { 4, key }, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_true(v.mv_size > 47);
    unsigned char rec[1024];
    memcpy(rec, v.mv_data, v.mv_size);
    size_t fl = rec[46];
    assert_true(fl > 15);
    rec[46] = 15;
    MDB_val nv = { v.mv_size - (fl - 15), rec };
    assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_old_index_with_cut_flags_is_upgraded(void **state)
{
    struct fixture *f = *state;
    place(f->dir, "cur/1700000001.A.host:2,S");
    place(f->dir, "cur/1700000002.B.host:2,FSabcdefghijklmnopq");
    place(f->dir, "cur/1700000003.C.host:2,R");
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix), next = mailbox_index_uidnext(ix);
    uint64_t modseq = mailbox_index_highest_modseq(ix);
    mailbox_index_close(&ix);
    cut_record_flags(f->dir, 2);

    /* The old record reads as it is (no rebuild) ... */
    char *error = NULL;
    ix = mailbox_index_open(f->dir, &error);
    assert_non_null(ix);
    mailbox_index_drop_messages(ix);
    const struct mailbox_msg *m = mailbox_index_find(ix, 2);
    assert_non_null(m);
    assert_string_equal(m->flags, "FSabcdefghijklm");
    mailbox_index_close(&ix);
    /* ... and the next sync gives it every letter of the name, with the
       same UIDVALIDITY and UIDs. */
    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_uidvalidity(ix), uv);
    assert_int_equal(mailbox_index_uidnext(ix), next);
    size_t n = 0;
    const struct mailbox_msg *all = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 3);
    assert_string_equal(all[0].base, "1700000001.A.host");
    assert_int_equal(all[0].uid, 1);
    assert_int_equal(all[1].uid, 2);
    assert_string_equal(all[1].flags, "FSabcdefghijklmnopq");
    assert_true(all[1].modseq > modseq);
    assert_int_equal(all[2].uid, 3);
    assert_string_equal(all[2].flags, "R");
    assert_false(exists(f->dir, "postern-index.lmdb.corrupt"));
    mailbox_index_close(&ix);
    /* Written: a dropped handle reads the whole letters from LMDB. */
    ix = mailbox_index_open(f->dir, &error);
    mailbox_index_drop_messages(ix);
    assert_string_equal(mailbox_index_find(ix, 2)->flags, "FSabcdefghijklmnopq");
    mailbox_index_close(&ix);
}

static void test_parse_and_normalize_keep_every_letter(void **state)
{
    (void)state;
    struct maildir_name r;
    const char *name = "1.x:2,baSF";
    assert_int_equal(mailbox_index_parse_name(name, strlen(name), &r), 0);
    assert_string_equal(r.flags, "FSab");
    char out[MAILBOX_FLAGS_SIZE];
    char all[60];
    size_t n = 0;
    for (char c = 'z'; c >= 'a'; c--)
        all[n++] = c;
    for (char c = 'Z'; c >= 'A'; c--)
        all[n++] = c;
    all[n] = '\0';
    assert_int_equal(mailbox_index_normalize_flags(all, out), 0);
    assert_int_equal(strlen(out), 52);
    assert_int_equal(out[0], 'A');
    assert_int_equal(out[51], 'z');
}

int main(void)
{
    log_set_file("/dev/stderr");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keyword_letters_kept_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_longer_than_255_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_index_with_cut_flags_is_upgraded, setup,
                                        teardown),
        cmocka_unit_test(test_parse_and_normalize_keep_every_letter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
