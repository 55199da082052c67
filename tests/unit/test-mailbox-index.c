/* Unit tests for lib/mailbox_index.c: UID assignment and stability,
   renames and vanished files, set_flags/expunge, CRLF sizes, Maildir
   name parsing, corrupt and missing indexes, the mailbox lock, fork;
   for imapd: add, uid_of_base, modseq, stale, the cache, many handles.
   \Recent claims and UIDVALIDITY across folders: test-mailbox-index-imap.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "mailbox_index.h"
#include "xalloc.h"
#include "maildir_test.h"

static int setup(void **state)
{
    return fixture_setup(state, "test-mailbox-index", 1);
}

static int teardown(void **state)
{
    return fixture_teardown(state);
}

static void deliver(const char *dir, const char *name, const char *text)
{
    char *rel = xasprintf("new/%s", name);
    write_file(dir, rel, text, strlen(text));
    free(rel);
}

static const struct mailbox_msg *by_base(struct mailbox_index *ix, const char *base)
{
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].base, base) == 0)
            return &m[i];
    return NULL;
}

static const char msg_text[] = "Subject: x\n\nbody\n";

static void test_uids_follow_delivery_time_then_name(void **state)
{
    struct fixture *f = *state;
    /* Created in a different order than delivered. */
    deliver(f->dir, "1700000003.M1P1Q1.host,S=17", msg_text);
    deliver(f->dir, "1700000001.M9P1Q1.host,S=17", msg_text);
    deliver(f->dir, "999999999.M1P1Q1.host", msg_text); /* fewer digits, earlier */
    deliver(f->dir, "1700000001.M1P1Q1.host,S=17", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 4);
    assert_string_equal(m[0].base, "999999999.M1P1Q1.host");
    assert_string_equal(m[1].base, "1700000001.M1P1Q1.host,S=17");
    assert_string_equal(m[2].base, "1700000001.M9P1Q1.host,S=17");
    assert_string_equal(m[3].base, "1700000003.M1P1Q1.host,S=17");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i].uid, i + 1);
        assert_int_equal(m[i].size, 17);
        assert_int_equal(m[i].crlf_size, 20);
        assert_string_equal(m[i].flags, "");
        assert_true(strncmp(m[i].path, "new/", 4) == 0);
        assert_true(m[i].internal_date > 0);
    }
    assert_int_equal(mailbox_index_uidnext(ix), 5);
    assert_non_null(mailbox_index_find(ix, 3));
    assert_null(mailbox_index_find(ix, 5));
    assert_string_equal(mailbox_index_maildir(ix), f->dir);
    mailbox_index_close(&ix);
    assert_null(ix);
}

static void test_uids_and_uidvalidity_stable_across_reopen(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    write_file(f->dir, "cur/1700000000.C.host:2,S", msg_text, strlen(msg_text));
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    assert_true(uv > 0);
    assert_int_equal(by_base(ix, "1700000000.C.host")->uid, 1);
    assert_string_equal(by_base(ix, "1700000000.C.host")->flags, "S");
    mailbox_index_close(&ix);
    for (int round = 0; round < 2; round++) {
        ix = open_synced(f->dir);
        assert_int_equal(mailbox_index_uidvalidity(ix), uv);
        assert_int_equal(mailbox_index_uidnext(ix), 4);
        assert_int_equal(by_base(ix, "1700000000.C.host")->uid, 1);
        assert_int_equal(by_base(ix, "1700000001.A.host")->uid, 2);
        assert_int_equal(by_base(ix, "1700000002.B.host")->uid, 3);
        mailbox_index_close(&ix);
    }
}

static void test_new_file_gets_next_uid_and_uids_are_never_reused(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    deliver(f->dir, "1700000003.C.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint64_t modseq_before = by_base(ix, "1700000001.A.host")->modseq;
    assert_int_equal(mailbox_index_expunge(ix, 3), 0);
    /* An older time than the others: still the next UID, not a reused one. */
    deliver(f->dir, "1600000000.D.host", msg_text);
    sync_ok(ix);
    assert_int_equal(by_base(ix, "1600000000.D.host")->uid, 4);
    char *p = xasprintf("%s/new/1700000002.B.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_null(by_base(ix, "1700000002.B.host"));
    deliver(f->dir, "1700000009.E.host", msg_text);
    sync_ok(ix);
    assert_int_equal(by_base(ix, "1700000009.E.host")->uid, 5);
    assert_int_equal(mailbox_index_uidnext(ix), 6);
    /* Unchanged messages keep their modseq. */
    assert_int_equal(by_base(ix, "1700000001.A.host")->modseq, modseq_before);
    size_t n;
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 3);
    mailbox_index_close(&ix);
}

static void test_rename_by_other_tool_keeps_uid_and_bumps_modseq(void **state)
{
    struct fixture *f = *state;
    write_file(f->dir, "cur/1700000001.A.host:2,S", msg_text, strlen(msg_text));
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint64_t modseq = by_base(ix, "1700000001.A.host")->modseq;
    char *from = xasprintf("%s/cur/1700000001.A.host:2,S", f->dir);
    char *to = xasprintf("%s/cur/1700000001.A.host:2,FS", f->dir);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    from = xasprintf("%s/new/1700000002.B.host", f->dir);
    to = xasprintf("%s/cur/1700000002.B.host:2,", f->dir);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    sync_ok(ix);
    const struct mailbox_msg *a = by_base(ix, "1700000001.A.host");
    assert_int_equal(a->uid, 1);
    assert_string_equal(a->flags, "FS");
    assert_string_equal(a->path, "cur/1700000001.A.host:2,FS");
    assert_true(a->modseq > modseq);
    const struct mailbox_msg *b = by_base(ix, "1700000002.B.host");
    assert_int_equal(b->uid, 2);
    assert_string_equal(b->path, "cur/1700000002.B.host:2,");
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_string_equal(by_base(ix, "1700000001.A.host")->flags, "FS");
    assert_int_equal(mailbox_index_uidnext(ix), 3);
    mailbox_index_close(&ix);
}

static void test_vanished_file_is_dropped(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    char *p = xasprintf("%s/new/1700000001.A.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    sync_ok(ix);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].uid, 2);
    mailbox_index_close(&ix);
}

static void test_skips_dot_files_directories_symlinks_and_tmp(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, ".hidden", msg_text);
    write_file(f->dir, "tmp/1700000000.T.host", msg_text, strlen(msg_text));
    char *p = xasprintf("%s/cur/1700000002.DIR.host:2,S", f->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    p = xasprintf("%s/cur/1700000003.LINK.host:2,S", f->dir);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    free(p);
    struct mailbox_index *ix = open_synced(f->dir);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].base, "1700000001.A.host");
    mailbox_index_close(&ix);
}

static void test_same_unique_part_in_new_and_cur_counts_once(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    write_file(f->dir, "cur/1700000001.A.host:2,S", msg_text, strlen(msg_text));
    struct mailbox_index *ix = open_synced(f->dir);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].path, "cur/1700000001.A.host:2,S");
    mailbox_index_close(&ix);
}

static void test_set_flags_moves_new_to_cur_and_persists(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host,S=17", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint64_t modseq = mailbox_index_find(ix, 1)->modseq;
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S"), 0);
    assert_false(exists(f->dir, "new/1700000001.A.host,S=17"));
    assert_true(exists(f->dir, "cur/1700000001.A.host,S=17:2,S"));
    const struct mailbox_msg *m = mailbox_index_find(ix, 1);
    assert_string_equal(m->path, "cur/1700000001.A.host,S=17:2,S");
    assert_string_equal(m->flags, "S");
    /* Letters sorted and unique; the same flags again is a no-op. */
    assert_int_equal(mailbox_index_set_flags(ix, 1, "TSRS"), 0);
    assert_true(exists(f->dir, "cur/1700000001.A.host,S=17:2,RST"));
    assert_int_equal(mailbox_index_set_flags(ix, 1, "RST"), 0);
    assert_string_equal(mailbox_index_find(ix, 1)->flags, "RST");
    /* Invalid flags and unknown UIDs. */
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S1"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S:"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mailbox_index_set_flags(ix, 99, "S"), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mailbox_index_flush(ix), 0);
    uint64_t flushed = mailbox_index_find(ix, 1)->modseq;
    assert_true(flushed > modseq);
    mailbox_index_close(&ix);
    /* The flush wrote the record: sync finds nothing to change. */
    char *error = NULL;
    ix = mailbox_index_open(f->dir, &error);
    assert_non_null(ix);
    sync_ok(ix);
    m = mailbox_index_find(ix, 1);
    assert_non_null(m);
    assert_string_equal(m->path, "cur/1700000001.A.host,S=17:2,RST");
    assert_int_equal(m->modseq, flushed);
    assert_int_equal(mailbox_index_uidnext(ix), 2);
    mailbox_index_close(&ix);
}

static void test_set_flags_on_vanished_file_is_enoent_and_drops_it(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    char *p = xasprintf("%s/new/1700000001.A.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S"), -1);
    assert_int_equal(errno, ENOENT);
    assert_null(mailbox_index_find(ix, 1));
    assert_non_null(mailbox_index_find(ix, 2));
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    size_t n;
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1);
    mailbox_index_close(&ix);
}

static void test_set_flags_and_open_find_a_file_renamed_by_another_tool(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    char *from = xasprintf("%s/new/1700000001.A.host", f->dir);
    char *to = xasprintf("%s/cur/1700000001.A.host:2,F", f->dir);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    int fd = mailbox_index_open_msg(ix, 1);
    assert_true(fd >= 0);
    char buf[64];
    assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)strlen(msg_text));
    close(fd);
    assert_string_equal(mailbox_index_find(ix, 1)->path, "cur/1700000001.A.host:2,F");
    assert_string_equal(mailbox_index_find(ix, 1)->flags, "F");
    assert_int_equal(mailbox_index_set_flags(ix, 1, "FS"), 0);
    assert_true(exists(f->dir, "cur/1700000001.A.host:2,FS"));
    assert_int_equal(mailbox_index_open_msg(ix, 7), -1);
    assert_int_equal(errno, ENOENT);
    mailbox_index_close(&ix);
}

static void test_expunge_removes_file_and_entry(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    deliver(f->dir, "1700000003.C.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_set_flags(ix, 2, "S"), 0);
    assert_int_equal(mailbox_index_expunge(ix, 2), 0);
    assert_false(exists(f->dir, "cur/1700000002.B.host:2,S"));
    assert_null(mailbox_index_find(ix, 2));
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].uid, 1);
    assert_int_equal(m[1].uid, 3);
    uint32_t both[] = { 1, 3, 42 };
    assert_int_equal(mailbox_index_expunge_uids(ix, both, 3), -1); /* 42 unknown */
    assert_int_equal(errno, ENOENT);
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 0);
    assert_false(exists(f->dir, "new/1700000001.A.host"));
    assert_false(exists(f->dir, "new/1700000003.C.host"));
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 0);
    assert_int_equal(mailbox_index_uidnext(ix), 4);
    mailbox_index_close(&ix);
}

struct msg_copy {
    char base[64], path[96], flags[MAILBOX_FLAGS_SIZE];
    uint64_t size, crlf_size, pop3_size, modseq;
};

static void copy_msg(struct mailbox_index *ix, uint32_t uid, struct msg_copy *c)
{
    memset(c, 0, sizeof(*c)); /* compared bytewise */
    const struct mailbox_msg *m = mailbox_index_find(ix, uid);
    assert_non_null(m);
    assert_int_equal(m->uid, uid);
    snprintf(c->base, sizeof(c->base), "%s", m->base);
    snprintf(c->path, sizeof(c->path), "%s", m->path);
    snprintf(c->flags, sizeof(c->flags), "%s", m->flags);
    c->size = m->size;
    c->crlf_size = m->crlf_size;
    c->modseq = m->modseq;
    c->pop3_size = mailbox_index_pop3_size(ix, uid);
}

static void test_dropped_array_reads_messages_from_lmdb_with_same_results(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", "a\n.dot\n");
    deliver(f->dir, "1700000002.B.host", "no final newline");
    deliver(f->dir, "1700000003.C.host", msg_text);
    deliver(f->dir, "1700000004.D.host", msg_text);
    deliver(f->dir, "1700000005.E.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    struct msg_copy before[6], after;
    for (uint32_t uid = 1; uid <= 5; uid++)
        copy_msg(ix, uid, &before[uid]);
    mailbox_index_drop_messages(ix);
    mailbox_index_drop_messages(ix); /* twice is harmless */
    for (uint32_t uid = 1; uid <= 5; uid++) {
        copy_msg(ix, uid, &after);
        assert_memory_equal(&after, &before[uid], sizeof(after));
    }
    assert_null(mailbox_index_find(ix, 6));
    assert_int_equal(mailbox_index_pop3_size(ix, 6), 0);
    assert_int_equal(mailbox_index_pop3_size(ix, 1), 7 + 2 + 1);
    assert_int_equal(mailbox_index_pop3_size(ix, 2), 16 + 2);

    /* open_msg, also of a file another tool renamed. */
    int fd = mailbox_index_open_msg(ix, 3);
    assert_true(fd >= 0);
    char buf[64];
    assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)strlen(msg_text));
    close(fd);
    char *from = xasprintf("%s/new/1700000004.D.host", f->dir);
    char *to = xasprintf("%s/cur/1700000004.D.host:2,F", f->dir);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    fd = mailbox_index_open_msg(ix, 4);
    assert_true(fd >= 0);
    close(fd);
    assert_string_equal(mailbox_index_find(ix, 4)->path, "cur/1700000004.D.host:2,F");
    assert_string_equal(mailbox_index_find(ix, 4)->flags, "F");
    assert_int_equal(mailbox_index_open_msg(ix, 9), -1);
    assert_int_equal(errno, ENOENT);

    /* set_flags: pending in memory, visible to find at once. */
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S"), 0);
    assert_true(exists(f->dir, "cur/1700000001.A.host:2,S"));
    assert_string_equal(mailbox_index_find(ix, 1)->path, "cur/1700000001.A.host:2,S");
    assert_int_equal(mailbox_index_set_flags(ix, 1, "RS"), 0);
    assert_string_equal(mailbox_index_find(ix, 1)->flags, "RS");
    assert_int_equal(mailbox_index_set_flags(ix, 4, "FS"), 0);
    assert_true(exists(f->dir, "cur/1700000004.D.host:2,FS"));
    assert_int_equal(mailbox_index_set_flags(ix, 9, "S"), -1);
    assert_int_equal(errno, ENOENT);
    /* A vanished file: ENOENT and gone from the view. */
    char *p = xasprintf("%s/new/1700000005.E.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    assert_int_equal(mailbox_index_set_flags(ix, 5, "S"), -1);
    assert_int_equal(errno, ENOENT);
    assert_null(mailbox_index_find(ix, 5));

    /* expunge: file and entry gone; an unknown UID is ENOENT. */
    uint32_t del[] = { 3, 42 };
    assert_int_equal(mailbox_index_expunge_uids(ix, del, 2), -1);
    assert_int_equal(errno, ENOENT);
    assert_false(exists(f->dir, "new/1700000003.C.host"));
    assert_null(mailbox_index_find(ix, 3));
    assert_int_equal(mailbox_index_expunge(ix, 3), -1);
    /* The expunge flushed the flag changes: LMDB has them. */
    assert_string_equal(mailbox_index_find(ix, 1)->path, "cur/1700000001.A.host:2,RS");
    assert_true(mailbox_index_find(ix, 1)->modseq > before[1].modseq);
    assert_int_equal(mailbox_index_pop3_size(ix, 1), before[1].pop3_size);

    /* A change after the flush, then the array is rebuilt on demand. */
    assert_int_equal(mailbox_index_set_flags(ix, 2, "S"), 0);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].uid, 1);
    assert_string_equal(m[0].path, "cur/1700000001.A.host:2,RS");
    assert_int_equal(m[1].uid, 2);
    assert_string_equal(m[1].path, "cur/1700000002.B.host:2,S");
    assert_int_equal(m[2].uid, 4);
    assert_string_equal(m[2].path, "cur/1700000004.D.host:2,FS");
    assert_ptr_equal(mailbox_index_find(ix, 2), &m[1]);
    mailbox_index_close(&ix);

    /* Everything reached LMDB: a new handle sees the same. */
    ix = open_synced(f->dir);
    m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 3);
    assert_string_equal(m[1].path, "cur/1700000002.B.host:2,S");
    assert_string_equal(m[1].flags, "S");
    assert_int_equal(mailbox_index_uidnext(ix), 6);
    mailbox_index_close(&ix);
}

static void test_dropped_array_with_many_changes_flushes_in_batches(void **state)
{
    struct fixture *f = *state;
    enum { N = 1100 };
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%d.M%d.host", 1700000000 + i, i);
        deliver(f->dir, name, "x\n");
    }
    struct mailbox_index *ix = open_synced(f->dir);
    mailbox_index_drop_messages(ix);
    for (uint32_t uid = 1; uid <= N; uid++)
        assert_int_equal(mailbox_index_set_flags(ix, uid, "S"), 0);
    for (uint32_t uid = 1; uid <= N; uid++) {
        const struct mailbox_msg *m = mailbox_index_find(ix, uid);
        assert_non_null(m);
        assert_string_equal(m->flags, "S");
        assert_int_equal(strncmp(m->path, "cur/", 4), 0);
    }
    /* A sync after the drop rebuilds the array as usual. */
    sync_ok(ix);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, N);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(m[i].flags, "S");
    mailbox_index_close(&ix);
}

struct size_case {
    const char *name;
    const char *data;
    size_t len;
    uint64_t crlf_size;
    uint64_t dot_lines;
    int final_newline;
};

static const struct size_case size_cases[] = {
    { "lf", "a\nbb\n\n", 6, 9, 0, 1 },
    { "crlf", "a\r\nbb\r\n\r\n", 9, 9, 0, 1 },
    { "mixed", "a\r\nb\nc\r\r\n\n", 10, 12, 0, 1 },
    { "empty", "", 0, 0, 0, 1 },
    { "no-final-newline", "a\nlast", 6, 7, 0, 0 },
    { "lone-cr", "a\rb", 3, 3, 0, 0 },
    { "dots", ".x\n..\r\nend.\n.", 13, 15, 3, 0 },
};

static void test_crlf_size_of_lf_crlf_mixed_empty_and_unterminated_files(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
        char *rel = xasprintf("new/17000000%02zu.%s.host", i, size_cases[i].name);
        write_file(f->dir, rel, size_cases[i].data, size_cases[i].len);
        free(rel);
    }
    struct mailbox_index *ix = open_synced(f->dir);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
            const struct size_case *c = &size_cases[i];
            const struct mailbox_msg *m = mailbox_index_find(ix, (uint32_t)i + 1);
            assert_non_null(m);
            assert_non_null(strstr(m->base, c->name));
            assert_int_equal(m->size, c->len);
            assert_int_equal(m->crlf_size, c->crlf_size);
            assert_int_equal(mailbox_index_pop3_size(ix, m->uid),
                             c->crlf_size + c->dot_lines + (c->final_newline ? 0 : 2));
        }
        /* The second round comes from the LMDB records. */
        mailbox_index_close(&ix);
        ix = open_synced(f->dir);
    }
    assert_int_equal(mailbox_index_pop3_size(ix, 999), 0);
    mailbox_index_close(&ix);
}

/* A sync that writes many records reopens the LMDB environment (to drop
   LMDB's cached dirty pages) when the handle is its only user; the handle
   and a second one opened before it keep working either way. */
static void test_large_sync_reopens_the_environment_and_the_handle_keeps_working(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 300; i++) {
        char *name = xasprintf("%d.M%dP1Q%d.host", 1700000000 + i, i, i);
        deliver(f->dir, name, msg_text);
        free(name);
    }
    struct mailbox_index *ix = open_synced(f->dir);
    size_t n;
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 300);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    assert_int_equal(mailbox_index_set_flags(ix, 7, "S"), 0);
    assert_int_equal(mailbox_index_expunge(ix, 8), 0);
    int fd = mailbox_index_open_msg(ix, 300);
    assert_true(fd >= 0);
    close(fd);
    /* A second handle shares the environment: no reopen under it. */
    struct mailbox_index *other = open_synced(f->dir);
    for (int i = 300; i < 600; i++) {
        char *name = xasprintf("%d.M%dP1Q%d.host", 1700000000 + i, i, i);
        deliver(f->dir, name, msg_text);
        free(name);
    }
    sync_ok(ix);
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 599);
    sync_ok(other);
    mailbox_index_messages(other, &n);
    assert_int_equal(n, 599);
    assert_string_equal(mailbox_index_find(other, 7)->flags, "S");
    assert_null(mailbox_index_find(other, 8));
    mailbox_index_close(&other);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_uidvalidity(ix), uv);
    assert_int_equal(mailbox_index_uidnext(ix), 601);
    mailbox_index_close(&ix);
}

/* lib/maildir.c names carry S=, W= and P=: the index believes them when
   S= matches the file, and reads the file when it does not. */
static void test_sizes_come_from_the_name_when_it_matches_the_file(void **state)
{
    struct fixture *f = *state;
    /* 8 bytes; the name claims other W= and P= values than the bytes
       give, so the test sees which source was used. */
    write_file(f->dir, "new/1700000001.A.host,S=8,W=100,P=120", "a\nb\n.c\n\n", 8);
    /* S= wrong (another tool changed the file): read it. */
    write_file(f->dir, "new/1700000002.B.host,S=9,W=100,P=120", "a\nb\n.c\n\n", 8);
    /* P= below W=: not believed. */
    write_file(f->dir, "new/1700000003.C.host,S=8,W=100,P=99", "a\nb\n.c\n\n", 8);
    struct mailbox_index *ix = open_synced(f->dir);
    const struct mailbox_msg *m = mailbox_index_find(ix, 1);
    assert_non_null(m);
    assert_int_equal(m->size, 8);
    assert_int_equal(m->crlf_size, 100);
    assert_int_equal(mailbox_index_pop3_size(ix, 1), 120);
    for (uint32_t uid = 2; uid <= 3; uid++) {
        m = mailbox_index_find(ix, uid);
        assert_non_null(m);
        assert_int_equal(m->size, 8);
        assert_int_equal(m->crlf_size, 12);
        assert_int_equal(mailbox_index_pop3_size(ix, uid), 13);
    }
    mailbox_index_close(&ix);
}

static size_t count_dir(const char *dir, const char *sub)
{
    char *p = xasprintf("%s/%s", dir, sub);
    DIR *d = opendir(p);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    free(p);
    return n;
}

/* n files in new/ (from first): even ones with every size in the name
   as lib/maildir.c writes them, odd ones without sizes (read). */
static void deliver_many(const char *dir, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char name[128], text[64];
        int len = snprintf(text, sizeof(text), "Subject: %d\n\nbody\n", i);
        if (i % 2 == 0)
            snprintf(name, sizeof(name), "%d.M%dP1.host,S=%d,W=%d,P=%d", 1700000000 + i, i, len,
                     len + 3, len + 3);
        else
            snprintf(name, sizeof(name), "%d.M%dP1.host", 1700000000 + i, i);
        deliver(dir, name, text);
    }
}

/* Every message in cur/ under its index path, with the sizes its bytes
   give; nothing left in new/. */
static void check_all_moved(const char *dir, struct mailbox_index *ix, size_t want)
{
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, want);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(m[i].path, "cur/", 4) != 0 || strstr(m[i].path, ":2,") == NULL)
            fail_msg("uid %u not moved: %s", m[i].uid, m[i].path);
        assert_true(exists(dir, m[i].path));
        char *p = xasprintf("%s/%s", dir, m[i].path);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        free(p);
        assert_int_equal(m[i].size, (uint64_t)st.st_size);
        assert_int_equal(m[i].crlf_size, (uint64_t)st.st_size + 3);
        assert_int_equal(m[i].internal_date, (int64_t)st.st_mtime);
    }
    assert_int_equal(count_dir(dir, "new"), 0);
    assert_int_equal(count_dir(dir, "cur"), want);
}

static void test_move_new_of_many_files_on_the_thread(void **state)
{
    struct fixture *f = *state;
    /* Known to the index while still in new/ (an earlier EXAMINE). */
    deliver_many(f->dir, 0, 10);
    struct mailbox_index *ix = open_synced(f->dir);
    assert_int_equal(count_dir(f->dir, "new"), 10);
    uint64_t modseq = mailbox_index_highest_modseq(ix);
    deliver_many(f->dir, 10, 1990);
    /* One delivered with flags in new/ keeps them. */
    deliver(f->dir, "1800000000.F.host:2,FS", "Subject: f\n\nbody\n");
    mailbox_index_set_move_new(ix, 1);
    sync_ok(ix);
    const struct mailbox_msg *flagged = by_base(ix, "1800000000.F.host");
    assert_non_null(flagged);
    assert_string_equal(flagged->path, "cur/1800000000.F.host:2,FS");
    assert_string_equal(flagged->flags, "FS");
    /* The known ones kept their UIDs, moved with a new modseq. */
    for (uint32_t uid = 1; uid <= 10; uid++) {
        const struct mailbox_msg *m = mailbox_index_find(ix, uid);
        assert_non_null(m);
        assert_true(m->modseq > modseq);
        char base[64];
        snprintf(base, sizeof(base), "%u.M%uP1.host", 1700000000 + uid - 1, uid - 1);
        assert_int_equal(strncmp(m->base, base, strlen(base)), 0);
    }
    assert_int_equal(mailbox_index_uidnext(ix), 2002);
    check_all_moved(f->dir, ix, 2001);
    mailbox_index_close(&ix);
    /* Written once, as it is: a fresh handle's sync changes nothing. */
    ix = open_synced(f->dir);
    check_all_moved(f->dir, ix, 2001);
    assert_int_equal(mailbox_index_uidnext(ix), 2002);
    mailbox_index_close(&ix);
}

static void test_move_new_of_a_few_files_and_off_by_default(void **state)
{
    struct fixture *f = *state;
    deliver_many(f->dir, 0, 5);
    struct mailbox_index *ix = open_synced(f->dir);
    assert_int_equal(count_dir(f->dir, "new"), 5);
    mailbox_index_set_move_new(ix, 1);
    deliver_many(f->dir, 5, 5);
    sync_ok(ix);
    check_all_moved(f->dir, ix, 10);
    mailbox_index_set_move_new(ix, 0);
    deliver_many(f->dir, 10, 3);
    sync_ok(ix);
    assert_int_equal(count_dir(f->dir, "new"), 3);
    mailbox_index_close(&ix);
}

/* A file in cur/ already has the name the move would give: neither is
   replaced, both files stay, and the record of the file the index knew
   in new/ keeps (and writes) its new/ path. */
static void test_move_new_never_replaces_a_file_in_cur(void **state)
{
    struct fixture *f = *state;
    deliver_many(f->dir, 0, 1200);
    struct mailbox_index *ix = open_synced(f->dir);
    const char *known = "1700000004.M4P1.host,S=17,W=20,P=20";
    assert_string_equal(by_base(ix, known)->path, "new/1700000004.M4P1.host,S=17,W=20,P=20");
    write_file(f->dir, "cur/1700000004.M4P1.host,S=17,W=20,P=20:2,", "other bytes\n", 12);
    mailbox_index_set_move_new(ix, 1);
    sync_ok(ix);
    size_t n;
    (void)mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1200);
    assert_string_equal(by_base(ix, known)->path, "new/1700000004.M4P1.host,S=17,W=20,P=20");
    assert_true(exists(f->dir, "new/1700000004.M4P1.host,S=17,W=20,P=20"));
    assert_true(exists(f->dir, "cur/1700000004.M4P1.host,S=17,W=20,P=20:2,"));
    assert_int_equal(count_dir(f->dir, "new"), 1);
    assert_int_equal(count_dir(f->dir, "cur"), 1200);
    uint32_t uid = by_base(ix, known)->uid;
    mailbox_index_close(&ix);
    /* What was written: a handle that moves nothing reads it back. */
    char *error = NULL;
    ix = mailbox_index_open(f->dir, &error);
    assert_non_null(ix);
    mailbox_index_drop_messages(ix);
    const struct mailbox_msg *m = mailbox_index_find(ix, uid);
    assert_non_null(m);
    assert_string_equal(m->path, "new/1700000004.M4P1.host,S=17,W=20,P=20");
    m = mailbox_index_find(ix, 1);
    assert_non_null(m);
    assert_string_equal(m->path, "cur/1700000000.M0P1.host,S=17,W=20,P=20:2,");
    mailbox_index_close(&ix);
}

/* CR, LF and '.' straddling the 64 KiB read chunks. */
static void test_count_fd_across_chunk_boundaries(void **state)
{
    struct fixture *f = *state;
    size_t len = 65536 * 2 + 10;
    char *data = xmalloc(len);
    memset(data, 'x', len);
    data[65535] = '\r';
    data[65536] = '\n'; /* CRLF split over the chunks: no extra byte */
    data[65537] = '.';  /* dot line in the second chunk */
    data[131071] = '\n'; /* bare LF ending chunk two */
    data[131072] = '.';  /* dot line starting chunk three */
    data[len - 1] = '\n';
    write_file(f->dir, "big", data, len);
    char *p = xasprintf("%s/big", f->dir);
    int fd = open(p, O_RDONLY);
    free(p);
    assert_true(fd >= 0);
    struct mailbox_msg_counts n;
    assert_int_equal(mailbox_index_count_fd(fd, &n), 0);
    close(fd);
    assert_int_equal(n.size, len);
    assert_int_equal(n.crlf_size, len + 2);
    assert_int_equal(n.dot_lines, 2);
    assert_int_equal(n.final_newline, 1);
    assert_int_equal(mailbox_index_count_fd(-1, &n), -1);
    free(data);
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return xstrdup("");
    char *data = xcalloc(1, 65536);
    size_t n = fread(data, 1, 65535, fp);
    data[n] = '\0';
    fclose(fp);
    return data;
}

static void test_corrupt_index_is_rebuilt_with_new_uidvalidity_and_warning(void **state)
{
    struct fixture *f = *state;
    char *log = xasprintf("%s/log", f->dir);
    log_set_file(log);
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    assert_int_equal(mailbox_index_expunge(ix, 1), 0);
    mailbox_index_close(&ix);

    write_file(f->dir, "postern-index.lmdb", "this is not an LMDB file at all\n", 32);
    ix = open_synced(f->dir);
    assert_true(mailbox_index_uidvalidity(ix) > uv);
    assert_true(exists(f->dir, "postern-index.lmdb.corrupt"));
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].uid, 1); /* numbering starts over with the new UIDVALIDITY */
    mailbox_index_close(&ix);
    log_set_file("/dev/stderr");
    char *text = read_text(log);
    assert_non_null(strstr(text, "warning: mailbox index"));
    assert_non_null(strstr(text, "rebuilt"));
    free(text);
    free(log);
}

/* A valid LMDB file holding a record we did not write. */
static void test_bad_record_found_by_sync_rebuilds_the_index(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    mailbox_index_close(&ix);

    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn = raw_index_txn(f->dir, "msgs", &env, &dbi);
    unsigned char key[4] = { 0, 0, 0, 1 };
    MDB_val k = { 4, key }, v = { 5, "junk!" };
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    ix = open_synced(f->dir);
    assert_true(mailbox_index_uidvalidity(ix) > uv);
    assert_non_null(mailbox_index_find(ix, 1));
    assert_true(exists(f->dir, "postern-index.lmdb.corrupt"));
    mailbox_index_close(&ix);
}

static void test_missing_index_is_rebuilt_with_larger_uidvalidity(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    mailbox_index_close(&ix);
    char *p = xasprintf("%s/postern-index.lmdb", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    ix = open_synced(f->dir);
    assert_true(mailbox_index_uidvalidity(ix) > uv);
    assert_non_null(mailbox_index_find(ix, 1));
    mailbox_index_close(&ix);
}

static void test_lock_nonblocking_returns_1_while_another_holds_it(void **state)
{
    struct fixture *f = *state;
    struct mailbox_index *ix = open_synced(f->dir);
    /* Another open file description in this process. */
    char *p = xasprintf("%s/postern-index.lock", f->dir);
    int other = open(p, O_RDWR | O_CREAT, 0600);
    free(p);
    assert_true(other >= 0);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(mailbox_index_lock(ix, 1), 1);
    assert_int_equal(flock(other, LOCK_UN), 0);
    assert_int_equal(mailbox_index_lock(ix, 1), 0);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
    mailbox_index_unlock(ix);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
    close(other);

    /* Another process with its own index handle. */
    int ready[2], done[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct mailbox_index *child = mailbox_index_open(f->dir, NULL);
        char c = child != NULL && mailbox_index_lock(child, 0) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
            _exit(2);
        _exit(0);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_int_equal(mailbox_index_lock(ix, 1), 1);
    assert_int_equal(write(done[1], "x", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(mailbox_index_lock(ix, 0), 0);
    mailbox_index_unlock(ix);
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(done[i]);
    }
    mailbox_index_close(&ix);
}

/* Two handles in one process share the environment (LMDB forbids two). */
static void test_two_handles_in_one_process_share_the_index(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    struct mailbox_index *a = open_synced(f->dir);
    struct mailbox_index *b = open_synced(f->dir);
    assert_int_equal(mailbox_index_uidvalidity(a), mailbox_index_uidvalidity(b));
    deliver(f->dir, "1700000002.B.host", msg_text);
    sync_ok(b);
    sync_ok(a);
    assert_int_equal(by_base(a, "1700000002.B.host")->uid, 2);
    assert_int_equal(mailbox_index_lock(a, 1), 0);
    assert_int_equal(mailbox_index_lock(b, 1), 1);
    mailbox_index_close(&a);
    assert_int_equal(mailbox_index_lock(b, 1), 0);
    sync_ok(b);
    mailbox_index_close(&b);
}

/* A handle opened before fork() works in the child (a fresh environment). */
static void test_handle_inherited_over_fork_reopens_in_the_child(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    deliver(f->dir, "1700000002.B.host", msg_text);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = mailbox_index_sync(ix, NULL) == 0 && mailbox_index_find(ix, 2) != NULL;
        mailbox_index_close(&ix);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sync_ok(ix);
    assert_int_equal(by_base(ix, "1700000002.B.host")->uid, 2);
    assert_int_equal(mailbox_index_uidnext(ix), 3);
    mailbox_index_close(&ix);
}

static void test_open_fails_for_a_missing_maildir(void **state)
{
    struct fixture *f = *state;
    char *missing = xasprintf("%s/nope", f->dir);
    char *error = NULL;
    assert_null(mailbox_index_open(missing, &error));
    assert_non_null(error);
    assert_non_null(strstr(error, "nope"));
    free(error);
    free(missing);
    /* A Maildir without new/ and cur/ yet is just empty. */
    char *bare = xasprintf("%s/tmp", f->dir);
    struct mailbox_index *ix = open_synced(bare);
    size_t n;
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 0);
    mailbox_index_close(&ix);
    free(bare);
}

struct name_case {
    const char *name;
    int ok;
    const char *base;
    const char *flags;
    int has_info;
    uint64_t time;
    int has_size;
    uint64_t size;
};

static const struct name_case name_cases[] = {
    { "1700000001.M5P9Q1.host,S=4096", 1, "1700000001.M5P9Q1.host,S=4096", "", 0, 1700000001, 1,
      4096 },
    { "1700000001.M5P9Q1.host,S=4096:2,SR", 1, "1700000001.M5P9Q1.host,S=4096", "RS", 1,
      1700000001, 1, 4096 },
    { "1700000001.x,S=12,W=14:2,", 1, "1700000001.x,S=12,W=14", "", 1, 1700000001, 1, 12 },
    { "1700000001.x,S=12x", 1, "1700000001.x,S=12x", "", 0, 1700000001, 0, 0 },
    { "1700000001.x,S=", 1, "1700000001.x,S=", "", 0, 1700000001, 0, 0 },
    { "abc:2,a,S,T", 1, "abc", "STa", 1, 0, 0, 0 },
    { "abc:2,SSS", 1, "abc", "S", 1, 0, 0, 0 },
    { "abc:1,S", 1, "abc:1,S", "", 0, 0, 0, 0 },
    { "99999999999999999999999.x", 1, "99999999999999999999999.x", "", 0, 9999999999999999999ULL,
      0, 0 },
    { "", 0, NULL, NULL, 0, 0, 0, 0 },
    { ".", 0, NULL, NULL, 0, 0, 0, 0 },
    { "..", 0, NULL, NULL, 0, 0, 0, 0 },
    { ".dotfile", 0, NULL, NULL, 0, 0, 0, 0 },
    { ":2,S", 0, NULL, NULL, 0, 0, 0, 0 },
    { "a/b", 0, NULL, NULL, 0, 0, 0, 0 },
    { "tab\there", 0, NULL, NULL, 0, 0, 0, 0 },
    { "nl\nhere", 0, NULL, NULL, 0, 0, 0, 0 },
    { "del\x7fhere", 0, NULL, NULL, 0, 0, 0, 0 },
};

static void test_parse_name_valid_and_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        const struct name_case *c = &name_cases[i];
        struct maildir_name r;
        int got = mailbox_index_parse_name(c->name, strlen(c->name), &r);
        if (!c->ok) {
            assert_int_equal(got, -1);
            continue;
        }
        assert_int_equal(got, 0);
        assert_int_equal(r.base_len, strlen(c->base));
        assert_memory_equal(c->name, c->base, r.base_len);
        assert_string_equal(r.flags, c->flags);
        assert_int_equal(r.has_info, c->has_info);
        assert_true(r.time == c->time);
        assert_int_equal(r.has_size, c->has_size);
        assert_int_equal(r.size, c->size);
    }
    /* W= and P= beside S=, in any order; a malformed one is ignored. */
    struct maildir_name w;
    const char *wname = "1700000001.x,P=30,S=12,W=14,W=99:2,S";
    assert_int_equal(mailbox_index_parse_name(wname, strlen(wname), &w), 0);
    assert_true(w.has_size && w.size == 12);
    assert_true(w.has_crlf_size && w.crlf_size == 14);
    assert_true(w.has_pop3_size && w.pop3_size == 30);
    wname = "1700000001.x,S=12,W=1x,P=";
    assert_int_equal(mailbox_index_parse_name(wname, strlen(wname), &w), 0);
    assert_true(w.has_size && !w.has_crlf_size && !w.has_pop3_size);
    /* Length limit, and NUL inside the given length. */
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    struct maildir_name r;
    assert_int_equal(mailbox_index_parse_name(longname, 255, &r), 0);
    assert_int_equal(mailbox_index_parse_name(longname, 256, &r), -1);
    assert_int_equal(mailbox_index_parse_name("ab\0c", 4, &r), -1);
    /* Every letter is kept, keyword letters after the system flags. */
    const char *many = "x:2,zyxwvutsrqponmlkjihgfedcbaABCDEFGHIJKLMNOPQRSTUVWXYZ";
    assert_int_equal(mailbox_index_parse_name(many, strlen(many), &r), 0);
    assert_string_equal(r.flags,
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    char out[MAILBOX_FLAGS_SIZE];
    assert_int_equal(mailbox_index_normalize_flags("zaSFba", out), 0);
    assert_string_equal(out, "FSabz");
    assert_int_equal(mailbox_index_normalize_flags("TSPFDRS", out), 0);
    assert_string_equal(out, "DFPRST");
    assert_int_equal(mailbox_index_normalize_flags("", out), 0);
    assert_string_equal(out, "");
    assert_int_equal(mailbox_index_normalize_flags("S ", out), -1);
    assert_int_equal(errno, EINVAL);
}

/*
 * For imapd: add, uid_of_base, modseq, stale, cache, many handles.
 */

static uint32_t add_ok(struct mailbox_index *ix, const char *rel, int64_t date)
{
    uint32_t uid = 0;
    if (mailbox_index_add(ix, rel, date, &uid) < 0)
        fail_msg("add %s: %s", rel, strerror(errno));
    return uid;
}

static void test_add_registers_a_placed_file_and_sync_keeps_its_uid(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint64_t highest = mailbox_index_highest_modseq(ix);
    /* An older delivery time than the others: still the next UID. */
    write_file(f->dir, "cur/1600000000.C.host:2,SF", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(ix, "cur/1600000000.C.host:2,SF", 1234567), 3);
    assert_int_equal(mailbox_index_uidnext(ix), 4);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 3);
    assert_int_equal(m[2].uid, 3);
    assert_string_equal(m[2].base, "1600000000.C.host");
    assert_string_equal(m[2].path, "cur/1600000000.C.host:2,SF");
    assert_string_equal(m[2].flags, "FS");
    assert_int_equal(m[2].size, strlen(msg_text));
    assert_int_equal(m[2].crlf_size, strlen(msg_text) + 3);
    assert_int_equal(m[2].internal_date, 1234567);
    assert_true(m[2].modseq > highest);
    assert_int_equal(mailbox_index_highest_modseq(ix), m[2].modseq);
    assert_int_equal(mailbox_index_pop3_size(ix, 3), strlen(msg_text) + 3);
    uint64_t modseq = m[2].modseq;

    /* Sizes from the name when S= matches; the date from the file. */
    write_file(f->dir, "new/1700000003.D.host,S=17,W=25,P=26", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(ix, "new/1700000003.D.host,S=17,W=25,P=26", 0), 4);
    const struct mailbox_msg *d = mailbox_index_find(ix, 4);
    assert_non_null(d);
    assert_int_equal(d->crlf_size, 25);
    assert_true(d->internal_date > 1600000000);
    assert_string_equal(d->flags, "");

    /* Again: EEXIST with its UID. */
    uint32_t uid = 99;
    assert_int_equal(mailbox_index_add(ix, "cur/1600000000.C.host:2,SF", 0, &uid), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(uid, 3);

    /* The sync finds the files indexed: same UIDs, no new modseq. */
    sync_ok(ix);
    assert_int_equal(by_base(ix, "1600000000.C.host")->uid, 3);
    assert_int_equal(by_base(ix, "1600000000.C.host")->modseq, modseq);
    assert_int_equal(by_base(ix, "1700000003.D.host,S=17,W=25,P=26")->uid, 4);
    assert_int_equal(mailbox_index_uidnext(ix), 5);
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 4);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_int_equal(by_base(ix, "1600000000.C.host")->uid, 3);
    assert_int_equal(by_base(ix, "1600000000.C.host")->internal_date, 1234567);
    assert_int_equal(mailbox_index_uidnext(ix), 5);
    mailbox_index_close(&ix);
}

static void test_add_of_a_missing_or_implausible_file_fails_and_uses_no_uid(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uid = 7;
    assert_int_equal(mailbox_index_add(ix, "new/1700000009.X.host", 0, &uid), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(uid, 0);
    assert_int_equal(mailbox_index_add(ix, "tmp/1700000009.X.host", 0, &uid), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mailbox_index_add(ix, "cur/.hidden", 0, &uid), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mailbox_index_add(ix, "cur/a/b", 0, &uid), -1);
    assert_int_equal(errno, EINVAL);
    char *p = xasprintf("%s/cur/1700000009.dir", f->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    assert_int_equal(mailbox_index_add(ix, "cur/1700000009.dir", 0, &uid), -1);
    assert_int_equal(errno, EINVAL);
    char *target = xasprintf("%s/new/1700000001.A.host", f->dir);
    p = xasprintf("%s/cur/1700000009.link", f->dir);
    assert_int_equal(symlink(target, p), 0);
    free(p);
    free(target);
    assert_int_equal(mailbox_index_add(ix, "cur/1700000009.link", 0, &uid), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(mailbox_index_uidnext(ix), 2);
    size_t n;
    mailbox_index_messages(ix, &n);
    assert_int_equal(n, 1);
    write_file(f->dir, "new/1700000010.Y.host", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(ix, "new/1700000010.Y.host", 0), 2);
    mailbox_index_close(&ix);
}

static void test_uid_of_base_follows_the_index(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_uid_of_base(ix, "1700000001.A.host"), 1);
    assert_int_equal(mailbox_index_uid_of_base(ix, "1700000002.B.host"), 2);
    assert_int_equal(mailbox_index_uid_of_base(ix, "1700000003.C.host"), 0);
    assert_int_equal(mailbox_index_uid_of_base(ix, ""), 0);
    assert_int_equal(mailbox_index_uid_of_base(ix, "new/1700000001.A.host"), 0);
    write_file(f->dir, "cur/1700000003.C.host:2,S", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(ix, "cur/1700000003.C.host:2,S", 0), 3);
    assert_int_equal(mailbox_index_uid_of_base(ix, "1700000003.C.host"), 3);
    assert_int_equal(mailbox_index_expunge(ix, 1), 0);
    assert_int_equal(mailbox_index_uid_of_base(ix, "1700000001.A.host"), 0);
    /* A file that vanished under set_flags is forgotten before the write. */
    char *p = xasprintf("%s/new/1700000002.B.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    assert_int_equal(mailbox_index_set_flags(ix, 2, "S"), -1);
    assert_int_equal(mailbox_index_uid_of_base(ix, "1700000002.B.host"), 0);
    mailbox_index_close(&ix);
}

static void test_modseq_advances_and_changed_message_gets_it(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    deliver(f->dir, "1700000003.C.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint64_t h0 = mailbox_index_highest_modseq(ix);
    assert_true(h0 >= mailbox_index_find(ix, 3)->modseq);
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S"), 0);
    assert_int_equal(mailbox_index_flush(ix), 0);
    uint64_t h1 = mailbox_index_highest_modseq(ix);
    assert_true(h1 > h0);
    assert_int_equal(mailbox_index_find(ix, 1)->modseq, h1);
    assert_int_equal(mailbox_index_set_flags(ix, 1, "FS"), 0);
    assert_int_equal(mailbox_index_set_flags(ix, 2, "S"), 0);
    assert_int_equal(mailbox_index_flush(ix), 0);
    uint64_t h2 = mailbox_index_highest_modseq(ix);
    assert_true(h2 > h1);
    assert_true(mailbox_index_find(ix, 1)->modseq > h1);
    assert_true(mailbox_index_find(ix, 2)->modseq > h1);
    assert_true(mailbox_index_find(ix, 1)->modseq != mailbox_index_find(ix, 2)->modseq);
    assert_int_equal(mailbox_index_find(ix, 2)->modseq, h2);
    uint64_t m1 = mailbox_index_find(ix, 1)->modseq;
    assert_int_equal(mailbox_index_expunge(ix, 3), 0);
    uint64_t h3 = mailbox_index_highest_modseq(ix);
    assert_true(h3 > h2);
    /* Nothing changed: the sync keeps every modseq. */
    sync_ok(ix);
    assert_int_equal(mailbox_index_highest_modseq(ix), h3);
    assert_int_equal(mailbox_index_find(ix, 1)->modseq, m1);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    assert_int_equal(mailbox_index_highest_modseq(ix), h3);
    assert_int_equal(mailbox_index_find(ix, 1)->modseq, m1);
    assert_string_equal(mailbox_index_find(ix, 1)->flags, "FS");
    /* Another handle's change reaches this one with the same modseq. */
    struct mailbox_index *other = open_synced(f->dir);
    assert_int_equal(mailbox_index_set_flags(other, 2, "RS"), 0);
    assert_int_equal(mailbox_index_flush(other), 0);
    sync_ok(ix);
    assert_string_equal(mailbox_index_find(ix, 2)->flags, "RS");
    assert_int_equal(mailbox_index_find(ix, 2)->modseq, mailbox_index_find(other, 2)->modseq);
    assert_int_equal(mailbox_index_highest_modseq(ix), mailbox_index_highest_modseq(other));
    assert_true(mailbox_index_highest_modseq(ix) > h3);
    mailbox_index_close(&other);
    mailbox_index_close(&ix);
}

/* Puts new/ and cur/ a while into the past: an mtime close to a sync's
   start is not trusted, so the tests that want "not stale" age them.
   Each call picks another past time, as a real change would: an mtime
   put back to the value a sync noted hides the change (the sync of new/
   alone then trusts cur/). */
static long age_step;

static void set_dirs_time(const char *dir)
{
    const struct timespec then[2] = { { 1700000000, 123456789 + age_step },
                                      { 1700000000, 123456789 + age_step } };
    for (int i = 0; i < 2; i++) {
        char *p = xasprintf("%s/%s", dir, i ? "cur" : "new");
        assert_int_equal(utimensat(AT_FDCWD, p, then, 0), 0);
        free(p);
    }
}

static void age_dirs(const char *dir)
{
    age_step++;
    set_dirs_time(dir);
}

/* The mtimes the last age_dirs gave: a change made to look like none. */
static void put_back_dirs(const char *dir)
{
    set_dirs_time(dir);
}

static void aged_sync(struct mailbox_index *ix, const char *dir)
{
    age_dirs(dir);
    sync_ok(ix);
}

static void test_stale_reports_deliveries_renames_and_other_handles(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    write_file(f->dir, "cur/1700000002.B.host:2,", msg_text, strlen(msg_text));
    char *error = NULL;
    struct mailbox_index *ix = mailbox_index_open(f->dir, &error);
    assert_non_null(ix);
    assert_int_equal(mailbox_index_stale(ix), 1); /* never synced */
    aged_sync(ix, f->dir);
    assert_int_equal(mailbox_index_stale(ix), 0);
    assert_int_equal(mailbox_index_stale(ix), 0);

    /* A delivery into new/. */
    deliver(f->dir, "1700000003.C.host", msg_text);
    assert_int_equal(mailbox_index_stale(ix), 1);
    /* Synced right after the change: not trusted yet. */
    sync_ok(ix);
    assert_int_equal(mailbox_index_stale(ix), 1);
    /* 100 ms later the same mtime is trusted (no aging needed). */
    struct timespec pause = { 0, 150000000 };
    nanosleep(&pause, NULL);
    sync_ok(ix);
    assert_int_equal(mailbox_index_stale(ix), 0);

    /* A rename in cur/ (another tool changing flags). */
    char *from = xasprintf("%s/cur/1700000002.B.host:2,", f->dir);
    char *to = xasprintf("%s/cur/1700000002.B.host:2,S", f->dir);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    assert_int_equal(mailbox_index_stale(ix), 1);
    aged_sync(ix, f->dir);
    assert_int_equal(mailbox_index_stale(ix), 0);
    assert_string_equal(mailbox_index_find(ix, 2)->flags, "S");

    /* Another handle that only syncs writes nothing. */
    struct mailbox_index *other = open_synced(f->dir);
    assert_int_equal(mailbox_index_stale(ix), 0);

    /* Another handle's set_flags: cur/ changes... */
    assert_int_equal(mailbox_index_set_flags(other, 2, "FS"), 0);
    assert_int_equal(mailbox_index_flush(other), 0);
    assert_int_equal(mailbox_index_stale(ix), 1);
    /* ...and so does the index, which is seen even when the mtime is
       (made to look) unchanged. */
    put_back_dirs(f->dir);
    assert_int_equal(mailbox_index_stale(ix), 1);
    sync_ok(ix);
    assert_int_equal(mailbox_index_stale(ix), 0);
    assert_string_equal(mailbox_index_find(ix, 2)->flags, "FS");

    /* Another handle's add, with the mtimes put back. */
    write_file(f->dir, "cur/1700000004.D.host:2,S", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(other, "cur/1700000004.D.host:2,S", 0), 4);
    put_back_dirs(f->dir);
    assert_int_equal(mailbox_index_stale(ix), 1);
    sync_ok(ix);
    assert_int_equal(mailbox_index_stale(ix), 0);
    assert_int_equal(by_base(ix, "1700000004.D.host")->uid, 4);

    /* This handle's own writes do not make it stale through the index. */
    assert_int_equal(mailbox_index_set_flags(ix, 1, "S"), 0);
    assert_int_equal(mailbox_index_flush(ix), 0);
    put_back_dirs(f->dir);
    assert_int_equal(mailbox_index_stale(ix), 0);

    /* A cache value is no change. */
    assert_int_equal(mailbox_index_cache_put(other, 1, 1, "x", 1), 0);
    assert_int_equal(mailbox_index_flush(other), 0);
    assert_int_equal(mailbox_index_stale(ix), 0);

    /* A message expunged by another process. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct mailbox_index *child = mailbox_index_open(f->dir, NULL);
        int ok = child != NULL && mailbox_index_sync(child, NULL) == 0 &&
                 mailbox_index_expunge(child, 3) == 0;
        mailbox_index_close(&child);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    age_dirs(f->dir);
    assert_int_equal(mailbox_index_stale(ix), 1);
    sync_ok(ix);
    assert_null(mailbox_index_find(ix, 3));
    mailbox_index_close(&other);
    mailbox_index_close(&ix);
}

/* After a full sync that trusts cur/, a sync lists new/ alone: deliveries
   are added, a file gone from new/ dropped, a copy in new/ of a message
   in cur/ not counted, a flag change in new/ keeps the UID; cur/ is not
   read (a file put there with the mtime put back is not seen until cur/
   changes), and the array matches what a fresh full sync finds. */
static void test_sync_of_new_alone(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    write_file(f->dir, "cur/1700000003.C.host:2,S", msg_text, strlen(msg_text));
    char *error = NULL;
    struct mailbox_index *ix = mailbox_index_open(f->dir, &error);
    assert_non_null(ix);
    aged_sync(ix, f->dir);
    aged_sync(ix, f->dir); /* cur/ now trusted */
    write_file(f->dir, "cur/1700000009.Z.host:2,", msg_text, strlen(msg_text));
    deliver(f->dir, "1700000004.D.host", msg_text);
    deliver(f->dir, "1700000003.C.host", msg_text); /* a copy of C */
    char *p = xasprintf("%s/new/1700000001.A.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    char *from = xasprintf("%s/new/1700000002.B.host", f->dir);
    char *to = xasprintf("%s/new/1700000002.B.host:2,F", f->dir);
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    put_back_dirs(f->dir);
    char *np = xasprintf("%s/new", f->dir);
    assert_int_equal(utimensat(AT_FDCWD, np, NULL, 0), 0); /* new/ changed now */
    free(np);
    assert_int_equal(mailbox_index_stale(ix), 1);
    sync_ok(ix);
    size_t n;
    const struct mailbox_msg *m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].uid, 2);
    assert_string_equal(m[0].path, "new/1700000002.B.host:2,F");
    assert_string_equal(m[0].flags, "F");
    assert_int_equal(m[1].uid, 3);
    assert_string_equal(m[1].path, "cur/1700000003.C.host:2,S");
    assert_int_equal(m[2].uid, 4);
    assert_string_equal(m[2].path, "new/1700000004.D.host");
    assert_null(by_base(ix, "1700000009.Z.host"));
    assert_int_equal(mailbox_index_uidnext(ix), 5);
    uint64_t modseq = mailbox_index_highest_modseq(ix);
    mailbox_index_close(&ix);
    /* A fresh handle lists everything: Z too, the rest as the array had it. */
    ix = open_synced(f->dir);
    m = mailbox_index_messages(ix, &n);
    assert_int_equal(n, 4);
    assert_string_equal(m[0].path, "new/1700000002.B.host:2,F");
    assert_int_equal(m[2].uid, 4);
    assert_int_equal(m[3].uid, 5);
    assert_string_equal(m[3].path, "cur/1700000009.Z.host:2,");
    assert_true(mailbox_index_highest_modseq(ix) > modseq);
    mailbox_index_close(&ix);
}

/* A sync of new/ alone that moves the files to cur/ changes cur/, so the
   next one lists everything again; nothing is lost or counted twice. */
static void test_sync_of_new_alone_with_moves(void **state)
{
    struct fixture *f = *state;
    deliver_many(f->dir, 0, 20);
    char *error = NULL;
    struct mailbox_index *ix = mailbox_index_open(f->dir, &error);
    assert_non_null(ix);
    mailbox_index_set_move_new(ix, 1);
    aged_sync(ix, f->dir);
    aged_sync(ix, f->dir);
    check_all_moved(f->dir, ix, 20);
    deliver_many(f->dir, 20, 600);
    put_back_dirs(f->dir);
    char *np = xasprintf("%s/new", f->dir);
    assert_int_equal(utimensat(AT_FDCWD, np, NULL, 0), 0);
    free(np);
    sync_ok(ix);
    check_all_moved(f->dir, ix, 620);
    assert_int_equal(mailbox_index_stale(ix), 1); /* our renames moved cur/ */
    sync_ok(ix);
    check_all_moved(f->dir, ix, 620);
    assert_int_equal(mailbox_index_uidnext(ix), 621);
    mailbox_index_close(&ix);
}

static void expect_cache(struct mailbox_index *ix, uint32_t uid, unsigned kind,
                         const char *want)
{
    char *data = (char *)"unset";
    size_t len = 99;
    int r = mailbox_index_cache_get(ix, uid, kind, &data, &len);
    if (want == NULL) {
        assert_int_equal(r, 0);
        assert_null(data);
        assert_int_equal(len, 0);
        return;
    }
    assert_int_equal(r, 1);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    assert_int_equal(data[len], '\0');
    free(data);
}

static void test_cache_put_get_and_dropped_with_its_message(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    deliver(f->dir, "1700000003.C.host", msg_text);
    deliver(f->dir, "1700000004.D.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint64_t highest = mailbox_index_highest_modseq(ix);
    assert_int_equal(mailbox_index_cache_put(ix, 1, 1, "envelope A", 10), 0);
    assert_int_equal(mailbox_index_cache_put(ix, 1, 2, "body A", 6), 0);
    assert_int_equal(mailbox_index_cache_put(ix, 2, 1, "envelope B", 10), 0);
    assert_int_equal(mailbox_index_cache_put(ix, 3, 1, "envelope C", 10), 0);
    assert_int_equal(mailbox_index_cache_put(ix, 4, 65535, "", 0), 0);
    expect_cache(ix, 1, 1, "envelope A"); /* before the write */
    assert_int_equal(mailbox_index_cache_put(ix, 1, 1, "envelope A2", 11), 0);
    expect_cache(ix, 1, 1, "envelope A2");
    expect_cache(ix, 1, 3, NULL);
    assert_int_equal(mailbox_index_flush(ix), 0);
    assert_int_equal(mailbox_index_highest_modseq(ix), highest);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    expect_cache(ix, 1, 1, "envelope A2");
    expect_cache(ix, 1, 2, "body A");
    expect_cache(ix, 2, 1, "envelope B");
    expect_cache(ix, 4, 65535, "");
    expect_cache(ix, 5, 1, NULL);

    /* Bad arguments. */
    static char big[MAILBOX_INDEX_CACHE_MAX + 1];
    assert_int_equal(mailbox_index_cache_put(ix, 2, 1, big, sizeof(big)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mailbox_index_cache_put(ix, 2, 65536, "x", 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mailbox_index_cache_put(ix, 2, 7, big, MAILBOX_INDEX_CACHE_MAX), 0);

    /* Expunge drops the message's values, at once and in LMDB. */
    assert_int_equal(mailbox_index_expunge(ix, 1), 0);
    expect_cache(ix, 1, 1, NULL);
    assert_int_equal(mailbox_index_cache_put(ix, 1, 1, "late", 4), -1);
    struct mailbox_index *other = mailbox_index_open(f->dir, NULL);
    assert_non_null(other);
    expect_cache(other, 1, 1, NULL);
    expect_cache(other, 1, 2, NULL);
    expect_cache(other, 2, 1, "envelope B");
    mailbox_index_close(&other);

    /* A vanished file: the sync drops its values. */
    char *p = xasprintf("%s/new/1700000002.B.host", f->dir);
    assert_int_equal(unlink(p), 0);
    free(p);
    sync_ok(ix);
    expect_cache(ix, 2, 1, NULL);
    expect_cache(ix, 2, 7, NULL);
    expect_cache(ix, 3, 1, "envelope C");

    /* A value for a message another handle expunged is not written. */
    other = open_synced(f->dir);
    assert_int_equal(mailbox_index_expunge(other, 3), 0);
    assert_int_equal(mailbox_index_cache_put(ix, 3, 2, "orphan", 6), 0);
    assert_int_equal(mailbox_index_flush(ix), 0);
    expect_cache(other, 3, 2, NULL);
    mailbox_index_close(&other);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    expect_cache(ix, 3, 2, NULL);
    expect_cache(ix, 3, 1, NULL);

    /* Many values are written in batches without an explicit flush. */
    /* (4,096 values or 1 MiB wait at most: lib/mailbox_index_private.h.) */
    for (unsigned k = 0; k < 4200; k++) {
        char text[16];
        snprintf(text, sizeof(text), "v%u", k);
        assert_int_equal(mailbox_index_cache_put(ix, 4, k, text, strlen(text)), 0);
    }
    other = mailbox_index_open(f->dir, NULL);
    expect_cache(other, 4, 0, "v0");
    expect_cache(other, 4, 4095, "v4095");
    expect_cache(other, 4, 4199, NULL);
    mailbox_index_close(&ix); /* writes the rest */
    expect_cache(other, 4, 4199, "v4199");
    mailbox_index_close(&other);
}

/* An index written before the cache existed gains it in place. */
static void test_index_without_cache_database_is_upgraded_in_place(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *ix = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(ix);
    mailbox_index_close(&ix);

    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn = raw_index_txn(f->dir, "cache", &env, &dbi);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    char *log = xasprintf("%s/log", f->dir);
    log_set_file(log);
    ix = open_synced(f->dir);
    log_set_file("/dev/stderr");
    assert_int_equal(mailbox_index_uidvalidity(ix), uv);
    assert_int_equal(by_base(ix, "1700000002.B.host")->uid, 2);
    assert_false(exists(f->dir, "postern-index.lmdb.corrupt"));
    assert_int_equal(mailbox_index_cache_put(ix, 2, 1, "b", 1), 0);
    mailbox_index_close(&ix);
    ix = open_synced(f->dir);
    expect_cache(ix, 2, 1, "b");
    mailbox_index_close(&ix);
    char *text = read_text(log);
    assert_non_null(strstr(text, "cache database added"));
    assert_null(strstr(text, "rebuilt"));
    free(text);
    free(log);
}

/* Handles of one folder in one process share the environment; each
   array is right after its own sync. */
static void test_handles_in_one_process_stay_coherent_across_changes(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    deliver(f->dir, "1700000003.C.host", msg_text);
    struct mailbox_index *a = open_synced(f->dir);
    struct mailbox_index *b = open_synced(f->dir);
    struct mailbox_index *c = open_synced(f->dir);

    write_file(f->dir, "cur/1700000004.D.host:2,S", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(b, "cur/1700000004.D.host:2,S", 0), 4);
    assert_null(mailbox_index_find(a, 4));
    assert_int_equal(mailbox_index_stale(a), 1);
    sync_ok(a);
    assert_string_equal(mailbox_index_find(a, 4)->path, "cur/1700000004.D.host:2,S");
    /* b's array holds 4 already; a sync of b changes nothing. */
    assert_non_null(mailbox_index_find(b, 4));
    sync_ok(b);

    /* a adds too, while c has not synced since: UIDs keep growing and
       c's sync sees both. */
    write_file(f->dir, "new/1700000005.E.host", msg_text, strlen(msg_text));
    assert_int_equal(add_ok(a, "new/1700000005.E.host", 0), 5);
    assert_int_equal(mailbox_index_uidnext(a), 6);

    assert_int_equal(mailbox_index_expunge(b, 1), 0);
    /* a changes flags of a message b expunges before a writes. */
    assert_int_equal(mailbox_index_set_flags(a, 2, "S"), 0);
    assert_int_equal(mailbox_index_expunge(b, 2), 0);
    assert_int_equal(mailbox_index_flush(a), 0);
    struct mailbox_index *d = mailbox_index_open(f->dir, NULL);
    assert_non_null(d);
    mailbox_index_drop_messages(d); /* reads LMDB as it is */
    assert_null(mailbox_index_find(d, 2));
    mailbox_index_close(&d);

    struct mailbox_index *all[3] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        sync_ok(all[i]);
        size_t n;
        const struct mailbox_msg *m = mailbox_index_messages(all[i], &n);
        assert_int_equal(n, 3);
        assert_int_equal(m[0].uid, 3);
        assert_int_equal(m[1].uid, 4);
        assert_int_equal(m[2].uid, 5);
        assert_int_equal(mailbox_index_uidnext(all[i]), 6);
    }
    assert_int_equal(mailbox_index_highest_modseq(a), mailbox_index_highest_modseq(c));
    mailbox_index_close(&b);
    sync_ok(a);
    mailbox_index_close(&a);
    sync_ok(c);
    mailbox_index_close(&c);
}

/* One handle finds the index corrupt and rebuilds it; the others of the
   process move to the new file instead of rebuilding it again. */
static void test_rebuild_by_one_handle_is_adopted_by_the_others(void **state)
{
    struct fixture *f = *state;
    deliver(f->dir, "1700000001.A.host", msg_text);
    deliver(f->dir, "1700000002.B.host", msg_text);
    struct mailbox_index *a = open_synced(f->dir);
    struct mailbox_index *b = open_synced(f->dir);
    uint32_t uv = mailbox_index_uidvalidity(a);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Another process, so opening the file again is allowed. */
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        char *path = xasprintf("%s/postern-index.lmdb", f->dir);
        unsigned char key[4] = { 0, 0, 0, 1 };
        MDB_val k = { 4, key }, v = { 5, "junk!" };
        int ok = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 8) == 0 &&
                 mdb_env_open(env, path, MDB_NOSUBDIR, 0600) == 0 &&
                 mdb_txn_begin(env, NULL, 0, &txn) == 0 &&
                 mdb_dbi_open(txn, "msgs", 0, &dbi) == 0 && mdb_put(txn, dbi, &k, &v, 0) == 0 &&
                 mdb_txn_commit(txn) == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* a's array is current (nobody changed the meta data): its sync
       reads no record and keeps it. A new handle reads them all, finds
       the junk and rebuilds. */
    sync_ok(a);
    assert_int_equal(mailbox_index_uidvalidity(a), uv);
    struct mailbox_index *c = open_synced(f->dir);
    uint32_t uv2 = mailbox_index_uidvalidity(c);
    assert_true(uv2 > uv);
    mailbox_index_close(&c);
    assert_int_equal(mailbox_index_stale(b), 1);
    uint32_t uid;
    write_file(f->dir, "new/1700000003.C.host", msg_text, strlen(msg_text));
    assert_int_equal(mailbox_index_add(b, "new/1700000003.C.host", 0, &uid), -1);
    assert_int_equal(errno, ESTALE);
    sync_ok(b);
    assert_int_equal(mailbox_index_uidvalidity(b), uv2);
    size_t n;
    mailbox_index_messages(b, &n);
    assert_int_equal(n, 3);
    sync_ok(a);
    assert_int_equal(mailbox_index_uidvalidity(a), uv2);
    assert_int_equal(mailbox_index_uid_of_base(a, "1700000003.C.host"),
                     mailbox_index_uid_of_base(b, "1700000003.C.host"));
    mailbox_index_close(&a);
    mailbox_index_close(&b);
}

int main(void)
{
    log_set_file("/dev/stderr");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_uids_follow_delivery_time_then_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uids_and_uidvalidity_stable_across_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_file_gets_next_uid_and_uids_are_never_reused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_by_other_tool_keeps_uid_and_bumps_modseq,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanished_file_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skips_dot_files_directories_symlinks_and_tmp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_unique_part_in_new_and_cur_counts_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_flags_moves_new_to_cur_and_persists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_flags_on_vanished_file_is_enoent_and_drops_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_flags_and_open_find_a_file_renamed_by_another_tool,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_expunge_removes_file_and_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dropped_array_reads_messages_from_lmdb_with_same_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_array_with_many_changes_flushes_in_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_crlf_size_of_lf_crlf_mixed_empty_and_unterminated_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_fd_across_chunk_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_corrupt_index_is_rebuilt_with_new_uidvalidity_and_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_record_found_by_sync_rebuilds_the_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_index_is_rebuilt_with_larger_uidvalidity,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_nonblocking_returns_1_while_another_holds_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_in_one_process_share_the_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handle_inherited_over_fork_reopens_in_the_child,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_fails_for_a_missing_maildir, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_large_sync_reopens_the_environment_and_the_handle_keeps_working, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_sizes_come_from_the_name_when_it_matches_the_file,
                                        setup, teardown),
        cmocka_unit_test(test_parse_name_valid_and_invalid),
        cmocka_unit_test_setup_teardown(test_move_new_of_many_files_on_the_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_move_new_of_a_few_files_and_off_by_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_move_new_never_replaces_a_file_in_cur, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_of_new_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_of_new_alone_with_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_registers_a_placed_file_and_sync_keeps_its_uid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_of_a_missing_or_implausible_file_fails_and_uses_no_uid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_of_base_follows_the_index,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_modseq_advances_and_changed_message_gets_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_reports_deliveries_renames_and_other_handles,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_put_get_and_dropped_with_its_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_without_cache_database_is_upgraded_in_place,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_handles_in_one_process_stay_coherent_across_changes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_by_one_handle_is_adopted_by_the_others,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
